// Models from GGUF files: hyperparameters from `{arch}.*` metadata, weights used in place from
// the memory map (F32, F16, BF16, Q8_0), the SentencePiece tokenizer from `tokenizer.ggml.*`;
// and the reverse, writing a loaded model as GGUF (`swiftllm convert`).
//
// Architectures: `llama` (also Mistral without sliding window), `qwen2`, `qwen3`, with
// llama.cpp's tensor names (token_embd, blk.N.attn_q, ..., output_norm, output). llama.cpp's
// converter permutes the rows of Q and K of `llama` models so that its rotary kernel can rotate
// adjacent pairs (convert_hf_to_gguf.py, LlamaModel.permute); the loader undoes the permutation
// (one copy of Q and K) so that the forward pass is exactly the Hugging Face one, and the
// writer applies it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "model/gguf.h"
#include "model/model.h"
#include "ops/dtype.h"

namespace swift {

// True when `path` is a file starting with the GGUF magic.
bool is_gguf_file(const std::string& path);

// The tokenizer described by tokenizer.ggml.* ("llama": SentencePiece; "gpt2": byte-level BPE
// with tokenizer.ggml.pre naming the pre-tokenizer). Throws naming the key on bad metadata.
std::unique_ptr<Tokenizer> gguf_tokenizer(const GgufFile& g, int64_t n_vocab_model);

// Loads a GGUF model. Throws swift::Error naming the key or tensor and the numbers.
std::unique_ptr<Model> load_gguf_model(const std::string& path, MatMath math = MatMath::kF32);

// The GGUF row permutation of llama's Q/K for `n_head` heads of `head_dim` rows: GGUF row of
// Hugging Face row r.
int64_t gguf_permuted_row(int64_t r, int64_t head_dim);

struct ConvertOptions {
  DType type = DType::kF16;  // large matrices; norms and biases stay F32
  // llama.cpp's "_M" mixes (LLAMA_FTYPE_MOSTLY_Q4_K_M / Q5_K_M; type Q4_K or Q5_K): Q6_K for the
  // LM head (the embedding when tied) and for attn_v and ffn_down of the layers llama.cpp's
  // use_more_bits picks (the first and last eighth, every third between).
  bool k_mix = false;
  bool with_tokenizer = true;
  std::function<void(size_t i, size_t n, const std::string& name)> progress;
  std::function<void(const std::string&)> note;  // type fallbacks
};

// Writes `model` (loaded from a Hugging Face folder) as a GGUF file llama.cpp can load.
void write_gguf(const Model& model, const std::string& out_path, const ConvertOptions& opt);

}  // namespace swift
