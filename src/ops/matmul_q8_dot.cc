// Q8_0 and Q4_0 x Q8_0 activation kernels, and matmul_q8's dispatch (the K-quants are in
// matmul_q8k_dot.cc): contract in ops/q8_dot.h.
//
// Tiles of R rows x T tokens: per block of 32 columns each row's weights are loaded once, with
// their absolute values and scale, and multiplied with the T tokens' blocks; every output keeps
// its own 8-lane accumulator and the blocks run in order, so the tile shape never changes a bit.
// The signed x signed integer product uses the unsigned x signed instruction on |w| and
// x * sign(w) (ggml's trick): |w| <= 128 and |x| <= 127, so vpmaddubsw's pair sums (<= 32,512)
// never saturate and both instruction paths give the same exact int32 lane sums.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/prefetch_ahead.h"
#include "ops/q8_dot.h"
#include "ops/q8_dot_simd.h"
#include "util/check.h"
#include "util/half.h"

namespace swift {

namespace {

#if defined(SWIFT_Q8_DOT_NATIVE)
using q8_detail::hsum8;
#endif

constexpr int64_t kBlock = 32;         // weights per Q8_0 block
constexpr int64_t kBlockBytes = 34;    // Q8_0: f16 scale + 32 int8
constexpr int64_t kBlock40Bytes = 18;  // Q4_0: f16 scale + 16 bytes of nibbles (low: 0-15, high: 16-31)
// Batches from this many tokens quantize their activations on all threads (matmul_q8_parts): a
// pool round costs ~1 us here, a token's quantization ~0.3-0.5 us (256-768 columns).
constexpr int64_t kQuantizeParallelMin = 4;

float block_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return f16_to_f32(h);
}

void quantize_block_scalar(const float* x, int8_t* q, float* dx) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t i = 0; i < kBlock; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  *dx = f16_to_f32(f32_to_f16(amax / 127.0f));
}

#if defined(SWIFT_Q8_DOT_NATIVE)
// quantize_block_scalar with AVX2 (the sequence of ggml's quantize_row_q8_0): the same bits, since
// the maximum is exact, the products round alike and _MM_FROUND_TO_NEAREST_INT is nearbyint's
// default mode.
void quantize_block(const float* x, int8_t* q, float* dx) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
  }
  __m128 h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
  __m256i i32[4];
  for (int k = 0; k < 4; ++k)
    i32[k] =
        _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  // Packing interleaves 128-bit lanes: groups of 4 come out as 0, 2, 4, 6, 1, 3, 5, 7.
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  *dx = f16_to_f32(f32_to_f16(amax / 127.0f));
}

// Lane l: the exact sum of the 4 products of columns 4l..4l+3 of |w| (unsigned) and sx (signed).
[[gnu::always_inline]] inline __m256i dot_lanes(__m256i aw, __m256i sx) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), aw, sx);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}

struct Q8Args {
  const uint8_t* w;  // [rows, nb] Q8_0 blocks
  int64_t rows, cols, nb, row_bytes;
  const int8_t* q;  // [n_tok, cols] activations
  const float* dx;  // [n_tok, nb] their scales
  float* y;         // [n_tok, rows]
  const float* bias;
};

// A block's 32 weights as int8: Q8_0's as stored, Q4_0's nibbles minus 8 (ggml's
// bytes_from_nibbles_32, then - 8).
template <DType DT>
[[gnu::always_inline]] inline __m256i block_weights(const uint8_t* blk) {
  if constexpr (DT == DType::kQ8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i nibbles =
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0xF));
    return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
  }
}

