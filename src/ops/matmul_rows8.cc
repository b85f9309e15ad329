// Q4_K and Q6_K matrices interleaved by 8 rows (MatLayout::kRows8) x Q8_K activations, for
// `--math q8`: layout and contract in ops/q8_dot.h.
//
// Why: with rows one at a time (matmul_q8k_dot.cc) every 32 weights of a row cost one
// vpmaddubsw, one vpmaddwd by the sub-block scale and one add per token, and every row ends in a
// horizontal sum; the demo model's rows are one block (256 weights), so unpacking the scales and
// the sums dominate. Here a vector lane is a row: one vpdpbusd multiplies 4 columns of 8 rows
// (unsigned weights) by 4 activations broadcast to all lanes, 8 of them cover 32 columns of 8
// rows, then one vpmulld per scale applies the 8 rows' scales; no horizontal sums. llama.cpp
// repacks Q4_K the same way for AVX2 (ggml's q4_K_8x8); the arithmetic order here is swiftllm's
// own. Measured on the 2-core Zen 4 VM (one thread, prototype): a Q4_K 768 x 256 product 9.5 ->
// 3.0 us for one token, 8000 x 256 102.5 -> 35.0 us.
//
// Q6_K (session 19): the 4 low bits of each weight in the Q4_K nibble layout, the 2 high bits
// four to a byte beside them, so the group is as big as the 8 plain blocks (1,680 bytes). Its
// sub-blocks are 16 columns (low nibbles 0-15, high nibbles 16-31 of each 32), so two scales per
// 32 columns; the -32 offset of the 6-bit values is taken once per block against Q8_K's sums per
// 16 columns (one vpmaddwd per 32 columns: both scales times both sums).
//
// Where the CPU has AVX-512 VNNI, 512-bit tiles (below) take both nibble quads of 8 rows in one
// vpdpbusd and up to 8 tokens per pass over a group's weights, with the same bits: on the Zen 4
// VM (one thread, a 1536 x 256 product) Q4_K 6.8 -> 5.5 us for one token and 64 -> 55 us for 16,
// Q6_K 70 -> 60 us for 16 tokens.
#include <cstring>
#include <vector>

#include "ops/q8_dot.h"
#include "ops/q8_dot_simd.h"
#include "ops/quant.h"
#include "util/check.h"
#include "util/half.h"

