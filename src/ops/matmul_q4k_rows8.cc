// Q4_K matrices interleaved by 8 rows (MatLayout::kQ4KRows8) x Q8_K activations, for `--math q8`:
// layout and contract in ops/q8_dot.h.
//
// Why: with rows one at a time (matmul_q8k_dot.cc) every 32 weights of a row cost one
// vpmaddubsw, one vpmaddwd by the sub-block scale and one add per token, and every row ends in a
// horizontal sum; the demo model's Q4_K rows are one block (256 weights), so unpacking the
// scales and the sums dominate. Here a vector lane is a row: one vpdpbusd multiplies 4 columns
// of 8 rows (unsigned 4-bit weights) by 4 activations broadcast to all lanes, 8 of them cover a
// sub-block of 32 columns for 8 rows, then one vpmulld applies the 8 rows' scales; no horizontal
// sums. llama.cpp repacks Q4_K the same way for AVX2 (ggml's q4_K_8x8); the arithmetic order
// here is swiftllm's own. Measured on the 2-core Zen 4 VM (one thread, prototype): a 768 x 256
// product 9.5 -> 3.0 us for one token, 8000 x 256 102.5 -> 35.0 us.
#include <cstring>
#include <vector>

#include "ops/q8_dot.h"
#include "ops/q8_dot_simd.h"
#include "ops/quant.h"
#include "util/check.h"
#include "util/half.h"

namespace swift {

namespace {

constexpr int64_t kQ4KBytes = 144;  // one Q4_K block of one row
// One group of 8 rows x one block: f16 d[8], f16 dmin[8], u8 sc[8 sub][8 rows], u8 m[8 sub][8
// rows], nibbles [8 sub][4 column quads][8 rows][4]: the low nibble is column 32 s + 4 quad + i,
// the high nibble the same column + 16.
constexpr int64_t kGroupBytes = kQ4KRows8GroupBytes;
static_assert(kGroupBytes == 16 + 16 + 64 + 64 + 1024);
constexpr int64_t kOffD = 0, kOffDmin = 16, kOffSc = 32, kOffM = 96, kOffQ = 160;

const uint8_t* group_block(const MatView& w, int64_t group, int64_t b) {
  return static_cast<const uint8_t*>(w.data) + (group * (w.cols / 256) + b) * kGroupBytes;
}

}  // namespace

bool q4k_rows8_packable(const MatView& w) {
  return w.dtype == DType::kQ4_K && w.layout == MatLayout::kRows && w.rows > 0 && w.rows % 8 == 0 && w.cols > 0 &&
         w.cols % 256 == 0 && w.data != nullptr;
}

size_t q4k_rows8_bytes(int64_t rows, int64_t cols) {
  return static_cast<size_t>(rows / 8 * (cols / 256) * kGroupBytes);
}

MatView q4k_rows8_pack(const MatView& src, void* dst) {
  SWIFT_CHECK(q4k_rows8_packable(src), "q4k_rows8_pack takes Q4_K rows (a multiple of 8) of whole blocks");
  const int64_t nb = src.cols / 256;
  const auto* in = static_cast<const uint8_t*>(src.data);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < src.rows / 8; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* o = out + (g * nb + b) * kGroupBytes;
      std::memset(o + kOffQ, 0, 1024);
      for (int r = 0; r < 8; ++r) {
        const uint8_t* blk = in + ((g * 8 + r) * nb + b) * kQ4KBytes;
        std::memcpy(o + kOffD + 2 * r, blk, 2);
        std::memcpy(o + kOffDmin + 2 * r, blk + 2, 2);
        for (int s = 0; s < 8; ++s) q4k_scale_min(s, blk + 4, &o[kOffSc + s * 8 + r], &o[kOffM + s * 8 + r]);
        uint8_t v[256];
        q8_detail::q45k_values(DType::kQ4_K, blk, v);
        for (int c = 0; c < 256; ++c) {
          const int s = c / 32, quad = (c % 16) / 4, i = c % 4, high = (c % 32) / 16;
          o[kOffQ + ((s * 4 + quad) * 8 + r) * 4 + i] |= static_cast<uint8_t>(v[c] << (4 * high));
        }
      }
    }
  return MatView{dst, DType::kQ4_K, src.rows, src.cols, MatLayout::kQ4KRows8};
}

void q4k_rows8_row(const MatView& w, int64_t r, uint8_t* row) {
  SWIFT_CHECK(w.layout == MatLayout::kQ4KRows8 && r >= 0 && r < w.rows);
  const int64_t nb = w.cols / 256, g = r / 8, k = r % 8;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = group_block(w, g, b);
    uint8_t* blk = row + b * kQ4KBytes;
    std::memcpy(blk, o + kOffD + 2 * k, 2);
    std::memcpy(blk + 2, o + kOffDmin + 2 * k, 2);
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; ++s) sc[s] = o[kOffSc + s * 8 + k], m[s] = o[kOffM + s * 8 + k];
    q4k_pack_scale_min(sc, m, blk + 4);
    uint8_t* qs = blk + 16;
    std::memset(qs, 0, 128);
    for (int c = 0; c < 256; ++c) {
      const int s = c / 32, quad = (c % 16) / 4, i = c % 4, high = (c % 32) / 16;
      const uint8_t q = (o[kOffQ + ((s * 4 + quad) * 8 + k) * 4 + i] >> (4 * high)) & 0xF;
      qs[32 * (c / 64) + c % 32] |= static_cast<uint8_t>(c % 64 < 32 ? q : q << 4);
    }
  }
}

