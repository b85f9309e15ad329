// The Q8_0, Q4_0, Q4_K, Q5_K and Q6_K x 8-bit activation kernels of `--math q8` (ops/q8_dot.h):
// the activation quantizers against the contract written out here independently, the SIMD kernels against their
// scalar reference bit for bit (odd shapes, every tile remainder, 1-3 threads, with and without
// bias), batch invariance, and the reference's accuracy against the exact product of the
// dequantized weights, within a bound derived from the activations' rounding.
#include "ops/q8_dot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/matmul.h"
#include "ops/quant.h"
#include "test_util.h"
#include "util/half.h"

namespace swift {

namespace {

// Random Q8_0 rows: scales of ~1e-3..3e-3, values over the whole int8 range (-128 included), and
// one all-zero block with a zero scale.
std::vector<uint8_t> random_q8_0(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t nb = cols / 32;
  std::vector<uint8_t> data(static_cast<size_t>(rows * nb * 34));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = data.data() + (r * nb + b) * 34;
      const bool zero = r == rows / 2 && b == nb - 1;
      const uint16_t d = zero ? 0 : f32_to_f16(1e-3f + static_cast<float>(rng() % 2000) * 1e-6f);
      std::memcpy(blk, &d, 2);
      for (int i = 0; i < 32; ++i) blk[2 + i] = zero ? 0 : static_cast<uint8_t>(rng());
    }
  return data;
}

// Random Q4_0 rows: scales as above, arbitrary nibbles, one all-zero-scale block.
std::vector<uint8_t> random_q4_0(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t nb = cols / 32;
  std::vector<uint8_t> data(static_cast<size_t>(rows * nb * 18));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = data.data() + (r * nb + b) * 18;
      const bool zero = r == rows / 2 && b == nb - 1;
      const uint16_t d = zero ? 0 : f32_to_f16(1e-2f + static_cast<float>(rng() % 2000) * 1e-5f);
      std::memcpy(blk, &d, 2);
      for (int i = 0; i < 16; ++i) blk[2 + i] = static_cast<uint8_t>(rng());
    }
  return data;
}

// Either 32-block format.
std::vector<uint8_t> random_block32(DType t, int64_t rows, int64_t cols, uint64_t seed) {
  return t == DType::kQ8_0 ? random_q8_0(rows, cols, seed) : random_q4_0(rows, cols, seed);
}

// Random K-quant rows (Q4_K, Q5_K, Q6_K): every byte pattern is a valid block, so arbitrary bytes
// for the scales, mins and bits, with small positive f16 d (and dmin).
std::vector<uint8_t> random_k(DType t, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t bb = dtype_block_bytes(t);
  std::vector<uint8_t> data(static_cast<size_t>(rows * cols / 256 * bb));
  for (size_t at = 0; at < data.size(); at += static_cast<size_t>(bb)) {
    for (int64_t i = 0; i < bb; ++i) data[at + i] = static_cast<uint8_t>(rng());
    const uint16_t d = f32_to_f16(1e-4f + static_cast<float>(rng() % 1000) * 1e-7f);
    const uint16_t dmin = f32_to_f16(1e-4f + static_cast<float>(rng() % 1000) * 1e-7f);
    if (t == DType::kQ6_K) {
      std::memcpy(&data[at + 208], &d, 2);
    } else {
      std::memcpy(&data[at], &d, 2);
      std::memcpy(&data[at + 2], &dmin, 2);
    }
  }
  return data;
}

constexpr DType kKTypes[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// The activation half of the contract, written out from ops/q8_dot.h.
void contract_quantize(const float* x, int64_t cols, int8_t* q, float* dx) {
  for (int64_t b = 0; b < cols / 32; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < 32; ++i) {
      const float v = x[b * 32 + i] * id;
      float r = std::round(v);  // nearest, ties away from zero; then ties to even:
      if (std::fabs(v - std::trunc(v)) == 0.5f && std::fmod(r, 2.0f) != 0.0f) r -= std::copysign(1.0f, v);
      q[b * 32 + i] = static_cast<int8_t>(r);
    }
    dx[b] = f16_to_f32(f32_to_f16(amax / 127.0f));
  }
}

