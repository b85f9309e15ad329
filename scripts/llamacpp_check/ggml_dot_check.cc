// External check of `--math q8` (ops/q8_dot.h) against llama.cpp's own library: for Q8_0, Q4_0,
// Q4_K, Q5_K and Q6_K weights, ggml's quantizer of the activations (the vec_dot type's
// from_float) and ggml's vec_dot per row and token, against swiftllm's matmul_q8 over a batch of
// tokens, bit for bit. Built and run by scripts/llamacpp_check/kernels (test-only: it links the
// ggml that scripts/llamacpp_check/speed builds).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"
#include "ops/q8_dot.h"
#include "ops/quant.h"
#include "util/thread_pool.h"

using namespace swift;

int main() {
  ggml_cpu_init();
  ThreadPool pool(2);
  struct Type {
    DType ours;
    ggml_type theirs;
  } types[] = {{DType::kQ8_0, GGML_TYPE_Q8_0},
               {DType::kQ4_0, GGML_TYPE_Q4_0},
               {DType::kQ4_K, GGML_TYPE_Q4_K},
               {DType::kQ5_K, GGML_TYPE_Q5_K},
               {DType::kQ6_K, GGML_TYPE_Q6_K}};
  int failures = 0;
  for (const Type& t : types) {
    long long same = 0, total = 0;
    double worst = 0;
    for (int64_t cols : {256, 768, 2048})
      for (int source = 0; source < 2; ++source) {  // swiftllm's quantizer, or random bytes
        std::mt19937 rng(static_cast<uint32_t>(cols * 7 + source));
        std::normal_distribution<float> nd(0, 1);
        const int64_t rows = 37, n_tok = 5, rb = row_bytes(t.ours, cols);
        std::vector<uint8_t> w(static_cast<size_t>(rows * rb));
        if (source == 0) {
          std::vector<float> f(static_cast<size_t>(cols));
          for (int64_t r = 0; r < rows; ++r) {
            for (auto& v : f) v = nd(rng) * 0.05f;
            quantize_row(t.ours, f.data(), cols, w.data() + r * rb);
          }
        } else {  // any bytes, then small finite f16 scales where the format keeps them
          for (auto& b : w) b = static_cast<uint8_t>(rng());
          const int64_t bb = dtype_block_bytes(t.ours), nb = rows * rb / bb;
          for (int64_t i = 0; i < nb; ++i) {
            uint8_t* blk = w.data() + i * bb;
            const uint16_t h = static_cast<uint16_t>(0x1000 + rng() % 0x800);  // ~1e-4 .. 5e-4
            if (t.ours == DType::kQ6_K) {
              std::memcpy(blk + 208, &h, 2);
            } else {
              std::memcpy(blk, &h, 2);
              if (t.ours == DType::kQ4_K || t.ours == DType::kQ5_K) std::memcpy(blk + 2, &h, 2);
            }
          }
        }
        std::vector<float> x(static_cast<size_t>(n_tok * cols)), y(static_cast<size_t>(n_tok * rows));
        for (auto& v : x) v = nd(rng);
        x[5] = 20.0f, x[cols + 17] = -31.0f;  // outliers set the block scales
        const MatView m{w.data(), t.ours, rows, cols, MatLayout::kRows};
        matmul_q8(m, x.data(), n_tok, y.data(), nullptr, pool);
        const auto* traits = ggml_get_type_traits_cpu(t.theirs);
        std::vector<uint8_t> qx(ggml_row_size(traits->vec_dot_type, cols));
        for (int64_t k = 0; k < n_tok; ++k) {
          ggml_get_type_traits_cpu(traits->vec_dot_type)->from_float(x.data() + k * cols, qx.data(), cols);
          for (int64_t r = 0; r < rows; ++r) {
            float s = 0;
            traits->vec_dot(static_cast<int>(cols), &s, 0, w.data() + r * rb, 0, qx.data(), 0, 1);
            const float o = y[k * rows + r];
            same += std::memcmp(&s, &o, 4) == 0;
            ++total;
            worst = std::max(worst, std::fabs(static_cast<double>(s) - o) / (std::fabs(static_cast<double>(s)) + 1e-30));
          }
        }
      }
    std::printf("%s: %lld/%lld outputs bit-identical to ggml's vec_dot (largest relative difference %.3g)\n",
                ggml_type_name(t.theirs), same, total, worst);
    failures += same != total;
  }
  return failures == 0 ? 0 : 1;
}
