// The bf16 kernels of `--math bf16`. The dot-product kernel (ops/bf16_dot.h) against its scalar
// contract (bit for bit, odd shapes, every tile shape, 1-3 threads, with and without bias), its
// batch invariance, and its accuracy against the double-precision f32 product; the AMX kernel
// (ops/bf16_amx.h, where the CPU has it) for batch invariance bit for bit, dispatch, and accuracy.
#include "ops/bf16_dot.h"

#include <functional>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/bf16_amx.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "test_util.h"
#include "util/half.h"

namespace swift {

namespace {

float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Bf16Matrix {
  std::vector<uint16_t> rows;  // row-major source
  std::vector<uint8_t> packed;
  MatView src, view;
};

// Random bf16 weights, a few of them denormal (vdpbf16ps reads those as zero).
Bf16Matrix make_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  Bf16Matrix m;
  const auto f = test::random_floats(static_cast<size_t>(rows * cols), seed, 0.05f);
  m.rows.resize(f.size());
  for (size_t i = 0; i < f.size(); ++i) m.rows[i] = bf16_round(f[i]);
  for (size_t i = 7; i < m.rows.size(); i += 97) m.rows[i] = static_cast<uint16_t>(0x0003 | (i % 2 ? 0x8000 : 0));
  m.src = MatView{m.rows.data(), DType::kBF16, rows, cols, MatLayout::kRows};
  m.packed.resize(pairs_panel_bytes(rows, cols) + 64);
  void* dst = m.packed.data() + (64 - reinterpret_cast<uintptr_t>(m.packed.data()) % 64) % 64;
  m.view = pairs_panel_pack(m.src, dst);
  return m;
}

// A bf16 kernel with matmul()'s signature (matmul_bf16_dot, matmul_bf16_amx).
using Kernel = void (*)(const MatView&, const float*, int64_t, float*, const float*, ThreadPool&);

// Batch invariance: each token of x computed alone gives the bits of its row in y = kernel(batch).
void expect_tokens_alone_match(Kernel kernel, const MatView& w, const std::vector<float>& x, int64_t n_tok,
                               const std::vector<float>& y, const float* bias, ThreadPool& pool) {
  std::vector<float> single(static_cast<size_t>(w.rows));
  for (int64_t t = 0; t < n_tok; ++t) {
    kernel(w, x.data() + t * w.cols, 1, single.data(), bias, pool);
    ASSERT_EQ(0, std::memcmp(single.data(), y.data() + t * w.rows, w.rows * sizeof(float))) << "token " << t;
  }
}

// matmul() and matmul_prefill() dispatch w to the kernel that gave y: the same bits.
void expect_dispatch_matches(const MatView& w, const std::vector<float>& x, int64_t n_tok, const std::vector<float>& y,
                             const float* bias, ThreadPool& pool) {
  std::vector<float> other(y.size());
  matmul(w, x.data(), n_tok, other.data(), bias, pool);
  ASSERT_EQ(0, std::memcmp(y.data(), other.data(), y.size() * sizeof(float))) << "matmul";
  matmul_prefill(w, x.data(), n_tok, other.data(), bias, pool);
  ASSERT_EQ(0, std::memcmp(y.data(), other.data(), y.size() * sizeof(float))) << "matmul_prefill";
}

}  // namespace

