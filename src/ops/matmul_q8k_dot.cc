// Q4_K, Q5_K and Q6_K x Q8_K activation kernels (`--math q8`): contract in ops/q8_dot.h.
//
// One weight row at a time against up to kToksK tokens: the row's block is unpacked once into
// 8-bit values (ggml's AVX2 sequences for vec_dot_q{4,5,6}_K_q8_K) and multiplied with each
// token's 256 activations by vpmaddubsw (unsigned weights x signed activations, pair sums in
// int16) and vpmaddwd by the sub-block scales (int32 lanes of 4 columns). Every output keeps its
// own accumulators and the blocks run in order, so the token tile and the thread split never
// change a bit. Cost per block (256 weights) and token: 8 vpmaddubsw + 8 vpmaddwd, plus for
// Q6_K one vpmaddwd of the activations' sums per 16 by the scales for its offset of -32. The
// results are the bits of ggml's AVX2 vec_dot functions (scripts/llamacpp_check/kernels).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/q8_dot.h"
#include "ops/q8_dot_simd.h"
#include "ops/quant.h"
#include "util/aligned.h"
#include "util/check.h"
#include "util/half.h"

namespace swift::q8_detail {

namespace {

constexpr int64_t kBlockK = 256;  // weights per K-quant block and per Q8_K activation block

// Bytes per block: f16 d, dmin; 12 of scales; [Q5_K: 32 of 5th bits]; 128 of 4-bit q. Q6_K: 128
// of low 4 bits, 64 of high 2 bits, 16 int8 scales, f16 d.
constexpr int64_t block_bytes(DType t) { return t == DType::kQ4_K ? 144 : t == DType::kQ5_K ? 176 : 210; }

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Q8_K (as ggml's quantize_row_q8_K_ref): scale by the signed value of largest magnitude, which
// maps to -127.
void quantize_block_k(const float* x, int8_t* q, float* dx, int16_t* sums) {
  float amax = 0.0f, mx = 0.0f;
  for (int64_t i = 0; i < kBlockK; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, mx = x[i];
  }
  if (amax == 0.0f) {
    std::fill_n(q, kBlockK, int8_t{0});
    std::fill_n(sums, kBlockK / 16, int16_t{0});
    *dx = 0.0f;
    return;
  }
  const float iscale = -127.0f / mx;
  for (int64_t i = 0; i < kBlockK; ++i) q[i] = static_cast<int8_t>(std::min(127.0f, std::nearbyint(iscale * x[i])));
  for (int64_t k = 0; k < kBlockK / 16; ++k) {
    int32_t sum = 0;
    for (int64_t i = 0; i < 16; ++i) sum += q[k * 16 + i];
    sums[k] = static_cast<int16_t>(sum);
  }
  *dx = 1.0f / iscale;
}

// Unpacks a Q4_K/Q5_K block's 12 bytes of 6-bit scales and mins (ggml's kmask sequence): bytes
// 0-7 of the result are sc_0..sc_7, bytes 8-15 m_0..m_7 (as q4k_scale_min gives them one by one).
inline void q4k_unpack(const uint8_t* packed, uint32_t utmp[4]) {
  constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  std::memcpy(utmp, packed, 12);
  utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
  const uint32_t uaux = utmp[1] & kmask1;
  utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
  utmp[2] = uaux;
  utmp[0] &= kmask1;
}

#if defined(SWIFT_Q8_DOT_NATIVE)
// quantize_block_k with AVX2: the same bits (an exact maximum, the first element of that
// magnitude, products rounded alike, nearest-even as nearbyint, sums of exact integers).
void quantize_block_k_simd(const float* x, int8_t* q, float* dx, int16_t* sums) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int64_t k = 0; k < kBlockK; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
  __m128 h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  if (amax == 0.0f) return quantize_block_k(x, q, dx, sums);
  float mx = 0.0f;
  const __m256 av = _mm256_set1_ps(amax);
  for (int64_t k = 0; k < kBlockK; k += 8) {
    const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), av, _CMP_EQ_OQ));
    if (hit) {
      mx = x[k + __builtin_ctz(static_cast<unsigned>(hit))];
      break;
    }
  }
  const float iscale = -127.0f / mx;
  const __m256 iv = _mm256_set1_ps(iscale);
  const __m256i top = _mm256_set1_epi32(127);
  for (int64_t g = 0; g < kBlockK / 32; ++g) {
    __m256i i32[4];
    for (int k = 0; k < 4; ++k)
      i32[k] = _mm256_min_epi32(
          top, _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + g * 32 + 8 * k), iv),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    // Packing interleaves 128-bit lanes: groups of 4 come out as 0, 2, 4, 6, 1, 3, 5, 7.
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + g * 32),
                        _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    // i32[0..1] hold columns 0-15 of the group, i32[2..3] columns 16-31.
    for (int h = 0; h < 2; ++h) {
      const __m256i s = _mm256_add_epi32(i32[2 * h], i32[2 * h + 1]);
      __m128i s4 = _mm_add_epi32(_mm256_extracti128_si256(s, 1), _mm256_castsi256_si128(s));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
      sums[2 * g + h] = static_cast<int16_t>(_mm_cvtsi128_si32(s4));
    }
  }
  *dx = 1.0f / iscale;
}

