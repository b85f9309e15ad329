// The matmul kernel against a double-precision scalar reference on odd shapes and every dtype,
// and the batch-invariance property that lossless speculative decoding relies on.
#include "ops/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// Q8_0 rows must be whole blocks of 32: odd shapes are rounded up for it.
int64_t cols_for(DType dt, int64_t cols) { return (cols + dtype_block(dt) - 1) / dtype_block(dt) * dtype_block(dt); }

Weights make_weights(DType dt, int64_t rows, int64_t cols, uint64_t seed) {
  auto f = test::random_floats(rows * cols, seed);
  Weights w;
  if (dt == DType::kQ8_0) {  // llama.cpp's quantize_row_q8_0: d = max|x| / 127, q = round(x / d)
    w.bytes.resize(static_cast<size_t>(rows * row_bytes(dt, cols)));
    for (int64_t b = 0; b < rows * cols / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(f[b * 32 + i]));
      const float d = amax / 127.0f;
      const uint16_t dh = f32_to_f16(d);
      std::memcpy(w.bytes.data() + b * 34, &dh, 2);
      for (int i = 0; i < 32; ++i)
        w.bytes[b * 34 + 2 + i] = static_cast<uint8_t>(static_cast<int8_t>(d ? std::lround(f[b * 32 + i] / d) : 0));
    }
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

TEST(MatmulQ8_0, KernelSeesExactlyTheDequantizedWeights) {
  // d * q is exact in f32, so the fused kernel must equal the plain f32 kernel run on the
  // dequantized matrix bit for bit (same lanes, same order).
  const int64_t rows = 29, cols = 96, n_tok = 5;
  Weights q = make_weights(DType::kQ8_0, rows, cols, 77);
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

INSTANTIATE_TEST_SUITE_P(AllDTypes, MatmulTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace swift
