// Key/value cache: a fixed pool of slots per layer, preallocated once.
//
// A slot holds one token's K and V for every layer, plus the token's position (needed for
// sliding-window masks). Within a layer the rows of one KV head are contiguous ([n_kv_head,
// n_slots, head_dim]): attention streams one head's keys per work unit, and a contiguous
// stream is what the hardware prefetcher and DRAM pages serve best (with heads interleaved per
// slot each thread read every other 256-byte block). The cache does not know about sequences:
// callers decide which slots hold the committed sequence (0..n_past) and which are scratch (drafts, trees, matchness
// windows). Rolling back is a length change in the caller; nothing is ever copied wholesale.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "util/check.h"
#include "util/page_buffer.h"

namespace swift {

class KvCache {
 public:
  KvCache(const ModelConfig& cfg, int64_t n_slots);
  ~KvCache();  // hands the blocks back for the next cache (util/page_buffer.h)
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = delete;

  int64_t n_slots() const { return n_slots_; }
  int64_t kv_dim() const { return kv_dim_; }
  // One layer: [n_kv_head, n_slots, head_dim]. Not in a cache that keeps only the bf16 copy.
  float* k(int64_t layer) { return f32_base(kbuf_, layer); }
  float* v(int64_t layer) { return f32_base(vbuf_, layer); }
  // Floats between the first rows of consecutive KV heads of one layer.
  int64_t head_stride() const { return n_slots_ * head_dim_; }
  // Stores one token's K and V ([n_kv_head * head_dim] each, heads adjacent) into `slot`.
  void store(int64_t layer, int64_t slot, const float* k_row, const float* v_row);
  // Stores KV head h's part of one token ([head_dim] each) into `slot`: store() per head, so that
  // threads may store different heads at once.
  void store_head(int64_t layer, int64_t slot, int64_t h, const float* k_head, const float* v_head);
  int32_t slot_pos(int64_t slot) const { return pos_[slot]; }
  void set_slot_pos(int64_t slot, int32_t pos) { pos_[slot] = pos; }

  // Copies slot `from` to slot `to` in every layer (compaction of accepted tree nodes).
  void move_slot(int64_t from, int64_t to);

  // From the first call on, K and V are kept only in bf16, in the layout bf16 attention reads
  // (ops/attention.h: kv_bf16_store): slots that already hold a token are converted, the f32
  // blocks go back to the pool, store() and move_slot() write the bf16 copy, and k() / v() are
  // gone. Why: bf16 attention rounds every key and value to bf16 anyway (the f32 rows it read were
  // rounded on each call, the same bits), so the f32 rows cost memory (2/3 of the cache with both)
  // and stores (a 16-token pass's per KV head and layer: ~4.2K -> ~3.3K cycles on the Xeon this
  // was measured on).
  void enable_bf16_only();
  bool has_bf16_copy() const { return k16buf_ != nullptr; }
  bool bf16_only() const { return kbuf_ == nullptr; }
  // One layer of the copy: KV head h at k16(l) + h * head_stride16().
  const uint16_t* k16(int64_t layer) const { return copy_base(k16buf_, layer); }
  const uint16_t* v16(int64_t layer) const { return copy_base(v16buf_, layer); }
  int64_t head_stride16() const { return n_slots16_ * head_dim_; }

  uint64_t bytes() const {
    const uint64_t f32 = bf16_only() ? 0 : 2 * static_cast<uint64_t>(n_layer_ * n_slots_ * kv_dim_) * sizeof(float);
    return f32 + (has_bf16_copy() ? 2 * static_cast<uint64_t>(n_layer_ * n_slots16_ * kv_dim_) * 2 : 0);
  }

 private:
  int64_t n_layer_, n_slots_, kv_dim_, head_dim_, n_kv_head_;
  // Huge-page blocks (util/page_buffer.h), recycled between caches of the same size and left
  // uninitialised: a slot is only ever read after a forward wrote it (attention sees committed
  // slots and the batch's own). Measured trade-off in a fresh process (`generate`, 256 tokens
  // after a 200-token prompt, alternating): in 4 KiB pages the head-major layout faults a page
  // per head block every 16 slots, ~1,500 faults during decode, 394-588 tokens/s against
  // 628-803 with huge pages; huge pages instead make the first forward zero the whole cache
  // (~50 ms for 33 MB here against ~15 ms of faults for a 200-token prompt's pages). Recycling
  // removes both costs from every later generation of the process (bench, server).
  // f32 [n_layer, n_kv_head, n_slots, head_dim] each; null once bf16 only:
  std::unique_ptr<PageBuffer> kbuf_;
  std::unique_ptr<PageBuffer> vbuf_;
  std::vector<int32_t> pos_;  // [n_slots] position of the token in each slot
  // The bf16 copy (null until enable_bf16_only), n_slots16_ = n_slots rounded up to 32:
  std::unique_ptr<PageBuffer> k16buf_;  // bf16 [n_layer, n_kv_head, n_slots16 / 16, head_dim / 32, 16, 32]
  std::unique_ptr<PageBuffer> v16buf_;  // bf16 [n_layer, n_kv_head, n_slots16 / 32, head_dim / 16, 16, 32]
  int64_t n_slots16_ = 0;

  float* f32_base(const std::unique_ptr<PageBuffer>& b, int64_t layer) {
    SWIFT_CHECK(b != nullptr, "f32 rows of a KV cache that keeps only bf16 (layer {})", layer);
    return reinterpret_cast<float*>(b->data()) + layer * n_slots_ * kv_dim_;
  }
  uint16_t* copy_base(const std::unique_ptr<PageBuffer>& b, int64_t layer) const {
    return reinterpret_cast<uint16_t*>(b->data()) + layer * n_slots16_ * kv_dim_;
  }
  void copy_slot(int64_t layer, int64_t slot);
};

}  // namespace swift
