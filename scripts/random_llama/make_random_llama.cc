// Writes a LLaMA model with random BF16 weights as a Hugging Face folder (model.safetensors,
// config.json) for speed measurements on weights that do not fit in a cache, as real models do
// not: the demo model's 42 MB stay in a server CPU's last-level cache, which hides what a
// kernel does with weights streaming from DRAM (issue 6). Not a language model: its outputs are
// noise, so it measures speed only. Reproducible: a fixed seed, the same bytes on every run.
// Usage: make_random_llama DIR HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS (vocabulary 8000, the
// demo model's tokenizer, which scripts/random_llama/make copies in).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Tensor {
  std::string name;
  int64_t rows, cols;  // rows 1: a vector
  bool norm;           // RMSNorm weights: all ones
};

int64_t arg(char** argv, int i) {
  const int64_t v = std::strtoll(argv[i], nullptr, 10);
  if (v <= 0 || v > (int64_t{1} << 20)) throw std::invalid_argument(std::string("bad size: ") + argv[i]);
  return v;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s DIR HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int64_t H = arg(argv, 2), I = arg(argv, 3), L = arg(argv, 4), NH = arg(argv, 5), NKV = arg(argv, 6);
  constexpr int64_t V = 8000;
  if (H % NH != 0 || NH % NKV != 0) throw std::invalid_argument("HIDDEN must divide by HEADS, HEADS by KV_HEADS");
  const int64_t hd = H / NH;
  std::vector<Tensor> ts = {{"model.embed_tokens.weight", V, H, false}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back({p + "input_layernorm.weight", 1, H, true});
    ts.push_back({p + "post_attention_layernorm.weight", 1, H, true});
    ts.push_back({p + "self_attn.q_proj.weight", NH * hd, H, false});
    ts.push_back({p + "self_attn.k_proj.weight", NKV * hd, H, false});
    ts.push_back({p + "self_attn.v_proj.weight", NKV * hd, H, false});
    ts.push_back({p + "self_attn.o_proj.weight", H, NH * hd, false});
    ts.push_back({p + "mlp.gate_proj.weight", I, H, false});
    ts.push_back({p + "mlp.up_proj.weight", I, H, false});
    ts.push_back({p + "mlp.down_proj.weight", H, I, false});
  }
  ts.push_back({"model.norm.weight", 1, H, true});
  ts.push_back({"lm_head.weight", V, H, false});
  std::string header = "{";
  int64_t offset = 0;
  for (const Tensor& t : ts) {
    const int64_t bytes = t.rows * t.cols * 2;
    const std::string shape = t.rows == 1 ? "[" + std::to_string(t.cols) + "]"
                                          : "[" + std::to_string(t.rows) + "," + std::to_string(t.cols) + "]";
    header += "\"" + t.name + "\":{\"dtype\":\"BF16\",\"shape\":" + shape + ",\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + bytes) + "]},";
    offset += bytes;
  }
  header.back() = '}';
  while (header.size() % 8 != 0) header += ' ';
  FILE* f = std::fopen((dir + "/model.safetensors").c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + dir + "/model.safetensors");
  const uint64_t n = header.size();
  std::fwrite(&n, 8, 1, f);
  std::fwrite(header.data(), 1, n, f);
  std::mt19937 rng(1);
  std::vector<uint16_t> buf;
  for (const Tensor& t : ts) {
    buf.resize(static_cast<size_t>(t.rows * t.cols));
    // Uniform in +-1.7/sqrt(cols): activations keep their scale through the layers.
    const float scale = 1.7f / std::sqrt(static_cast<float>(t.cols));
    for (uint16_t& v : buf) {
      const float x =
          t.norm ? 1.0f : static_cast<float>(static_cast<int32_t>(rng() >> 8) - (1 << 23)) * (scale / (1 << 23));
      uint32_t u;
      std::memcpy(&u, &x, 4);
      v = static_cast<uint16_t>((u + 0x8000u) >> 16);  // to bf16, rounded (no NaN or overflow here)
    }
    if (std::fwrite(buf.data(), 2, buf.size(), f) != buf.size()) throw std::runtime_error("short write");
  }
  if (std::fclose(f) != 0) throw std::runtime_error("cannot close model.safetensors");
  FILE* c = std::fopen((dir + "/config.json").c_str(), "w");
  if (!c) throw std::runtime_error("cannot write " + dir + "/config.json");
  std::fprintf(c,
               "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":%lld,"
               "\"hidden_size\":%lld,\"intermediate_size\":%lld,\"num_hidden_layers\":%lld,"
               "\"num_attention_heads\":%lld,\"num_key_value_heads\":%lld,\"head_dim\":%lld,\"hidden_act\":\"silu\","
               "\"max_position_embeddings\":1024,\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"rope_scaling\":null,"
               "\"attention_bias\":false,\"mlp_bias\":false,\"tie_word_embeddings\":false,\"bos_token_id\":1,"
               "\"eos_token_id\":2,\"torch_dtype\":\"bfloat16\"}\n",
               static_cast<long long>(V), static_cast<long long>(H), static_cast<long long>(I),
               static_cast<long long>(L), static_cast<long long>(NH), static_cast<long long>(NKV),
               static_cast<long long>(hd));
  std::fclose(c);
  std::printf("wrote %s: %lld layers, hidden %lld, intermediate %lld, %.1f MB of BF16 weights\n", dir.c_str(),
              static_cast<long long>(L), static_cast<long long>(H), static_cast<long long>(I), offset / 1e6);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_random_llama: %s\n", e.what());
  return 1;
}
