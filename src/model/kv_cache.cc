#include "model/kv_cache.h"

#include <algorithm>

#include "util/check.h"

namespace swift {

KvCache::KvCache(const ModelConfig& cfg, int64_t n_slots)
    : n_layer_(cfg.n_layer), n_slots_(n_slots), kv_dim_(cfg.kv_dim()) {
  SWIFT_CHECK(n_slots > 0);
  const size_t n = static_cast<size_t>(n_layer_ * n_slots_ * kv_dim_);
  k_.reset(new float[n]);  // default-initialised: no zero fill (see kv_cache.h)
  v_.reset(new float[n]);
  pos_.assign(n_slots_, -1);
}

void KvCache::move_slot(int64_t from, int64_t to) {
  SWIFT_CHECK(from >= 0 && from < n_slots_ && to >= 0 && to < n_slots_);
  if (from == to) return;
  for (int64_t l = 0; l < n_layer_; ++l) {
    std::copy_n(k(l) + from * kv_dim_, kv_dim_, k(l) + to * kv_dim_);
    std::copy_n(v(l) + from * kv_dim_, kv_dim_, v(l) + to * kv_dim_);
  }
  pos_[to] = pos_[from];
}

}  // namespace swift