namespace swift {

namespace {

constexpr int64_t kQ4KBytes = 144, kQ6KBytes = 210;  // one block of one row
// One Q4_K group of 8 rows x one block: f16 d[8], f16 dmin[8], u8 sc[8 sub][8 rows], u8 m[8
// sub][8 rows], nibbles [8 sub][4 column quads][8 rows][4]: the low nibble is column
// 32 s + 4 quad + i, the high nibble the same column + 16.
static_assert(rows8_group_bytes(DType::kQ4_K) == 16 + 16 + 64 + 64 + 1024);
constexpr int64_t kOffD = 0, kOffDmin = 16, kOffSc = 32, kOffM = 96, kOffQ = 160;
// One Q6_K group: f16 d[8], int8 sc[16 sub-blocks of 16][8 rows], then per 32 columns s 192
// bytes: the low 4 bits of each 6-bit value as Q4_K's nibbles [4 quads][8 rows][4], then the
// high 2 bits [2 quad pairs][8 rows][4]: the byte of (p, row, i) holds, from bit 0, those of
// columns c, c + 16, c + 4, c + 20 with c = 32 s + 8 p + i. One sequential stream: with the high
// bits in a region of their own after the nibbles, streaming the demo model's Q6_K matrices (19
// MB, L3 here) ran at half the speed of the row kernel, though twice as fast when in L2.
static_assert(rows8_group_bytes(DType::kQ6_K) == 16 + 128 + 8 * (128 + 64));
constexpr int64_t kOff6D = 0, kOff6Sc = 16, kOff6S = 144, kOff6Step = 192;

const uint8_t* group_block(const MatView& w, int64_t group, int64_t b) {
  return static_cast<const uint8_t*>(w.data) + (group * (w.cols / 256) + b) * rows8_group_bytes(w.dtype);
}

// Where column c of row r keeps its low 4 bits in a group (byte, shift): Q4_K [s][quad][row][i]
// from kOffQ, Q6_K [quad][row][i] in the bytes of s; the high nibble is column + 16.
int64_t nibble_byte(bool six, int c, int r) {
  const int64_t in_s = (c % 16 / 4 * 8 + r) * 4 + c % 4;
  return six ? kOff6S + c / 32 * kOff6Step + in_s : kOffQ + c / 32 * 128 + in_s;
}
int nibble_shift(int c) { return 4 * (c % 32 / 16); }
// Where a Q6_K column keeps its high 2 bits.
int64_t high_byte(int c, int r) { return kOff6S + c / 32 * kOff6Step + 128 + (c % 16 / 8 * 8 + r) * 4 + c % 4; }
int high_shift(int c) { return 4 * (c % 16 / 4 % 2) + 2 * (c % 32 / 16); }

// Q6_K block layout (ggml): ql [128], qh [64], int8 scales [16], f16 d.
void q6k_encode(const uint8_t u[256], uint8_t* blk) {
  uint8_t* ql = blk;
  uint8_t* qh = blk + 128;
  std::memset(blk, 0, 192);
  for (int h = 0; h < 2; ++h, ql += 64, qh += 32)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* v = u + 128 * h + l;  // columns l, l + 32, l + 64, l + 96 of this half
      ql[l] = static_cast<uint8_t>((v[0] & 0xF) | (v[64] & 0xF) << 4);
      ql[l + 32] = static_cast<uint8_t>((v[32] & 0xF) | (v[96] & 0xF) << 4);
      qh[l] = static_cast<uint8_t>(v[0] >> 4 | (v[32] >> 4) << 2 | (v[64] >> 4) << 4 | (v[96] >> 4) << 6);
    }
}

}  // namespace

bool rows8_packable(const MatView& w) {
  return rows8_group_bytes(w.dtype) > 0 && w.layout == MatLayout::kRows && w.rows > 0 && w.rows % 8 == 0 &&
         w.cols > 0 && w.cols % 256 == 0 && w.data != nullptr;
}

size_t rows8_bytes(DType t, int64_t rows, int64_t cols) {
  return MatView{nullptr, t, rows, cols, MatLayout::kRows8}.bytes();
}

MatView rows8_pack(const MatView& src, void* dst) {
  SWIFT_CHECK(rows8_packable(src), "rows8_pack takes Q4_K or Q6_K rows (a multiple of 8) of whole blocks");
  const bool six = src.dtype == DType::kQ6_K;
  const int64_t nb = src.cols / 256, gb = rows8_group_bytes(src.dtype), bb = six ? kQ6KBytes : kQ4KBytes;
  const auto* in = static_cast<const uint8_t*>(src.data);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < src.rows / 8; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* o = out + (g * nb + b) * gb;
      std::memset(o, 0, static_cast<size_t>(gb));
      for (int r = 0; r < 8; ++r) {
        const uint8_t* blk = in + ((g * 8 + r) * nb + b) * bb;
        uint8_t v[256];
        if (six) {
          std::memcpy(o + kOff6D + 2 * r, blk + 208, 2);
          for (int k = 0; k < 16; ++k) o[kOff6Sc + k * 8 + r] = blk[192 + k];
          int8_t sv[256];
          q8_detail::q6k_values(blk, sv);
          for (int c = 0; c < 256; ++c) v[c] = static_cast<uint8_t>(sv[c] + 32);
          for (int c = 0; c < 256; ++c) o[high_byte(c, r)] |= static_cast<uint8_t>((v[c] >> 4) << high_shift(c));
        } else {
          std::memcpy(o + kOffD + 2 * r, blk, 2);
          std::memcpy(o + kOffDmin + 2 * r, blk + 2, 2);
          for (int s = 0; s < 8; ++s) q4k_scale_min(s, blk + 4, &o[kOffSc + s * 8 + r], &o[kOffM + s * 8 + r]);
          q8_detail::q45k_values(DType::kQ4_K, blk, v);
        }
        for (int c = 0; c < 256; ++c)
          o[nibble_byte(six, c, r)] |= static_cast<uint8_t>((v[c] & 0xF) << nibble_shift(c));
      }
    }
  return MatView{dst, src.dtype, src.rows, src.cols, MatLayout::kRows8};
}

