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

struct Generation::Stops {
  explicit Stops(const std::vector<std::string>& stops) : scanner(stops) {}
  StopScanner scanner;
};

Generation::Generation(const Model& model, Decoder& decoder, std::vector<int32_t> prompt, const GenerateOptions& opt,
                       ThreadPool& pool)
    : model_(model), decoder_(decoder), prompt_(std::move(prompt)), opt_(opt), pool_(pool) {
  opt_.sampling.validate();
  const int64_t n_ctx = opt_.n_ctx > 0 ? opt_.n_ctx : model.config.max_positions;
  const int64_t n_prompt = static_cast<int64_t>(prompt_.size());
  if (n_prompt == 0) fail("the prompt is empty (give text or at least one token id)");
  if (opt_.max_tokens < 0) fail("max tokens must be >= 0, got {}", opt_.max_tokens);
  if (n_prompt + opt_.max_tokens > n_ctx)
    fail("prompt ({} tokens) + max tokens ({}) = {} exceeds the context length {}; lower -n or shorten the prompt",
         n_prompt, opt_.max_tokens, n_prompt + opt_.max_tokens, n_ctx);
  const int64_t vocab = model.config.vocab_size;
  for (int32_t t : prompt_)
    if (t < 0 || t >= vocab) fail("prompt token id {} is outside the vocabulary [0, {})", t, vocab);
  const Tokenizer* tok = model.tokenizer.get();
  if (!opt_.stop.empty() && !tok) fail("stop strings need a tokenizer: {}", model.tokenizer_error);
  for (const auto& s : opt_.stop)
    if (s.empty()) fail("stop strings must not be empty");
  res_.stats.prompt_tokens = n_prompt;
  if (opt_.max_tokens == 0) {
    res_.finish_reason = "length";
    finished_ = true;
    return;
  }
  // The cache holds what this generation can commit, rounded up to kCacheSlotStep so that
  // requests of similar length reuse each other's recycled blocks (util/page_buffer.h), not the
  // model's whole context: a fresh cache is zeroed page by page on first touch, and with the
  // head-major layout (model/kv_cache.h) a prefill touches every huge page of it.
  const int64_t n_need = n_prompt + opt_.max_tokens;
  const int64_t n_cache = std::min(n_ctx, (n_need + kCacheSlotStep - 1) / kCacheSlotStep * kCacheSlotStep);
  seq_ = std::make_unique<Sequence>(model, n_cache, kScratchSlots);
  seq_->tokens = prompt_;
  seq_->n_prompt = n_prompt;
  if (tok) stream_ = std::make_unique<StreamDecoder>(*tok);
  stops_ = std::make_unique<Stops>(opt_.stop);
}

Generation::~Generation() = default;

bool Generation::advance(std::string* text) {
  if (finished_) return true;
  if (!started_) {
    started_ = true;
    const SkipPlan full = SkipPlan::none(model_.config.n_layer);
    std::vector<float> logits;
    const double t0 = now_ms();
    ForwardBatch batch = ForwardBatch::causal(prompt_, 0, false);
    batch.prefill = true;
    model_.transformer->forward(batch, seq_->cache, full, pool_, logits);
    seq_->n_cached = static_cast<int64_t>(prompt_.size());
    t_decode_ = now_ms();
    res_.stats.prefill_ms = t_decode_ - t0;
    decoder_.start(*seq_, logits);
    consumed_ = prompt_.size();
  } else {
    decoder_.step(*seq_, opt_.max_tokens - static_cast<int64_t>(res_.tokens.size()));
    SWIFT_CHECK(seq_->tokens.size() > consumed_, "decoder produced no token");
  }
  while (consumed_ < seq_->tokens.size()) {
    const int32_t id = seq_->tokens[consumed_++];
    res_.tokens.push_back(id);
    const bool is_eos = !opt_.ignore_eos &&
                        std::find(model_.eos_ids.begin(), model_.eos_ids.end(), id) != model_.eos_ids.end();
    if (is_eos) {
      res_.finish_reason = "stop";
      break;
    }
    if (stream_) {
      bool stopped = false;
      *text += stops_->scanner.push(stream_->push(id), &stopped);
      if (stopped) {
        res_.finish_reason = "stop";
        break;
      }
    }
    if (static_cast<int64_t>(res_.tokens.size()) >= opt_.max_tokens) {
      res_.finish_reason = "length";
      break;
    }
  }
  if (!res_.finish_reason.empty()) finish(text);
  return finished_;
}

void Generation::abort() {
  if (finished_) return;
  res_.finish_reason = "abort";
  std::string ignored;
  finish(&ignored);
}

void Generation::finish(std::string* text) {
  if (stream_ && res_.finish_reason != "stop") {
    bool stopped = false;
    *text += stops_->scanner.push(stream_->flush(), &stopped);
  }
  if (stops_) {
    *text += stops_->scanner.finish();
    res_.text = stops_->scanner.text();
  }
  res_.stats.decode_ms = started_ ? now_ms() - t_decode_ : 0.0;
  res_.stats.generated_tokens = static_cast<int64_t>(res_.tokens.size());
  if (started_) decoder_.report(res_.stats);
  finished_ = true;
}

GenerateResult generate(const Model& model, Decoder& decoder, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt, ThreadPool& pool, const TextCallback& on_text) {
  Generation g(model, decoder, prompt, opt, pool);
  std::string text;
  while (!g.finished()) {
    text.clear();
    g.advance(&text);
    if (!text.empty() && on_text && !on_text(text)) g.abort();  // finish_reason "abort"
  }
  return std::move(g.result());
}

}  // namespace swift