TEST(Bf16Dot, RoundsToNearestEvenAndFlushesDenormals) {
  EXPECT_EQ(bf16_round(1.0f), 0x3f80);
  EXPECT_EQ(bf16_round(1.0f + 1.0f / 256), 0x3f80);  // tie: to the even significand
  EXPECT_EQ(bf16_round(1.0f + 3.0f / 256), 0x3f82);  // tie: to the even significand (up)
  EXPECT_EQ(bf16_round(1.0f + 1.5f / 256), 0x3f81);  // above the tie
  EXPECT_EQ(bf16_round(-2.0f), 0xc000);
  EXPECT_EQ(bf16_round(1e-39f), 0x0000);  // f32 denormal -> +0
  EXPECT_EQ(bf16_round(-1e-39f), 0x8000);
  EXPECT_EQ(bf16_round(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to +inf
  EXPECT_EQ(bf16_round(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(bf16_round(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Bf16Dot, StepTakesTheOddColumnFirstAndRoundsEachProduct) {
  // s = 2^24, odd pair 1 x 1, even pair -2^24 x 1. Odd first: 2^24 + 1 rounds to 2^24 (tie to
  // even), then - 2^24 = 0. Even first would give 0 + 1 = 1; one rounding of the exact sum, 1.
  const uint16_t one = 0x3f80, neg_big = bf16_round(-16777216.0f);
  EXPECT_EQ(bf16_dot_step(16777216.0f, neg_big, one, one, one), 0.0f);
  // Denormal inputs read as zero; a denormal result is flushed to zero.
  EXPECT_EQ(bf16_dot_step(1.0f, 0x0001, one, 0x0000, one), 1.0f);
  const float tiny = bits_f32(0x00800000u);                                                // FLT_MIN
  EXPECT_EQ(bf16_dot_step(tiny, bf16_round(-0.5f), bf16_round(tiny), 0x0000, one), 0.0f);  // FLT_MIN/2 -> 0
}

TEST(Bf16Dot, PackingKeepsEveryElement) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {15, 3}, {16, 16}, {17, 33}, {130, 7}}) {
    Bf16Matrix m = make_matrix(rows, cols, static_cast<uint64_t>(rows * 31 + cols));
    EXPECT_EQ(m.view.layout, MatLayout::kPanel16Pairs);
    EXPECT_EQ(m.view.bytes(), static_cast<size_t>((rows + 15) / 16 * 16 * ((cols + 1) / 2 * 2)) * 2);
    std::vector<float> a(cols), b(cols);
    for (int64_t r = 0; r < rows; ++r) {
      mat_row_to_f32(m.src, r, a.data());
      mat_row_to_f32(m.view, r, b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << rows << "x" << cols << " row " << r;
    }
  }
}

TEST(Bf16Dot, MatchesItsContractOnOddShapesWithAnyBatchAndThreads) {
  struct Shape {
    int64_t rows, cols, n_tok;
  };
  // 1-2 tokens: 8-panel tiles; 3-4: 6 x 4; more: 4 x 6 with remainders of 1-5 tokens; leftover
  // panels 4/2/1; odd column counts (padding column).
  const Shape shapes[] = {{1, 1, 1},    {3, 17, 5},   {16, 16, 2},  {17, 33, 3},   {31, 64, 4},
                          {129, 40, 7}, {200, 9, 1},  {255, 20, 2}, {70, 768, 13}, {33, 5, 20},
                          {300, 16, 6}, {200, 24, 3}, {400, 12, 4}, {111, 10, 11}, {64, 255, 70}};
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (Shape s : shapes) {
      Bf16Matrix m = make_matrix(s.rows, s.cols, static_cast<uint64_t>(s.rows * 13 + s.cols));
      auto x = test::random_floats(static_cast<size_t>(s.n_tok * s.cols), 11);
      x[0] = 1e-39f;  // a denormal activation (rounds to zero)
      auto bias = test::random_floats(static_cast<size_t>(s.rows), 12);
      for (const float* b : std::initializer_list<const float*>{nullptr, bias.data()}) {
        std::vector<float> y(s.n_tok * s.rows), want(y.size()), want_rows(y.size());
        matmul_bf16_dot(m.view, x.data(), s.n_tok, y.data(), b, pool);
        matmul_bf16_dot_reference(m.view, x.data(), s.n_tok, want.data(), b);
        ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * sizeof(float)))
            << "shape " << s.rows << "x" << s.cols << " n_tok " << s.n_tok << " threads " << threads
            << (b ? " bias" : "");
        // A prefetch hint for the next product (here the row-major source) changes no bit.
        std::vector<float> hinted(y.size());
        matmul_bf16_dot(m.view, x.data(), s.n_tok, hinted.data(), b, pool, next_weights(m.src));
        ASSERT_EQ(0, std::memcmp(y.data(), hinted.data(), y.size() * sizeof(float))) << "with next";
        // Activations rounded by their producer: the same bits (the transformer's bf16 math).
        if (bf16_dot_native()) {
          std::vector<uint16_t> x16(static_cast<size_t>(s.n_tok * ((s.cols + 1) / 2 * 2)));
          bf16_round_rows_into(x.data(), s.n_tok, s.cols, x16.data());
          // The dot kernel's own entry: matmul_rounded takes AMX tiles where they are usable,
          // whose bits differ (ops/bf16_amx.h).
          matmul_bf16_dot_rounded(m.view, x16.data(), s.n_tok, hinted.data(), b, pool);
          ASSERT_EQ(0, std::memcmp(y.data(), hinted.data(), y.size() * sizeof(float))) << "rounded";
        }
        matmul_bf16_dot_reference(m.src, x.data(), s.n_tok, want_rows.data(), b);  // packing changes nothing
        ASSERT_EQ(0, std::memcmp(want.data(), want_rows.data(), y.size() * sizeof(float)));
        // matmul and prefill run this kernel (else the AMX tests below)
        if (!bf16_amx_usable(m.view)) expect_dispatch_matches(m.view, x, s.n_tok, y, b, pool);
        expect_tokens_alone_match([](const MatView& w, const float* in, int64_t n, float* out, const float* bs,
                                     ThreadPool& p) { matmul_bf16_dot(w, in, n, out, bs, p); },
                                  m.view, x, s.n_tok, y, b, pool);
      }
    }
  }
}

// Tolerance (stated): each activation is off by at most 2^-9 of itself after rounding, and the
// f32 sums add at most `sum_rel` of sum_c |W[r,c] x[t,c]|, so
//   |y - y_exact| <= (2^-9 + sum_rel) * sum_c |W[r,c] x[t,c]| (+ 1e-6 absolute).
// The check also requires the error to be really that of bf16 activations (above f32's), so a
// kernel that silently computed in f32 would not pass for this one.
void expect_bf16_rounding_bound(
    const std::function<void(const MatView&, const float*, int64_t, float*, ThreadPool&)>& kernel, double sum_rel) {
  ThreadPool pool(2);
  const int64_t rows = 96, cols = 768, n_tok = 9;
  Bf16Matrix m = make_matrix(rows, cols, 5);
  const auto x = test::random_floats(static_cast<size_t>(n_tok * cols), 6);
  std::vector<float> y(rows * n_tok), exact(rows * n_tok);
  kernel(m.view, x.data(), n_tok, y.data(), pool);
  matmul_reference(m.src, x.data(), n_tok, exact.data(), nullptr);
  double worst_rel = 0.0;
  std::vector<float> w(cols);
  for (int64_t r = 0; r < rows; ++r) {
    mat_row_to_f32(m.src, r, w.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      double mag = 0.0;
      for (int64_t c = 0; c < cols; ++c) mag += std::fabs(static_cast<double>(w[c]) * x[t * cols + c]);
      const double err = std::fabs(static_cast<double>(y[t * rows + r]) - exact[t * rows + r]);
      EXPECT_LE(err, (std::ldexp(1.0, -9) + sum_rel) * mag + 1e-6) << "row " << r << " tok " << t;
      worst_rel = std::max(worst_rel, err / mag);
    }
  }
  EXPECT_GT(worst_rel, 1e-5);  // f32 activations would stay near cols * 2^-24 / sqrt ~ 1e-6
}

TEST(Bf16Dot, StaysWithinTheBf16RoundingBoundOfTheExactProduct) {
  // One rounding per column pair: cols * 2^-24.
  expect_bf16_rounding_bound([](const MatView& w, const float* x, int64_t n, float* y,
                                ThreadPool& pool) { matmul_bf16_dot(w, x, n, y, nullptr, pool); },
                             768 * std::ldexp(1.0, -24));
}

// --- The AMX kernel (ops/bf16_amx.h): same layout and activation rounding, the tile unit's sums.

TEST(Bf16Amx, TakesOnlyWholeTileStepsOfPairPackedBf16) {
  Bf16Matrix a = make_matrix(48, 64, 1), b = make_matrix(48, 40, 2);
  EXPECT_FALSE(bf16_amx_usable(b.view));  // 40 columns: not whole 32-column steps
  EXPECT_FALSE(bf16_amx_usable(a.src));   // row-major
  EXPECT_EQ(bf16_amx_usable(a.view), bf16_amx_available());
  // matmul() and matmul_prefill() run the dot-product kernel where the AMX one cannot run.
  ThreadPool pool(2);
  const auto x = test::random_floats(5 * 40, 3);
  std::vector<float> y(5 * 48), want(y.size());
  matmul(b.view, x.data(), 5, y.data(), nullptr, pool);
  matmul_bf16_dot_reference(b.view, x.data(), 5, want.data(), nullptr);
  EXPECT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * sizeof(float)));
}

