#include "model/kv_cache.h"

#include <algorithm>

#include "ops/attention.h"
#include "util/check.h"

namespace swift {

KvCache::KvCache(const ModelConfig& cfg, int64_t n_slots)
    : n_layer_(cfg.n_layer), n_slots_(n_slots), kv_dim_(cfg.kv_dim()), head_dim_(cfg.head_dim), n_kv_head_(cfg.n_kv_head) {
  SWIFT_CHECK(n_slots > 0 && n_kv_head_ * head_dim_ == kv_dim_);
  const size_t n = static_cast<size_t>(n_layer_ * n_slots_ * kv_dim_);
  kbuf_ = PageBuffer::take(n * sizeof(float));
  vbuf_ = PageBuffer::take(n * sizeof(float));
  pos_.assign(n_slots_, -1);
  n_slots16_ = (n_slots_ + 31) / 32 * 32;
}

void KvCache::enable_bf16_only() {
  if (bf16_only()) return;
  const size_t n = static_cast<size_t>(n_layer_ * n_slots16_ * kv_dim_);
  k16buf_ = PageBuffer::take(n * sizeof(uint16_t));
  v16buf_ = PageBuffer::take(n * sizeof(uint16_t));
  // The slots that hold a token (a position was set); the others are written before they are read.
  for (int64_t s = 0; s < n_slots_; ++s)
    if (pos_[s] >= 0)
      for (int64_t l = 0; l < n_layer_; ++l) copy_slot(l, s);
  PageBuffer::recycle(std::move(kbuf_));
  PageBuffer::recycle(std::move(vbuf_));
}

void KvCache::copy_slot(int64_t layer, int64_t slot) {
  for (int64_t h = 0; h < n_kv_head_; ++h) {
    const int64_t at = h * head_stride() + slot * head_dim_;
    kv_bf16_store(k(layer) + at, v(layer) + at, head_dim_, slot, copy_base(k16buf_, layer) + h * head_stride16(),
                  copy_base(v16buf_, layer) + h * head_stride16());
  }
}

KvCache::~KvCache() {
  if (kbuf_) PageBuffer::recycle(std::move(kbuf_));
  if (vbuf_) PageBuffer::recycle(std::move(vbuf_));
  if (k16buf_) PageBuffer::recycle(std::move(k16buf_));
  if (v16buf_) PageBuffer::recycle(std::move(v16buf_));
}

void KvCache::move_slot(int64_t from, int64_t to) {
  SWIFT_CHECK(from >= 0 && from < n_slots_ && to >= 0 && to < n_slots_);
  if (from == to) return;
  for (int64_t l = 0; l < n_layer_; ++l)
    for (int64_t h = 0; h < n_kv_head_; ++h) {
      const int64_t base = h * head_stride();
      if (!bf16_only()) {
        std::copy_n(k(l) + base + from * head_dim_, head_dim_, k(l) + base + to * head_dim_);
        std::copy_n(v(l) + base + from * head_dim_, head_dim_, v(l) + base + to * head_dim_);
      }
      if (has_bf16_copy())
        kv_bf16_move(from, to, head_dim_, copy_base(k16buf_, l) + h * head_stride16(),
                     copy_base(v16buf_, l) + h * head_stride16());
    }
  pos_[to] = pos_[from];
}

void KvCache::store(int64_t layer, int64_t slot, const float* k_row, const float* v_row) {
  for (int64_t h = 0; h < n_kv_head_; ++h) store_head(layer, slot, h, k_row + h * head_dim_, v_row + h * head_dim_);
}

void KvCache::store_head(int64_t layer, int64_t slot, int64_t h, const float* k_head, const float* v_head) {
  SWIFT_CHECK(layer >= 0 && layer < n_layer_ && slot >= 0 && slot < n_slots_ && h >= 0 && h < n_kv_head_);
  if (bf16_only()) {
    kv_bf16_store(k_head, v_head, head_dim_, slot, copy_base(k16buf_, layer) + h * head_stride16(),
                  copy_base(v16buf_, layer) + h * head_stride16());
    return;
  }
  const int64_t at = h * head_stride() + slot * head_dim_;
  std::copy_n(k_head, head_dim_, k(layer) + at);
  std::copy_n(v_head, head_dim_, v(layer) + at);
}

}  // namespace swift
