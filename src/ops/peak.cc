// Arithmetic peak probes (ops/peak.h).
#include "ops/peak.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "util/timer.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace swift {

namespace {

constexpr int kChains = 12;
constexpr int64_t kSteps = 1'500'000;  // per chain and thread: 18M instructions, ~10-20 ms
constexpr int kRuns = 5;

// Keeps the accumulators observable, so that the compiler cannot drop the loop.
std::atomic<uint64_t> g_sink{0};

template <typename V>
void sink(const V* acc) {
  uint64_t bits = 0;
  for (int i = 0; i < kChains; ++i) {
    uint64_t w;
    __builtin_memcpy(&w, &acc[i], sizeof w);
    bits ^= w;
  }
  g_sink.fetch_xor(bits, std::memory_order_relaxed);
}

// Instructions run by one thread; returns ops per instruction.
double run_chains(PeakUnit u, float seed) {
  switch (u) {
    case PeakUnit::kF32Fma: {
#if defined(__AVX512F__)
      __m512 acc[kChains];
      const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(seed);
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(seed * static_cast<float>(i));
      for (int64_t s = 0; s < kSteps; ++s)
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
      sink(acc);
      return 32;
#elif defined(__AVX2__) && defined(__FMA__)
      __m256 acc[kChains];
      const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(seed);
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(seed * static_cast<float>(i));
      for (int64_t s = 0; s < kSteps; ++s)
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
      sink(acc);
      return 16;
#else
      return 0;
#endif
    }
    case PeakUnit::kBf16Dot: {
#if defined(__AVX512BF16__) && defined(__AVX512F__)
      __m512 acc[kChains];
      const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(seed * 1e-3f));
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(seed * static_cast<float>(i));
      for (int64_t s = 0; s < kSteps; ++s)
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
      sink(acc);
      return 64;
#else
      return 0;
#endif
    }
    case PeakUnit::kInt8Dot: {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
      __m512i acc[kChains];
      const __m512i a = _mm512_set1_epi8(static_cast<char>(3 + static_cast<int>(seed)));
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_epi32(i);
      for (int64_t s = 0; s < kSteps; ++s)
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, a);
      sink(acc);
      return 128;
#elif defined(__AVXVNNI__)
      __m256i acc[kChains];
      const __m256i a = _mm256_set1_epi8(static_cast<char>(3 + static_cast<int>(seed)));
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_epi32(i);
      for (int64_t s = 0; s < kSteps; ++s)
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm256_dpbusd_avx_epi32(acc[i], a, a);
      sink(acc);
      return 64;
#else
      return 0;
#endif
    }
  }
  return 0;
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

bool peak_unit_native(PeakUnit u) {
  switch (u) {
    case PeakUnit::kF32Fma:
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
      return true;
#else
      return false;
#endif
    case PeakUnit::kBf16Dot:
#if defined(__AVX512BF16__) && defined(__AVX512F__)
      return true;
#else
      return false;
#endif
    case PeakUnit::kInt8Dot:
#if (defined(__AVX512VNNI__) && defined(__AVX512F__)) || defined(__AVXVNNI__)
      return true;
#else
      return false;
#endif
  }
  return false;
}

double peak_gops(PeakUnit u, ThreadPool& pool) {
  if (!peak_unit_native(u)) return 0;
  double best = 0;
  for (int r = 0; r < kRuns; ++r) {
    double per_instr = 0;
    const int64_t t0 = now_ns();
    pool.parallel_for(pool.size(), [&](int64_t, int64_t, int thread) {
      const double ops = run_chains(u, 1.0f + static_cast<float>(thread));
      if (thread == 0) per_instr = ops;
    });
    const double s = static_cast<double>(now_ns() - t0) * 1e-9;
    const double ops = per_instr * kChains * static_cast<double>(kSteps) * pool.size();
    if (s > 0) best = std::max(best, ops / s / 1e9);
  }
  return best;
}

}  // namespace swift
