// Matrix x batch-of-vectors products: y[t, r] = sum_c W[r, c] * x[t, c] (+ bias[r]).
//
// One routine serves single-token decode (n_tok = 1), prefill, tree verification and the SWIFT
// matchness window: each weight row is converted once and multiplied with all n_tok
// activations, so a forward over n tokens reads the weights once (DEVELOPERS.md, performance).
//
// Batch invariance (needed for lossless speculative decoding): y[t, r] is computed by the same
// sequence of fused multiply-adds whatever n_tok, the position of t in the batch, or the thread
// split. Verified tokens therefore get bit-identical logits to plain decoding. The build uses
// -ffp-contract=off so the compiler cannot fuse differently in different code paths; the
// kernels use std::fma explicitly.
//
// Two kernels stand behind matmul(), chosen by the weights' layout (ops/dtype.h): panel-packed
// F32/F16/BF16 matrices (what the model uses, ops/panel.h) go to the outer-product kernel, whose
// sum order is one fma chain per output; row-major matrices (block-quantized types, and any view
// a caller builds in place) use the dot-product kernel below with the lane contract of lanes.h.
// Each is batch-invariant on its own; a given matrix always takes the same one.
#pragma once

#include <cstdint>

#include "ops/dtype.h"
#include "ops/prefetch_ahead.h"
#include "util/thread_pool.h"

namespace swift {

// x: [n_tok, w.cols], y: [n_tok, w.rows], bias: [w.rows] or null. next: the weights of the
// product the caller runs after this one, if known: the panel kernels prefetch each thread's
// share of them once their own weights are requested (ops/prefetch_ahead.h; a hint only).
void matmul(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
            NextWeights next = {});

// The same for a BF16 matrix in the --math bf16 layout (kPanel16Pairs) with its activations
// already rounded by their producer (x16: [n_tok, cols rounded up to even] bf16, as
// bf16_round_rows_into makes them): on AMX tiles where matmul() would use them, else with the
// AVX-512 BF16 dot-product kernel (which needs bf16_dot_native()); the bits of matmul() on the f32 rows.
void matmul_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
                    NextWeights next = {});

// SwiGLU over a fused [gate | up] matrix in that layout (weights.h: w_gate_up, 2 I rows), with
// rounded activations as above: g16 [n_tok, I] bf16 rows of silu(gate) * up and, when g is not
// null, the f32 rows; the bits of matmul_rounded into [n_tok, 2 I] followed by silu_mul_bf16. On
// AMX tiles where matmul_rounded would use them, else dot products (ops/bf16_amx.h, bf16_dot.h).
// Whether it applies: swiglu_rounded_usable (whole 16-row panels per half, a kernel for it, and
// for dot products a prompt-sized batch of at least kSwigluDotMinTokens tokens). Why the bound,
// measured on the Zen 4 VM: a thread streams two shares (gate and up) instead of one contiguous
// share, which made one-token passes 1.06-1.11x slower and, with weights cold as in decoding
// (`bench --verify-cost`, each pass after a one-token pass), 4- to 16-token passes 1.02-1.04x;
// where the weights serve many token tiles it pays: 300-token prefill 0.96-0.99x the time (and
// 0.89-0.91x in the VM's slow phase), 64 tokens 0.987x.
constexpr int64_t kSwigluDotMinTokens = 64;
bool swiglu_rounded_usable(const MatView& w_gate_up, int64_t n_tok);
void matmul_swiglu_rounded(const MatView& w_gate_up, const uint16_t* x16, int64_t n_tok, float* g, uint16_t* g16,
                           const float* bias, ThreadPool& pool, NextWeights next = {});

// Prompt prefill (gemm_prefill.cc): the same product for long batches, 2x+ faster on short rows,
// thread-split and batch invariant too, but summing in another order than matmul() — so it is
// only for prompt prefill, which every decoding mode runs identically (lossless decoding
// compares decode and verification passes, which always use matmul()). BF16 panels on CPUs with
// AMX tiles go to matmul_f32_amx (ops/bf16_amx.h: three exact bf16 parts of each activation).
void matmul_prefill(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool);
// Its sum order in scalar code, for tests.
void matmul_prefill_reference_order(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias);

// Scalar reference used by tests: double accumulation, no blocking.
void matmul_reference(const MatView& w, const float* x, int64_t n_tok, float* y,
                      const float* bias);

}  // namespace swift
