// Token selection: greedy, or sampling with temperature, top-k, top-p, min-p and repetition
// penalty, applied in transformers' order (repetition penalty, temperature, top-k, top-p,
// min-p). The processed distribution is exposed separately because speculative sampling needs
// the target distribution p itself, not just one draw from it.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace swift {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off (CTRL-style, as transformers)
  uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.0f; }
  // Throws swift::Error naming the parameter when out of range.
  void validate() const;
};

// Applies the repetition penalty to logits in place for every token id in `history`.
void apply_repetition_penalty(float* logits, int64_t n_vocab, std::span<const int32_t> history, float penalty);

// Index of the largest value; ties go to the lowest index (as torch.argmax).
int32_t argmax(const float* x, int64_t n);

// Target distribution after temperature/top-k/top-p/min-p; probs gets n_vocab entries summing to 1.
// Requires !params.greedy().
void sampling_distribution(const float* logits, int64_t n_vocab, const SamplingParams& params,
                           std::vector<float>& probs);

// Draws an index from a normalised distribution.
int32_t sample_from(const std::vector<float>& probs, std::mt19937_64& rng);

class Sampler {
 public:
  explicit Sampler(SamplingParams p) : p_(p), rng_(p.seed) {}
  // Picks the next token from raw logits; `history` feeds the repetition penalty. Modifies a
  // copy, never the caller's logits.
  int32_t pick(const float* logits, int64_t n_vocab, std::span<const int32_t> history);
  const SamplingParams& params() const { return p_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> work_, probs_;
};

}  // namespace swift