// Rows [row0, row0 + R) x tokens [t0, t0 + T).
template <DType DT, int R, int T>
[[gnu::always_inline]] inline void q8_tile(const Q8Args& a, int64_t row0, int64_t t0, PrefetchAhead& pf) {
  constexpr int64_t kBytes = DT == DType::kQ8_0 ? kBlockBytes : kBlock40Bytes;
  __m256 acc[R * T];
#pragma GCC unroll 32
  for (int i = 0; i < R * T; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < a.nb; ++b) {
    __m256i wq[R], aw[R];
    __m256 dw[R];
    pf.step();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = a.w + (row0 + r) * a.row_bytes + b * kBytes;
      wq[r] = block_weights<DT>(blk);
      aw[r] = _mm256_sign_epi8(wq[r], wq[r]);  // |w|; -128 stays 0x80 = 128 unsigned
      uint16_t h;
      std::memcpy(&h, blk, 2);
      dw[r] = _mm256_set1_ps(_cvtsh_ss(h));
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + (t0 + t) * a.cols + b * kBlock));
      const __m256 dx = _mm256_set1_ps(a.dx[(t0 + t) * a.nb + b]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256i s = dot_lanes(aw[r], _mm256_sign_epi8(xq, wq[r]));
        acc[r * T + t] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], dx), _mm256_cvtepi32_ps(s), acc[r * T + t]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      a.y[(t0 + t) * a.rows + row0 + r] = hsum8(acc[r * T + t]) + (a.bias ? a.bias[row0 + r] : 0.0f);
}

// Register budget (accumulators + 3 per row + 4 temporaries): 32 vector registers with AVX-512
// (4 x 3), 16 with AVX2 alone (2 x 2).
#if defined(__AVX512F__)
constexpr int kRows = 4, kToks = 3;
#else
constexpr int kRows = 2, kToks = 2;
#endif

template <DType DT, int R, int T>
void q8_rows(const Q8Args& a, int64_t row0, int64_t n_tok, PrefetchAhead& pf) {
  pf.begin_group(a.w + row0 * a.row_bytes, a.w + (row0 + R) * a.row_bytes, a.nb * ((n_tok + T - 1) / T));
  int64_t t = 0;
  for (; t + T <= n_tok; t += T) q8_tile<DT, R, T>(a, row0, t, pf);
  if constexpr (T > 1) {
    if (n_tok - t == 1) q8_tile<DT, R, 1>(a, row0, t, pf);
    if constexpr (T > 2)
      if (n_tok - t == 2) q8_tile<DT, R, 2>(a, row0, t, pf);
  }
}

// Groups [g0, g1) of kRows rows (the last one may be short) x all tokens.
template <DType DT>
void q8_groups(const Q8Args& a, int64_t n_tok, int64_t g0, int64_t g1) {
  // The rows of the groups ahead, requested into L2 while this group's blocks are multiplied
  // (ops/prefetch_ahead.h). Why: a group's rows are kRows streams of 34-byte blocks (Q8_0: a row of
  // 2,048 columns is 2,176 bytes, so the streams cross 4 KB pages at odd places) that the hardware
  // prefetchers follow poorly; the kernel waited on the scale loads. Measured on the 2-core Xeon VM
  // (`bench --verify-cost`, ms per pass after 300 tokens, two runs): a random 4-layer LLaMA of
  // width 2,048 in Q8_0 (209 MB from DRAM, scripts/random_llama) 13.6-13.7 -> 10.3 one token,
  // 25.0-25.3 -> 14.9-15.3 four, 56.2-56.4 -> 44.2-46.3 sixteen; the demo model in Q8_0 (in L3)
  // 1.00-1.06 -> 0.92-0.93 one token, larger passes unchanged.
  PrefetchAhead pf(a.w + std::min(g1 * kRows, a.rows) * a.row_bytes, NextWeights{}, 0, 0, 0);
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t row0 = g * kRows;
    if (row0 + kRows <= a.rows) {
      q8_rows<DT, kRows, kToks>(a, row0, n_tok, pf);
    } else {
      for (int64_t r = row0; r < a.rows; ++r) q8_rows<DT, 1, kToks>(a, r, n_tok, pf);
    }
  }
}
#endif

}  // namespace

bool q8_dot_native() {
#if defined(SWIFT_Q8_DOT_NATIVE)
  return true;
#else
  return false;
#endif
}

bool q8_dot_usable(const MatView& w) {
  const int64_t block = w.dtype == DType::kQ8_0 || w.dtype == DType::kQ4_0 ? kBlock
                        : q8_detail::is_k_quant(w.dtype)                   ? 256
                                                                           : 0;
  if (w.layout == MatLayout::kRows8)
    return rows8_group_bytes(w.dtype) > 0 && w.rows % 8 == 0 && w.cols > 0 && w.cols % 256 == 0 && w.data != nullptr;
  return block > 0 && w.layout == MatLayout::kRows && w.cols > 0 && w.cols % block == 0 && w.data != nullptr;
}

