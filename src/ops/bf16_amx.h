// BF16 matrix products on AMX tiles (Intel AMX-BF16: Sapphire Rapids and later), for `--math bf16`.
//
// Why: on 2 cores the AVX-512 kernels are compute-bound from ~4 tokens on: a pass over 16 tokens
// cost 3.5x (f32 math) / 4.2x (bf16 dot products) one token on the Xeon these figures come from
// (README, Performance). One TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 one (8,192
// multiply-adds in ~4.9 ns here, ~7x what vdpbf16ps sustains), so the matrix products of a
// 16-token pass cost about what one token's do (0.86 vs 0.78 ms per pass, measured).
//
// Layout: the kPanel16Pairs panels of ops/bf16_dot.h are already AMX's "VNNI" B operand: 16 pair
// rows of one panel ([c / 2][r % 16][c % 2], 64 bytes each) form a 16-pair x 16-output tile. The
// activations, rounded to bf16 exactly as for the dot-product kernel, are the A operand (one
// token per tile row), and a result tile is 16 tokens x 16 outputs of y. No repacking.
//
// Numeric contract (batch invariance, as matmul.h requires for lossless decoding): with x^ as in
// ops/bf16_dot.h, y[t, r] = acc_{cols/32} + bias[r] (or + 0), acc_0 = +0 and
//   acc_{k+1} = TDPBF16PS(acc_k; W[r, 32k .. 32k+31], x^[t, 32k .. 32k+31]),
// one tile instruction per 32 columns in increasing order. How the instruction sums its 32
// products into the accumulator is the hardware's (measured here: not a sequence of fma, not one
// rounding of the exact sum), but it is a fixed function of one output's operands: nothing
// depends on the token count, the batch position, the tile shape or the thread split. Results
// therefore differ in the last bits from the AVX-512 kernel's; a given matrix always takes one of
// the two (bf16_amx_usable), decided by its shape and the machine, never by the batch.
#pragma once

#include <cstdint>

#include "ops/dtype.h"
#include "util/thread_pool.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#define SWIFT_BF16_AMX 1
#endif

namespace swift {

// LDTILECFG's 64-byte operand (palette 1): bytes per row and rows of each of the 8 tiles.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Loads c into this thread's tile registers unless the last configuration this thread loaded (by
// any AMX kernel: matrix products, attention) had the same key, so a decoding loop that
// alternates kernels of unchanged shapes pays for LDTILECFG only when a kernel's shape changes.
// Keys: matmul_bf16_amx < 1024 (its token-tile rows), 1001-1016 (matmul_f32_amx), attention_bf16
// (1 << 20) + rows, attention_f32_amx 1 << 21.
void amx_load_config(int key, const AmxTileConfig& c);

// True when this build has AMX-BF16 code and the kernel let this process use the tile registers
// (Linux >= 5.16 grants them on request; asked once, on the first call).
bool bf16_amx_available();

// Whether matmul() runs this kernel for w: AMX available, w in kPanel16Pairs layout, and whole
// 32-column tile steps (cols % 32 == 0: every LLaMA-family width). Other matrices keep the
// AVX-512 dot-product kernel.
bool bf16_amx_usable(const MatView& w);

// y[t, r] for bf16_amx_usable(w) (shapes as matmul()).
void matmul_bf16_amx(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool);
// The same with the activations already rounded (x16: [n_tok, cols] bf16, as bf16_round_rows_into
// makes them): the producer of x rounds its own rows where they are, in parallel, instead of
// this call rounding all of them on one thread (~7% of a 16-token pass on the Xeon, measured).
void matmul_bf16_amx_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* y, const float* bias,
                             ThreadPool& pool);

// SwiGLU over a fused [gate | up] matrix (weights.h: w_gate_up, 2 I rows): for each token t and
// column c < I, g[t, c] = silu(x.W[c] + b[c]) * (x.W[I + c] + b[I + c]), written as bf16 rows
// g16 [n_tok, I] and, when g is not null, as f32 rows too. The same values, bit for bit, as this
// product into [n_tok, 2 I] rows followed by silu_mul_bf16 (ops/elementwise.h): each thread takes
// gate panels and the matching up panels and applies SiLU to its tiles while they are in L1.
// Why: with the columns split between threads, the separate SwiGLU round read half of every row
// from the other core's cache (~0.14 ms of a 16-token verification pass on the Xeon) and
// needed a thread round of its own. Needs I % 16 == 0 (whole panels per half).
bool bf16_amx_swiglu_usable(const MatView& w_gate_up);
void matmul_bf16_amx_swiglu(const MatView& w_gate_up, const uint16_t* x16, int64_t n_tok, float* g, uint16_t* g16,
                            const float* bias, ThreadPool& pool);

// f32-accurate products of BF16, F16 and F32 weights on AMX tiles, for `--math f32` prompt
// prefill (ops/matmul.h: matmul_prefill). Why: the f32 panel kernel runs at the FMA pipes' peak and
// prefilled ~5.5x the decode rate on the 2-core Xeon (issue 6 asks 10x); one TDPBF16PS does
// 8,192 multiply-adds in ~4.9 ns, ~7x vdpbf16ps and ~14x the f32 pipes.
// How: x = x1 + x2 + x3 exactly, with x1 = bf16(x), x2 = bf16(x - x1), x3 = bf16(x - x1 - x2)
// (round to nearest even; three 8-bit significands cover f32's 24, and each difference is exact),
// and every BF16 weight is exact in bf16, so W x = W x1 + W x2 + W x3 with each product exact in
// f32; per 32-column step the tile unit adds the three planes' products into f32 accumulators.
// F16 weights split the same way into two exact parts (11-bit significands), F32 weights into
// three, and the products x_i w_j with i + j <= 2 (0-based) are summed: five and six tile
// products per step instead of three; the ones left out are under ~2^-26 |w x|.
// The sum order differs from the panel kernel's fma chain (prefill may: matmul.h), the error is
// of the same f32 class (tests/ops/matmul_f32_amx_test.cc states the bounds). Activations whose
// magnitude is under ~2^-110 lose their last parts (the tile unit treats bf16 denormals as zero;
// so do F32 weights' parts).
// Weights: the kPanel16 panels the f32 kernels read ([cols][16 rows]), repacked per call 16
// BF16 panels at a time (8 F16, 6 F32) into the pair layout in a thread's buffer (one vpermw per
// two columns and part), then run against every token (512 at a time, so the planes' buffer stays
// bounded for long prompts): no second copy of the model. Measured on the 2-core Xeon (a 1536 x
// 256 matrix, 250 tokens, one thread): ~390-440 us against ~1,490 us for the f32 panel kernel
// and ~200 us for the bf16 one (matmul_bf16_amx). F32 weights (the demo model as an F32 GGUF,
// a 442-token prefill): 82-88 ms with the f32 panel kernel, 63-64 ms on tiles.
bool f32_amx_usable(const MatView& w);  // AMX available and w a kPanel16 BF16, F16 or F32 matrix
void matmul_f32_amx(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool);

}  // namespace swift
