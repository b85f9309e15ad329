#include "model/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/check.h"

namespace swift {

namespace {

using nlohmann::json;

// Upper bounds that no real LLaMA-family model reaches; they keep every derived size
// (weights, KV cache) far away from integer overflow.
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxHidden = 1 << 17;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxPositions = 1 << 24;

int64_t get_int(const json& j, const char* key, const std::string& src, int64_t lo, int64_t hi) {
  if (!j.contains(key) || j[key].is_null()) fail("{}: missing '{}'", src, key);
  const json& v = j[key];
  if (!v.is_number_integer()) fail("{}: '{}' must be an integer, got {}", src, key, v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) fail("{}: '{}' = {} is out of range [{}, {}]", src, key, x, lo, hi);
  return x;
}

double get_num(const json& j, const char* key, const std::string& src, double dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number()) fail("{}: '{}' must be a number, got {}", src, key, j[key].dump());
  return j[key].get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) fail("{}: '{}' must be true or false, got {}", src, key, j[key].dump());
  return j[key].get<bool>();
}

std::vector<int32_t> get_ids(const json& j, const char* key) {
  std::vector<int32_t> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  if (j[key].is_number_integer()) out.push_back(j[key].get<int32_t>());
  if (j[key].is_array())
    for (const auto& v : j[key])
      if (v.is_number_integer()) out.push_back(v.get<int32_t>());
  return out;
}

void parse_rope(const json& j, ModelConfig& c, const std::string& src) {
  // Newer transformers: "rope_parameters": {"rope_type", "rope_theta", ...}. Older:
  // "rope_theta" at top level and an optional "rope_scaling" dict ("type" or "rope_type").
  json params = json::object();
  double theta = get_num(j, "rope_theta", src, 10000.0);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    params = j["rope_parameters"];
    theta = get_num(params, "rope_theta", src, theta);
  } else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    params = j["rope_scaling"];
  } else if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    fail("{}: 'rope_scaling' must be an object or null, got {}", src, j["rope_scaling"].dump());
  }
  std::string type = "default";
  for (const char* k : {"rope_type", "type"})
    if (params.contains(k) && params[k].is_string()) {
      type = params[k].get<std::string>();
      break;
    }
  if (type != "default" && type != "linear" && type != "dynamic" && type != "llama3")
    fail("{}: unsupported rope type '{}' (supported: default, linear, dynamic, llama3)", src, type);
  if (!(theta > 0.0)) fail("{}: rope_theta must be positive, got {}", src, theta);
  RopeParams& r = c.rope;
  r.type = type;
  r.theta = theta;
  r.rotary_dim = c.head_dim;
  if (type != "default") {
    r.factor = get_num(params, "factor", src, 0.0);
    if (!(r.factor >= 1.0)) fail("{}: rope '{}' needs factor >= 1, got {}", src, type, r.factor);
  }
  r.original_max_positions = c.max_positions;
  if (params.contains("original_max_position_embeddings") &&
      params["original_max_position_embeddings"].is_number_integer())
    r.original_max_positions = params["original_max_position_embeddings"].get<int64_t>();
  if (type == "llama3") {
    r.low_freq_factor = get_num(params, "low_freq_factor", src, 1.0);
    r.high_freq_factor = get_num(params, "high_freq_factor", src, 4.0);
    if (!(r.high_freq_factor > r.low_freq_factor))
      fail("{}: llama3 rope needs high_freq_factor > low_freq_factor ({} vs {})", src,
           r.high_freq_factor, r.low_freq_factor);
    if (r.original_max_positions <= 0)
      fail("{}: llama3 rope needs original_max_position_embeddings > 0", src);
  }
  if (type == "dynamic" && r.original_max_positions <= 0)
    fail("{}: dynamic rope needs max_position_embeddings > 0", src);
}