// Q8_K activations, written out from ops/q8_dot.h.
void contract_quantize_k(const float* x, int64_t cols, int8_t* q, float* dx, int16_t* sums) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    const float* xb = x + b * 256;
    float amax = 0.0f, mx = 0.0f;
    for (int i = 0; i < 256; ++i)
      if (std::fabs(xb[i]) > amax) amax = std::fabs(xb[i]), mx = xb[i];
    const float iscale = amax != 0.0f ? -127.0f / mx : 0.0f;
    for (int i = 0; i < 256; ++i) {
      const float v = xb[i] * iscale;
      float r = std::round(v);
      if (std::fabs(v - std::trunc(v)) == 0.5f && std::fmod(r, 2.0f) != 0.0f) r -= std::copysign(1.0f, v);
      q[b * 256 + i] = static_cast<int8_t>(std::min(127.0f, r));
    }
    dx[b] = amax != 0.0f ? 1.0f / iscale : 0.0f;
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[b * 256 + k * 16 + i];
      sums[b * 16 + k] = static_cast<int16_t>(sum);
    }
  }
}

std::vector<float> activations(int64_t n_tok, int64_t cols, uint64_t seed) {
  auto x = test::random_floats(static_cast<size_t>(n_tok * cols), seed, 2.0f);
  // A block of zeros, one with a single large value, and exact ties (0.5 steps) in a third.
  if (cols >= 96) {
    for (int i = 0; i < 32; ++i) x[i] = 0.0f;
    x[32 + 5] = 1000.0f;
    for (int i = 0; i < 32; ++i) x[64 + i] = (i % 2 ? -1.0f : 1.0f) * (static_cast<float>(i) + 0.5f);
    x[64 + 31] = 127.0f;  // amax 127: id = 1 and the halves are exact ties
  }
  return x;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// matmul_q8 against matmul_q8_reference, bit for bit, without and with a bias.
::testing::AssertionResult kernel_matches_reference(const MatView& w, int64_t n_tok, uint64_t x_seed,
                                                    uint64_t bias_seed, ThreadPool& pool) {
  const auto x = activations(n_tok, w.cols, x_seed);
  const auto bias = test::random_floats(static_cast<size_t>(w.rows), bias_seed, 0.5f);
  for (const float* bs : {static_cast<const float*>(nullptr), bias.data()}) {
    std::vector<float> y(static_cast<size_t>(n_tok * w.rows)), want(y.size());
    matmul_q8(w, x.data(), n_tok, y.data(), bs, pool);
    matmul_q8_reference(w, x.data(), n_tok, want.data(), bs);
    for (size_t i = 0; i < y.size(); ++i)
      if (bits(y[i]) != bits(want[i]))
        return ::testing::AssertionFailure()
               << dtype_name(w.dtype) << " " << w.rows << "x" << w.cols << " n_tok " << n_tok << " threads "
               << pool.size() << (bs ? " bias" : "") << " i " << i << ": " << y[i] << " vs " << want[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(Q8Dot, ActivationQuantizationFollowsTheContract) {
  for (int64_t cols : {32, 96, 256, 800}) {
    const int64_t n_tok = 3;
    const auto x = activations(n_tok, cols, 7 + cols);
    std::vector<int8_t> q(static_cast<size_t>(n_tok * cols)), want_q(q.size());
    std::vector<float> dx(static_cast<size_t>(n_tok * cols / 32)), want_dx(dx.size());
    q8_quantize_rows(x.data(), n_tok, cols, q.data(), dx.data());
    for (int64_t t = 0; t < n_tok; ++t)
      contract_quantize(x.data() + t * cols, cols, want_q.data() + t * cols, want_dx.data() + t * cols / 32);
    EXPECT_EQ(q, want_q) << cols;
    for (size_t i = 0; i < dx.size(); ++i) EXPECT_EQ(bits(dx[i]), bits(want_dx[i])) << cols << " block " << i;
    if (cols >= 96) {
      EXPECT_EQ(dx[0], 0.0f);     // the zero block
      EXPECT_EQ(q[32 + 5], 127);  // its maximum maps to 127
      EXPECT_EQ(q[64 + 0], 0);    // 0.5 -> 0 (even)
      EXPECT_EQ(q[64 + 1], -2);   // -1.5 -> -2
      EXPECT_EQ(q[64 + 2], 2);    // 2.5 -> 2
    }
  }
}

TEST(Q8Dot, Q8KActivationQuantizationFollowsTheContract) {
  for (int64_t cols : {256, 768}) {
    const int64_t n_tok = 3;
    auto x = activations(n_tok, cols, 17 + cols);
    for (int i = 0; i < 256; ++i) x[256 + i] = 0.0f;    // token 0's second block: all zero (768 columns)
    x[2 * cols + 7] = -50.0f, x[2 * cols + 9] = 50.0f;  // token 2: the first of equal magnitudes sets the sign
    std::vector<int8_t> q(static_cast<size_t>(n_tok * cols)), want_q(q.size());
    std::vector<float> dx(static_cast<size_t>(n_tok * cols / 256)), want_dx(dx.size());
    std::vector<int16_t> sums(static_cast<size_t>(n_tok * cols / 16)), want_sums(sums.size());
    q8k_quantize_rows(x.data(), n_tok, cols, q.data(), dx.data(), sums.data());
    for (int64_t t = 0; t < n_tok; ++t)
      contract_quantize_k(x.data() + t * cols, cols, want_q.data() + t * cols, want_dx.data() + t * cols / 256,
                          want_sums.data() + t * cols / 16);
    EXPECT_EQ(q, want_q) << cols;
    EXPECT_EQ(sums, want_sums) << cols;
    for (size_t i = 0; i < dx.size(); ++i) EXPECT_EQ(bits(dx[i]), bits(want_dx[i])) << cols << " block " << i;
    EXPECT_EQ(q[2 * cols + 7], -127) << cols;  // the first maximum maps to -127
    EXPECT_EQ(q[2 * cols + 9], 127) << cols;   // its opposite to 127
    if (cols == 768) {
      EXPECT_EQ(dx[1], 0.0f);
    }
  }
}

TEST(Q8Dot, KernelMatchesItsScalarContractBitForBit) {
  for (DType type : {DType::kQ8_0, DType::kQ4_0})
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (int64_t rows : {1, 3, 4, 5, 7, 13, 64})
        for (int64_t cols : {32, 96, 256, 288})
          for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 16}) {
            const auto data = random_block32(type, rows, cols, rows * 1000 + cols);
            const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
            ASSERT_TRUE(q8_dot_usable(w));
            ASSERT_TRUE(kernel_matches_reference(w, n_tok, n_tok + 3 * cols, 99, pool));
          }
    }
}

TEST(Q8Dot, KQuantKernelsMatchTheirScalarContractBitForBit) {
  for (DType type : kKTypes)
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (int64_t rows : {1, 2, 5, 9, 33})
        for (int64_t cols : {256, 768})
          for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 16}) {
            const auto data = random_k(type, rows, cols, rows * 1000 + cols + n_tok);
            const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
            ASSERT_TRUE(q8_dot_usable(w));
            ASSERT_TRUE(kernel_matches_reference(w, n_tok, n_tok + 5 * cols, 98, pool));
          }
    }
}

