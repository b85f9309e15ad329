// Q8_0, Q4_0, Q4_K, Q5_K and Q6_K weights times activations quantized to 8 bits (`--math q8`;
// issue 6: llama.cpp's speed on quantized models).
//
// Why: the exact kernel (ops/matmul.cc) turns every Q8_0 weight into f32 with the operations of
// ggml's dequantize_row_q8_0 (widen, convert, times the block scale) before an f32 fma, about four
// instructions per 16 weights; decoding the demo model as Q8_0 ran at 0.69x llama.cpp's speed
// (381 against 549 tokens/s, 2 threads, 2-core AMD EPYC Zen 4 VM). llama.cpp instead rounds each
// activation row to 8 bits per block of 32 (the Q8_0 format itself) and multiplies integers:
// 32 weights of a block against 32 activations are one vpdpbusd (AVX-512 VNNI / AVX-VNNI) or
// vpmaddubsw + vpmaddwd (AVX2) on exact int32 sums, then one f32 fma by the two scales. The price
// is the activations' rounding (half a step of amax / 127 per element), as in llama.cpp;
// `--math f32` (the default) keeps the exact products.
//
// Numeric contract (batch invariance: each output depends only on its weight row and its token,
// never on the batch, tile or thread split, so speculative decoding stays lossless):
//   activations, per token and block b of 32 columns: amax = max_i |x_i|,
//     q_i = nearest-even(x_i * (amax != 0 ? 127 / amax : 0)) (in [-127, 127]),
//     dx_b = f16(amax / 127) as f32 (llama.cpp's quantize_row_q8_0 keeps the scale in f16);
//   per output y[t, r], 8 lanes per block, lane l an exact integer over 4 columns:
//     isum_{b,l} = sum_{i<4} qw[32 b + 4 l + i] * q[32 b + 4 l + i]
//     acc_l = fma(f32(dw_b) * dx_b, f32(isum_{b,l}), acc_l) over the blocks in order, from +0
//     y = ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)), then + bias
//       (or + 0)
//   which is the order of ggml's AVX2 ggml_vec_dot_q8_0_q8_0 (8 lanes of 4 products, one fma per
//   block, hsum_float_8). Q4_0 weights (f16 d; 16 bytes, low nibbles columns 0-15, high 16-31)
//   follow the same contract with qw = nibble - 8 (ggml's vec_dot_q4_0_q8_0).
//
// Q4_K weights (256 per block: f16 d, dmin; 6-bit scale sc_s and min m_s per sub-block s of 32;
// 4-bit q, w = (d sc_s) q - dmin m_s) take llama.cpp's Q8_K activations instead:
//   per token and block of 256: mx = the first x_i of largest magnitude (amax = |mx|);
//     q_i = min(127, nearest-even(x_i * (-127 / mx))) (0 when amax = 0), dx = 1 / (-127 / mx)
//     (0 when amax = 0), and B_k = sum of q over columns 16k..16k+15 (ggml's bsums, exact);
//     S_s = B_{2s} + B_{2s+1}, the sum over sub-block s of 32;
//   per output, per block: d = dx * f32(d_w), dmin = -dx * f32(dmin_w) (f32 products), exact
//     integer lane sums over the 4 chunks j of 64 columns (low nibbles: sub-block 2j, high: 2j+1),
//     lane l (0..7) over columns 4l..4l+3 of each 32-column half:
//       isum_l = sum_j sc_{2j} sum_{i<4} q4[64j + 4l + i] q[64j + 4l + i]
//                    + sc_{2j+1} sum_{i<4} q4[64j + 32 + 4l + i] q[64j + 32 + 4l + i]
//       msum_p = m_{2p} S_{2p} + m_{2p+1} S_{2p+1} (p = 0..3)
//     acc_l = fma(d, f32(isum_l), acc_l), accm_p = fma(dmin, f32(msum_p), accm_p), blocks in order
//   y = hsum8(acc) + ((accm_0 + accm_2) + (accm_1 + accm_3)), then + bias (or + 0)
//   (ggml's AVX2 ggml_vec_dot_q4_K_q8_K; every integer sum is exact: |isum| < 2^22).
// Q5_K weights (Q4_K plus a 5th bit h per weight: w = (d sc_s) (q + 16 h) - dmin m_s): the Q4_K
//   lanes with q + 16 h (0..31) in place of q (|isum| < 2^23); the mins in one scalar instead:
//     summs = fma(dmin, f32((msum_0 + msum_1) + (msum_2 + msum_3)), summs) over the blocks in
//     order (ggml writes `summs += dmin * ...`, which GCC contracts to an fma in its default C
//     mode; its library's results confirm it), y = hsum8(acc) + summs, then + bias (or + 0)
//   (ggml's AVX2 ggml_vec_dot_q5_K_q8_K).
// Q6_K weights (f16 d; int8 scale sc_k per sub-block k of 16; 6-bit u in 0..63, w = (d sc_k)
//   (u - 32)): per output, per block, d = dx * f32(d_w); lane l (0..7) over columns 4l..4l+3 of
//   each of the 8 groups g of 32, the offset -32 taken against the bsums of lane l's own pair:
//       isum_l = sum_g sc_{2g + (l >= 4)} sum_{i<4} u[32g + 4l + i] q[32g + 4l + i]
//                - 32 (sc_{2l} B_{2l} + sc_{2l+1} B_{2l+1})
//     acc_l = fma(d, f32(isum_l), acc_l) (f32() rounds to nearest when |isum_l| > 2^24), blocks
//     in order; y = hsum8(acc), then + bias (or + 0)
//   (ggml's AVX2 ggml_vec_dot_q6_K_q8_K; exact integers: |isum_l| < 2^26).
// Every kernel here gives the bits of the ggml function it names: scripts/llamacpp_check/kernels
// compares them with llama.cpp's own library (1,110 outputs per type, all identical, session
// 18). llama.cpp also has repacked kernels (e.g. Q4_0 and Q4_K on AVX2) that were not compared.
#pragma once