struct QkArgs {
  const uint8_t* w;  // [rows, nb] K-quant blocks
  int64_t rows, cols, nb, row_bytes;
  const int8_t* q;      // [n_tok, cols] Q8_K activations
  const float* dx;      // [n_tok, nb]
  const int16_t* sums;  // [n_tok, nb * 16] sums per 16 columns (ggml's bsums)
  float* y;             // [n_tok, rows]
  const float* bias;
};

// Q4_K / Q5_K: row `row` x tokens [t0, t0 + T).
template <DType DT, int T>
[[gnu::always_inline]] inline void q45k_tile(const QkArgs& a, int64_t row, int64_t t0) {
  constexpr bool kFive = DT == DType::kQ5_K;
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc[T];
  __m128 accm[T];  // Q4_K's mins, per pair of sub-blocks
  float summs[T];  // Q5_K's, in one scalar
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), accm[t] = _mm_setzero_ps(), summs[t] = 0.0f;
  for (int64_t b = 0; b < a.nb; ++b) {
    const uint8_t* blk = a.w + row * a.row_bytes + b * block_bytes(DT);
    uint16_t h[2];
    std::memcpy(h, blk, 4);
    const float dw = _cvtsh_ss(h[0]), dminw = _cvtsh_ss(h[1]);
    uint32_t utmp[4];
    q4k_unpack(blk + 4, utmp);
    const __m256i mins_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
        static_cast<int>(utmp[3]), static_cast<int>(utmp[2]), static_cast<int>(utmp[1]), static_cast<int>(utmp[0])));
    const __m128i mins = _mm256_extracti128_si256(mins_scales, 1);
    const __m128i sc128 = _mm256_extracti128_si256(mins_scales, 0);
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    const uint8_t* qs = blk + (kFive ? 48 : 16);
    [[maybe_unused]] __m256i hbits;
    if constexpr (kFive) hbits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
    __m256i sumi[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      // Every 16-bit lane gets scale 2j (low nibbles) or 2j + 1 (high nibbles).
      const __m256i scale_l =
          _mm256_shuffle_epi8(scales, _mm256_set1_epi16(static_cast<int16_t>(((4 * j + 1) << 8) | (4 * j))));
      const __m256i scale_h =
          _mm256_shuffle_epi8(scales, _mm256_set1_epi16(static_cast<int16_t>(((4 * j + 3) << 8) | (4 * j + 2))));
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j));
      __m256i ql = _mm256_and_si256(bits, m4);
      __m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      if constexpr (kFive) {
        // Bit 2j (low nibbles) or 2j + 1 (high) of each qh byte, moved to bit 4 of that byte: the
        // 16-bit shifts carry bits across bytes, but the mask keeps only the byte's own bit 0.
        const __m256i one = _mm256_set1_epi8(1);
        ql = _mm256_or_si256(ql, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
        qh = _mm256_or_si256(qh, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* q8 = a.q + (t0 + t) * a.cols + b * kBlockK + 64 * j;
        const __m256i pl = _mm256_madd_epi16(
            scale_l, _mm256_maddubs_epi16(ql, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8))));
        const __m256i ph = _mm256_madd_epi16(
            scale_h, _mm256_maddubs_epi16(qh, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32))));
        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const float dx = a.dx[(t0 + t) * a.nb + b];
      const float d = dx * dw, dmin = -dx * dminw;
      const int16_t* bs = a.sums + ((t0 + t) * a.nb + b) * 16;
      const __m128i s8 = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bs)),
                                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(bs + 8)));
      const __m128i prod = _mm_madd_epi16(mins, s8);
      if constexpr (kFive) {
        const __m128i h2 = _mm_hadd_epi32(prod, prod);
        summs[t] = std::fma(dmin, static_cast<float>(_mm_cvtsi128_si32(_mm_hadd_epi32(h2, h2))), summs[t]);
      } else {
        accm[t] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), accm[t]);
      }
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
    a.y[(t0 + t) * a.rows + row] = hsum8(acc[t]) + (kFive ? summs[t] : hsum4(accm[t])) + (a.bias ? a.bias[row] : 0.0f);
}