// The reference's weight decoding checked against the formats' own (ops/quant.h's
// dequantize_row): with integer activations in [-127, 127] and a -127 in every block, Q8_K keeps
// them as they are (iscale = 1, dx = -1 / -1), so the result must be sum w * x up to the f32
// rounding of the scale products and sums; a kernel and reference that agreed on a wrong bit
// layout would fail here.
TEST(Q8Dot, KQuantReferenceFollowsTheFormatsDequantization) {
  const int64_t rows = 3, cols = 512, n_tok = 2;
  for (DType type : kKTypes) {
    std::vector<float> x(static_cast<size_t>(n_tok * cols));
    std::mt19937 rng(5);
    for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 255) - 127);
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t b = 0; b < cols / 256; ++b) x[t * cols + b * 256 + 17] = -127.0f;
    const auto data = random_k(type, rows, cols, 77);
    const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
    std::vector<float> y(static_cast<size_t>(n_tok * rows));
    matmul_q8_reference(w, x.data(), n_tok, y.data(), nullptr);
    std::vector<float> wr(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(type, data.data() + r * (cols / 256) * dtype_block_bytes(type), cols, wr.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        double exact = 0.0, mag = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          exact += static_cast<double>(wr[c]) * x[t * cols + c];
          mag += std::fabs(static_cast<double>(wr[c]) * x[t * cols + c]);
        }
        EXPECT_NEAR(y[t * rows + r], exact, 1e-5 * mag + 1e-6) << dtype_name(type) << " row " << r << " token " << t;
      }
    }
  }
}

