// Rotary position embeddings, HF "rotate_half" layout: dimension i pairs with i + head_dim/2.
// Frequencies follow transformers' rope init functions for the types we support: default,
// linear, dynamic (NTK), llama3. Anything else is refused when the config is read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace swift {

struct RopeParams {
  std::string type = "default";  // default | linear | dynamic | llama3
  double theta = 10000.0;
  double factor = 1.0;                 // linear, dynamic, llama3
  double low_freq_factor = 1.0;        // llama3
  double high_freq_factor = 4.0;       // llama3
  int64_t original_max_positions = 0;  // llama3, dynamic (0 = max_position_embeddings)
  int64_t rotary_dim = 0;              // = head_dim
  // type "freq_factors" (GGUF rope_freqs.weight, how llama.cpp stores llama3 scaling): the
  // default inverse frequencies divided by these, one per frequency.
  std::vector<float> freq_factors;
};

// Inverse frequencies [rotary_dim/2] in f32 as transformers computes them. seq_len matters only
// for "dynamic" (HF recomputes the base when max(position)+1 exceeds the original length).
std::vector<float> rope_inv_freq(const RopeParams& p, int64_t seq_len);

// Rotation angles of a batch: cos/sin of positions[t] * inv_freq[i], each [n_tok, head_dim/2].
// Computed once per forward pass and shared by every layer's Q and K (the trigonometry per
// call was ~5% of a decode step: 48 calls x 64 std::cos/std::sin per token).
struct RopeTable {
  std::vector<float> cos, sin;  // [n_tok, half]
  int64_t half = 0;
};
void rope_table(const int32_t* positions, int64_t n_tok, const std::vector<float>& inv_freq, RopeTable& out);

// Rotates n_tok rows of n_heads * head_dim values in place with the batch's table.
void rope_apply(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const RopeTable& table);
// The same rotation read from rows src + t * src_stride (e.g. the Q or K part of a fused Q|K|V
// product) into rows dst + t * dst_stride: saves the copy out of the fused rows (the same
// values), and rotates a subset of a row's heads (attention's per-KV-head preparation).
void rope_apply_to(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t n_tok,
                   int64_t n_heads, int64_t head_dim, const RopeTable& table);

}  // namespace swift
