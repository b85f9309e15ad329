#include "ops/attention.h"

#include <cmath>

#include "util/check.h"

namespace swift {

int64_t SlotLists::max_len() const {
  int64_t m = 0;
  for (size_t i = 0; i + 1 < offsets.size(); ++i) m = std::max(m, offsets[i + 1] - offsets[i]);
  return m;
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  SWIFT_CHECK(a.n_head % a.n_kv_head == 0);
  SWIFT_CHECK(static_cast<int64_t>(a.visible->offsets.size()) == a.n_tok + 1);
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t hd = a.head_dim;
  const int64_t q_stride = a.n_head * hd;
  const int64_t kv_stride = a.n_kv_head * hd;
  const int64_t max_len = a.visible->max_len();
  pool.parallel_for(a.n_tok * a.n_head, [&](int64_t i0, int64_t i1, int) {
    thread_local std::vector<float> scores;
    thread_local std::vector<double> acc;
    if (static_cast<int64_t>(scores.size()) < max_len) scores.resize(max_len);
    acc.resize(hd);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / a.n_head, h = i % a.n_head, kvh = h / group;
      const float* q = a.q + t * q_stride + h * hd;
      const int64_t b = a.visible->offsets[t], n = a.visible->offsets[t + 1] - b;
      float* out = a.out + t * q_stride + h * hd;
      if (n == 0) {  // cannot happen for a well-formed mask (a token sees itself); stay defined
        for (int64_t d = 0; d < hd; ++d) out[d] = 0.0f;
        continue;
      }
      const int32_t* sl = a.visible->slots.data() + b;
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const float* k = a.k + static_cast<int64_t>(sl[j]) * kv_stride + kvh * hd;
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s = std::fma(q[d], k[d], s);
        s *= a.scale;
        scores[j] = s;
        mx = s > mx ? s : mx;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      for (int64_t d = 0; d < hd; ++d) acc[d] = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const float* v = a.v + static_cast<int64_t>(sl[j]) * kv_stride + kvh * hd;
        const double p = scores[j];
        for (int64_t d = 0; d < hd; ++d) acc[d] += p * v[d];
      }
      const double inv = 1.0 / sum;
      for (int64_t d = 0; d < hd; ++d) out[d] = static_cast<float>(acc[d] * inv);
    }
  });
}

}  // namespace swift