TEST(Q8Dot, KQuantTokensAloneMatchTheirRowsInABatch) {
  ThreadPool pool(2);
  const int64_t rows = 21, cols = 512, n_tok = 16;
  for (DType type : kKTypes) {
    const auto data = random_k(type, rows, cols, 6);
    const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
    const auto x = activations(n_tok, cols, 12);
    std::vector<float> y(static_cast<size_t>(n_tok * rows)), single(static_cast<size_t>(rows));
    matmul_q8(w, x.data(), n_tok, y.data(), nullptr, pool);
    for (int64_t t = 0; t < n_tok; ++t) {
      matmul_q8(w, x.data() + t * cols, 1, single.data(), nullptr, pool);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_EQ(bits(single[r]), bits(y[t * rows + r])) << dtype_name(type) << " token " << t << " row " << r;
    }
  }
}

TEST(Q8Dot, KQuantErrorAgainstTheExactProductStaysWithinTheActivationRounding) {
  // Bound per output: each activation moves by at most half a step of amax / 127 (plus the
  // rounding of -127 / mx and its inverse), times |w|; plus 1e-5 of the magnitudes of the integer
  // parts (d sc q x, and dmin m x for Q4_K/Q5_K) for the f32 sums. Exact side: ggml's
  // dequantize_row values times the f32 activations, in double.
  const int64_t rows = 17, cols = 768, n_tok = 5;
  for (DType type : kKTypes) {
    const auto data = random_k(type, rows, cols, 31);
    const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
    const auto x = activations(n_tok, cols, 37);
    std::vector<float> y(static_cast<size_t>(n_tok * rows));
    matmul_q8_reference(w, x.data(), n_tok, y.data(), nullptr);
    std::vector<float> wr(static_cast<size_t>(cols));
    const int64_t bb = dtype_block_bytes(type);
    double worst_ratio = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = data.data() + r * (cols / 256) * bb;
      dequantize_row(type, row, cols, wr.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        const float* xt = x.data() + t * cols;
        double exact = 0.0, bound = 1e-6, mag = 0.0;
        for (int64_t b = 0; b < cols / 256; ++b) {
          float amax = 0.0f;
          for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(xt[b * 256 + i]));
          const uint8_t* blk = row + b * bb;
          const float dmin = type == DType::kQ6_K ? 0.0f : f16_to_f32(static_cast<uint16_t>(blk[2] | blk[3] << 8));
          for (int i = 0; i < 256; ++i) {
            uint8_t sc = 0, m = 0;
            if (type != DType::kQ6_K) q4k_scale_min(i / 32, blk + 4, &sc, &m);
            const double wi = wr[b * 256 + i];
            exact += wi * xt[b * 256 + i];
            bound += std::fabs(wi) * 0.501 * amax / 127.0;
            mag += (std::fabs(wi) + 2.0 * dmin * m) * std::fabs(xt[b * 256 + i]);
          }
        }
        bound += 1e-5 * mag;
        const double err = std::fabs(y[t * rows + r] - exact);
        EXPECT_LE(err, bound) << dtype_name(type) << " row " << r << " token " << t;
        worst_ratio = std::max(worst_ratio, err / bound);
      }
    }
    std::printf("%s kernel vs exact product: worst error %.3f of the bound\n", dtype_name(type).data(), worst_ratio);
    EXPECT_GT(worst_ratio, 0.01);
  }
}

TEST(Q8Dot, TokensAloneMatchTheirRowsInABatch) {
  ThreadPool pool(2);
  const int64_t rows = 37, cols = 256, n_tok = 16;
  for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
    const auto data = random_block32(type, rows, cols, 5);
    const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
    const auto x = activations(n_tok, cols, 11);
    std::vector<float> y(static_cast<size_t>(n_tok * rows)), single(static_cast<size_t>(rows));
    matmul_q8(w, x.data(), n_tok, y.data(), nullptr, pool);
    for (int64_t t = 0; t < n_tok; ++t) {
      matmul_q8(w, x.data() + t * cols, 1, single.data(), nullptr, pool);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_EQ(bits(single[r]), bits(y[t * rows + r])) << dtype_name(type) << " token " << t << " row " << r;
    }
  }
}

