// Model hyperparameters read from a Hugging Face config.json.
//
// Both config styles found in the wild are read: `rope_theta` + `rope_scaling` (most hub
// files) and `rope_parameters` (transformers >= 5). Unsupported architectures, activations and
// rope types are refused with a message naming them; sizes are bounds-checked so that later
// allocations cannot overflow.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ops/rope.h"

namespace swift {

enum class Arch { kLlama, kMistral, kQwen2, kQwen3 };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;       // e.g. "LlamaForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_kv_head = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  float rms_eps = 1e-6f;
  bool tie_embeddings = false;
  bool qkv_bias = false;       // Qwen2; Llama with attention_bias
  bool o_bias = false;         // Llama with attention_bias
  bool mlp_bias = false;
  bool qk_norm = false;        // Qwen3
  RopeParams rope;
  std::vector<int64_t> sliding_window;  // [n_layer]; 0 = full attention on that layer
  std::vector<int32_t> bos_ids, eos_ids;

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_kv_head * head_dim; }
  // Weights of the matrices one token multiplies with (= its multiply-adds in them): every
  // layer's Q, K, V, output, gate, up and down and the LM head; the embedding is a row lookup.
  int64_t matmul_weights() const {
    return n_layer * (hidden_size * (2 * q_dim() + 2 * kv_dim()) + 3 * hidden_size * intermediate_size) +
           vocab_size * hidden_size;
  }
};

// Throws swift::Error naming the offending key and value. `source` names the file in messages.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
ModelConfig load_model_config(const std::string& path);

}  // namespace swift
