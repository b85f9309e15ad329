// The matmul kernel against a double-precision scalar reference on odd shapes and every dtype,
// and the batch-invariance property that lossless speculative decoding relies on.
#include "ops/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "test_util.h"
#include "ops/bf16_amx.h"
#include "ops/panel.h"
#include "ops/quant.h"
#include "util/half.h"

#include <random>

namespace swift {

namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  MatView view;
};

// Q8_0 rows must be whole blocks of 32: odd shapes are rounded up for it.
int64_t cols_for(DType dt, int64_t cols) { return (cols + dtype_block(dt) - 1) / dtype_block(dt) * dtype_block(dt); }

Weights make_weights(DType dt, int64_t rows, int64_t cols, uint64_t seed) {
  auto f = test::random_floats(rows * cols, seed);
  Weights w;
  if (dtype_block(dt) > 1) {  // the writer's quantizers (ops/quant.h)
    w.bytes.resize(static_cast<size_t>(rows * row_bytes(dt, cols)));
    for (int64_t r = 0; r < rows; ++r) quantize_row(dt, f.data() + r * cols, cols, w.bytes.data() + r * row_bytes(dt, cols));
    w.view = MatView{w.bytes.data(), dt, rows, cols};
    return w;
  }
  w.bytes.resize(rows * cols * dtype_size(dt));
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (dt == DType::kF32) std::memcpy(w.bytes.data() + 4 * i, &f[i], 4);
    else {
      const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
      std::memcpy(w.bytes.data() + 2 * i, &h, 2);
    }
  }
  w.view = MatView{w.bytes.data(), dt, rows, cols};
  return w;
}

struct Shape {
  int64_t rows, cols, n_tok;
};

// |y - ref| <= 1e-5 * sum|w*x| + 1e-7 per output: the kernels accumulate in f32, the reference
// in double; the weights are exact in both, so this is ~100 ulp of f32 headroom.
void expect_near_reference(const MatView& w, const std::vector<float>& x, const std::vector<float>& bias, Shape s,
                           const std::vector<float>& y, const std::vector<float>& ref) {
  std::vector<float> row(s.cols);
  for (int64_t t = 0; t < s.n_tok; ++t)
    for (int64_t r = 0; r < s.rows; ++r) {
      mat_row_to_f32(w, r, row.data());
      double mag = std::fabs(bias[r]);
      for (int64_t c = 0; c < s.cols; ++c) mag += std::fabs(row[c] * x[t * s.cols + c]);
      ASSERT_NEAR(y[t * s.rows + r], ref[t * s.rows + r], 1e-5 * mag + 1e-7)
          << dtype_name(w.dtype) << " shape " << s.rows << "x" << s.cols << " n_tok " << s.n_tok << " t" << t
          << " r" << r;
    }
}

}  // namespace

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesScalarReferenceOnOddShapes) {
  // Tolerance: the kernel accumulates in f32 (16 lanes, fixed tree), the reference in double;
  // the weights are exact in both. |err| <= 1e-5 * sum|w*x| is ~100 ulp of f32 headroom.
  const Shape shapes[] = {{1, 1, 1}, {3, 17, 5}, {31, 33, 9}, {64, 256, 1}, {7, 100, 13}, {130, 15, 4}, {5, 768, 3}};
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (Shape s : shapes) {
      s.cols = cols_for(GetParam(), s.cols);
      Weights w = make_weights(GetParam(), s.rows, s.cols, s.rows * 1000 + s.cols);
      auto x = test::random_floats(s.n_tok * s.cols, 7);
      auto bias = test::random_floats(s.rows, 9);
      std::vector<float> y(s.n_tok * s.rows), ref(y.size());
      matmul(w.view, x.data(), s.n_tok, y.data(), bias.data(), pool);
      matmul_reference(w.view, x.data(), s.n_tok, ref.data(), bias.data());
      expect_near_reference(w.view, x, bias, s, y, ref);
    }
  }
}

TEST_P(MatmulTest, BatchInvariantBitForBit) {
  // Every token's outputs must be identical whether it is computed alone, at any position in a
  // batch, or with any thread count (src/ops/matmul.h).
  const int64_t rows = 37, cols = cols_for(GetParam(), 203), n_tok = 11;
  Weights w = make_weights(GetParam(), rows, cols, 42);
  auto x = test::random_floats(n_tok * cols, 3);
  ThreadPool pool2(2), pool1(1);
  std::vector<float> batch(n_tok * rows);
  matmul(w.view, x.data(), n_tok, batch.data(), nullptr, pool2);
  for (int64_t t = 0; t < n_tok; ++t) {
    std::vector<float> single(rows);
    matmul(w.view, x.data() + t * cols, 1, single.data(), nullptr, pool1);
    EXPECT_EQ(0, std::memcmp(single.data(), batch.data() + t * rows, rows * sizeof(float))) << "token " << t;
  }
}

