// BF16 x bf16 dot-product kernel (issue 6: prefill and verification are compute-bound).
//
// Why: a pass over 16+ tokens costs f32 multiply-adds, and the f32 panel kernel (ops/panel.h)
// already runs at this CPU's FMA peak (2 x 16 multiply-adds per cycle per core). AVX-512 BF16's
// vdpbf16ps does 32 per instruction at the same rate and needs no bf16 -> f32 widening of the
// weights. The price is precision: activations are rounded to bf16 (8-bit significand, relative
// error <= 2^-9) before each product, as llama.cpp does for BF16 weights. Results are therefore
// not those of the float32 Hugging Face reference; `--math bf16` opts in, `--math f32` (the
// default) keeps every product in f32. Measured effects are in README (Performance).
//
// Layout (MatLayout::kPanel16Pairs, BF16 only): panels of 16 rows stored by column pairs,
// [ceil(rows / 16), ceil(cols / 2), 16, 2]: element (r, c) at [r / 16][c / 2][r % 16][c % 2]. One
// 512-bit load is 16 rows x 2 adjacent columns, the operand vdpbf16ps pairs with a broadcast
// pair of activations. An odd column count gets a zero column (and a zero activation).
//
// Numeric contract (batch invariance, as matmul.h requires for lossless decoding): with
// x^ = bf16_round(x) (round to nearest even; f32 denormals become zero, as vcvtneps2bf16),
//   y[t, r] = s_{cols/2} + bias[r] (or + 0), s_0 = +0,
//   s_{j+1} = fma(W[r, 2j], x^[t, 2j], fma(W[r, 2j+1], x^[t, 2j+1], s_j))
// i.e. the odd column of each pair first (vdpbf16ps's order, checked bit for bit by the tests);
// both products are exact in f32 (8-bit by 8-bit significands), so each step rounds once.
// vdpbf16ps also flushes denormal inputs and results to zero; the scalar form does the same.
// None of this depends on the token count, tile shape, batch position or thread split.
#pragma once

#include <cstdint>

#include "ops/dtype.h"
#include "ops/prefetch_ahead.h"
#include "util/thread_pool.h"

namespace swift {

// True when this build runs the kernel with AVX-512 BF16 instructions. Without them the kernel
// is a scalar emulation: exact but ~20x slower, so the CLI refuses `--math bf16` there.
bool bf16_dot_native();

// x rounded to the nearest bf16, ties to even, f32 denormals to signed zero; NaN stays NaN.
uint16_t bf16_round(float x);

// x [n_tok, cols] rounded with bf16_round, as [n_tok, 2 * ceil(cols / 2)] bf16 (an odd count gets a
// zero padding column): the activation operand of both bf16 kernels. The buffer belongs to the
// calling thread and stays valid until its next call.
const uint16_t* bf16_round_rows(const float* x, int64_t n_tok, int64_t cols);
// The same rounding into out ([n_tok, cols rounded up to even] bf16; a pad column is zero).
void bf16_round_rows_into(const float* x, int64_t n_tok, int64_t cols, uint16_t* out);

// One step of the contract above for one output: fma(w1, x1, s) then fma(w0, x0, .), with
// vdpbf16ps's flushing of denormal inputs and results. Exposed for the tests' reference.
float bf16_dot_step(float s, uint16_t w0, uint16_t x0, uint16_t w1, uint16_t x1);

// Bytes of the kPanel16Pairs copy of a BF16 rows x cols matrix.
size_t pairs_panel_bytes(int64_t rows, int64_t cols);

// Packs row-major BF16 `src` into `dst` (pairs_panel_bytes, 64-byte aligned).
MatView pairs_panel_pack(const MatView& src, void* dst);

// y[t, r] for w.layout == kPanel16Pairs (shapes and `next` as matmul()).
void matmul_bf16_dot(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
                     NextWeights next = {});
// The same with the activations already rounded (x16: [n_tok, cols rounded up to even] bf16, as
// bf16_round_rows_into makes them; 4-byte aligned): the producer of x (norm, SwiGLU, attention)
// rounds its own rows where they are, in parallel, instead of this call rounding all of them on
// the calling thread first (4% of all samples of 16-token bf16 passes on the Zen 4 VM, ~8% of
// the calling thread's time). Needs bf16_dot_native().
void matmul_bf16_dot_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* y, const float* bias,
                             ThreadPool& pool, NextWeights next = {});

// SwiGLU over a fused [gate | up] matrix (weights.h: w_gate_up, 2 I rows, I % 16 == 0) in this
// layout: for each token t and column c < I, g[t, c] = silu(x.W[c] + b[c]) * (x.W[I + c] + b[I + c]),
// written as bf16 rows g16 [n_tok, I] and, when g is not null, as f32 rows too. The same bits as
// matmul_bf16_dot_rounded into [n_tok, 2 I] rows followed by silu_mul_bf16 (ops/elementwise.h),
// as the AMX kernel (ops/bf16_amx.h): each thread takes gate panels with their up panels and
// applies SiLU to its tiles in registers. Why: the product's f32 rows were written, then read
// back by a SwiGLU round of its own (one pool round per layer; 2.4% of a prefill in silu_mul_bf16
// on the Zen 4 VM). Used for prompt-sized batches (ops/matmul.h: swiglu_rounded_usable). x16,
// next: as matmul_bf16_dot_rounded.
bool bf16_dot_swiglu_usable(const MatView& w_gate_up);
void matmul_bf16_dot_swiglu(const MatView& w_gate_up, const uint16_t* x16, int64_t n_tok, float* g, uint16_t* g16,
                            const float* bias, ThreadPool& pool, NextWeights next = {});

// The contract in plain scalar code, for tests.
void matmul_bf16_dot_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias);

}  // namespace swift