void rows8_row(const MatView& w, int64_t r, uint8_t* row) {
  SWIFT_CHECK(w.layout == MatLayout::kRows8 && r >= 0 && r < w.rows);
  const bool six = w.dtype == DType::kQ6_K;
  const int64_t nb = w.cols / 256, g = r / 8;
  const int k = static_cast<int>(r % 8);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = group_block(w, g, b);
    uint8_t u[256];
    for (int c = 0; c < 256; ++c) u[c] = (o[nibble_byte(six, c, k)] >> nibble_shift(c)) & 0xF;
    if (six) {
      uint8_t* blk = row + b * kQ6KBytes;
      for (int c = 0; c < 256; ++c) u[c] |= static_cast<uint8_t>(((o[high_byte(c, k)] >> high_shift(c)) & 3) << 4);
      q6k_encode(u, blk);
      for (int s = 0; s < 16; ++s) blk[192 + s] = o[kOff6Sc + s * 8 + k];
      std::memcpy(blk + 208, o + kOff6D + 2 * k, 2);
      continue;
    }
    uint8_t* blk = row + b * kQ4KBytes;
    std::memcpy(blk, o + kOffD + 2 * k, 2);
    std::memcpy(blk + 2, o + kOffDmin + 2 * k, 2);
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; ++s) sc[s] = o[kOffSc + s * 8 + k], m[s] = o[kOffM + s * 8 + k];
    q4k_pack_scale_min(sc, m, blk + 4);
    uint8_t* qs = blk + 16;
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) qs[32 * j + l] = static_cast<uint8_t>(u[64 * j + l] | u[64 * j + 32 + l] << 4);
  }
}

namespace q8_detail {

namespace {

#if defined(SWIFT_Q8_DOT_NATIVE)
// sum += 4-column dot products of the unsigned weights u (per 32-bit lane) and the signed
// activations x: vpdpbusd, or vpmaddubsw + vpmaddwd where the CPU lacks it (the pair sums,
// <= 2 * 63 * 127, never saturate, so both give the same exact sums).
[[gnu::always_inline]] inline __m256i dot4(__m256i sum, __m256i u, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(sum, u, x);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(sum, u, x);
#else
  return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
#endif
}

// sum += a.lo * b.lo + a.hi * b.hi for the two int16 halves of each 32-bit lane (vpdpwssd, or
// vpmaddwd + vpaddd: exact either way for the operands here, |products| < 2^17).
[[gnu::always_inline]] inline __m256i dot2(__m256i sum, __m256i a, __m256i b) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(sum, a, b);
#elif defined(__AVXVNNI__)
  return _mm256_dpwssd_avx_epi32(sum, a, b);
#else
  return _mm256_add_epi32(sum, _mm256_madd_epi16(a, b));
#endif
}

[[gnu::always_inline]] inline __m256i broadcast4(const int8_t* x) {
  int32_t v;
  std::memcpy(&v, x, 4);
  return _mm256_set1_epi32(v);
}

// Q8_K's two sums of 16 columns for sub-block pair s (B_2s low, B_2s+1 high) in every lane: the
// operand dot2 multiplies Q4_K's mins and Q6_K's scales with.
[[gnu::always_inline]] inline __m256i sums_pair(const int16_t* sums, int64_t s) {
  int32_t v;
  std::memcpy(&v, sums + 2 * s, 4);
  return _mm256_set1_epi32(v);
}

// The 6-bit values of 32 columns (s) of 8 Q6_K rows: lo[quad] columns 4 quad .. 4 quad + 3 (low
// nibbles plus their high bits), hi[quad] the same 16 columns on.
[[gnu::always_inline]] inline void q6k_quads(const uint8_t* os, __m256i lo[4], __m256i hi[4]) {
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
  for (int p = 0; p < 2; ++p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(os + 128 + p * 32));
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(os + 2 * p * 32));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(os + (2 * p + 1) * 32));
    // 16-bit shifts move bits across bytes; the 0x30 mask keeps each byte's own two.
    lo[2 * p] = _mm256_or_si256(_mm256_and_si256(q0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m2));
    hi[2 * p] =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q0, 4), m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m2));
    lo[2 * p + 1] = _mm256_or_si256(_mm256_and_si256(q1, m4), _mm256_and_si256(h, m2));
    hi[2 * p + 1] =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m2));
  }
}

