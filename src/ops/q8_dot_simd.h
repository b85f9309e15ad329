// Internal to the three `--math q8` kernel files (matmul_q8_dot.cc: Q8_0 and Q4_0 against Q8_0
// activations, and the dispatch; matmul_q8k_dot.cc: Q4_K, Q5_K and Q6_K rows against Q8_K
// activations; matmul_rows8.cc: Q4_K and Q6_K interleaved by 8 rows): the build switch, the float
// reductions the contracts end in, and the entry points that matmul_q8_parts dispatches to.
// Contract: ops/q8_dot.h.
#pragma once

#include <cstdint>

#include "ops/dtype.h"
#include "util/thread_pool.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define SWIFT_Q8_DOT_NATIVE 1
#endif

namespace swift::q8_detail {

#if defined(SWIFT_Q8_DOT_NATIVE)
// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)): ggml's hsum_float_8.
[[gnu::always_inline]] inline float hsum8(__m256 a) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

// ((m0 + m2) + (m1 + m3)).
[[gnu::always_inline]] inline float hsum4(__m128 m) {
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  m = _mm_add_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
#endif

// True for the K-quant types of 256-weight blocks that take Q8_K activations.
inline bool is_k_quant(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K; }

// The Q8_K activations of x [n_tok, cols] (q8k_quantize_rows) in the calling thread's buffers,
// grown only: no allocation per token in steady state. Valid until the thread's next call.
struct Q8kRows {
  int8_t* q;      // [n_tok, cols]
  float* dx;      // [n_tok, cols / 256]
  int16_t* sums;  // [n_tok, cols / 16]
  // [n_tok, cols / 32, 4 quads, 64], 64-byte aligned (8 x the bytes of q), builds with the
  // 512-bit kRows8 tiles only (else null): per column quad of each 32, a 512-bit operand of the
  // 4 activations of the low-nibble quad in lanes 0-7 and of the high-nibble quad 16 columns on in
  // lanes 8-15 (matmul_rows8.cc).
  int8_t* qh;
};

// True where matmul_rows8.cc runs 512-bit tiles (AVX-512 F and VNNI): the kRows8 products then
// read Q8kRows::qh.
#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(SWIFT_Q8_DOT_NATIVE)
#define SWIFT_ROWS8_WIDE 1
#endif
// Most tokens per call with Q8kRows::qh (8 bytes per activation): matmul_q8_parts runs longer
// batches with kRows8 parts in chunks of this many, so the copy stays bounded (~5.6 MB for an
// 11,008-wide down projection) instead of growing with the prompt.
constexpr int64_t kRows8WideTokens = 64;
// The calling thread's buffers for the Q8_K activations of n_tok tokens of cols columns (grown
// only), not yet filled. with_qh: also Q8kRows::qh (builds with the 512-bit tiles; callers with
// kRows8 parts), at most kRows8WideTokens tokens.
Q8kRows q8k_scratch(int64_t n_tok, int64_t cols, bool with_qh);
// Tokens [t0, t1) of x [n_tok, cols] quantized into `rows` (from q8k_scratch; qh too when it has
// one). Any thread may fill any disjoint range: tokens are independent.
void q8k_quantize_tokens(const Q8kRows& rows, const float* x, int64_t cols, int64_t t0, int64_t t1);

// The 256 unsigned weight values of a Q4_K or Q5_K block in column order (the 4-bit q plus, for
// Q5_K, 16 times the 5th bit).
void q45k_values(DType t, const uint8_t* blk, uint8_t v[256]);
// The 256 signed weight values of a Q6_K block (u - 32, in -32..31) in column order.
void q6k_values(const uint8_t* blk, int8_t v[256]);

// The products matmul_q8_parts runs on the pool, one range of work units at a time, from
// activations quantized once for all the parts (the same bits as any other split):
//   K-quant rows (kRows): a unit is a row; kRows8 (Q4_K, Q6_K): a unit is a group of 8 rows.
void q8k_run(const MatView& w, const Q8kRows& xq, int64_t n_tok, float* y, const float* bias, int64_t r0, int64_t r1);
void rows8_run(const MatView& w, const Q8kRows& xq, int64_t n_tok, float* y, const float* bias, int64_t g0, int64_t g1);
// matmul_q8_reference for is_k_quant rows and for kRows8 matrices (checked by the caller).
void matmul_q8k_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias);
void matmul_rows8_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias);

}  // namespace swift::q8_detail
