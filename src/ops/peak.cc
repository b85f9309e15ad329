// Arithmetic peak probes (ops/peak.h).
#include "ops/peak.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "util/timer.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

// Vector width in bits of each probe in this build (0: the instruction is not available).
#if defined(__AVX512F__)
#define SWIFT_PEAK_F32_BITS 512
#elif defined(__AVX2__) && defined(__FMA__)
#define SWIFT_PEAK_F32_BITS 256
#else
#define SWIFT_PEAK_F32_BITS 0
#endif
#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define SWIFT_PEAK_BF16_BITS 512
#else
#define SWIFT_PEAK_BF16_BITS 0
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
#define SWIFT_PEAK_INT8_BITS 512
#elif defined(__AVXVNNI__)
#define SWIFT_PEAK_INT8_BITS 256
#else
#define SWIFT_PEAK_INT8_BITS 0
#endif

namespace swift {

namespace {

constexpr int kChains = 12;
constexpr int64_t kSteps = 1'500'000;  // per chain and thread: 18M instructions, ~10-20 ms
constexpr int kRuns = 5;

// Operations per instruction: 32-bit lanes x (multiply + add) x products per lane (FMA 1, bf16
// pairs 2, int8 quads 4).
constexpr double ops_per_instruction(PeakUnit u) {
  switch (u) {
    case PeakUnit::kF32Fma:
      return SWIFT_PEAK_F32_BITS / 32 * 2;
    case PeakUnit::kBf16Dot:
      return SWIFT_PEAK_BF16_BITS / 32 * 4;
    case PeakUnit::kInt8Dot:
      return SWIFT_PEAK_INT8_BITS / 32 * 8;
  }
  return 0;
}

// Keeps the accumulators observable, so that the compiler cannot drop the loop.
std::atomic<uint64_t> g_sink{0};

// kChains independent accumulators, each init(i) (distinct, so that no two chains are one
// computation), stepped kSteps times.
template <typename V, typename Init, typename Step>
[[gnu::always_inline]] inline void run(Init init, Step step) {
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = init(i);
  for (int64_t s = 0; s < kSteps; ++s)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = step(acc[i]);
  uint64_t bits = 0;
  for (int i = 0; i < kChains; ++i) {
    uint64_t w;
    __builtin_memcpy(&w, &acc[i], sizeof w);
    bits ^= w;
  }
  g_sink.fetch_xor(bits, std::memory_order_relaxed);
}

// One thread's instructions for unit u (peak_unit_native(u)).
void run_chains(PeakUnit u, float seed) {
  (void)seed;  // unused where a unit is missing
  switch (u) {
    case PeakUnit::kF32Fma: {
#if SWIFT_PEAK_F32_BITS == 512
      const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(seed);
      run<__m512>([&](int i) { return _mm512_set1_ps(seed * static_cast<float>(i)); },
                  [&](__m512 a) { return _mm512_fmadd_ps(a, m, c); });
#elif SWIFT_PEAK_F32_BITS == 256
      const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(seed);
      run<__m256>([&](int i) { return _mm256_set1_ps(seed * static_cast<float>(i)); },
                  [&](__m256 a) { return _mm256_fmadd_ps(a, m, c); });
#endif
      return;
    }
    case PeakUnit::kBf16Dot: {
#if SWIFT_PEAK_BF16_BITS == 512
      const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(seed * 1e-3f));
      run<__m512>([&](int i) { return _mm512_set1_ps(seed * static_cast<float>(i)); },
                  [&](__m512 a) { return _mm512_dpbf16_ps(a, x, x); });
#endif
      return;
    }
    case PeakUnit::kInt8Dot: {
#if SWIFT_PEAK_INT8_BITS == 512
      const __m512i x = _mm512_set1_epi8(static_cast<char>(3 + static_cast<int>(seed)));
      run<__m512i>([](int i) { return _mm512_set1_epi32(i); }, [&](__m512i a) { return _mm512_dpbusd_epi32(a, x, x); });
#elif SWIFT_PEAK_INT8_BITS == 256
      const __m256i x = _mm256_set1_epi8(static_cast<char>(3 + static_cast<int>(seed)));
      run<__m256i>([](int i) { return _mm256_set1_epi32(i); },
                   [&](__m256i a) { return _mm256_dpbusd_avx_epi32(a, x, x); });
#endif
      return;
    }
  }
}

}  // namespace

const char* peak_unit_name(PeakUnit u) {
  switch (u) {
    case PeakUnit::kF32Fma:
      return "f32 FMA";
    case PeakUnit::kBf16Dot:
      return "bf16 dot (vdpbf16ps)";
    case PeakUnit::kInt8Dot:
      return "int8 dot (vpdpbusd)";
  }
  return "?";
}

bool peak_unit_native(PeakUnit u) { return ops_per_instruction(u) > 0; }

double peak_gops(PeakUnit u, ThreadPool& pool) {
  if (!peak_unit_native(u)) return 0;
  double best = 0;
  for (int r = 0; r < kRuns; ++r) {
    const int64_t t0 = now_ns();
    pool.parallel_for(pool.size(),
                      [&](int64_t, int64_t, int thread) { run_chains(u, 1.0f + static_cast<float>(thread)); });
    const double s = static_cast<double>(now_ns() - t0) * 1e-9;
    const double ops = ops_per_instruction(u) * kChains * static_cast<double>(kSteps) * pool.size();
    if (s > 0) best = std::max(best, ops / s / 1e9);
  }
  return best;
}

}  // namespace swift