TEST(Bf16Amx, IsBatchInvariantOnOddShapesWithAnyBatchAndThreads) {
  if (!bf16_amx_available()) GTEST_SKIP() << "no AMX-BF16 tiles on this CPU or build";
  struct Shape {
    int64_t rows, cols, n_tok;
  };
  // Token tiles of 1-16 rows, one and two at a time (17-32), pairs then a remainder (33+);
  // odd panel counts (a single-panel block), a partial last panel, 1-24 column steps.
  const Shape shapes[] = {{1, 32, 1},    {16, 32, 2},   {17, 64, 16},   {33, 96, 17},  {40, 768, 3},
                          {48, 256, 31}, {130, 32, 32}, {200, 160, 33}, {64, 256, 47}, {31, 512, 70}};
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (Shape s : shapes) {
      Bf16Matrix m = make_matrix(s.rows, s.cols, static_cast<uint64_t>(s.rows * 7 + s.cols));
      ASSERT_TRUE(bf16_amx_usable(m.view));
      auto x = test::random_floats(static_cast<size_t>(s.n_tok * s.cols), 21);
      x[0] = 1e-39f;  // a denormal activation (rounds to zero)
      auto bias = test::random_floats(static_cast<size_t>(s.rows), 22);
      for (const float* b : std::initializer_list<const float*>{nullptr, bias.data()}) {
        SCOPED_TRACE(::testing::Message() << "shape " << s.rows << "x" << s.cols << " n_tok " << s.n_tok << " threads "
                                          << threads << (b ? " bias" : ""));
        std::vector<float> y(s.n_tok * s.rows), other(y.size()), near(y.size());
        matmul_bf16_amx(m.view, x.data(), s.n_tok, y.data(), b, pool);
        expect_dispatch_matches(m.view, x, s.n_tok, y, b, pool);  // matmul() and prefill dispatch here
        // Each token alone, and the batch's suffix (other batch positions and tile rows).
        expect_tokens_alone_match(matmul_bf16_amx, m.view, x, s.n_tok, y, b, pool);
        const int64_t skip = s.n_tok / 3;
        matmul_bf16_amx(m.view, x.data() + skip * s.cols, s.n_tok - skip, other.data(), b, pool);
        ASSERT_EQ(0, std::memcmp(other.data(), y.data() + skip * s.rows, (s.n_tok - skip) * s.rows * sizeof(float)));
        // Close to the dot-product kernel's contract (same operands, another summation).
        matmul_bf16_dot_reference(m.view, x.data(), s.n_tok, near.data(), b);
        for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], near[i], 1e-4f * (1.0f + std::fabs(near[i]))) << i;
      }
    }
  }
}

