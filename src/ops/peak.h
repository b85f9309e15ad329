// Arithmetic peak probes for `bench --roofline` (issue 6): the compute roof beside the bandwidth
// roof (cli/bandwidth.h).
//
// Why: verifying k tokens in one pass is bandwidth-bound only while k is small; past that the
// matrix products are bound by the multiply-add units. Issue 6 asks for a 16-token pass within
// 1.5x of one token, which no kernel can reach where 16 tokens' multiply-adds at the unit's
// peak already take longer than that: this probe measures the peak so that `bench` can print the
// floor next to the measured cost. Each probe runs independent chains of the product
// instruction the kernels use (12 accumulators: more than latency x throughput on current x86
// cores) on every thread of the pool at once; the best of 5 runs of ~15 ms each counts.
#pragma once

#include "util/thread_pool.h"

namespace swift {

enum class PeakUnit {
  kF32Fma,   // fused multiply-add of f32 vectors (--math f32): 2 ops per lane
  kBf16Dot,  // AVX-512 BF16 vdpbf16ps (--math bf16 without AMX): 2 pairs per f32 lane, 4 ops
  kInt8Dot,  // vpdpbusd (AVX-512 VNNI) or AVX-VNNI (--math q8): 4 byte products per int32 lane, 8 ops
};

const char* peak_unit_name(PeakUnit u);

// True when this build has the instruction (the probe would measure nothing otherwise).
bool peak_unit_native(PeakUnit u);

// Operations per second over all of the pool's threads, in units of 1e9 (multiply and add
// counted separately, as FLOP/s). 0 when !peak_unit_native(u).
double peak_gops(PeakUnit u, ThreadPool& pool);

}  // namespace swift