TEST(Q8Dot, ErrorAgainstTheExactProductStaysWithinTheActivationRounding) {
  // Bound per output: each activation moves by at most half a step of amax / 127 plus the f16
  // scale's rounding (|q| <= 127 steps of relative error 2^-11): 0.5 + 127 * 2^-11 < 0.57 steps,
  // times |w|; plus 1e-5 of sum |w x| for the f32 sums. The exact side is the dequantized
  // weights (ggml's dequantize_row_q8_0) times the f32 activations, in double.
  const int64_t rows = 29, cols = 288, n_tok = 5;
  for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
    const auto data = random_block32(type, rows, cols, 21);
    const MatView w{data.data(), type, rows, cols, MatLayout::kRows};
    const auto x = activations(n_tok, cols, 23);
    std::vector<float> y(static_cast<size_t>(n_tok * rows));
    matmul_q8_reference(w, x.data(), n_tok, y.data(), nullptr);
    std::vector<float> wr(static_cast<size_t>(cols));
    double worst_ratio = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(type, data.data() + r * (cols / 32) * (type == DType::kQ8_0 ? 34 : 18), cols, wr.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        const float* xt = x.data() + t * cols;
        double exact = 0.0, bound = 1e-6, mag = 0.0;
        for (int64_t b = 0; b < cols / 32; ++b) {
          float amax = 0.0f;
          for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xt[b * 32 + i]));
          for (int i = 0; i < 32; ++i) {
            const double wi = wr[b * 32 + i];
            exact += wi * xt[b * 32 + i];
            bound += std::fabs(wi) * 0.57 * amax / 127.0;
            mag += std::fabs(wi * xt[b * 32 + i]);
          }
        }
        bound += 1e-5 * mag;
        const double err = std::fabs(y[t * rows + r] - exact);
        EXPECT_LE(err, bound) << "row " << r << " token " << t;
        worst_ratio = std::max(worst_ratio, err / bound);
      }
    }
    std::printf("%s kernel vs exact product: worst error %.3f of the bound\n", dtype_name(type).data(), worst_ratio);
    EXPECT_GT(worst_ratio, 0.01);  // the activations really were rounded (f32 would sit near 0)
  }
}

}  // namespace swift

namespace swift {

namespace {

// A Q4_K or Q6_K matrix and its kRows8 copy.
struct Rows8 {
  std::vector<uint8_t> plain, packed;
  MatView rows, interleaved;
};

Rows8 make_rows8(DType t, int64_t rows, int64_t cols, uint64_t seed) {
  Rows8 m;
  m.plain = random_k(t, rows, cols, seed);
  m.rows = MatView{m.plain.data(), t, rows, cols, MatLayout::kRows};
  EXPECT_TRUE(rows8_packable(m.rows));
  m.packed.resize(rows8_bytes(t, rows, cols));
  m.interleaved = rows8_pack(m.rows, m.packed.data());
  EXPECT_EQ(m.interleaved.bytes(), m.packed.size());
  return m;
}

constexpr DType kRows8Types[] = {DType::kQ4_K, DType::kQ6_K};

// |weight| bound of column c of a plain block, as the kernels' integer parts: Q4_K
// d sc q + dmin m, Q6_K |d sc| (u + 32) (ggml's layouts, decoded here on their own).
double k_magnitude(DType t, const uint8_t* blk, int64_t c) {
  if (t == DType::kQ6_K) {
    const int64_t h = c / 128, j = c % 128 / 32, l = c % 32;
    const uint8_t ql = blk[64 * h + l + (j % 2) * 32], qh = blk[128 + 32 * h + l];
    const int u = ((j < 2 ? ql : ql >> 4) & 0xF) | ((qh >> (2 * j)) & 3) << 4;
    const double d = f16_to_f32(static_cast<uint16_t>(blk[208] | blk[209] << 8));
    return std::fabs(d * static_cast<int8_t>(blk[192 + c / 16])) * (u + 32);
  }
  uint8_t sc, mn;
  q4k_scale_min(static_cast<int>(c) / 32, blk + 4, &sc, &mn);
  const int q = (c % 64 < 32 ? blk[16 + 32 * (c / 64) + c % 32] : blk[16 + 32 * (c / 64) + c % 32] >> 4) & 0xF;
  const double d = f16_to_f32(static_cast<uint16_t>(blk[0] | blk[1] << 8));
  const double dmin = f16_to_f32(static_cast<uint16_t>(blk[2] | blk[3] << 8));
  return d * sc * q + dmin * mn;
}

}  // namespace

TEST(Q8Dot, Rows8PackKeepsEveryRowsBytes) {
  for (DType t : kRows8Types) {
    const int64_t bb = dtype_block_bytes(t);
    const Rows8 m = make_rows8(t, 24, 768, 3);
    std::vector<uint8_t> row(static_cast<size_t>(3 * bb));
    for (int64_t r = 0; r < 24; ++r) {
      rows8_row(m.interleaved, r, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), m.plain.data() + r * 3 * bb, row.size())) << dtype_name(t) << " row " << r;
    }
    EXPECT_FALSE(rows8_packable(MatView{m.plain.data(), t, 12, 768, MatLayout::kRows}));  // 12 rows
    EXPECT_TRUE(q8_dot_usable(m.interleaved));
  }
  std::vector<uint8_t> q5(5 * 176);
  EXPECT_FALSE(rows8_packable(MatView{q5.data(), DType::kQ5_K, 8, 256, MatLayout::kRows}));
}