TEST_P(MatmulTest, PrefillGemmMatchesItsSumOrderAndTheReference) {
  // matmul_prefill (prompt prefill only): bit-identical to its scalar sum order with any thread
  // count and any batch split, and within the same 1e-5 relative bound of the double reference.
  const Shape shapes[] = {{1, 1, 1}, {3, 17, 5}, {31, 33, 29}, {32, 64, 12}, {33, 96, 13}, {70, 40, 40}, {17, 768, 3}};
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (Shape s : shapes) {
      s.cols = cols_for(GetParam(), s.cols);
      Weights w = make_weights(GetParam(), s.rows, s.cols, s.rows * 77 + s.cols);
      auto x = test::random_floats(s.n_tok * s.cols, 5);
      auto bias = test::random_floats(s.rows, 6);
      std::vector<float> y(s.n_tok * s.rows), order(y.size()), ref(y.size());
      matmul_prefill(w.view, x.data(), s.n_tok, y.data(), bias.data(), pool);
      matmul_prefill_reference_order(w.view, x.data(), s.n_tok, order.data(), bias.data());
      matmul_reference(w.view, x.data(), s.n_tok, ref.data(), bias.data());
      ASSERT_EQ(0, std::memcmp(y.data(), order.data(), y.size() * sizeof(float)))
          << dtype_name(GetParam()) << " shape " << s.rows << "x" << s.cols << " n_tok " << s.n_tok;
      expect_near_reference(w.view, x, bias, s, y, ref);
      // One token alone gives the same bits as inside the batch.
      std::vector<float> single(s.rows);
      matmul_prefill(w.view, x.data() + (s.n_tok - 1) * s.cols, 1, single.data(), bias.data(), pool);
      EXPECT_EQ(0, std::memcmp(single.data(), y.data() + (s.n_tok - 1) * s.rows, s.rows * sizeof(float)));
    }
  }
}

// Panel-packed weights (ops/panel.h): F32, F16 and BF16.
class PanelMatmulTest : public ::testing::TestWithParam<DType> {};

struct Packed {
  std::vector<uint8_t> bytes;
  MatView view;
};

Packed pack(const MatView& src) {
  Packed p;
  p.bytes.resize(panel_bytes(src.dtype, src.rows, src.cols) + 64);
  void* dst = p.bytes.data() + (64 - reinterpret_cast<uintptr_t>(p.bytes.data()) % 64) % 64;
  p.view = panel_pack(src, dst);
  return p;
}

TEST_P(PanelMatmulTest, PackingKeepsEveryElement) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {15, 3}, {16, 16}, {17, 33}, {130, 7}}) {
    Weights w = make_weights(GetParam(), rows, cols, rows * 31 + cols);
    Packed p = pack(w.view);
    EXPECT_EQ(p.view.layout, MatLayout::kPanel16);
    EXPECT_EQ(p.view.bytes(), static_cast<size_t>((rows + 15) / 16 * 16 * cols) * dtype_size(GetParam()));
    std::vector<float> a(cols), b(cols);
    for (int64_t r = 0; r < rows; ++r) {
      mat_row_to_f32(w.view, r, a.data());
      mat_row_to_f32(p.view, r, b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << rows << "x" << cols << " row " << r;
    }
  }
}

