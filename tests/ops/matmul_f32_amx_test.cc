// The f32-accurate AMX product of BF16 panels (ops/bf16_amx.h: matmul_f32_amx), which --math f32
// prompt prefill runs: against a double-precision reference on odd shapes, tighter than the f32
// panel kernel's bound (three bf16 parts of x carry all 24 bits, so rounding x to bf16 alone
// would miss it by ~2^-9), and the same bits for any thread count and batch position.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/bf16_amx.h"
#include "ops/matmul.h"
#include "ops/panel.h"
#include "test_util.h"
#include "util/half.h"

namespace swift {
namespace {

// A kPanel16 matrix of BF16, F16 or F32 weights and its row-major source.
struct Panels {
  std::vector<uint16_t> rows16;  // [rows, cols] BF16 or F16
  std::vector<float> rows32;     // [rows, cols] F32
  std::vector<uint8_t> packed;
  MatView src, view;  // row-major view; its kPanel16 copy
  float at(int64_t i) const {
    return src.dtype == DType::kF32   ? rows32[i]
           : src.dtype == DType::kF16 ? f16_to_f32(rows16[i])
                                      : bf16_to_f32(rows16[i]);
  }
};

// F32 weights with all 24 significand bits in use (three bf16 parts), F16 with 11 (two parts).
Panels make(int64_t rows, int64_t cols, uint64_t seed, DType dt = DType::kBF16) {
  Panels w;
  const auto f = test::random_floats(rows * cols, seed, 0.05f);
  if (dt == DType::kF32) {
    w.rows32 = f;
    w.src = MatView{w.rows32.data(), dt, rows, cols};
  } else {
    w.rows16.resize(f.size());
    for (size_t i = 0; i < f.size(); ++i) w.rows16[i] = dt == DType::kF16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
    w.src = MatView{w.rows16.data(), dt, rows, cols};
  }
  w.packed.resize(panel_bytes(dt, rows, cols) + 64);
  void* dst = w.packed.data() + (64 - reinterpret_cast<uintptr_t>(w.packed.data()) % 64) % 64;
  w.view = panel_pack(w.src, dst);
  return w;
}

// Activations with all 24 significand bits in use, over a few binades.
std::vector<float> activations(int64_t n, uint64_t seed) {
  auto x = test::random_floats(n, seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] *= 1.0f + 1.0f / 3.0f * static_cast<float>(i % 7);
  return x;
}

TEST(MatmulF32Amx, UsableForBf16F16AndF32PanelsOnly) {
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    const Panels w = make(20, 40, 1, dt);
    EXPECT_EQ(f32_amx_usable(w.view), bf16_amx_available()) << dtype_name(dt);
    EXPECT_FALSE(f32_amx_usable(w.src)) << dtype_name(dt);  // row-major
  }
}

TEST(MatmulF32Amx, WithinFourTenthsOfAMillionthOfTheExactSumOnOddShapes) {
  if (!bf16_amx_available()) GTEST_SKIP() << "no AMX-BF16 tiles on this CPU or build";
  // Tolerance: |y - exact| <= 4e-7 sum|w x| + |bias| 2^-23 (the f32 panel kernel's worst case on
  // these shapes is ~3e-7; measured here: ~1e-7). BF16 weights are exact in bf16, F16 weights in
  // two parts, F32 weights in three. Rounding x (or an F32 weight) to bf16 would be off by up to
  // 2^-9 sum|w x|, two parts of either by up to 2^-18: a kernel that dropped a part fails this.
  struct Shape {
    int64_t rows, cols, n_tok;
  };
  const Shape shapes[] = {{1, 1, 1},    {15, 7, 3},    {16, 32, 16},  {17, 33, 17},    {33, 100, 31}, {31, 64, 32},
                          {130, 9, 33}, {48, 256, 70}, {20, 768, 45}, {512, 256, 200}, {40, 64, 600}};
  for (int threads : {1, 2, 3})
    for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
      ThreadPool pool(threads);
      for (const Shape& s : shapes) {
        const Panels w = make(s.rows, s.cols, s.rows * 7 + s.cols, dt);
        const auto x = activations(s.n_tok * s.cols, s.n_tok);
        const auto bias = test::random_floats(s.rows, 5);
        for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
          std::vector<float> y(s.n_tok * s.rows, NAN), ref(y.size());
          matmul_f32_amx(w.view, x.data(), s.n_tok, y.data(), b, pool);
          matmul_reference(w.src, x.data(), s.n_tok, ref.data(), b);
          for (int64_t t = 0; t < s.n_tok; ++t)
            for (int64_t r = 0; r < s.rows; ++r) {
              double mag = 0;
              for (int64_t c = 0; c < s.cols; ++c)
                mag += std::fabs(static_cast<double>(w.at(r * s.cols + c)) * x[t * s.cols + c]);
              const double tol = 4e-7 * mag + (b ? std::fabs(b[r]) * std::ldexp(1.0, -23) : 0.0);
              ASSERT_NEAR(y[t * s.rows + r], ref[t * s.rows + r], tol)
                  << dtype_name(dt) << " " << s.rows << "x" << s.cols << " n_tok " << s.n_tok << " t" << t << " r" << r
                  << " threads " << threads;
            }
        }
      }
    }
}

TEST(MatmulF32Amx, SameBitsForAnyThreadCountAndBatchPosition) {
  if (!bf16_amx_available()) GTEST_SKIP() << "no AMX-BF16 tiles on this CPU or build";
  const int64_t rows = 70, cols = 96, n_tok = 600;  // two chunks of the kernel's 512 tokens
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    const Panels w = make(rows, cols, 9, dt);
    const auto x = activations(n_tok * cols, 4);
    ThreadPool pool1(1), pool3(3);
    std::vector<float> y1(n_tok * rows), y3(y1.size());
    matmul_f32_amx(w.view, x.data(), n_tok, y1.data(), nullptr, pool1);
    matmul_f32_amx(w.view, x.data(), n_tok, y3.data(), nullptr, pool3);
    ASSERT_EQ(0, std::memcmp(y1.data(), y3.data(), y1.size() * sizeof(float))) << dtype_name(dt);
    for (int64_t t : {0, 15, 16, 511, 512, 599}) {  // first, tile and chunk edges, last
      std::vector<float> single(rows);
      matmul_f32_amx(w.view, x.data() + t * cols, 1, single.data(), nullptr, pool3);
      EXPECT_EQ(0, std::memcmp(single.data(), y1.data() + t * rows, rows * sizeof(float)))
          << dtype_name(dt) << " token " << t;
    }
  }
}

}  // namespace
}  // namespace swift
