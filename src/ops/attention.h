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
  // One layer of the cache. Row r of KV head h starts at k + h * kv_head_stride + r * kv_row_stride
  // (the defaults, 0, mean [n_slots, n_kv_head * head_dim]: heads adjacent within a row).
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t kv_row_stride = 0;       // floats between the rows of consecutive slots
  int64_t kv_head_stride = 0;      // floats between the first rows of consecutive KV heads
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