TEST_P(PanelMatmulTest, MatchesItsSumOrderOnOddShapesWithAnyBatchAndThreads) {
  // The outer-product kernel must equal the scalar sequential-fma order bit for bit (every tile
  // shape: 1-3 tokens use 8-panel tiles, more use 4x4 tiles, leftovers 4/2/1 panels), stay within
  // the double reference's bound, give each token the same bits alone as in any batch, and give
  // matmul_prefill the same bits (prefill and decode share the order for packed weights; BF16 on
  // AMX prefills with three bf16 products instead, held to the reference bound here).
  const Shape shapes[] = {{1, 1, 1},
                          {3, 17, 5},
                          {16, 16, 2},
                          {17, 33, 3},
                          {31, 64, 4},
                          {129, 40, 7},
                          {200, 9, 1},
                          {255, 20, 2},
                          {70, 768, 13},
                          {33, 5, 20},
                          {300, 16, 6},
                          // 3-4 tokens: 6-panel tiles (and their 4/2/1-panel remainders)
                          {200, 24, 3},
                          {400, 12, 4},
                          {111, 10, 4},
                          // 5+ tokens, F16/BF16: 6-token tiles over widened weights, remainders 1-5
                          {47, 50, 9},
                          {64, 256, 16},
                          {20, 31, 17},
                          {9, 19, 10},
                          {130, 7, 11}};
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (Shape s : shapes) {
      Weights w = make_weights(GetParam(), s.rows, s.cols, s.rows * 13 + s.cols);
      Packed p = pack(w.view);
      auto x = test::random_floats(s.n_tok * s.cols, 11);
      auto bias = test::random_floats(s.rows, 12);
      for (const float* b : std::initializer_list<const float*>{nullptr, bias.data()}) {
        std::vector<float> y(s.n_tok * s.rows), order(y.size()), ref(y.size()), pre(y.size());
        matmul(p.view, x.data(), s.n_tok, y.data(), b, pool);
        matmul_prefill_reference_order(w.view, x.data(), s.n_tok, order.data(), b);
        ASSERT_EQ(0, std::memcmp(y.data(), order.data(), y.size() * sizeof(float)))
            << dtype_name(GetParam()) << " shape " << s.rows << "x" << s.cols << " n_tok " << s.n_tok << " threads "
            << threads << (b ? " bias" : "");
        // A prefetch hint for the next product (here the row-major source) changes no bit.
        std::vector<float> hinted(y.size());
        matmul(p.view, x.data(), s.n_tok, hinted.data(), b, pool, next_weights(w.view));
        ASSERT_EQ(0, std::memcmp(y.data(), hinted.data(), y.size() * sizeof(float))) << "with next";
        matmul_prefill(p.view, x.data(), s.n_tok, pre.data(), b, pool);
        if (f32_amx_usable(p.view)) {  // BF16 with AMX: three bf16 products (matmul_f32_amx_test.cc)
          matmul_reference(w.view, x.data(), s.n_tok, ref.data(), b);
          std::vector<float> zero_bias(s.rows, 0.0f);
          expect_near_reference(w.view, x, b ? bias : zero_bias, s, pre, ref);
        } else {
          ASSERT_EQ(0, std::memcmp(y.data(), pre.data(), y.size() * sizeof(float)));
        }
        matmul_reference(w.view, x.data(), s.n_tok, ref.data(), b);
        std::vector<float> zero_bias(s.rows, 0.0f);
        expect_near_reference(w.view, x, b ? bias : zero_bias, s, y, ref);
        for (int64_t t = 0; t < s.n_tok; ++t) {
          std::vector<float> single(s.rows);
          matmul(p.view, x.data() + t * s.cols, 1, single.data(), b, pool);
          ASSERT_EQ(0, std::memcmp(single.data(), y.data() + t * s.rows, s.rows * sizeof(float))) << "token " << t;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(FloatTypes, PanelMatmulTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(PanelPack, RefusesBlockQuantizedTypes) {
  EXPECT_FALSE(panel_supported(DType::kQ8_0));
  EXPECT_FALSE(panel_supported(DType::kQ4_K));
  EXPECT_TRUE(panel_supported(DType::kBF16));
}

class QuantMatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(QuantMatmulTest, KernelSeesExactlyTheDequantizedWeights) {
  // The fused kernels compute each weight with the reference dequantization's f32 operations,
  // so they must equal the plain f32 kernel run on the dequantized matrix bit for bit.
  const int64_t rows = 29, cols = 3 * dtype_block(GetParam()), n_tok = 5;
  Weights q = make_weights(GetParam(), rows, cols, 77);
  std::vector<float> deq(rows * cols);
  for (int64_t r = 0; r < rows; ++r) mat_row_to_f32(q.view, r, deq.data() + r * cols);
  const MatView f{deq.data(), DType::kF32, rows, cols};
  auto x = test::random_floats(n_tok * cols, 5);
  ThreadPool pool(2);
  std::vector<float> a(n_tok * rows), b(n_tok * rows);
  matmul(q.view, x.data(), n_tok, a.data(), nullptr, pool);
  matmul(f, x.data(), n_tok, b.data(), nullptr, pool);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(BlockTypes, QuantMatmulTest,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Quantize, RoundTripErrorIsSmallForEveryWriter) {
  // Relative RMS error of dequantize(quantize(x)) on Gaussian weights; bounds are ~2x the
  // measured values (Q8_0 0.4%, Q6_K ~2%, Q5_K ~4%, Q4_0/Q4_K ~9%) so a broken bit layout fails
  // loudly.
  const int64_t n = 256 * 64;
  auto x = test::random_floats(n, 21);
  for (const auto& [t, bound] :
       {std::pair{DType::kQ8_0, 0.01}, std::pair{DType::kQ6_K, 0.05}, std::pair{DType::kQ5_K, 0.1},
        std::pair{DType::kQ4_0, 0.2}, std::pair{DType::kQ4_K, 0.2}}) {
    std::vector<uint8_t> q(static_cast<size_t>(row_bytes(t, n)));
    quantize_row(t, x.data(), n, q.data());
    std::vector<float> y(n);
    dequantize_row(t, q.data(), n, y.data());
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += x[i] * x[i];
    const double rel = std::sqrt(num / den);
    std::printf("[ %s ] relative RMS round-trip error %.4f\n", dtype_name(t).data(), rel);
    EXPECT_LT(rel, bound) << dtype_name(t);
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, MatmulTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                                           DType::kQ4_K, DType::kQ5_K, DType::kQ6_K),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace swift
