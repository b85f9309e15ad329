// Which sublayers a forward pass skips. SWIFT's draft model is the full model run with a
// non-empty plan (Xia et al., ICLR 2025, sec. 3); the full model is the empty plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace swift