TEST(Q8Dot, Rows8KernelMatchesItsScalarContractBitForBit) {
  for (DType t : kRows8Types)
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (int64_t rows : {8, 16, 40})
        for (int64_t cols : {256, 768})
          for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 16}) {
            const Rows8 m = make_rows8(t, rows, cols, rows * 31 + cols + n_tok);
            ASSERT_TRUE(kernel_matches_reference(m.interleaved, n_tok, n_tok + 7 * cols, 97, pool)) << dtype_name(t);
          }
    }
}

TEST(Q8Dot, Rows8TokensAloneMatchTheirRowsInABatch) {
  // 16 tokens (8- and 4-token tiles), and 150 (a long prompt: matmul_q8_parts runs it in chunks
  // of 64 tokens where the 512-bit tiles take 8-byte activation operands).
  ThreadPool pool(2);
  for (int64_t n_tok : {16, 150})
    for (DType t : kRows8Types) {
      const int64_t rows = 48, cols = 512;
      const Rows8 m = make_rows8(t, rows, cols, 8);
      const auto x = activations(n_tok, cols, 13);
      std::vector<float> y(static_cast<size_t>(n_tok * rows)), single(static_cast<size_t>(rows));
      matmul_q8(m.interleaved, x.data(), n_tok, y.data(), nullptr, pool);
      for (int64_t tok = 0; tok < n_tok; ++tok) {
        matmul_q8(m.interleaved, x.data() + tok * cols, 1, single.data(), nullptr, pool);
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(bits(single[r]), bits(y[tok * rows + r])) << dtype_name(t) << " token " << tok << " row " << r;
      }
    }
}

TEST(Q8Dot, Rows8MatricesPackedBackToBackAreOneMatrix) {
  // pack_weights fuses Q|K|V and gate|up when their kRows8 copies lie back to back
  // (model/weights.h): the fused product's rows must be each matrix's own, bit for bit.
  ThreadPool pool(2);
  const int64_t cols = 512, parts[] = {16, 8, 24};
  for (DType t : kRows8Types) {
    std::vector<std::vector<uint8_t>> plain;
    std::vector<uint8_t> packed;
    std::vector<MatView> views;
    for (int64_t rows : parts) {
      plain.push_back(random_k(t, rows, cols, 40 + rows));
      packed.resize(packed.size() + rows8_bytes(t, rows, cols));
    }
    size_t at = 0;
    for (size_t i = 0; i < plain.size(); ++i) {
      views.push_back(rows8_pack(MatView{plain[i].data(), t, parts[i], cols, MatLayout::kRows}, packed.data() + at));
      at += views.back().bytes();
    }
    const MatView fused{packed.data(), t, 48, cols, MatLayout::kRows8};
    for (int64_t n_tok : {1, 5}) {
      const auto x = activations(n_tok, cols, 41);
      std::vector<float> y(static_cast<size_t>(n_tok * 48));
      matmul_q8(fused, x.data(), n_tok, y.data(), nullptr, pool);
      int64_t row0 = 0;
      for (const MatView& v : views) {
        std::vector<float> part(static_cast<size_t>(n_tok * v.rows));
        matmul_q8(v, x.data(), n_tok, part.data(), nullptr, pool);
        for (int64_t tok = 0; tok < n_tok; ++tok)
          for (int64_t r = 0; r < v.rows; ++r)
            ASSERT_EQ(bits(part[tok * v.rows + r]), bits(y[tok * 48 + row0 + r]))
                << dtype_name(t) << " row " << row0 + r;
        row0 += v.rows;
      }
    }
  }
}

