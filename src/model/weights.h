// Weights of a LLaMA-family model, memory-mapped from safetensors or GGUF files.
//
// Large matrices stay in their file dtype and are converted inside the matmul kernels. F32/F16/
// BF16 projection matrices and the LM head are repacked once into panel layout (pack_weights,
// ops/panel.h) — the layout the batch kernel reads without horizontal sums — and their file
// pages are released; block-quantized matrices and the embedding table are used in place, except
// Q4_K and Q6_K matrices under `--math q8`, interleaved by 8 rows (ops/q8_dot.h: kRows8). Small
// vectors (norms, biases) are converted to f32 at load.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "ops/dtype.h"
#include "util/page_buffer.h"

namespace swift {

struct LayerWeights {
  MatView wq;      // [n_head * head_dim, hidden]
  MatView wk;      // [n_kv_head * head_dim, hidden]
  MatView wv;      // [n_kv_head * head_dim, hidden]
  MatView wo;      // [hidden, n_head * head_dim]
  MatView w_gate;  // [intermediate, hidden]
  MatView w_up;    // [intermediate, hidden]
  MatView w_down;  // [hidden, intermediate]
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> mlp_norm;   // [hidden]
  std::vector<float> bq, bk, bv, bo;           // [q_dim], [kv_dim], [kv_dim], [hidden]; empty if none
  std::vector<float> q_norm, k_norm;           // [head_dim]; Qwen3 only
  std::vector<float> b_gate, b_up, b_down;     // mlp_bias only
  // Fused views set by pack_weights when the packed matrices lie back to back (same dtype and
  // layout, whole panels or groups of 8 rows): one matmul instead of three (Q, K, V) or two
  // (gate, up), i.e. fewer thread-pool rounds per layer. Each output row is the same sum as in its own matrix, so fusing never
  // changes a result. data == nullptr: not fused.
  MatView wqkv;                  // [q_dim + 2 * kv_dim, hidden]
  MatView w_gate_up;             // [2 * intermediate, hidden]
  std::vector<float> bqkv, b_gate_up;  // concatenated biases (zeros for a missing one); empty if none
};

struct ModelWeights {
  MatView embed;                    // [vocab, hidden]
  MatView lm_head;                  // [vocab, hidden]; == embed when tied
  std::vector<float> final_norm;    // [hidden]
  std::vector<LayerWeights> layers;  // [n_layer]
  std::vector<std::unique_ptr<SafetensorsFile>> files;  // keep the maps alive
  // Aligned copies of tensors whose file offset is not a multiple of their element size
  // (safetensors does not promise alignment; a misaligned float load is undefined behaviour).
  std::vector<std::unique_ptr<float[]>> realigned;
  // GGUF: tensors rewritten at load (llama's un-permuted Q/K, misaligned data) and the file.
  std::vector<std::vector<uint8_t>> owned;
  std::shared_ptr<const void> keep_alive;
  std::vector<const MappedFile*> maps;  // the file maps above, to release repacked pages
  // Panel-packed copies of the matrices (pack_weights), 64-byte aligned inside one block.
  std::unique_ptr<PageBuffer> packed;
  std::string dtype_summary;        // e.g. "BF16" or "F32+BF16"
  uint64_t total_bytes = 0;         // bytes of all tensors used
};

// How matrix products round (`--math`).
//   kF32: every product and sum in f32 (the float32 Hugging Face reference's arithmetic).
//   kBf16: BF16 matrices multiply activations rounded to bf16 with AVX-512 BF16 dot products
//          (ops/bf16_dot.h): ~2x the multiply-adds per instruction, for compute-bound passes
//          (prefill, verification trees); other dtypes are computed as with kF32.
//   kQ8: Q8_0, Q4_0, Q4_K, Q5_K and Q6_K matrices multiply activations quantized to 8 bits per
//        block with integer dot products (ops/q8_dot.h), as llama.cpp computes quantized models;
//        other dtypes as kF32.
//   kAuto: kQ8 for a model with matrices kQ8 takes (a quantized GGUF file: its weights are
//          already rounded, and llama.cpp computes such files this way) on a CPU with the
//          integer kernels, else kF32. The Transformer resolves it at construction; math()
//          never returns kAuto.
enum class MatMath : uint8_t { kF32, kBf16, kQ8, kAuto };

// "f32", "bf16", "q8" or "auto".
inline const char* math_name(MatMath m) {
  switch (m) {
    case MatMath::kF32: return "f32";
    case MatMath::kBf16: return "bf16";
    case MatMath::kQ8: return "q8";
    case MatMath::kAuto: return "auto";
  }
  return "?";
}

// Repacks every F32/F16/BF16 projection matrix and the LM head into panel layout (a tied LM
// head gets its own copy; the embedding rows stay in place) and releases their file pages.
// With MatMath::kBf16, BF16 matrices get the column-pair layout of the bf16 dot-product kernel;
// with MatMath::kQ8, Q4_K and Q6_K matrices of a multiple of 8 rows the kRows8 layout (ops/q8_dot.h).
// Numerics: the panel kernels' sum orders (ops/panel.h, ops/bf16_dot.h). Idempotent.
void pack_weights(ModelWeights& w, MatMath math = MatMath::kF32);

// Loads `model.safetensors` or the shards listed in `model.safetensors.index.json` from `dir`,
// checks every tensor's presence and shape against `cfg`. Throws naming the tensor.
ModelWeights load_weights(const std::string& dir, const ModelConfig& cfg);

// Same, from already-open files (tests build files in memory).
ModelWeights bind_weights(std::vector<std::unique_ptr<SafetensorsFile>> files, const ModelConfig& cfg);

}  // namespace swift