// The SwiGLU variant (gate and up panels on one thread, SiLU on its tiles) gives the bits of the
// plain product into [n, 2 I] rows followed by silu_mul_bf16, for every token-tile shape, odd
// gate-panel counts, 1-3 threads, with and without bias, f32 rows or not.
// A SwiGLU kernel (matmul_bf16_dot_swiglu, matmul_bf16_amx_swiglu, matmul_swiglu_rounded) against
// its product followed by silu_mul_bf16 over whole rows: the same bits, f32 and bf16 outputs, with
// and without bias, odd column counts and batches over every tile shape, 1-3 threads.
using SwigluKernel =
    std::function<void(const MatView&, const uint16_t*, int64_t, float*, uint16_t*, const float*, ThreadPool&)>;
using RoundedKernel = std::function<void(const MatView&, const uint16_t*, int64_t, float*, const float*, ThreadPool&)>;
// odd_cols: also column counts that are not whole AMX tile steps (the dot-product kernel's).
void expect_swiglu_matches(const std::function<bool(const MatView&)>& usable, const SwigluKernel& swiglu,
                           const RoundedKernel& product, bool odd_cols) {
  struct Shape {
    int64_t inter, cols, n_tok;
  };
  std::vector<Shape> shapes = {{16, 32, 1},    {48, 64, 5},   {32, 256, 16}, {80, 96, 17},
                               {768, 256, 16}, {48, 768, 33}, {112, 64, 70}};
  if (odd_cols) shapes.insert(shapes.end(), {{64, 37, 2}, {96, 51, 3}, {48, 255, 4}, {16, 1, 7}});
  Bf16Matrix odd = make_matrix(2 * 24, 64, 3);  // I = 24: not whole panels per half
  EXPECT_FALSE(usable(odd.view));
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (Shape s : shapes) {
      const int64_t I = s.inter;
      Bf16Matrix m = make_matrix(2 * I, s.cols, static_cast<uint64_t>(I * 5 + s.cols));
      ASSERT_TRUE(usable(m.view));
      auto x = test::random_floats(static_cast<size_t>(s.n_tok * s.cols), 31, 3.0f);
      const int64_t width = (s.cols + 1) / 2 * 2;
      std::vector<uint16_t> x16(static_cast<size_t>(s.n_tok * width));
      bf16_round_rows_into(x.data(), s.n_tok, s.cols, x16.data());
      auto bias = test::random_floats(static_cast<size_t>(2 * I), 32);
      for (const float* b : std::initializer_list<const float*>{nullptr, bias.data()}) {
        SCOPED_TRACE(::testing::Message() << "I " << I << " cols " << s.cols << " n_tok " << s.n_tok << " threads "
                                          << threads << (b ? " bias" : ""));
        std::vector<float> fused(s.n_tok * 2 * I), want(s.n_tok * I), g(want.size(), -7.0f);
        std::vector<uint16_t> want16(want.size()), g16(want.size(), 0xFFFF);
        product(m.view, x16.data(), s.n_tok, fused.data(), b, pool);
        for (int64_t t = 0; t < s.n_tok; ++t)
          silu_mul_bf16(fused.data() + t * 2 * I, fused.data() + t * 2 * I + I, I, want.data() + t * I,
                        want16.data() + t * I);
        swiglu(m.view, x16.data(), s.n_tok, g.data(), g16.data(), b, pool);
        ASSERT_EQ(0, std::memcmp(g.data(), want.data(), want.size() * sizeof(float)));
        ASSERT_EQ(0, std::memcmp(g16.data(), want16.data(), want16.size() * sizeof(uint16_t)));
        std::fill(g16.begin(), g16.end(), uint16_t{0xFFFF});
        swiglu(m.view, x16.data(), s.n_tok, nullptr, g16.data(), b, pool);
        ASSERT_EQ(0, std::memcmp(g16.data(), want16.data(), want16.size() * sizeof(uint16_t)));
      }
    }
  }
}

