// Row-wise elementwise kernels: RMSNorm, SwiGLU gate, residual add, softmax.
// All compute in f32 the way PyTorch's reference modules do (see each function).
#pragma once

#include <cstdint>

#include "ops/lanes.h"

namespace swift {

// HF LlamaRMSNorm: y = w * (x / sqrt(mean(x^2) + eps)), per row of n; in-place allowed.
void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y);

// SwiGLU: out[i] = silu(g[i]) * u[i]; out may be g.
void silu_mul(const float* g, const float* u, int64_t n, float* out);

// rmsnorm() and a SwiGLU gate for `--math bf16` that also (or only) write their rows rounded to
// bf16 (round to nearest even) for the AMX matrix products (ops/bf16_amx.h:
// matmul_bf16_amx_rounded): y16 rows of width w16 = n rounded up to even, the pad column zero.
// The f32 output may be null when no consumer reads it. Rounded in registers: a separate rounding
// pass re-read each row (from another core's cache after a split-by-column product), ~75 us of a
// 16-token verification pass on the Xeon this was measured on.
// rmsnorm_bf16: the same f32 values as rmsnorm().
void rmsnorm_bf16(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y, uint16_t* y16);
// silu_mul_bf16: out[i] = (g / (1 + 2^(-g log2 e))) * u with lanes::exp2, within 1e-6 relative of
// silu_mul's value (tested) and ~1.9x faster: its result is rounded to bf16 (2^-9) anyway, and
// silu_mul's exact exp was ~0.07 ms of a 16-token verification pass (the AMX SwiGLU epilogue).
// Element-wise: batch size, position and thread split never change a result.
void silu_mul_bf16(const float* g, const float* u, int64_t n, float* out, uint16_t* out16);
// silu_mul_bf16's arithmetic on 16 lanes (before rounding), for kernels that apply it to values
// in registers (the SwiGLU epilogue of ops/bf16_dot.h): inline, the same operations and so the
// same bits (the build never contracts a multiply and an add: -ffp-contract=off).
inline lanes::Vec silu_mul_bf16_lanes(lanes::Vec g, lanes::Vec u) {
  using namespace lanes;
  return mul(div(g, add(broadcast(1.0f), lanes::exp2(mul(g, broadcast(-kLog2e))))), u);
}

// x[i] += y[i].
void add_inplace(float* x, const float* y, int64_t n);

// In-place softmax of n values (max-subtracted); returns nothing. n >= 1.
void softmax(float* x, int64_t n);

// The index the scalar loop `best = 0; for i: if (x[i] > x[best]) best = i;` returns: the first
// largest element, NaNs never chosen unless x[0] is one (then 0). Two vector passes (maximum,
// then the first element equal to it) instead of a compare chain: greedy decoding picks one per
// verified token, and over an 8,000-entry vocabulary the chain took ~7 us (0.6% of a pass).
// n >= 1.
int64_t argmax_first(const float* x, int64_t n);

}  // namespace swift
