#include "model/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "model/hf_tokenizer.h"
#include "model/spm_tokenizer.h"
#include "util/check.h"
#include "util/hash.h"
#include "util/half.h"

namespace swift {

namespace {

struct ArchInfo {
  Arch arch;
  const char* gguf;
  const char* hf;
  bool permute_qk;
};
constexpr ArchInfo kArchs[] = {{Arch::kLlama, "llama", "LlamaForCausalLM", true},
                               {Arch::kQwen2, "qwen2", "Qwen2ForCausalLM", false},
                               {Arch::kQwen3, "qwen3", "Qwen3ForCausalLM", false}};

const ArchInfo& arch_by_gguf(const std::string& name, const std::string& what) {
  for (const auto& a : kArchs)
    if (name == a.gguf) return a;
  fail("GGUF {}: general.architecture '{}' is not supported (supported: llama, qwen2, qwen3)", what, name);
}

std::optional<DType> dtype_of(uint32_t ggml) {
  switch (static_cast<GgmlType>(ggml)) {
    case GgmlType::kF32: return DType::kF32;
    case GgmlType::kF16: return DType::kF16;
    case GgmlType::kBF16: return DType::kBF16;
    case GgmlType::kQ8_0: return DType::kQ8_0;
    case GgmlType::kQ4_0: return DType::kQ4_0;
    case GgmlType::kQ4_K: return DType::kQ4_K;
    case GgmlType::kQ5_K: return DType::kQ5_K;
    case GgmlType::kQ6_K: return DType::kQ6_K;
    default: return std::nullopt;
  }
}

// Hyperparameters, validated by the same code as config.json (bounds, supported features).
ModelConfig gguf_config(const GgufFile& g, const ArchInfo& a) {
  const std::string p = std::string(a.gguf) + ".";
  auto need = [&](const std::string& k) {
    const auto v = g.get_int(p + k);
    if (!v) fail("GGUF {}: missing metadata key '{}{}'", g.what(), p, k);
    return *v;
  };
  const GgufTensor* embd = g.tensor("token_embd.weight");
  if (!embd) fail("GGUF {}: missing tensor 'token_embd.weight'", g.what());
  if (embd->ne.size() != 2) fail("GGUF {}: token_embd.weight has {} dimensions, expected 2", g.what(), embd->ne.size());
  nlohmann::json j;
  j["architectures"] = {a.hf};
  j["vocab_size"] = embd->ne[1];
  j["hidden_size"] = need("embedding_length");
  j["intermediate_size"] = need("feed_forward_length");
  j["num_hidden_layers"] = need("block_count");
  j["num_attention_heads"] = need("attention.head_count");
  j["num_key_value_heads"] = g.get_int(p + "attention.head_count_kv").value_or(need("attention.head_count"));
  if (auto kl = g.get_int(p + "attention.key_length")) j["head_dim"] = *kl;
  j["max_position_embeddings"] = need("context_length");
  const auto eps = g.get_float(p + "attention.layer_norm_rms_epsilon");
  if (!eps) fail("GGUF {}: missing metadata key '{}attention.layer_norm_rms_epsilon'", g.what(), p);
  j["rms_norm_eps"] = *eps;
  j["rope_theta"] = g.get_float(p + "rope.freq_base").value_or(10000.0);
  const std::string scaling = g.get_string(p + "rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    j["rope_scaling"] = {{"type", "linear"}, {"factor", g.get_float(p + "rope.scaling.factor").value_or(1.0)}};
  } else if (scaling != "none") {
    fail("GGUF {}: rope scaling '{}' is not supported (none, linear)", g.what(), scaling);
  }
  j["tie_word_embeddings"] = g.tensor("output.weight") == nullptr;
  j["attention_bias"] = g.tensor("blk.0.attn_q.bias") != nullptr;
  if (auto v = g.get_int("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = *v;
  if (auto v = g.get_int("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = *v;
  ModelConfig c = parse_model_config(j, "GGUF " + g.what());
  if (auto rd = g.get_int(p + "rope.dimension_count"); rd && *rd != c.head_dim)
    fail("GGUF {}: rope.dimension_count {} differs from head_dim {} (partial rotary is not supported)", g.what(), *rd,
         c.head_dim);
  if (auto vl = g.get_int(p + "attention.value_length"); vl && *vl != c.head_dim)
    fail("GGUF {}: attention.value_length {} differs from key_length {}", g.what(), *vl, c.head_dim);
  if (a.arch == Arch::kQwen2) c.qkv_bias = g.tensor("blk.0.attn_q.bias") != nullptr;
  if (const GgufTensor* rf = g.tensor("rope_freqs.weight")) {  // llama3-style scaling, as llama.cpp stores it
    if (rf->ne != std::vector<int64_t>{c.head_dim / 2} || rf->type != static_cast<uint32_t>(GgmlType::kF32))
      fail("GGUF {}: rope_freqs.weight must be F32 [{}] (info at byte {})", g.what(), c.head_dim / 2, rf->info_offset);
    if (c.rope.type != "default") fail("GGUF {}: rope_freqs.weight together with rope scaling '{}'", g.what(), c.rope.type);
    c.rope.type = "freq_factors";
    c.rope.freq_factors.resize(static_cast<size_t>(c.head_dim / 2));
    std::memcpy(c.rope.freq_factors.data(), rf->data, c.rope.freq_factors.size() * 4);
    for (float f : c.rope.freq_factors)
      if (!(f > 0.0f && std::isfinite(f))) fail("GGUF {}: rope_freqs.weight holds {}, must be positive", g.what(), f);
  }
  if (c.qkv_bias && a.arch != Arch::kQwen2) c.o_bias = g.tensor("blk.0.attn_output.bias") != nullptr;
  return c;
}

class GgufBinder {
 public:
  GgufBinder(const GgufFile& g, ModelWeights& w) : g_(g), w_(w) {}

  const GgufTensor& get(const std::string& name, std::vector<int64_t> ne) {
    const GgufTensor* t = g_.tensor(name);
    if (!t) fail("GGUF {}: missing tensor '{}'", g_.what(), name);
    if (t->ne != ne) {
      auto shape = [](const std::vector<int64_t>& v) {
        std::string s;
        for (int64_t x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
        return "[" + s + "]";
      };
      fail("GGUF {}: tensor '{}' has shape {} (innermost first), expected {}", g_.what(), name, shape(t->ne), shape(ne));
    }
    w_.total_bytes += t->n_bytes;
    return *t;
  }

  // A [rows, cols] matrix; `permute_heads` > 0 un-permutes llama's Q/K rows (head_dim rows each).
  MatView mat(const std::string& name, int64_t rows, int64_t cols, int64_t permute_head_dim = 0) {
    const GgufTensor& t = get(name, {cols, rows});
    const auto dt = dtype_of(t.type);
    if (!dt)
      fail("GGUF {}: tensor '{}' has type {}, not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)", g_.what(), name,
           ggml_type_info(t.type)->name);
    const int64_t rb = row_bytes(*dt, cols);
    const void* data = t.data;
    const size_t align = *dt == DType::kF32 ? 4 : 2;
    if (permute_head_dim > 0 || reinterpret_cast<uintptr_t>(data) % align != 0) {
      w_.owned.emplace_back(t.n_bytes + 64);
      uint8_t* dst = w_.owned.back().data();
      dst += (64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t src = permute_head_dim > 0 ? gguf_permuted_row(r, permute_head_dim) : r;
        std::memcpy(dst + r * rb, t.data + src * rb, static_cast<size_t>(rb));
      }
      data = dst;
    }
    dtypes_.insert(*dt);
    return MatView{data, *dt, rows, cols};
  }

  std::vector<float> vec(const std::string& name, int64_t n) {
    const GgufTensor& t = get(name, {n});
    const auto dt = dtype_of(t.type);
    if (!dt || dtype_block(*dt) > 1)
      fail("GGUF {}: vector '{}' has type {}; expected F32, F16 or BF16", g_.what(), name, ggml_type_info(t.type)->name);
    std::vector<uint8_t> aligned(t.data, t.data + t.n_bytes);  // the file's alignment may be 1
    std::vector<float> out(static_cast<size_t>(n));
    mat_row_to_f32(MatView{aligned.data(), *dt, 1, n}, 0, out.data());
    return out;
  }

  std::string dtype_summary() const {
    std::string s;
    for (DType d : dtypes_) s += (s.empty() ? "" : "+") + std::string(dtype_name(d));
    return s;
  }

 private:
  const GgufFile& g_;
  ModelWeights& w_;
  std::set<DType> dtypes_;
};

ModelWeights gguf_weights(const std::shared_ptr<GgufFile>& g, const ModelConfig& c, const ArchInfo& a) {
  ModelWeights w;
  GgufBinder b(*g, w);
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  w.embed = b.mat("token_embd.weight", c.vocab_size, H);
  w.lm_head = c.tie_embeddings ? w.embed : b.mat("output.weight", c.vocab_size, H);
  w.final_norm = b.vec("output_norm.weight", H);
  w.layers.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    L.wq = b.mat(p + "attn_q.weight", c.q_dim(), H, a.permute_qk ? c.head_dim : 0);
    L.wk = b.mat(p + "attn_k.weight", c.kv_dim(), H, a.permute_qk ? c.head_dim : 0);
    L.wv = b.mat(p + "attn_v.weight", c.kv_dim(), H);
    L.wo = b.mat(p + "attn_output.weight", H, c.q_dim());
    L.w_gate = b.mat(p + "ffn_gate.weight", I, H);
    L.w_up = b.mat(p + "ffn_up.weight", I, H);
    L.w_down = b.mat(p + "ffn_down.weight", H, I);
    L.attn_norm = b.vec(p + "attn_norm.weight", H);
    L.mlp_norm = b.vec(p + "ffn_norm.weight", H);
    if (c.qkv_bias) {
      L.bq = b.vec(p + "attn_q.bias", c.q_dim());
      L.bk = b.vec(p + "attn_k.bias", c.kv_dim());
      L.bv = b.vec(p + "attn_v.bias", c.kv_dim());
      if (a.permute_qk) {  // biases follow their rows
        auto unpermute = [&](std::vector<float>& v) {
          std::vector<float> o(v.size());
          for (size_t r = 0; r < v.size(); ++r) o[r] = v[gguf_permuted_row(static_cast<int64_t>(r), c.head_dim)];
          v.swap(o);
        };
        unpermute(L.bq);
        unpermute(L.bk);
      }
    }
    if (c.o_bias) L.bo = b.vec(p + "attn_output.bias", H);
    if (c.qk_norm) {
      L.q_norm = b.vec(p + "attn_q_norm.weight", c.head_dim);
      L.k_norm = b.vec(p + "attn_k_norm.weight", c.head_dim);
    }
  }
  w.dtype_summary = b.dtype_summary();
  if (g->map()) w.maps.push_back(g->map());
  w.keep_alive = g;
  return w;
}

// Byte-level BPE (tokenizer.ggml.model "gpt2"): the metadata is turned into the equivalent
// tokenizer.json and read by HfTokenizer, so both formats share one encoder. The pre-tokenizer
// comes from tokenizer.ggml.pre with the regexes of the original tokenizer.json files (and of
// llama.cpp's llm_tokenizer_bpe for the same names).
std::unique_ptr<Tokenizer> gguf_bpe_tokenizer(const GgufFile& g, int64_t n_vocab_model) {
  const GgufValue* tok = g.get_array("tokenizer.ggml.tokens", GgufType::kString);
  const GgufValue* mer = g.get_array("tokenizer.ggml.merges", GgufType::kString);
  if (!tok || !mer) fail("GGUF {}: a gpt2 tokenizer needs tokenizer.ggml.tokens and tokenizer.ggml.merges", g.what());
  const auto tokens = g.strings(*tok);
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0 || n > n_vocab_model)
    fail("GGUF {}: tokenizer.ggml.tokens has {} entries; the model's vocabulary is {}", g.what(), n, n_vocab_model);
  std::vector<double> types(static_cast<size_t>(n), 1.0);
  if (const GgufValue* t = g.get_array("tokenizer.ggml.token_type", GgufType::kI32)) {
    if (static_cast<int64_t>(t->count) != n)
      fail("GGUF {}: tokenizer.ggml.token_type has {} entries, tokens {}", g.what(), t->count, n);
    types = g.numbers(*t);
  }
  const std::string pre = g.get_string("tokenizer.ggml.pre").value_or("default");
  static const char* const kLlama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static const char* const kQwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static const char* const kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
  std::string regex;
  bool ignore_merges = false, nfc = false;
  if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3") {
    regex = kLlama3;
    ignore_merges = true;
  } else if (pre == "qwen2") {
    regex = kQwen2;
    nfc = true;
  } else if (pre == "gpt-2" || pre == "default") {
    regex = kGpt2;
  } else {
    fail("GGUF {}: tokenizer.ggml.pre '{}' is not supported (llama3/llama-bpe, qwen2, gpt-2)", g.what(), pre);
  }
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) {
    if (vocab.contains(tokens[i])) fail("GGUF {}: token {} ('{}') appears twice", g.what(), i, tokens[i]);
    vocab[tokens[i]] = i;
    const int type = static_cast<int>(types[i]);
    if (type < 1 || type > 6) fail("GGUF {}: token {} has type {} (expected 1..6)", g.what(), i, types[i]);
    if (type == 3 || type == 4)  // control and user-defined tokens match before pre-tokenization
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", type == 3}});
  }
  nlohmann::json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", g.strings(*mer)}, {"ignore_merges", ignore_merges},
                {"byte_fallback", false}, {"fuse_unk", false}, {"unk_token", nullptr}, {"dropout", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}};
  j["normalizer"] = nfc ? nlohmann::json{{"type", "NFC"}} : nlohmann::json(nullptr);
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["added_tokens"] = added;
  j["post_processor"] = nullptr;
  auto t = std::make_unique<HfTokenizer>(j, "GGUF " + g.what());
  auto id = [&](const char* key) -> int32_t {
    const auto x = g.get_int(key);
    if (!x) return -1;
    if (*x < 0 || *x >= n) fail("GGUF {}: {} = {} is outside the {} tokens", g.what(), key, *x, n);
    return static_cast<int32_t>(*x);
  };
  id("tokenizer.ggml.eos_token_id");
  id("tokenizer.ggml.unknown_token_id");
  id("tokenizer.ggml.padding_token_id");
  t->bos_id = id("tokenizer.ggml.bos_token_id");
  t->add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(t->bos_id >= 0 && pre != "qwen2");
  t->add_eos = g.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  return t;
}

}  // namespace

// SentencePiece vocabulary from tokenizer.ggml.* (model "llama"), or byte-level BPE ("gpt2").
std::unique_ptr<Tokenizer> gguf_tokenizer(const GgufFile& g, int64_t n_vocab_model) {
  const auto model = g.get_string("tokenizer.ggml.model");
  if (!model) fail("GGUF {}: no tokenizer (tokenizer.ggml.model missing)", g.what());
  if (*model == "gpt2") return gguf_bpe_tokenizer(g, n_vocab_model);
  if (*model != "llama")
    fail("GGUF {}: tokenizer.ggml.model '{}' is not supported yet (supported: llama, gpt2)", g.what(), *model);
  const GgufValue* tok = g.get_array("tokenizer.ggml.tokens", GgufType::kString);
  if (!tok) fail("GGUF {}: missing tokenizer.ggml.tokens", g.what());
  SpmVocab v;
  v.pieces = g.strings(*tok);
  const int64_t n = static_cast<int64_t>(v.pieces.size());
  if (n == 0 || n > n_vocab_model)
    fail("GGUF {}: tokenizer.ggml.tokens has {} entries; the model's vocabulary is {}", g.what(), n, n_vocab_model);
  v.scores.assign(static_cast<size_t>(n), 0.0f);
  if (const GgufValue* s = g.get_array("tokenizer.ggml.scores", GgufType::kF32)) {
    if (static_cast<int64_t>(s->count) != n)
      fail("GGUF {}: tokenizer.ggml.scores has {} entries, tokens {}", g.what(), s->count, n);
    const auto nums = g.numbers(*s);
    for (int64_t i = 0; i < n; ++i) v.scores[i] = static_cast<float>(nums[i]);
  }
  v.types.assign(static_cast<size_t>(n), PieceType::kNormal);
  if (const GgufValue* t = g.get_array("tokenizer.ggml.token_type", GgufType::kI32)) {
    if (static_cast<int64_t>(t->count) != n)
      fail("GGUF {}: tokenizer.ggml.token_type has {} entries, tokens {}", g.what(), t->count, n);
    const auto nums = g.numbers(*t);
    for (int64_t i = 0; i < n; ++i) {
      if (nums[i] < 1 || nums[i] > 6) fail("GGUF {}: token {} has type {} (expected 1..6)", g.what(), i, nums[i]);
      v.types[i] = static_cast<PieceType>(static_cast<int>(nums[i]));
    }
  }
  auto id = [&](const char* key, int32_t dflt) {
    const auto x = g.get_int(key);
    if (!x) return dflt;
    if (*x < 0 || *x >= n) fail("GGUF {}: {} = {} is outside the {} tokens", g.what(), key, *x, n);
    return static_cast<int32_t>(*x);
  };
  v.unk_id = id("tokenizer.ggml.unknown_token_id", 0);
  v.bos_id = id("tokenizer.ggml.bos_token_id", 1);
  v.eos_id = id("tokenizer.ggml.eos_token_id", 2);
  v.pad_id = id("tokenizer.ggml.padding_token_id", -1);
  v.add_dummy_prefix = g.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  v.remove_extra_whitespaces = g.get_bool("tokenizer.ggml.remove_extra_whitespaces").value_or(false);
  v.byte_fallback = std::find(v.types.begin(), v.types.end(), PieceType::kByte) != v.types.end();
  auto t = std::make_unique<SpmTokenizer>(std::move(v));
  t->bos_id = t->vocab().bos_id;
  t->add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
  t->add_eos = g.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  return t;
}

int64_t gguf_permuted_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, l = r % head_dim, half = head_dim / 2;
  return h * head_dim + (l % half) * 2 + l / half;
}

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char m[4] = {};
  in.read(m, 4);
  return in.gcount() == 4 && std::memcmp(m, "GGUF", 4) == 0;
}

