// Weights of a LLaMA-family model, used in place from memory-mapped safetensors files.
//
// Large matrices stay in their file dtype (F32/F16/BF16) and are converted row by row inside
// the matmul kernel. Small vectors (norms, biases) are converted to f32 at load.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "ops/dtype.h"

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
  std::string dtype_summary;        // e.g. "BF16" or "F32+BF16"
  uint64_t total_bytes = 0;         // bytes of all tensors used
};

// Loads `model.safetensors` or the shards listed in `model.safetensors.index.json` from `dir`,
// checks every tensor's presence and shape against `cfg`. Throws naming the tensor.
ModelWeights load_weights(const std::string& dir, const ModelConfig& cfg);

// Same, from already-open files (tests build files in memory).
ModelWeights bind_weights(std::vector<std::unique_ptr<SafetensorsFile>> files, const ModelConfig& cfg);

}  // namespace swift