// A Q6_K group's scales of sub-blocks 2s (lo) and 2s + 1 (hi) per row as int32, and as int16
// pairs (sc_2s[r], sc_2s+1[r]) per lane for dot2 against sums_pair.
struct Q6Scales {
  __m256i lo, hi, pair;
};
[[gnu::always_inline]] inline Q6Scales q6k_scales(const uint8_t* o, int s) {
  const __m128i sc8_lo = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + kOff6Sc + 2 * s * 8));
  const __m128i sc8_hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + kOff6Sc + (2 * s + 1) * 8));
  const __m128i sc16_lo = _mm_cvtepi8_epi16(sc8_lo), sc16_hi = _mm_cvtepi8_epi16(sc8_hi);
  return {_mm256_cvtepi8_epi32(sc8_lo), _mm256_cvtepi8_epi32(sc8_hi),
          _mm256_set_m128i(_mm_unpackhi_epi16(sc16_lo, sc16_hi), _mm_unpacklo_epi16(sc16_lo, sc16_hi))};
}

struct Rows8Args {
  const MatView* w;
  const int8_t* q;      // [n_tok, cols] Q8_K activations
  const int8_t* qh;     // [n_tok, cols / 32, 4, 64] the same, as 512-bit quad operands (Q8kRows::qh)
  const float* dx;      // [n_tok, nb]
  const int16_t* sums;  // [n_tok, nb * 16]
  float* y;             // [n_tok, rows]
  const float* bias;
};

// Rows [8 g, 8 g + 8) of tokens [t0, t0 + T): y = v[t] + bias (or + 0).
template <int T>
[[gnu::always_inline]] inline void store_tile(const Rows8Args& a, int64_t g, int64_t t0, const __m256* v) {
  const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + 8 * g) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(a.y + (t0 + t) * a.w->rows + 8 * g, _mm256_add_ps(v[t], bias));
}

// A Q4_K group's mins of sub-block s, each row's twice as int16 in its lane: against sums_pair by
// dot2, m (B_2s + B_2s+1) in one instruction.
[[gnu::always_inline]] inline __m256i q4k_mins2(const uint8_t* o, int s) {
  const __m256i mn = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + kOffM + s * 8)));
  return _mm256_or_si256(mn, _mm256_slli_epi32(mn, 16));
}

// Q4_K rows [8 g, 8 g + 8) x tokens [t0, t0 + T).
template <int T>
[[gnu::always_inline]] inline void q4k_tile(const Rows8Args& a, int64_t g, int64_t t0) {
  const int64_t cols = a.w->cols, nb = cols / 256;
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
      const __m256i mn2 = q4k_mins2(o, s);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* x = a.q + (t0 + t) * cols + b * 256 + s * 32;
        // Two chains (low and high nibbles): one would serialise 8 vpdpbusd on their latency.
        __m256i sub_lo = _mm256_setzero_si256(), sub_hi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int quad = 0; quad < 4; ++quad) {
          sub_lo = dot4(sub_lo, lo[quad], broadcast4(x + 4 * quad));
          sub_hi = dot4(sub_hi, hi[quad], broadcast4(x + 16 + 4 * quad));
        }
        isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(_mm256_add_epi32(sub_lo, sub_hi), sc));
        msum[t] = dot2(msum[t], mn2, sums_pair(a.sums + ((t0 + t) * nb + b) * 16, s));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 dx = _mm256_set1_ps(a.dx[(t0 + t) * nb + b]);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(isum[t]), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_mul_ps(dmin, dx), _mm256_cvtepi32_ps(msum[t]), accm[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_sub_ps(acc[t], accm[t]);
  store_tile<T>(a, g, t0, acc);
}