std::unique_ptr<Model> load_gguf_model(const std::string& path, MatMath math) {
  std::shared_ptr<GgufFile> g = GgufFile::open(path);
  const auto arch_name = g->get_string("general.architecture");
  if (!arch_name) fail("GGUF {}: missing metadata key 'general.architecture'", path);
  const ArchInfo& a = arch_by_gguf(*arch_name, path);
  auto m = std::make_unique<Model>();
  m->path = path;
  m->config = gguf_config(*g, a);
  // Identity for the layer cache: the whole header (metadata and tensor infos).
  std::ifstream in(path, std::ios::binary);
  std::vector<char> head(static_cast<size_t>(std::min<uint64_t>(g->data_offset(), 1ull << 30)));
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  m->identity = fnv1a(kFnvOffset, head.data(), head.size());
  m->transformer = std::make_unique<Transformer>(m->config, gguf_weights(g, m->config, a), math);
  m->eos_ids = m->config.eos_ids;
  // A tokenizer we cannot read yet leaves the model usable with token ids; a SentencePiece
  // vocabulary that is present but inconsistent (ids past the end, wrong array lengths) is a
  // corrupt file and fails the load.
  const auto tok_model = g->get_string("tokenizer.ggml.model");
  if (!tok_model) {
    m->tokenizer_error = fmt::format("GGUF {}: no tokenizer (tokenizer.ggml.model missing)", path);
  } else if (*tok_model != "llama" && *tok_model != "gpt2") {
    m->tokenizer_error =
        fmt::format("GGUF {}: tokenizer.ggml.model '{}' is not supported yet (supported: llama, gpt2)", path, *tok_model);
  } else {
    m->tokenizer = gguf_tokenizer(*g, m->config.vocab_size);
  }
  m->chat_template = g->get_string("tokenizer.chat_template").value_or("");
  if (!m->tokenizer) m->tokenizer_error += " (use --prompt-ids to pass token ids directly)";
  for (int32_t e : m->eos_ids)
    if (e < 0 || e >= m->config.vocab_size) fail("GGUF {}: eos token id {} is outside the vocabulary", path, e);
  return m;
}

}  // namespace swift
