// The generation driver shared by every decoding mode.
//
// A Decoder turns the current sequence into one or more new tokens per step (plain decoding:
// one; speculative modes: the accepted draft plus a bonus token). The driver owns everything
// the modes share: prefill, EOS and stop strings, max tokens, streaming text and statistics.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/sequence.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace swift {

struct GenerateOptions {
  int64_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings (need a tokenizer)
  bool ignore_eos = false;
  int64_t n_ctx = 0;              // 0 = the model's max_position_embeddings
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_ms = 0;
  double decode_ms = 0;
  // Mode-specific numbers (acceptance, draft steps, ...), reported as is.
  std::map<std::string, double> extra;
  double decode_tokens_per_s() const { return decode_ms > 0 ? generated_tokens * 1000.0 / decode_ms : 0.0; }
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (after truncation at a stop)
  std::string text;             // their text ("" without a tokenizer)
  std::string finish_reason;    // "stop" (EOS or stop string), "length", "abort"
  GenerateStats stats;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Called once after prefill with the logits of the last prompt token.
  virtual void start(Sequence& seq, const std::vector<float>& last_logits) = 0;
  // Appends at least one token to seq.tokens, keeping the Sequence invariant. `budget` is how
  // many more tokens the driver will accept; producing more is allowed (they are dropped).
  virtual void step(Sequence& seq, int64_t budget) = 0;
  // Adds mode statistics to stats.extra.
  virtual void report(GenerateStats& stats) const { (void)stats; }
};

// Streaming callback: receives printable text pieces; return false to abort generation.
using TextCallback = std::function<bool(const std::string&)>;

// One generation driven step by step, so that a server can interleave several of them on one
// compute thread (each advance() is one forward pass: prefill, or one decoder step).
class Generation {
 public:
  // Validates everything up front; throws swift::Error for a prompt that does not fit the
  // context, token ids outside the vocabulary or invalid options. Allocates the KV cache.
  Generation(const Model& model, Decoder& decoder, std::vector<int32_t> prompt, const GenerateOptions& opt,
             ThreadPool& pool);
  ~Generation();

  // Runs prefill (first call) or one decoder step, and appends the newly printable text to
  // *text (held back while it may be the start of a stop string). Returns true when finished.
  bool advance(std::string* text);
  bool finished() const { return finished_; }
  // Ends the generation now with finish_reason "abort" (a client went away).
  void abort();
  // The result; valid once finished().
  GenerateResult& result() { return res_; }
  int64_t prompt_tokens() const { return static_cast<int64_t>(prompt_.size()); }

 private:
  void finish(std::string* text);

  const Model& model_;
  Decoder& decoder_;
  std::vector<int32_t> prompt_;
  GenerateOptions opt_;
  ThreadPool& pool_;
  std::unique_ptr<Sequence> seq_;
  std::unique_ptr<StreamDecoder> stream_;
  struct Stops;
  std::unique_ptr<Stops> stops_;
  GenerateResult res_;
  size_t consumed_ = 0;
  bool started_ = false, finished_ = false;
  double t_decode_ = 0;
};

// Runs prefill and the decoder until EOS, a stop string, max_tokens or an abort (on_text
// returning false). Throws as Generation's constructor does.
GenerateResult generate(const Model& model, Decoder& decoder, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt, ThreadPool& pool, const TextCallback& on_text = nullptr);

// Scratch slots every sequence reserves beyond the context for drafts and trees.
constexpr int64_t kScratchSlots = 320;
// A generation's KV cache holds prompt + max tokens rounded up to a multiple of this (at most the
// context length), plus kScratchSlots.
constexpr int64_t kCacheSlotStep = 256;

}  // namespace swift