// Q6_K: row `row` x tokens [t0, t0 + T). The 6-bit values stay unsigned (0..63) for vpmaddubsw
// (pairs <= 2 * 63 * 127, no saturation); the offset -32 is applied once per block and token
// against the activations' sums per 16 columns, as ggml does.
template <int T>
[[gnu::always_inline]] inline void q6k_tile(const QkArgs& a, int64_t row, int64_t t0) {
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
  __m256 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < a.nb; ++b) {
    const uint8_t* blk = a.w + row * a.row_bytes + b * block_bytes(DType::kQ6_K);
    uint16_t h;
    std::memcpy(&h, blk + 208, 2);
    const float dw = _cvtsh_ss(h);
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
    const __m256i scales16 = _mm256_cvtepi8_epi16(scales);
    __m256i sumi[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      const __m256i lo1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * j));
      const __m256i lo2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * j + 32));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * j));
      // The four 32-column groups of this half: low 4 bits | high 2 bits << 4.
      __m256i u[4], sc[4];
      u[0] = _mm256_or_si256(_mm256_and_si256(lo1, m4), _mm256_slli_epi16(_mm256_and_si256(hi, m2), 4));
      u[1] = _mm256_or_si256(_mm256_and_si256(lo2, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, 2), m2), 4));
      u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, 4), m2), 4));
      u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo2, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, 6), m2), 4));
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        // Scale 2g for the group's first 16 columns and 2g + 1 for the rest (g = 4j + k), in
        // 16-bit lanes for vpmaddwd.
        const int g = 4 * j + k;
        sc[k] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
            scales, _mm_set_epi64x(0x0101010101010101LL * (2 * g + 1), 0x0101010101010101LL * (2 * g))));
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* q8 = a.q + (t0 + t) * a.cols + b * kBlockK + 128 * j;
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32 * k));
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(sc[k], _mm256_maddubs_epi16(u[k], x)));
        }
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      // Lane l: 32 (sc_{2l} B_{2l} + sc_{2l+1} B_{2l+1}).
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums + ((t0 + t) * a.nb + b) * 16));
      const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, scales16), 5);
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a.dx[(t0 + t) * a.nb + b] * dw),
                               _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[t], offset)), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) a.y[(t0 + t) * a.rows + row] = hsum8(acc[t]) + (a.bias ? a.bias[row] : 0.0f);
}

template <DType DT, int T>
[[gnu::always_inline]] inline void qk_tile(const QkArgs& a, int64_t row, int64_t t0) {
  if constexpr (DT == DType::kQ6_K)
    q6k_tile<T>(a, row, t0);
  else
    q45k_tile<DT, T>(a, row, t0);
}

// Tokens per tile (8 spilled registers and ran 16-token Q4_K passes 12-34% slower).
#if defined(__AVX512F__)
constexpr int kToksK = 4;
#else
constexpr int kToksK = 2;
#endif

template <DType DT>
void qk_row(const QkArgs& a, int64_t row, int64_t n_tok) {
  int64_t t = 0;
  for (; t + kToksK <= n_tok; t += kToksK) qk_tile<DT, kToksK>(a, row, t);
  switch (n_tok - t) {
    case 1:
      qk_tile<DT, 1>(a, row, t);
      break;
    case 2:
      if constexpr (kToksK > 2) qk_tile<DT, 2>(a, row, t);
      break;
    case 3:
      if constexpr (kToksK > 3) qk_tile<DT, 3>(a, row, t);
      break;
    default:
      break;
  }
}

#endif

}  // namespace

void q45k_values(DType t, const uint8_t* blk, uint8_t v[256]) {
  const bool five = t == DType::kQ5_K;
  const uint8_t* qh = blk + 16;
  const uint8_t* qs = blk + (five ? 48 : 16);
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l) {
      v[64 * j + l] = static_cast<uint8_t>((qs[32 * j + l] & 0xF) + (five ? 16 * ((qh[l] >> (2 * j)) & 1) : 0));
      v[64 * j + 32 + l] = static_cast<uint8_t>((qs[32 * j + l] >> 4) + (five ? 16 * ((qh[l] >> (2 * j + 1)) & 1) : 0));
    }
}

