// One generation in progress: its tokens and the KV cache that holds them.
//
// Invariant: slots [0, n_cached) hold the K/V of tokens[0, n_cached) at positions 0..n_cached-1,
// and n_cached < tokens.size() between decode steps: the newest token is not yet in the cache
// (it is the input of the next forward). Slots >= n_cached are scratch that any step may
// overwrite; rolling back means lowering n_cached.
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace swift {

struct Sequence {
  Sequence(const Model& model, int64_t n_ctx, int64_t n_scratch)
      : cache(model.config, n_ctx + n_scratch), n_ctx(n_ctx) {}

  KvCache cache;                 // [n_layer, n_ctx + n_scratch, kv_dim]
  std::vector<int32_t> tokens;   // prompt + generated
  int64_t n_cached = 0;
  int64_t n_ctx;                 // committed tokens may not exceed this
  int64_t n_prompt = 0;
};

}  // namespace swift
