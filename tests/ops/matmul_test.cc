// The matmul kernel against a double-precision scalar reference on odd shapes and every dtype,
// and the batch-invariance property that lossless speculative decoding relies on.
#include "ops/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "test_util.h"
#include "util/half.h"

namespace swift {

namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  MatView view;
};

Weights make_weights(DType dt, int64_t rows, int64_t cols, uint64_t seed) {
  auto f = test::random_floats(rows * cols, seed);
  Weights w;
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

}  // namespace

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesScalarReferenceOnOddShapes) {
  // Tolerance: the kernel accumulates in f32 (16 lanes, fixed tree), the reference in double;
  // the weights are exact in both. |err| <= 1e-5 * sum|w*x| is ~100 ulp of f32 headroom.
  const Shape shapes[] = {{1, 1, 1}, {3, 17, 5}, {31, 33, 9}, {64, 256, 1}, {7, 100, 13}, {130, 15, 4}, {5, 768, 3}};
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (const auto& s : shapes) {
      Weights w = make_weights(GetParam(), s.rows, s.cols, s.rows * 1000 + s.cols);
      auto x = test::random_floats(s.n_tok * s.cols, 7);
      auto bias = test::random_floats(s.rows, 9);
      std::vector<float> y(s.n_tok * s.rows), ref(y.size());
      matmul(w.view, x.data(), s.n_tok, y.data(), bias.data(), pool);
      matmul_reference(w.view, x.data(), s.n_tok, ref.data(), bias.data());
      std::vector<float> row(s.cols);
      for (int64_t t = 0; t < s.n_tok; ++t)
        for (int64_t r = 0; r < s.rows; ++r) {
          mat_row_to_f32(w.view, r, row.data());
          double mag = std::fabs(bias[r]);
          for (int64_t c = 0; c < s.cols; ++c) mag += std::fabs(row[c] * x[t * s.cols + c]);
          ASSERT_NEAR(y[t * s.rows + r], ref[t * s.rows + r], 1e-5 * mag + 1e-7)
              << dtype_name(GetParam()) << " shape " << s.rows << "x" << s.cols << " n_tok " << s.n_tok << " t" << t
              << " r" << r;
        }
    }
  }
}

TEST_P(MatmulTest, BatchInvariantBitForBit) {
  // Every token's outputs must be identical whether it is computed alone, at any position in a
  // batch, or with any thread count (src/ops/matmul.h).
  const int64_t rows = 37, cols = 203, n_tok = 11;
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

INSTANTIATE_TEST_SUITE_P(AllDTypes, MatmulTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace swift