TEST(Bf16Dot, SwigluEqualsTheProductThenSwiglu) {
  if (!bf16_dot_native()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU or build";
  expect_swiglu_matches(
      bf16_dot_swiglu_usable,
      [](const MatView& w, const uint16_t* x16, int64_t n, float* g, uint16_t* g16, const float* b, ThreadPool& pool) {
        // with a next product to prefetch: a hint that must not change a bit
        matmul_bf16_dot_swiglu(w, x16, n, g, g16, b, pool, NextWeights{w.data, static_cast<int64_t>(w.bytes())});
      },
      [](const MatView& w, const uint16_t* x16, int64_t n, float* y, const float* b, ThreadPool& pool) {
        matmul_bf16_dot_rounded(w, x16, n, y, b, pool);
      },
      true);
  // The op-level entry (AMX tiles where matmul_rounded takes them, else dot products; called
  // for any batch; it is the transformer that leaves batches under kSwigluDotMinTokens to matmul_rounded).
  Bf16Matrix m = make_matrix(2 * 32, 64, 9);
  EXPECT_EQ(swiglu_rounded_usable(m.view, 2), bf16_amx_usable(m.view));
  EXPECT_TRUE(swiglu_rounded_usable(m.view, kSwigluDotMinTokens));
  expect_swiglu_matches([](const MatView& w) { return swiglu_rounded_usable(w, kSwigluDotMinTokens); },
                        [](const MatView& w, const uint16_t* x16, int64_t n, float* g, uint16_t* g16, const float* b,
                           ThreadPool& pool) { matmul_swiglu_rounded(w, x16, n, g, g16, b, pool); },
                        [](const MatView& w, const uint16_t* x16, int64_t n, float* y, const float* b,
                           ThreadPool& pool) { matmul_rounded(w, x16, n, y, b, pool); },
                        true);
}

TEST(Bf16Amx, SwigluEqualsTheProductThenSwiglu) {
  if (!bf16_amx_available()) GTEST_SKIP() << "no AMX-BF16 tiles on this CPU or build";
  expect_swiglu_matches(
      bf16_amx_swiglu_usable,
      [](const MatView& w, const uint16_t* x16, int64_t n, float* g, uint16_t* g16, const float* b, ThreadPool& pool) {
        matmul_bf16_amx_swiglu(w, x16, n, g, g16, b, pool);
      },
      [](const MatView& w, const uint16_t* x16, int64_t n, float* y, const float* b, ThreadPool& pool) {
        matmul_bf16_amx_rounded(w, x16, n, y, b, pool);
      },
      false);
}

TEST(Bf16Amx, StaysWithinTheBf16RoundingBoundOfTheExactProduct) {
  if (!bf16_amx_available()) GTEST_SKIP() << "no AMX-BF16 tiles on this CPU or build";
  // The instruction's internal sums are the hardware's: allowed up to one rounding per product
  // (32 per step), i.e. the dot-product kernel's bound doubled: 2 * cols * 2^-24.
  expect_bf16_rounding_bound([](const MatView& w, const float* x, int64_t n, float* y,
                                ThreadPool& pool) { matmul_bf16_amx(w, x, n, y, nullptr, pool); },
                             2 * 768 * std::ldexp(1.0, -24));
}

}  // namespace swift