TEST(Q8Dot, PartsGiveEveryMatrixTheBitsItGetsAlone) {
  // matmul_q8_parts (Q|K|V and gate|up that are not one matrix): one activation quantization per
  // format and one pool round over all the parts' work units; each output must be what
  // matmul_q8 gives its matrix alone. Every format and layout in one call, odd row counts,
  // biases on some parts, 1-3 threads, token counts around the tile sizes.
  const int64_t cols = 512;
  struct Mat {
    std::vector<uint8_t> data, packed;
    MatView view;
  };
  std::vector<Mat> mats;
  auto add = [&](DType t, int64_t rows, bool interleave) {
    Mat m;
    m.data = t == DType::kQ8_0 || t == DType::kQ4_0 ? random_block32(t, rows, cols, 50 + rows)
                                                    : random_k(t, rows, cols, 50 + rows);
    m.view = MatView{m.data.data(), t, rows, cols, MatLayout::kRows};
    if (interleave) {
      m.packed.resize(rows8_bytes(t, rows, cols));
      m.view = rows8_pack(m.view, m.packed.data());
    }
    mats.push_back(std::move(m));
  };
  add(DType::kQ8_0, 13, false);
  add(DType::kQ4_0, 7, false);
  add(DType::kQ4_K, 9, false);
  add(DType::kQ5_K, 5, false);
  add(DType::kQ6_K, 11, false);
  add(DType::kQ4_K, 16, true);
  add(DType::kQ6_K, 8, true);
  std::vector<std::vector<float>> bias(mats.size());
  for (size_t i = 0; i < mats.size(); i += 2)
    for (int64_t r = 0; r < mats[i].view.rows; ++r) bias[i].push_back(0.01f * static_cast<float>(r) - 0.05f);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n_tok : {1, 3, 4, 7}) {
      const auto x = activations(n_tok, cols, 60 + n_tok);
      std::vector<std::vector<float>> y(mats.size());
      std::vector<Q8Part> parts;
      for (size_t i = 0; i < mats.size(); ++i) {
        y[i].assign(static_cast<size_t>(n_tok * mats[i].view.rows), -1.0f);
        parts.push_back({&mats[i].view, y[i].data(), bias[i].empty() ? nullptr : bias[i].data()});
      }
      matmul_q8_parts(parts, x.data(), n_tok, pool);
      for (size_t i = 0; i < mats.size(); ++i) {
        std::vector<float> alone(y[i].size());
        matmul_q8(mats[i].view, x.data(), n_tok, alone.data(), parts[i].bias, pool);
        for (size_t o = 0; o < alone.size(); ++o)
          ASSERT_EQ(bits(alone[o]), bits(y[i][o]))
              << dtype_name(mats[i].view.dtype) << " part " << i << " output " << o << ", " << threads << " threads";
      }
    }
  }
}

TEST(Q8Dot, Rows8AgreesWithTheRowKernelWithinTheFloatRounding) {
  // Same integers, other f32 order: the two layouts' results differ by the f32 roundings of the
  // per-block sums only. Bound: 2^-20 of the sum over columns of |x| times the magnitude of the
  // weight's integer parts (k_magnitude; a few f32 ulps of the magnitudes summed, per block).
  ThreadPool pool(2);
  const int64_t rows = 32, cols = 768, n_tok = 5;
  for (DType t : kRows8Types) {
    const int64_t bb = dtype_block_bytes(t);
    const Rows8 m = make_rows8(t, rows, cols, 21);
    const auto x = activations(n_tok, cols, 22);
    std::vector<float> a(static_cast<size_t>(n_tok * rows)), b(a.size());
    matmul_q8(m.rows, x.data(), n_tok, a.data(), nullptr, pool);
    matmul_q8(m.interleaved, x.data(), n_tok, b.data(), nullptr, pool);
    int differing = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t tok = 0; tok < n_tok; ++tok) {
        double mag = 0.0;
        for (int64_t c = 0; c < cols; ++c)
          mag += k_magnitude(t, m.plain.data() + (r * 3 + c / 256) * bb, c % 256) * std::fabs(x[tok * cols + c]);
        EXPECT_NEAR(a[tok * rows + r], b[tok * rows + r], mag * std::ldexp(1.0, -20))
            << dtype_name(t) << " row " << r << " token " << tok;
        differing += a[tok * rows + r] != b[tok * rows + r];
      }
    }
    std::printf("%s rows8 vs row kernel: %d of %lld outputs differ in the last bits\n",
                std::string(dtype_name(t)).c_str(), differing, static_cast<long long>(rows * n_tok));
  }
}

}  // namespace swift