// Q6_K rows [8 g, 8 g + 8) x tokens [t0, t0 + T).
template <int T>
[[gnu::always_inline]] inline void q6k_tile(const Rows8Args& a, int64_t g, int64_t t0) {
  const int64_t cols = a.w->cols, nb = cols / 256;
  __m256 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = group_block(*a.w, g, b);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + kOff6D)));
    __m256i isum[T], osum[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) isum[t] = osum[t] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      __m256i lo[4], hi[4];
      q6k_quads(o + kOff6S + s * kOff6Step, lo, hi);
      const Q6Scales sc = q6k_scales(o, s);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* x = a.q + (t0 + t) * cols + b * 256 + s * 32;
        __m256i sub_lo = _mm256_setzero_si256(), sub_hi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int quad = 0; quad < 4; ++quad) {
          sub_lo = dot4(sub_lo, lo[quad], broadcast4(x + 4 * quad));
          sub_hi = dot4(sub_hi, hi[quad], broadcast4(x + 16 + 4 * quad));
        }
        isum[t] = _mm256_add_epi32(
            isum[t], _mm256_add_epi32(_mm256_mullo_epi32(sub_lo, sc.lo), _mm256_mullo_epi32(sub_hi, sc.hi)));
        osum[t] = dot2(osum[t], sc.pair, sums_pair(a.sums + ((t0 + t) * nb + b) * 16, s));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 dx = _mm256_set1_ps(a.dx[(t0 + t) * nb + b]);
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(osum[t], 5));  // - 32 sum_k sc_k B_k
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(total), acc[t]);
    }
  }
  store_tile<T>(a, g, t0, acc);
}

#if defined(SWIFT_ROWS8_WIDE)
// 512-bit tiles (session 20). The tiles above multiply 8 rows x 4 columns per 256-bit vpdpbusd;
// on Zen 4 that form issues ~1.1 per cycle (~32 multiply-adds) against 1 per cycle for the 512-bit
// one (64): a measured ceiling of ~135 against ~230 G multiply-adds/s per core, and the ymm tiles
// ran at ~110. Here one vpdpbusd takes a column quad c .. c+3 of the 32 (low nibbles, rows in lanes
// 0-7) and the quad 16 columns on (high nibbles, the same rows in lanes 8-15) against
// Q8kRows::qh's operand of both quads' activations, and each half carries its own integer sums to
// the end of the block, where they are added: every sum is exact in int32, so the result is the
// ymm tiles' bit for bit (and the contract's). Q6_K's low quads belong to sub-block 2s and its
// high ones to 2s + 1, so the halves take those two scales; Q4_K's both take the sub-block's.

// x in the low half, zeros above (the maskz form: GCC 12's unmasked AVX-512 forms take an
// undefined pass-through that trips -Wmaybe-uninitialized, as in ops/lanes.h).
[[gnu::always_inline]] inline __m512i zext512(__m256i x) {
  return _mm512_maskz_inserti64x4(0xFF, _mm512_setzero_si512(), x, 0);
}