// Which layers use sliding-window attention, as transformers decides it.
void parse_sliding(const json& j, ModelConfig& c, const std::string& src) {
  c.sliding_window.assign(c.n_layer, 0);
  int64_t window = 0;
  if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    window = get_int(j, "sliding_window", src, 1, kMaxPositions);
  }
  if (c.arch == Arch::kQwen2 || c.arch == Arch::kQwen3) {
    if (!get_bool(j, "use_sliding_window", src, false)) window = 0;
  }
  if (window == 0) return;
  if (j.contains("layer_types") && j["layer_types"].is_array()) {
    const auto& lt = j["layer_types"];
    if (static_cast<int64_t>(lt.size()) != c.n_layer)
      fail("{}: 'layer_types' has {} entries, num_hidden_layers is {}", src, lt.size(), c.n_layer);
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const std::string t = lt[l].is_string() ? lt[l].get<std::string>() : "";
      if (t == "sliding_attention") c.sliding_window[l] = window;
      else if (t != "full_attention") fail("{}: unsupported layer type '{}' at layer {}", src, t, l);
    }
    return;
  }
  if (c.arch == Arch::kMistral || c.arch == Arch::kLlama) {
    c.sliding_window.assign(c.n_layer, window);
  } else {  // Qwen2/3 without layer_types: layers >= max_window_layers slide
    const int64_t mwl = j.contains("max_window_layers") ? get_int(j, "max_window_layers", src, 0, kMaxLayers) : 0;
    for (int64_t l = mwl; l < c.n_layer; ++l) c.sliding_window[l] = window;
  }
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: expected a JSON object", src);
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  else if (j.contains("model_type") && j["model_type"].is_string())
    arch = j["model_type"].get<std::string>();
  if (arch == "LlamaForCausalLM" || arch == "llama") c.arch = Arch::kLlama;
  else if (arch == "MistralForCausalLM" || arch == "mistral") c.arch = Arch::kMistral;
  else if (arch == "Qwen2ForCausalLM" || arch == "qwen2") c.arch = Arch::kQwen2;
  else if (arch == "Qwen3ForCausalLM" || arch == "qwen3") c.arch = Arch::kQwen3;
  else
    fail("{}: unsupported architecture '{}' (supported: LlamaForCausalLM, MistralForCausalLM, "
         "Qwen2ForCausalLM, Qwen3ForCausalLM)", src, arch.empty() ? "<none>" : arch);
  c.arch_name = arch;

  c.vocab_size = get_int(j, "vocab_size", src, 1, kMaxVocab);
  c.hidden_size = get_int(j, "hidden_size", src, 1, kMaxHidden);
  c.intermediate_size = get_int(j, "intermediate_size", src, 1, 8 * kMaxHidden);
  c.n_layer = get_int(j, "num_hidden_layers", src, 1, kMaxLayers);
  c.n_head = get_int(j, "num_attention_heads", src, 1, kMaxHeads);
  c.n_kv_head = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                    ? get_int(j, "num_key_value_heads", src, 1, kMaxHeads)
                    : c.n_head;
  if (c.n_head % c.n_kv_head != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", src, c.n_head, c.n_kv_head);
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_int(j, "head_dim", src, 2, 4096);
  } else {
    if (c.hidden_size % c.n_head != 0)
      fail("{}: hidden_size {} is not divisible by num_attention_heads {}", src, c.hidden_size, c.n_head);
    c.head_dim = c.hidden_size / c.n_head;
  }
  if (c.head_dim % 2 != 0) fail("{}: head_dim {} must be even for rotary embeddings", src, c.head_dim);
  if (c.q_dim() > 8 * kMaxHidden) fail("{}: num_attention_heads * head_dim = {} is too large", src, c.q_dim());
  c.max_positions = get_int(j, "max_position_embeddings", src, 1, kMaxPositions);
  const double eps = get_num(j, "rms_norm_eps", src, 1e-6);
  if (!(eps > 0.0 && eps < 1.0)) fail("{}: rms_norm_eps must be in (0, 1), got {}", src, eps);
  c.rms_eps = static_cast<float>(eps);

  std::string act = j.contains("hidden_act") && j["hidden_act"].is_string() ? j["hidden_act"].get<std::string>() : "silu";
  if (act != "silu") fail("{}: unsupported hidden_act '{}' (only silu)", src, act);

  c.tie_embeddings = get_bool(j, "tie_word_embeddings", src, false);
  const bool attn_bias = get_bool(j, "attention_bias", src, false);
  c.qkv_bias = c.arch == Arch::kQwen2 || attn_bias;
  c.o_bias = (c.arch == Arch::kLlama || c.arch == Arch::kMistral) && attn_bias;
  c.mlp_bias = get_bool(j, "mlp_bias", src, false);
  c.qk_norm = c.arch == Arch::kQwen3;
  parse_rope(j, c, src);
  parse_sliding(j, c, src);
  c.bos_ids = get_ids(j, "bos_token_id");
  c.eos_ids = get_ids(j, "eos_token_id");
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot open model config '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{}: not valid JSON", path);
  return parse_model_config(j, path);
}

}  // namespace swift