void q6k_values(const uint8_t* blk, int8_t v[256]) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  for (int h = 0; h < 2; ++h, ql += 64, qh += 32)
    for (int l = 0; l < 32; ++l) {
      v[128 * h + l] = static_cast<int8_t>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
      v[128 * h + 32 + l] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      v[128 * h + 64 + l] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      v[128 * h + 96 + l] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
}

Q8kRows q8k_scratch(int64_t n_tok, int64_t cols, bool with_qh) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> dx;
  thread_local std::vector<int16_t> sums;
  const int64_t nb = cols / kBlockK;
  if (static_cast<int64_t>(q.size()) < n_tok * cols) q.resize(static_cast<size_t>(n_tok * cols));
  if (static_cast<int64_t>(dx.size()) < n_tok * nb) dx.resize(static_cast<size_t>(n_tok * nb));
  if (static_cast<int64_t>(sums.size()) < n_tok * nb * 16) sums.resize(static_cast<size_t>(n_tok * nb * 16));
  int8_t* qh = nullptr;
#if defined(SWIFT_ROWS8_WIDE)
  if (with_qh) {
    SWIFT_CHECK(n_tok <= kRows8WideTokens, "q8k_scratch: {} tokens with 8-byte operands, at most {}", n_tok,
                kRows8WideTokens);
    thread_local std::vector<int8_t> qh_buf;
    qh = grow_aligned64(qh_buf, 8 * n_tok * cols);
  }
#endif
  (void)with_qh;  // without the 512-bit tiles nothing reads qh
  return {q.data(), dx.data(), sums.data(), qh};
}

void q8k_quantize_tokens(const Q8kRows& rows, const float* x, int64_t cols, int64_t t0, int64_t t1) {
  int8_t* q = rows.q;
  float* dx = rows.dx;
  int16_t* sums = rows.sums;
  const int64_t nb = cols / kBlockK;
#if defined(SWIFT_ROWS8_WIDE)
  if (rows.qh) {
    // The 512-bit kRows8 tiles' operands (Q8kRows::qh), made block by block while the block is
    // in L1 (a separate pass over the rows afterwards stalled on its stores: ~4% of a
    // verification pass in a profile).
    int8_t* qh = rows.qh;
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t at = t * cols + b * kBlockK;
        quantize_block_k_simd(x + at, q + at, dx + t * nb + b, sums + (t * nb + b) * 16);
        for (int64_t i = at; i < at + kBlockK; i += 32) {
          // Dword quad (lanes 0-7) and quad + 4 (lanes 8-15) of these 32 columns, per quad.
          const __m512i v = _mm512_maskz_inserti64x4(0xFF, _mm512_setzero_si512(),
                                                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i)), 0);
          for (int quad = 0; quad < 4; ++quad) {
            const __m512i idx = _mm512_maskz_inserti64x4(0xFF, _mm512_set1_epi32(quad), _mm256_set1_epi32(quad + 4), 1);
            _mm512_store_si512(qh + 8 * i + 64 * quad, _mm512_maskz_permutexvar_epi32(0xFFFF, idx, v));
          }
        }
      }
    return;
  }
#endif
  q8k_quantize_rows(x + t0 * cols, t1 - t0, cols, q + t0 * cols, dx + t0 * nb, sums + t0 * nb * 16);
}

void q8k_run(const MatView& w, const Q8kRows& xq, int64_t n_tok, float* y, const float* bias, int64_t r0, int64_t r1) {
#if defined(SWIFT_Q8_DOT_NATIVE)
  const int64_t nb = w.cols / kBlockK;
  const QkArgs a{static_cast<const uint8_t*>(w.data),
                 w.rows,
                 w.cols,
                 nb,
                 nb * block_bytes(w.dtype),
                 xq.q,
                 xq.dx,
                 xq.sums,
                 y,
                 bias};
  switch (w.dtype) {
    case DType::kQ4_K:
      for (int64_t r = r0; r < r1; ++r) qk_row<DType::kQ4_K>(a, r, n_tok);
      return;
    case DType::kQ5_K:
      for (int64_t r = r0; r < r1; ++r) qk_row<DType::kQ5_K>(a, r, n_tok);
      return;
    case DType::kQ6_K:
      for (int64_t r = r0; r < r1; ++r) qk_row<DType::kQ6_K>(a, r, n_tok);
      return;
    default:
      SWIFT_CHECK(false, "q8k_run: {} is not a K-quant type", dtype_name(w.dtype));
  }
#else
  (void)w, (void)xq, (void)n_tok, (void)y, (void)bias, (void)r0, (void)r1;
  SWIFT_CHECK(false, "q8k_run needs the native build");
#endif
}

