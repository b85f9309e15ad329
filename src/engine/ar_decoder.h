// Plain autoregressive decoding: one forward of the full model per token. The baseline every
// speculative mode must reproduce exactly under greedy decoding.
#pragma once

#include "engine/generation.h"

namespace swift {

class ArDecoder : public Decoder {
 public:
  ArDecoder(const Model& model, const SamplingParams& sampling, ThreadPool& pool)
      : model_(model), sampler_(sampling), pool_(pool), full_(SkipPlan::none(model.config.n_layer)) {}

  void start(Sequence& seq, const std::vector<float>& last_logits) override;
  void step(Sequence& seq, int64_t budget) override;

 private:
  const Model& model_;
  Sampler sampler_;
  ThreadPool& pool_;
  SkipPlan full_;
  std::vector<float> logits_;
};

}  // namespace swift
