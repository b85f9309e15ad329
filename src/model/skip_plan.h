// Which sublayers a forward pass skips. SWIFT's draft model is the full model run with a
// non-empty plan (Xia et al., ICLR 2025, sec. 3); the full model is the empty plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace swift {

struct SkipPlan {
  std::vector<uint8_t> skip_attn;  // [n_layer] 1 = skip layer l's attention sublayer
  std::vector<uint8_t> skip_mlp;   // [n_layer] 1 = skip layer l's MLP sublayer

  static SkipPlan none(int64_t n_layer) { return {std::vector<uint8_t>(n_layer, 0), std::vector<uint8_t>(n_layer, 0)}; }
  int64_t n_skipped() const {
    int64_t n = 0;
    for (auto s : skip_attn) n += s;
    for (auto s : skip_mlp) n += s;
    return n;
  }
  bool empty() const { return n_skipped() == 0; }
};

// Fraction of a full forward's weight bytes a pass under `plan` still reads (embedding lookup
// excluded, LM head included): the memory-bound cost of a draft step relative to a full step.
inline double kept_weight_fraction(const ModelConfig& c, const SkipPlan& plan) {
  const double attn = static_cast<double>(c.hidden_size) * (2.0 * c.q_dim() + 2.0 * c.kv_dim());
  const double mlp = 3.0 * static_cast<double>(c.hidden_size) * c.intermediate_size;
  const double head = static_cast<double>(c.vocab_size) * c.hidden_size;
  double kept = head, total = head + c.n_layer * (attn + mlp);
  for (int64_t l = 0; l < c.n_layer; ++l) kept += (plan.skip_attn[l] ? 0 : attn) + (plan.skip_mlp[l] ? 0 : mlp);
  return kept / total;
}

}  // namespace swift