void matmul_q8k_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
  SWIFT_CHECK(is_k_quant(w.dtype));
  const int64_t nb = w.cols / kBlockK, bb = block_bytes(w.dtype), rb = nb * bb;
  std::vector<int8_t> q(static_cast<size_t>(n_tok * w.cols));
  std::vector<float> dx(static_cast<size_t>(n_tok * nb));
  std::vector<int16_t> sums(static_cast<size_t>(n_tok * nb * 16));
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t b = 0; b < nb; ++b)
      quantize_block_k(x + t * w.cols + b * kBlockK, q.data() + t * w.cols + b * kBlockK, &dx[t * nb + b],
                       &sums[(t * nb + b) * 16]);
  const auto* data = static_cast<const uint8_t*>(w.data);
  const bool six = w.dtype == DType::kQ6_K, five = w.dtype == DType::kQ5_K;
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc[8] = {}, accm[4] = {}, summs = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = data + r * rb + b * bb;
        const int8_t* qx = q.data() + t * w.cols + b * kBlockK;
        const int16_t* B = &sums[(t * nb + b) * 16];
        // Per column its unsigned integer weight and its scale: Q4_K/Q5_K sub-blocks of 32
        // (6-bit scale), Q6_K sub-blocks of 16 (int8 scale; its offset -32 comes below).
        int32_t wv[256], sv[256];
        uint8_t m[8] = {};
        if (six) {
          int8_t v[256];
          q6k_values(blk, v);
          for (int i = 0; i < 256; ++i) wv[i] = v[i] + 32, sv[i] = static_cast<int8_t>(blk[192 + i / 16]);
        } else {
          uint8_t v[256], sc[8];
          q45k_values(w.dtype, blk, v);
          for (int s = 0; s < 8; ++s) q4k_scale_min(s, blk + 4, &sc[s], &m[s]);
          for (int i = 0; i < 256; ++i) wv[i] = v[i], sv[i] = sc[i / 32];
        }
        // Lane l: columns 4l..4l+3 of each of the 8 groups of 32.
        const float d = dx[t * nb + b] * half_at(blk + (six ? 208 : 0));
        for (int l = 0; l < 8; ++l) {
          int32_t isum = 0;
          for (int g = 0; g < 8; ++g)
            for (int i = 0; i < 4; ++i) {
              const int c = 32 * g + 4 * l + i;
              isum += sv[c] * wv[c] * int32_t{qx[c]};
            }
          if (six) isum -= 32 * (sv[32 * l] * B[2 * l] + sv[32 * l + 16] * B[2 * l + 1]);  // sc_{2l}, sc_{2l+1}
          acc[l] = std::fma(d, static_cast<float>(isum), acc[l]);
        }
        if (!six) {
          const float dmin = -dx[t * nb + b] * half_at(blk + 2);
          int32_t msum[4];
          for (int p = 0; p < 4; ++p)
            msum[p] = m[2 * p] * (B[4 * p] + B[4 * p + 1]) + m[2 * p + 1] * (B[4 * p + 2] + B[4 * p + 3]);
          if (five) {
            summs = std::fma(dmin, static_cast<float>((msum[0] + msum[1]) + (msum[2] + msum[3])), summs);
          } else {
            for (int p = 0; p < 4; ++p) accm[p] = std::fma(dmin, static_cast<float>(msum[p]), accm[p]);
          }
        }
      }
      const float sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
      const float out = six ? sum : five ? sum + summs : sum + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
      y[t * w.rows + r] = out + (bias ? bias[r] : 0.0f);
    }
}

}  // namespace swift::q8_detail

namespace swift {

void q8k_quantize_rows(const float* x, int64_t n_tok, int64_t cols, int8_t* q, float* dx, int16_t* sums) {
  SWIFT_CHECK(cols % q8_detail::kBlockK == 0, "{} columns are not whole blocks of {}", cols, q8_detail::kBlockK);
  const int64_t nb = cols / q8_detail::kBlockK;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t at = t * cols + b * q8_detail::kBlockK;
#if defined(SWIFT_Q8_DOT_NATIVE)
      q8_detail::quantize_block_k_simd(x + at, q + at, dx + t * nb + b, sums + (t * nb + b) * 16);
#else
      q8_detail::quantize_block_k(x + at, q + at, dx + t * nb + b, sums + (t * nb + b) * 16);
#endif
    }
}

}  // namespace swift