#include <cstdint>
#include <span>

#include "ops/dtype.h"
#include "util/thread_pool.h"

namespace swift {

// True when this build runs the kernel with AVX2 integer products (and F16C, FMA); otherwise it
// is the scalar contract below, exact but slow, and the CLI refuses `--math q8`.
bool q8_dot_native();

// Q8_0, Q4_0, Q4_K, Q5_K or Q6_K matrices in place (kRows) whose columns are whole blocks, or
// Q4_K and Q6_K matrices in kRows8: what matmul_q8 takes.
bool q8_dot_usable(const MatView& w);

// The activations' half of the contract: x [n_tok, cols] (cols a multiple of 32) into q
// [n_tok, cols] and dx [n_tok, cols / 32].
void q8_quantize_rows(const float* x, int64_t n_tok, int64_t cols, int8_t* q, float* dx);

// The Q8_K activations of Q4_K, Q5_K and Q6_K products: x [n_tok, cols] (cols a multiple of 256) into q
// [n_tok, cols], dx [n_tok, cols / 256] and the sums B [n_tok, cols / 16] over each 16 columns
// (|B| <= 2,032).
void q8k_quantize_rows(const float* x, int64_t n_tok, int64_t cols, int8_t* q, float* dx, int16_t* sums);

// y[t, r] = W[r, :] . x[t, :] (+ bias[r]) under the contract, for q8_dot_usable(w).
void matmul_q8(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool);

// One product of matmul_q8_parts: y [n_tok, w.rows] = w . x (+ bias).
struct Q8Part {
  const MatView* w;
  float* y;
  const float* bias;
};
// Several products of one input x [n_tok, cols] (Q, K and V; gate and up) whose matrices are
// q8_dot_usable with cols columns each: the activations quantized once per format and one
// thread-pool round for all (matmul_q8 is this with one part). Every output has the bits
// matmul_q8 gives its matrix alone.
void matmul_q8_parts(std::span<const Q8Part> parts, const float* x, int64_t n_tok, ThreadPool& pool);

// Q4_K and Q6_K matrices interleaved by 8 rows (MatLayout::kRows8), packed at load for
// `--math q8` (model/weights.cc) where the row count is a multiple of 8 (matmul_rows8.cc).
// Contract, with the same Q8_K activations: per output, per block, exact integers
//   Q4_K: isum = sum_s sc_s sum_{c in sub-block s of 32} q_c x_c,  msum = sum_s m_s S_s
//     acc = fma(f32(d_w) * dx, f32(isum), acc), accm = fma(f32(dmin_w) * dx, f32(msum), accm),
//     blocks in order; y = (acc - accm) + bias (or + 0)
//   Q6_K: isum = sum_k sc_k sum_{c in sub-block k of 16} u_c x_c - 32 sum_k sc_k B_k (u in 0..63)
//     acc = fma(f32(d_w) * dx, f32(isum), acc), blocks in order; y = acc + bias (or + 0)
//   (f32() rounds to nearest when |isum| > 2^24; |isum| < 2^29).
// Not ggml's vec_dot order (a row's sums are not split into lanes), so not its bits; batch and
// thread invariant as the others.
bool rows8_packable(const MatView& w);
size_t rows8_bytes(DType t, int64_t rows, int64_t cols);
// Packs src (rows8_packable) into dst (rows8_bytes) and returns the view of the copy.
MatView rows8_pack(const MatView& src, void* dst);
// Row r of a kRows8 matrix back as a plain row of its type (cols / 256 blocks of 144 or 210 bytes).
void rows8_row(const MatView& w, int64_t r, uint8_t* row);

// The contract in plain scalar code, for tests (and the non-native build).
void matmul_q8_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias);

}  // namespace swift