// Q4_K: the 8 rows' 32 nibble bytes of a column quad in both 256-bit halves (one broadcast
// load), the low nibbles kept in lanes 0-7 and the high ones in lanes 8-15 *in place*, i.e. as
// 16 x the value (one vpandd, no shift), against Q8kRows::qh's operand of the two quads'
// activations. The upper half's integer sums are then 16 x the high nibbles' and are divided by
// 16 exactly (an arithmetic shift: |sum| <= 8 x 63 x 4 x 4 x 240 x 128 < 2^31) before both
// halves are added: the same exact integers as the other tiles.
template <int T>
[[gnu::always_inline]] inline void q4k_tile_wide(const Rows8Args& a, int64_t g, int64_t t0) {
  const int64_t cols = a.w->cols, nb = cols / 256;
  const __m512i halves =
      _mm512_maskz_inserti64x4(0xFF, _mm512_set1_epi8(0x0F), _mm256_set1_epi8(static_cast<char>(0xF0)), 1);
  __m256 acc[T], accm[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), accm[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = group_block(*a.w, g, b);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + kOffD)));
    const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + kOffDmin)));
    __m512i isum[T];
    __m256i msum[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512(), msum[t] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      __m512i w[4];
#pragma GCC unroll 4
      for (int quad = 0; quad < 4; ++quad)
        w[quad] = _mm512_and_si512(
            _mm512_maskz_broadcast_i64x4(
                0xFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + kOffQ + (s * 4 + quad) * 32))),
            halves);
      // The sub-block scale of row r in lanes r and 8 + r.
      const __m256i sc1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o + kOffSc + s * 8)));
      const __m512i sc = _mm512_maskz_broadcast_i64x4(0xFF, sc1);
      const __m256i mn2 = q4k_mins2(o, s);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* x = a.qh + (((t0 + t) * nb + b) * 8 + s) * 256;
        __m512i sub = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int quad = 0; quad < 4; ++quad) sub = _mm512_dpbusd_epi32(sub, w[quad], _mm512_load_si512(x + 64 * quad));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sub, sc));
        msum[t] = dot2(msum[t], mn2, sums_pair(a.sums + ((t0 + t) * nb + b) * 16, s));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 dx = _mm256_set1_ps(a.dx[(t0 + t) * nb + b]);
      const __m256i is = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xF, isum[t], 0),
                                          _mm256_srai_epi32(_mm512_maskz_extracti64x4_epi64(0xF, isum[t], 1), 4));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(is), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_mul_ps(dmin, dx), _mm256_cvtepi32_ps(msum[t]), accm[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_sub_ps(acc[t], accm[t]);
  store_tile<T>(a, g, t0, acc);
}

template <int T>
[[gnu::always_inline]] inline void q6k_tile_wide(const Rows8Args& a, int64_t g, int64_t t0) {
  const int64_t cols = a.w->cols, nb = cols / 256;
  __m256 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = group_block(*a.w, g, b);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + kOff6D)));
    __m512i isum[T];
    __m256i osum[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512(), osum[t] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      // The 6-bit values, the low quad in lanes 0-7 and the high one in 8-15; the scales likewise.
      __m256i lo[4], hi[4];
      q6k_quads(o + kOff6S + s * kOff6Step, lo, hi);
      __m512i w[4];
#pragma GCC unroll 4
      for (int quad = 0; quad < 4; ++quad) w[quad] = _mm512_maskz_inserti64x4(0xFF, zext512(lo[quad]), hi[quad], 1);
      const Q6Scales sc = q6k_scales(o, s);
      const __m512i sc2 = _mm512_maskz_inserti64x4(0xFF, zext512(sc.lo), sc.hi, 1);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int8_t* x = a.qh + (((t0 + t) * nb + b) * 8 + s) * 256;
        __m512i sub = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int quad = 0; quad < 4; ++quad) sub = _mm512_dpbusd_epi32(sub, w[quad], _mm512_load_si512(x + 64 * quad));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sub, sc2));
        osum[t] = dot2(osum[t], sc.pair, sums_pair(a.sums + ((t0 + t) * nb + b) * 16, s));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 dx = _mm256_set1_ps(a.dx[(t0 + t) * nb + b]);
      const __m256i is = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xF, isum[t], 0),
                                          _mm512_maskz_extracti64x4_epi64(0xF, isum[t], 1));
      const __m256i total = _mm256_sub_epi32(is, _mm256_slli_epi32(osum[t], 5));  // - 32 sum_k sc_k B_k
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(total), acc[t]);
    }
  }
  store_tile<T>(a, g, t0, acc);
}
#endif

template <bool kSix, int T>
void tile(const Rows8Args& a, int64_t g, int64_t t0) {
#if defined(SWIFT_ROWS8_WIDE)
  // Q6_K alone stays on the 256-bit tile for one token: its 512-bit weights cost one more
  // operation per quad and 8.9 against 8.5 us for a 1536 x 256 product (Zen 4, one thread).
  if constexpr (kSix && T == 1)
    q6k_tile<T>(a, g, t0);
  else if constexpr (kSix)
    q6k_tile_wide<T>(a, g, t0);
  else
    q4k_tile_wide<T>(a, g, t0);
#else
  if constexpr (kSix)
    q6k_tile<T>(a, g, t0);
  else
    q4k_tile<T>(a, g, t0);
#endif
}

