#include "engine/generation.h"

#include <algorithm>

#include "util/check.h"
#include "util/timer.h"

namespace swift {

namespace {

// Holds back streamed text that might be the start of a stop string, and finds stops.
class StopScanner {
 public:
  explicit StopScanner(const std::vector<std::string>& stops) : stops_(stops) {}

  // Appends text; returns the part that is safe to emit. Sets *stopped when a stop string
  // completed (the text is cut before it).
  std::string push(const std::string& piece, bool* stopped) {
    text_ += piece;
    size_t cut = std::string::npos;
    for (const auto& s : stops_) {
      const size_t from = emitted_ > s.size() ? emitted_ - s.size() : 0;
      const size_t at = text_.find(s, from);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) {
      *stopped = true;
      text_.resize(cut);
      return take(cut);
    }
    size_t hold = 0;  // longest suffix of text_ that is a proper prefix of a stop string
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - 1, text_.size()); k > hold; --k)
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    return take(text_.size() - hold);
  }
  std::string finish() { return take(text_.size()); }
  const std::string& text() const { return text_; }

 private:
  std::string take(size_t upto) {
    if (upto <= emitted_) return {};
    std::string out = text_.substr(emitted_, upto - emitted_);
    emitted_ = upto;
    return out;
  }
  const std::vector<std::string>& stops_;
  std::string text_;
  size_t emitted_ = 0;
};

}  // namespace

GenerateResult generate(const Model& model, Decoder& decoder, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt, ThreadPool& pool, const TextCallback& on_text) {
  opt.sampling.validate();
  const int64_t n_ctx = opt.n_ctx > 0 ? opt.n_ctx : model.config.max_positions;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  if (n_prompt == 0) fail("the prompt is empty (give text or at least one token id)");
  if (opt.max_tokens < 0) fail("max tokens must be >= 0, got {}", opt.max_tokens);
  if (n_prompt + opt.max_tokens > n_ctx)
    fail("prompt ({} tokens) + max tokens ({}) = {} exceeds the context length {}; lower -n or shorten the prompt",
         n_prompt, opt.max_tokens, n_prompt + opt.max_tokens, n_ctx);
  const int64_t vocab = model.config.vocab_size;
  for (int32_t t : prompt)
    if (t < 0 || t >= vocab) fail("prompt token id {} is outside the vocabulary [0, {})", t, vocab);
  const Tokenizer* tok = model.tokenizer.get();
  if (!opt.stop.empty() && !tok) fail("stop strings need a tokenizer: {}", model.tokenizer_error);
  for (const auto& s : opt.stop)
    if (s.empty()) fail("stop strings must not be empty");

  GenerateResult res;
  res.stats.prompt_tokens = n_prompt;
  if (opt.max_tokens == 0) {
    res.finish_reason = "length";
    return res;
  }
  Sequence seq(model, n_ctx, kScratchSlots);
  seq.tokens = prompt;
  seq.n_prompt = n_prompt;
  const SkipPlan full = SkipPlan::none(model.config.n_layer);
  std::vector<float> logits;
  const double t0 = now_ms();
  model.transformer->forward(ForwardBatch::causal(prompt, 0, false), seq.cache, full, pool, logits);
  seq.n_cached = n_prompt;
  const double t1 = now_ms();
  res.stats.prefill_ms = t1 - t0;

  std::unique_ptr<StreamDecoder> stream;
  if (tok) stream = std::make_unique<StreamDecoder>(*tok);
  StopScanner stops(opt.stop);
  auto emit = [&](const std::string& s) { return s.empty() || !on_text || on_text(s); };

  decoder.start(seq, logits);
  size_t consumed = static_cast<size_t>(n_prompt);
  for (;;) {
    bool done = false;
    while (consumed < seq.tokens.size() && !done) {
      const int32_t id = seq.tokens[consumed++];
      res.tokens.push_back(id);
      const bool is_eos = !opt.ignore_eos && std::find(model.eos_ids.begin(), model.eos_ids.end(), id) != model.eos_ids.end();
      if (is_eos) {
        res.finish_reason = "stop";
        done = true;
        break;
      }
      if (stream) {
        bool stopped = false;
        if (!emit(stops.push(stream->push(id), &stopped))) {
          res.finish_reason = "abort";
          done = true;
        } else if (stopped) {
          res.finish_reason = "stop";
          done = true;
        }
      }
      if (!done && static_cast<int64_t>(res.tokens.size()) >= opt.max_tokens) {
        res.finish_reason = "length";
        done = true;
      }
    }
    if (done) break;
    decoder.step(seq, opt.max_tokens - static_cast<int64_t>(res.tokens.size()));
    SWIFT_CHECK(seq.tokens.size() > consumed, "decoder produced no token");
  }
  if (stream && res.finish_reason != "stop") {
    bool stopped = false;
    emit(stops.push(stream->flush(), &stopped));
  }
  emit(stops.finish());
  res.text = stops.text();
  res.stats.decode_ms = now_ms() - t1;
  res.stats.generated_tokens = static_cast<int64_t>(res.tokens.size());
  decoder.report(res.stats);
  return res;
}

}  // namespace swift
