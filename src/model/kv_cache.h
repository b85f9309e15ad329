// Key/value cache: a fixed pool of slots per layer, preallocated once.
//
// A slot holds one token's K and V for every layer, plus the token's position (needed for
// sliding-window masks). Within a layer the rows of one KV head are contiguous ([n_kv_head,
// n_slots, head_dim]): attention streams one head's keys per work unit, and a contiguous
// stream is what the hardware prefetcher and DRAM pages serve best (with heads interleaved per
// slot each thread read every other 256-byte block). The cache does not know about sequences: callers decide which slots
// hold the committed sequence (0..n_past) and which are scratch (drafts, trees, matchness
// windows). Rolling back is a length change in the caller; nothing is ever copied wholesale.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"

namespace swift {

class KvCache {
 public:
  KvCache(const ModelConfig& cfg, int64_t n_slots);

  int64_t n_slots() const { return n_slots_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t head_dim() const { return head_dim_; }
  // One layer: [n_kv_head, n_slots, head_dim].
  float* k(int64_t layer) { return k_.get() + layer * n_slots_ * kv_dim_; }
  float* v(int64_t layer) { return v_.get() + layer * n_slots_ * kv_dim_; }
  // Floats between the first rows of consecutive KV heads of one layer.
  int64_t head_stride() const { return n_slots_ * head_dim_; }
  // Stores one token's K and V ([n_kv_head * head_dim] each, heads adjacent) into `slot`.
  void store(int64_t layer, int64_t slot, const float* k_row, const float* v_row);
  int32_t slot_pos(int64_t slot) const { return pos_[slot]; }
  void set_slot_pos(int64_t slot, int32_t pos) { pos_[slot] = pos; }

  // Copies slot `from` to slot `to` in every layer (compaction of accepted tree nodes).
  void move_slot(int64_t from, int64_t to);

  uint64_t bytes() const { return 2 * static_cast<uint64_t>(n_layer_ * n_slots_ * kv_dim_) * sizeof(float); }

 private:
  int64_t n_layer_, n_slots_, kv_dim_, head_dim_, n_kv_head_;
  // Left uninitialised: a slot is only ever read after a forward wrote it (attention sees
  // committed slots and the batch's own), and zero-filling 33 MB per generation (the demo
  // model's full context) was a quarter of a short request's time, mostly page faults. Pages
  // are now touched only as slots fill.
  std::unique_ptr<float[]> k_;  // [n_layer, n_kv_head, n_slots, head_dim]
  std::unique_ptr<float[]> v_;  // [n_layer, n_kv_head, n_slots, head_dim]
  std::vector<int32_t> pos_;  // [n_slots] position of the token in each slot
};

}  // namespace swift
