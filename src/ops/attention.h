// Scaled dot-product attention of a batch of query tokens over KV-cache slots, where each
// query sees an explicit list of slots (CSR). The list encodes causality, tree masks for
// speculative verification, scratch-slot layouts and sliding windows; this kernel knows none
// of those concepts.
//
// Determinism: a query's output depends only on its q and the K/V rows of its visible slots,
// taken in list order. Callers that list the same keys in the same order (plain decoding and
// tree verification do) get bit-identical results.
#pragma once

#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace swift {

// Visible slots of each query: slots[offsets[i] .. offsets[i+1]).
struct SlotLists {
  std::vector<int64_t> offsets;  // [n_tok + 1]
  std::vector<int32_t> slots;    // [offsets.back()]
  int64_t max_len() const;
};

struct AttentionArgs {
  const float* q = nullptr;        // [n_tok, n_head * head_dim]
  const float* k = nullptr;        // [n_slots, n_kv_head * head_dim] (one layer of the cache)
  const float* v = nullptr;        // [n_slots, n_kv_head * head_dim]
  int64_t n_tok = 0;
  int64_t n_head = 0;
  int64_t n_kv_head = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;              // usually 1/sqrt(head_dim)
  const SlotLists* visible = nullptr;
  float* out = nullptr;            // [n_tok, n_head * head_dim]
};

void attention(const AttentionArgs& a, ThreadPool& pool);

}  // namespace swift