template <bool kSix>
void rows8_groups(const Rows8Args& a, int64_t n_tok, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    int64_t t = 0;
    for (; t + 8 <= n_tok; t += 8) tile<kSix, 8>(a, g, t);
    for (; t + 4 <= n_tok; t += 4) tile<kSix, 4>(a, g, t);
    for (; t < n_tok; ++t) tile<kSix, 1>(a, g, t);
  }
}
#endif

}  // namespace

void rows8_run(const MatView& w, const Q8kRows& xq, int64_t n_tok, float* y, const float* bias, int64_t g0,
               int64_t g1) {
#if defined(SWIFT_ROWS8_WIDE)
  SWIFT_CHECK(xq.qh != nullptr, "rows8_run: the 512-bit tiles need Q8kRows::qh (q8k_quantize_scratch with_qh)");
#endif
#if defined(SWIFT_Q8_DOT_NATIVE)
  const Rows8Args a{&w, xq.q, xq.qh, xq.dx, xq.sums, y, bias};
  if (w.dtype == DType::kQ6_K)
    rows8_groups<true>(a, n_tok, g0, g1);
  else
    rows8_groups<false>(a, n_tok, g0, g1);
#else
  (void)w, (void)xq, (void)n_tok, (void)y, (void)bias, (void)g0, (void)g1;
  SWIFT_CHECK(false, "rows8_run needs the native build");
#endif
}

void matmul_rows8_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
  SWIFT_CHECK(w.layout == MatLayout::kRows8 && (w.dtype == DType::kQ4_K || w.dtype == DType::kQ6_K));
  const bool six = w.dtype == DType::kQ6_K;
  const int64_t nb = w.cols / 256;
  std::vector<int8_t> q(static_cast<size_t>(n_tok * w.cols));
  std::vector<float> dx(static_cast<size_t>(n_tok * nb));
  std::vector<int16_t> sums(static_cast<size_t>(n_tok * nb * 16));
  q8k_quantize_rows(x, n_tok, w.cols, q.data(), dx.data(), sums.data());
  std::vector<uint8_t> row(static_cast<size_t>(row_bytes(w.dtype, w.cols)));
  for (int64_t r = 0; r < w.rows; ++r) {
    rows8_row(w, r, row.data());  // the row as a plain Q4_K / Q6_K row: its own decoding
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc = 0.0f, accm = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* qx = q.data() + t * w.cols + b * 256;
        const int16_t* B = sums.data() + (t * nb + b) * 16;
        const float xd = dx[t * nb + b];
        if (six) {
          const uint8_t* blk = row.data() + b * kQ6KBytes;
          int8_t v[256];
          q6k_values(blk, v);
          int32_t isum = 0, osum = 0;
          for (int k = 0; k < 16; ++k) {
            const int32_t sc = static_cast<int8_t>(blk[192 + k]);
            int32_t dot = 0;
            for (int c = 16 * k; c < 16 * k + 16; ++c) dot += (v[c] + 32) * int32_t{qx[c]};
            isum += sc * dot;
            osum += sc * B[k];
          }
          uint16_t h;
          std::memcpy(&h, blk + 208, 2);
          acc = std::fma(f16_to_f32(h) * xd, static_cast<float>(isum - 32 * osum), acc);
          continue;
        }
        const uint8_t* blk = row.data() + b * kQ4KBytes;
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
        acc = std::fma(f16_to_f32(h[0]) * xd, static_cast<float>(isum), acc);
        accm = std::fma(f16_to_f32(h[1]) * xd, static_cast<float>(msum), accm);
      }
      y[t * w.rows + r] = (acc - accm) + (bias ? bias[r] : 0.0f);
    }
  }
}

}  // namespace q8_detail

}  // namespace swift
