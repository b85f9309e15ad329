#include "engine/ar_decoder.h"

namespace swift {

void ArDecoder::start(Sequence& seq, const std::vector<float>& last_logits) {
  seq.tokens.push_back(sampler_.pick(last_logits.data(), model_.config.vocab_size, seq.tokens));
}

void ArDecoder::step(Sequence& seq, int64_t /*budget*/) {
  const int32_t last = seq.tokens.back();
  model_.transformer->forward(ForwardBatch::causal({last}, seq.n_cached, false), seq.cache, full_, pool_, logits_);
  ++seq.n_cached;
  seq.tokens.push_back(sampler_.pick(logits_.data(), model_.config.vocab_size, seq.tokens));
}

}  // namespace swift