void q8_quantize_rows(const float* x, int64_t n_tok, int64_t cols, int8_t* q, float* dx) {
  SWIFT_CHECK(cols % kBlock == 0, "{} columns are not whole blocks of {}", cols, kBlock);
  const int64_t nb = cols / kBlock;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t at = t * cols + b * kBlock;
#if defined(SWIFT_Q8_DOT_NATIVE)
      quantize_block(x + at, q + at, dx + t * nb + b);
#else
      quantize_block_scalar(x + at, q + at, dx + t * nb + b);
#endif
    }
}

void matmul_q8(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool) {
  const Q8Part part{&w, y, bias};
  matmul_q8_parts({&part, 1}, x, n_tok, pool);
}

void matmul_q8_parts(std::span<const Q8Part> parts, const float* x, int64_t n_tok, ThreadPool& pool) {
  SWIFT_CHECK(!parts.empty());
  const int64_t cols = parts[0].w->cols;
  bool any_q80 = false, any_k = false, any_rows8 = false;
  for (const Q8Part& p : parts) {
    const MatView& w = *p.w;
    SWIFT_CHECK(q8_dot_usable(w),
                "matmul_q8 takes Q8_0, Q4_0, Q4_K, Q5_K or Q6_K rows of whole blocks, not a {} matrix of {} columns",
                dtype_name(w.dtype), w.cols);
    SWIFT_CHECK(w.cols == cols, "matmul_q8_parts: {} columns against {}", w.cols, cols);
    (q8_detail::is_k_quant(w.dtype) ? any_k : any_q80) = true;
    any_rows8 = any_rows8 || w.layout == MatLayout::kRows8;
  }
  if (n_tok <= 0) return;
  constexpr size_t kMaxParts = 8;
  SWIFT_CHECK(parts.size() <= kMaxParts, "matmul_q8_parts: {} parts, at most {}", parts.size(), kMaxParts);
#if defined(SWIFT_ROWS8_WIDE)
  // The 512-bit kRows8 tiles read their activations as 8 bytes each (Q8kRows::qh): a long prompt
  // runs in chunks of q8_detail::kRows8WideTokens. Tokens are independent (batch invariance), so
  // the chunks give the same bits.
  constexpr int64_t kWideTokens = q8_detail::kRows8WideTokens;
  if (any_rows8 && n_tok > kWideTokens) {
    for (int64_t t0 = 0; t0 < n_tok; t0 += kWideTokens) {
      Q8Part chunk[kMaxParts];
      for (size_t i = 0; i < parts.size(); ++i)
        chunk[i] = Q8Part{parts[i].w, parts[i].y + t0 * parts[i].w->rows, parts[i].bias};
      matmul_q8_parts({chunk, parts.size()}, x + t0 * cols, std::min(kWideTokens, n_tok - t0), pool);
    }
    return;
  }
#endif
#if defined(SWIFT_Q8_DOT_NATIVE)
  // The activations once per format, in the calling thread's buffers (grown only: no allocation
  // per token in steady state).
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> dx;
  const int64_t nb = cols / kBlock;
  if (any_q80) {
    if (static_cast<int64_t>(q.size()) < n_tok * cols) q.resize(static_cast<size_t>(n_tok * cols));
    if (static_cast<int64_t>(dx.size()) < n_tok * nb) dx.resize(static_cast<size_t>(n_tok * nb));
  }
  // Pointers taken here: inside the pool's job, `q` would name the worker thread's own buffer.
  int8_t* q0 = q.data();
  float* dx0 = dx.data();
  const q8_detail::Q8kRows xk = any_k ? q8_detail::q8k_scratch(n_tok, cols, any_rows8) : q8_detail::Q8kRows{};
  auto quantize = [&](int64_t t0, int64_t t1) {
    if (any_q80) q8_quantize_rows(x + t0 * cols, t1 - t0, cols, q0 + t0 * cols, dx0 + t0 * nb);
    if (any_k) q8_detail::q8k_quantize_tokens(xk, x, cols, t0, t1);
  };
  // From kQuantizeParallelMin tokens on the threads quantize a share of the tokens each, in a pool
  // round of its own: every thread's products need every token, so the products wait for it
  // either way, and on one thread it was ~14% of the calling thread's time in 16-token passes of
  // the Q4_K_M demo model (Zen 4 VM; the 512-bit tiles' 8-byte operands are the most of it).
  if (n_tok >= kQuantizeParallelMin)
    pool.parallel_for(n_tok, [&](int64_t t0, int64_t t1, int) { quantize(t0, t1); });
  else
    quantize(0, n_tok);
  // Work units per part (ops/q8_dot_simd.h), numbered across the parts for one pool round.
  int64_t first[kMaxParts + 1] = {0};
  for (size_t i = 0; i < parts.size(); ++i) {
    const MatView& w = *parts[i].w;
    const int64_t units = w.layout == MatLayout::kRows8    ? w.rows / 8
                          : q8_detail::is_k_quant(w.dtype) ? w.rows
                                                           : (w.rows + kRows - 1) / kRows;
    first[i + 1] = first[i] + units;
  }
  pool.parallel_for(first[parts.size()], [&](int64_t u0, int64_t u1, int) {
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t b = std::max(u0, first[i]) - first[i], e = std::min(u1, first[i + 1]) - first[i];
      if (b >= e) continue;
      const Q8Part& p = parts[i];
      const MatView& w = *p.w;
      if (w.layout == MatLayout::kRows8) {
        q8_detail::rows8_run(w, xk, n_tok, p.y, p.bias, b, e);
      } else if (q8_detail::is_k_quant(w.dtype)) {
        q8_detail::q8k_run(w, xk, n_tok, p.y, p.bias, b, e);
      } else {
        const bool q40 = w.dtype == DType::kQ4_0;
        const Q8Args a{static_cast<const uint8_t*>(w.data),
                       w.rows,
                       w.cols,
                       nb,
                       nb * (q40 ? kBlock40Bytes : kBlockBytes),
                       q0,
                       dx0,
                       p.y,
                       p.bias};
        if (q40)
          q8_groups<DType::kQ4_0>(a, n_tok, b, e);
        else
          q8_groups<DType::kQ8_0>(a, n_tok, b, e);
      }
    }
  });
