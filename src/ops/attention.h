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

#include "util/function_ref.h"
#include "util/thread_pool.h"

namespace swift {

// Visible slots of each query: slots[offsets[i] .. offsets[i+1]).
struct SlotLists {
  std::vector<int64_t> offsets;  // [n_tok + 1]
  std::vector<int32_t> slots;    // [offsets.back()]
  // A promise of the builder: each list is a prefix of the next one's (a causal batch without a
  // window: the committed prefix, then the batch's slots up to the token). attention_f32_amx needs it.
  bool nested = false;
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
  // Optional, attention_bf16 only: the layer's bf16 copy kept by kv_bf16_store (layout there),
  // KV head h at k16 / v16 + h * kv16_head_stride. Read for the part of a list that runs 0, 1, 2,
  // ... from its start (the committed context), in place of converting those rows on every call.
  // With k = v = null (a cache that keeps only the copy, model/kv_cache.h) every key and value is
  // read from it, with the same bits.
  const uint16_t* k16 = nullptr;
  const uint16_t* v16 = nullptr;
  int64_t kv16_head_stride = 0;  // elements
  // Optional, attention_bf16 only: out rounded to bf16 as well ([n_tok, n_head * head_dim], the
  // rounding of bf16_round_rows_into), the next matrix product's operand made where out is written.
  uint16_t* out16 = nullptr;
  // Optional: makes KV head h's inputs ready before they are read: the q rows of its query heads
  // [h * G, (h + 1) * G) (G = n_head / n_kv_head) and the batch's own keys and values of head h
  // (the caller's rotary and cache stores). Called once per KV head on the pool's threads: by the
  // work unit that holds all of the head's tokens where the split has one unit per head, else in
  // a round of its own before the units. Why: done on one thread before the kernel this was ~0.1
  // ms of a 16-token verification pass of swift-mini-24L on the 2-core Xeon (the Q|K|V rows half
  // in the other core's cache); split by head it runs on both cores, next to the reads it feeds.
  const FunctionRef<void(int64_t)>* prepare = nullptr;  // null: inputs ready
};

void attention(const AttentionArgs& a, ThreadPool& pool);

// f32-accurate attention on AMX tiles for `--math f32` prompt prefill (contract in
// ops/attention_f32_amx.cc): operands split into three bf16 parts, six tile products where one
// bf16 product would do, softmax in f32; the error is of attention()'s class but the bits are not
// its, and a token's result depends on the other tokens of its 16-token block, so only prefill
// may use it (as matmul_prefill). Usable with AMX, f32 keys and values (k, v), nested lists
// (SlotLists::nested) and head_dim a multiple of 64.
bool attention_f32_amx_usable(const AttentionArgs& a);
void attention_f32_amx(const AttentionArgs& a, ThreadPool& pool);

// Attention for `--math bf16` (contract in ops/attention_bf16.cc): q, keys, values and softmax
// weights rounded to bf16, products of bf16 pairs summed in f32, on AMX tiles where the CPU has
// them, else with AVX-512 BF16's vdpbf16ps; the same determinism as attention() (a query's output
// depends only on its q and its visible keys in list order), but not the same bits (nor the same
// bits on the two product units: a machine uses one). Usable in builds with AVX-512 BF16
// (attention_bf16_native), at most 16 query heads per KV head, and head_dim a multiple of 64
// (every LLaMA-family model: 64 or 128).
bool attention_bf16_native();
bool attention_bf16_usable(int64_t n_head, int64_t n_kv_head, int64_t head_dim);
// Test seam: true runs the vdpbf16ps products even where AMX tiles are available, so that an AMX
// machine tests both (not thread-safe against a running kernel; tests only).
void attention_bf16_use_dot_for_test(bool on);
void attention_bf16(const AttentionArgs& a, ThreadPool& pool);

// The bf16 copy of one KV head's cache that attention_bf16 reads (the same conversion and
// layout it packs other rows into, so either source gives the same bits), both in pair layout,
// the tile unit's B operand: keys per block of 16 slots and 32 dimensions one tile [16 dim
// pairs][16 slots][2] ([n_slots / 16, hd / 32, 16, 32]: K^T, so score tiles come out as query
// rows x keys); values per block of 32 slots and 16 dimensions one tile [16 slot pairs][16
// dims][2] ([n_slots / 32, hd / 16, 16, 32]). n_slots must be a multiple of 32.
// Stores one slot's K and V (hd floats each).
void kv_bf16_store(const float* k_row, const float* v_row, int64_t hd, int64_t slot, uint16_t* k16, uint16_t* v16);
// Copies slot `from` to slot `to`.
void kv_bf16_move(int64_t from, int64_t to, int64_t hd, uint16_t* k16, uint16_t* v16);

}  // namespace swift