namespace q8_detail {

namespace {

#if defined(SWIFT_Q8_DOT_NATIVE)
// sum += 4-column dot products of the unsigned weights u (per 32-bit lane) and the signed
// activations x: vpdpbusd, or vpmaddubsw + vpmaddwd where the CPU lacks it (the pair sums,
// <= 2 * 15 * 127, never saturate, so both give the same exact sums).
[[gnu::always_inline]] inline __m256i dot4(__m256i sum, __m256i u, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(sum, u, x);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(sum, u, x);
#else
  return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
#endif
}

struct Rows8Args {
  const MatView* w;
  const int8_t* q;      // [n_tok, cols] Q8_K activations
  const float* dx;      // [n_tok, nb]
  const int16_t* sums;  // [n_tok, nb * 16]
  float* y;             // [n_tok, rows]
  const float* bias;
};

// Rows [8 g, 8 g + 8) x tokens [t0, t0 + T).
template <int T>
[[gnu::always_inline]] inline void rows8_tile(const Rows8Args& a, int64_t g, int64_t t0) {
  const int64_t cols = a.w->cols, nb = cols / 256, rows = a.w->rows;
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc[T], accm[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), accm[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = group_block(*a.w, g, b);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + kOffD)));
    const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + kOffDmin)));
    __m256i isum[T], msum[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) isum[t] = msum[t] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      __m256i lo[4], hi[4];
#pragma GCC unroll 4
      for (int quad = 0; quad < 4; ++quad) {
        const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + kOffQ + (s * 4 + quad) * 32));
        lo[quad] = _mm256_and_si256(p, m4);
        hi[quad] = _mm256_and_si256(_mm256_srli_epi16(p, 4), m4);
      }
      const __m256i sc = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + kOffSc + s * 8)));
      const __m256i mn = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + kOffM + s * 8)));
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* x = a.q + (t0 + t) * cols + b * 256 + s * 32;
        __m256i sub = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int quad = 0; quad < 4; ++quad) {
          int32_t xl, xh;
          std::memcpy(&xl, x + 4 * quad, 4);
          std::memcpy(&xh, x + 16 + 4 * quad, 4);
          sub = dot4(sub, lo[quad], _mm256_set1_epi32(xl));
          sub = dot4(sub, hi[quad], _mm256_set1_epi32(xh));
        }
        isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(sub, sc));
        const int16_t* bs = a.sums + ((t0 + t) * nb + b) * 16 + 2 * s;
        msum[t] = _mm256_add_epi32(msum[t], _mm256_mullo_epi32(mn, _mm256_set1_epi32(bs[0] + bs[1])));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 dx = _mm256_set1_ps(a.dx[(t0 + t) * nb + b]);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(isum[t]), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_mul_ps(dmin, dx), _mm256_cvtepi32_ps(msum[t]), accm[t]);
    }
  }
  const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + 8 * g) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
    _mm256_storeu_ps(a.y + (t0 + t) * rows + 8 * g, _mm256_add_ps(_mm256_sub_ps(acc[t], accm[t]), bias));
}
#endif

}  // namespace

void matmul_q4k_rows8(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool) {
#if defined(SWIFT_Q8_DOT_NATIVE)
  const Q8kRows xq = q8k_quantize_scratch(x, n_tok, w.cols);
  const Rows8Args a{&w, xq.q, xq.dx, xq.sums, y, bias};
  pool.parallel_for(w.rows / 8, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) {
      int64_t t = 0;
      for (; t + 4 <= n_tok; t += 4) rows8_tile<4>(a, g, t);
      for (; t < n_tok; ++t) rows8_tile<1>(a, g, t);
    }
  });
#else
  (void)pool;
  matmul_q4k_rows8_reference(w, x, n_tok, y, bias);
#endif
}

void matmul_q4k_rows8_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
  SWIFT_CHECK(w.layout == MatLayout::kQ4KRows8 && w.dtype == DType::kQ4_K);
  const int64_t nb = w.cols / 256;
  std::vector<int8_t> q(static_cast<size_t>(n_tok * w.cols));
  std::vector<float> dx(static_cast<size_t>(n_tok * nb));
  std::vector<int16_t> sums(static_cast<size_t>(n_tok * nb * 16));
  q8k_quantize_rows(x, n_tok, w.cols, q.data(), dx.data(), sums.data());
  std::vector<uint8_t> row(static_cast<size_t>(nb * kQ4KBytes));
  for (int64_t r = 0; r < w.rows; ++r) {
    q4k_rows8_row(w, r, row.data());  // the row as a plain Q4_K row: its own decoding
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc = 0.0f, accm = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row.data() + b * kQ4KBytes;
        const int8_t* qx = q.data() + t * w.cols + b * 256;
        const int16_t* B = sums.data() + (t * nb + b) * 16;
        uint8_t v[256];
        q45k_values(DType::kQ4_K, blk, v);
        int32_t isum = 0, msum = 0;
        for (int s = 0; s < 8; ++s) {
          uint8_t sc, m;
          q4k_scale_min(s, blk + 4, &sc, &m);
          int32_t dot = 0;
          for (int c = 32 * s; c < 32 * s + 32; ++c) dot += v[c] * int32_t{qx[c]};
          isum += sc * dot;
          msum += m * (B[2 * s] + B[2 * s + 1]);
        }
        uint16_t h[2];
        std::memcpy(h, blk, 4);
        const float xd = dx[t * nb + b];
        acc = std::fma(f16_to_f32(h[0]) * xd, static_cast<float>(isum), acc);
        accm = std::fma(f16_to_f32(h[1]) * xd, static_cast<float>(msum), accm);
      }
      y[t * w.rows + r] = (acc - accm) + (bias ? bias[r] : 0.0f);
    }
  }
}

}  // namespace q8_detail

}  // namespace swift