#else
  (void)pool, (void)any_q80, (void)any_k;
  for (const Q8Part& p : parts) matmul_q8_reference(*p.w, x, n_tok, p.y, p.bias);
#endif
}

void matmul_q8_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
  SWIFT_CHECK(q8_dot_usable(w));
  if (w.layout == MatLayout::kRows8) return q8_detail::matmul_rows8_reference(w, x, n_tok, y, bias);
  if (q8_detail::is_k_quant(w.dtype)) return q8_detail::matmul_q8k_reference(w, x, n_tok, y, bias);
  const bool q40 = w.dtype == DType::kQ4_0;
  const int64_t bytes = q40 ? kBlock40Bytes : kBlockBytes, nb = w.cols / kBlock, rb = nb * bytes;
  std::vector<int8_t> q(static_cast<size_t>(n_tok * w.cols));
  std::vector<float> dx(static_cast<size_t>(n_tok * nb));
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t b = 0; b < nb; ++b)
      quantize_block_scalar(x + t * w.cols + b * kBlock, q.data() + t * w.cols + b * kBlock, &dx[t * nb + b]);
  const auto* data = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc[8] = {};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = data + r * rb + b * bytes;
        const float d = block_scale(blk) * dx[t * nb + b];
        int8_t qw[32];
        for (int i = 0; i < 32; ++i)
          qw[i] = q40 ? static_cast<int8_t>((i < 16 ? blk[2 + i] & 0xF : blk[2 + i - 16] >> 4) - 8)
                      : static_cast<int8_t>(blk[2 + i]);
        const int8_t* qx = q.data() + t * w.cols + b * kBlock;
        for (int l = 0; l < 8; ++l) {
          int32_t s = 0;
          for (int i = 0; i < 4; ++i) s += int32_t{qw[4 * l + i]} * int32_t{qx[4 * l + i]};
          acc[l] = std::fma(d, static_cast<float>(s), acc[l]);
        }
      }
      const float sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
      y[t * w.rows + r] = sum + (bias ? bias[r] : 0.0f);
    }
}

}  // namespace swift
