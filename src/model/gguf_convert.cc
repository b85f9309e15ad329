// write_gguf: a loaded Hugging Face model as a GGUF file with llama.cpp's key and tensor names.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "model/gguf_model.h"
#include "model/gguf_writer.h"
#include "model/spm_tokenizer.h"
#include "ops/quant.h"
#include "util/check.h"
#include "util/half.h"

namespace swift {

namespace {

GgmlType ggml_of(DType d) {
  switch (d) {
    case DType::kF32: return GgmlType::kF32;
    case DType::kF16: return GgmlType::kF16;
    case DType::kBF16: return GgmlType::kBF16;
    case DType::kQ8_0: return GgmlType::kQ8_0;
    case DType::kQ4_0: return GgmlType::kQ4_0;
    case DType::kQ4_K: return GgmlType::kQ4_K;
    case DType::kQ5_K: return GgmlType::kQ5_K;
    case DType::kQ6_K: return GgmlType::kQ6_K;
  }
  return GgmlType::kF32;
}

// llama.cpp's general.file_type (LLAMA_FTYPE_*).
uint32_t file_type(DType d, bool k_mix) {
  if (k_mix) return d == DType::kQ4_K ? 15 : 17;  // MOSTLY_Q4_K_M, MOSTLY_Q5_K_M
  switch (d) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ8_0: return 7;
    case DType::kBF16: return 32;
    case DType::kQ4_0: return 2;
    case DType::kQ4_K: return 14;  // MOSTLY_Q4_K_S: every matrix Q4_K
    case DType::kQ5_K: return 16;  // MOSTLY_Q5_K_S
    case DType::kQ6_K: return 18;
  }
  return 0;
}

// llama-quant.cpp's use_more_bits: the layers whose attn_v and ffn_down an _M mix keeps in Q6_K.
bool use_more_bits(int64_t i_layer, int64_t n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

}  // namespace

void write_gguf(const Model& m, const std::string& out_path, const ConvertOptions& opt) {
  const ModelConfig& c = m.config;
  const char* arch = nullptr;
  switch (c.arch) {
    case Arch::kLlama: case Arch::kMistral: arch = "llama"; break;
    case Arch::kQwen2: arch = "qwen2"; break;
    case Arch::kQwen3: arch = "qwen3"; break;
  }
  for (int64_t w : c.sliding_window)
    if (w > 0) fail("{}: sliding-window attention has no GGUF representation in llama.cpp; refusing to convert", m.path);
  if (c.rope.type != "default" && c.rope.type != "linear" && c.rope.type != "llama3" && c.rope.type != "freq_factors")
    fail("{}: rope type '{}' is not supported by the GGUF writer (default, linear, llama3)", m.path, c.rope.type);
  if (c.mlp_bias) fail("{}: MLP biases are not supported by the GGUF writer", m.path);
  const bool permute = std::string(arch) == "llama";
  const std::string p = std::string(arch) + ".";

  GgufWriter w;
  w.set_string("general.architecture", arch);
  w.set_string("general.name", std::filesystem::path(m.path).filename().string());
  if (opt.k_mix && opt.type != DType::kQ4_K && opt.type != DType::kQ5_K)
    fail("the _M mixes start from Q4_K or Q5_K, not {}", dtype_name(opt.type));
  w.set_u32("general.file_type", file_type(opt.type, opt.k_mix));
  if (dtype_block(opt.type) > 1) w.set_u32("general.quantization_version", 2);
  w.set_u32(p + "context_length", static_cast<uint32_t>(c.max_positions));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.set_u32(p + "block_count", static_cast<uint32_t>(c.n_layer));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(c.n_head));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_kv_head));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", c.rms_eps);
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope.theta));
  if (c.rope.type == "linear") {
    w.set_string(p + "rope.scaling.type", "linear");
    w.set_f32(p + "rope.scaling.factor", static_cast<float>(c.rope.factor));
  }
  if (c.head_dim * c.n_head != c.hidden_size) {
    w.set_u32(p + "attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.set_u32(p + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  w.set_u32(p + "vocab_size", static_cast<uint32_t>(c.vocab_size));

  if (opt.with_tokenizer) {
    const auto* spm = dynamic_cast<const SpmTokenizer*>(m.tokenizer.get());
    if (!spm)
      fail("{}: {}; only SentencePiece tokenizers can be written to GGUF so far (use --no-tokenizer to write the "
           "weights only)",
           m.path, m.tokenizer ? "the tokenizer is a tokenizer.json BPE" : "the model has no tokenizer");
    const SpmVocab& v = spm->vocab();
    if (v.remove_extra_whitespaces && std::string(arch) == "llama") {
      // llama.cpp's SentencePiece tokenizer never collapses whitespace; say so in the file so
      // that our loader (and a reader) can reproduce the model's own normalisation.
      w.set_bool("tokenizer.ggml.remove_extra_whitespaces", true);
    }
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", v.pieces);
    w.set_f32s("tokenizer.ggml.scores", v.scores);
    std::vector<int32_t> types;
    for (PieceType t : v.types) types.push_back(static_cast<int32_t>(t));
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(spm->bos_id >= 0 ? spm->bos_id : v.bos_id));
    w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(!m.eos_ids.empty() ? m.eos_ids[0] : v.eos_id));
    w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
    if (v.pad_id >= 0) w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad_id));
    w.set_bool("tokenizer.ggml.add_bos_token", spm->add_bos);
    w.set_bool("tokenizer.ggml.add_eos_token", spm->add_eos);
    w.set_bool("tokenizer.ggml.add_space_prefix", v.add_dummy_prefix);
  }
  if (opt.with_tokenizer && !m.chat_template.empty()) w.set_string("tokenizer.chat_template", m.chat_template);

  const ModelWeights& mw = m.transformer->weights();
  auto matrix = [&](const std::string& name, const MatView& src, int64_t permute_head_dim, bool more_bits = false) {
    // Rows that are not whole blocks of the requested format fall back to Q8_0, else F16 (as
    // llama.cpp's quantizer does); each fallback is reported.
    const DType want = opt.k_mix && more_bits ? DType::kQ6_K : opt.type;
    DType t = want;
    if (src.cols % dtype_block(t) != 0) {
      t = src.cols % 32 == 0 ? DType::kQ8_0 : DType::kF16;
      if (opt.note)
        opt.note(fmt::format("{}: {} columns are not a multiple of the {} block ({}); written as {}", name, src.cols,
                             dtype_name(want), dtype_block(want), dtype_name(t)));
    }
    w.add_tensor(name, {src.cols, src.rows}, ggml_of(t), [&src, t, permute_head_dim]() {
      const int64_t rb = row_bytes(t, src.cols);
      std::vector<uint8_t> out(static_cast<size_t>(src.rows * rb));
      std::vector<float> row(static_cast<size_t>(src.cols));
      for (int64_t r = 0; r < src.rows; ++r) {
        mat_row_to_f32(src, r, row.data());
        const int64_t dst = permute_head_dim > 0 ? gguf_permuted_row(r, permute_head_dim) : r;
        quantize_row(t, row.data(), src.cols, out.data() + dst * rb);
      }
      return out;
    });
  };
  auto vector = [&](const std::string& name, const std::vector<float>& v, int64_t permute_head_dim = 0) {
    w.add_tensor(name, {static_cast<int64_t>(v.size())}, GgmlType::kF32, [&v, permute_head_dim]() {
      std::vector<uint8_t> out(v.size() * 4);
      for (size_t r = 0; r < v.size(); ++r) {
        const int64_t dst = permute_head_dim > 0 ? gguf_permuted_row(static_cast<int64_t>(r), permute_head_dim)
                                                 : static_cast<int64_t>(r);
        std::memcpy(out.data() + dst * 4, &v[r], 4);
      }
      return out;
    });
  };
  // llama3 rope scaling: llama.cpp stores per-frequency divisors in rope_freqs.weight, computed
  // as convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors does.
  std::vector<float> rope_factors;
  if (c.rope.type == "llama3") {
    const int64_t dim = c.head_dim;
    const double old_len = static_cast<double>(c.rope.original_max_positions > 0 ? c.rope.original_max_positions : 8192);
    const double low_wavelen = old_len / c.rope.low_freq_factor, high_wavelen = old_len / c.rope.high_freq_factor;
    for (int64_t i = 0; i < dim / 2; ++i) {
      const float freq = 1.0f / std::pow(static_cast<float>(c.rope.theta), static_cast<float>(2 * i) / static_cast<float>(dim));
      const double wavelen = 2.0 * M_PI / freq;
      double f;
      if (wavelen < high_wavelen) {
        f = 1.0;
      } else if (wavelen > low_wavelen) {
        f = c.rope.factor;
      } else {
        const double smooth = (old_len / wavelen - c.rope.low_freq_factor) / (c.rope.high_freq_factor - c.rope.low_freq_factor);
        f = 1.0 / ((1.0 - smooth) / c.rope.factor + smooth);
      }
      rope_factors.push_back(static_cast<float>(f));
    }
  } else if (c.rope.type == "freq_factors") {
    rope_factors = c.rope.freq_factors;
  }
  if (!rope_factors.empty()) vector("rope_freqs.weight", rope_factors);
  matrix("token_embd.weight", mw.embed, 0, c.tie_embeddings);
  vector("output_norm.weight", mw.final_norm);
  if (!c.tie_embeddings) matrix("output.weight", mw.lm_head, 0, true);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = mw.layers[l];
    const std::string b = "blk." + std::to_string(l) + ".";
    vector(b + "attn_norm.weight", L.attn_norm);
    matrix(b + "attn_q.weight", L.wq, permute ? c.head_dim : 0);
    matrix(b + "attn_k.weight", L.wk, permute ? c.head_dim : 0);
    matrix(b + "attn_v.weight", L.wv, 0, use_more_bits(l, c.n_layer));
    matrix(b + "attn_output.weight", L.wo, 0);
    if (!L.bq.empty()) {
      vector(b + "attn_q.bias", L.bq, permute ? c.head_dim : 0);
      vector(b + "attn_k.bias", L.bk, permute ? c.head_dim : 0);
      vector(b + "attn_v.bias", L.bv);
    }
    if (!L.bo.empty()) vector(b + "attn_output.bias", L.bo);
    if (!L.q_norm.empty()) {
      vector(b + "attn_q_norm.weight", L.q_norm);
      vector(b + "attn_k_norm.weight", L.k_norm);
    }
    vector(b + "ffn_norm.weight", L.mlp_norm);
    matrix(b + "ffn_gate.weight", L.w_gate, 0);
    matrix(b + "ffn_up.weight", L.w_up, 0);
    matrix(b + "ffn_down.weight", L.w_down, 0, use_more_bits(l, c.n_layer));
  }
  w.write(out_path, opt.progress);
}

}  // namespace swift
