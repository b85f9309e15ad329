// `swiftllm info`: what a model is and what it costs in memory.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include <fmt/format.h>

#include "cli/common.h"
#include "engine/generation.h"
#include "model/gguf_model.h"
#include "util/cpu_features.h"

namespace swift::cli {

namespace {

struct InfoArgs {
  std::string model;
  std::string math = "auto";
  bool json = false;
};

// Metadata and tensor table of a GGUF file.
nlohmann::json gguf_listing(const GgufFile& g) {
  nlohmann::json meta = nlohmann::json::object(), tensors = nlohmann::json::array();
  for (const auto& [k, v] : g.kv()) {
    switch (v.type) {
      case GgufType::kString: meta[k] = v.str; break;
      case GgufType::kBool: meta[k] = v.b; break;
      case GgufType::kF32: case GgufType::kF64: meta[k] = v.f; break;
      case GgufType::kArray:
        meta[k] = fmt::format("[{} x {}]", v.count, gguf_type_name(v.elem));
        break;
      default: meta[k] = v.type == GgufType::kU64 ? nlohmann::json(v.u) : nlohmann::json(v.i); break;
    }
  }
  for (const auto& t : g.tensors())
    tensors.push_back({{"name", t.name}, {"type", ggml_type_info(t.type)->name}, {"shape", t.ne}, {"bytes", t.n_bytes}});
  return {{"version", g.version()}, {"alignment", g.alignment()}, {"metadata", meta}, {"tensors", tensors}};
}

void run(const InfoArgs& a) {
  nlohmann::json gguf;
  if (is_gguf_file(a.model)) gguf = gguf_listing(*GgufFile::open(a.model));
  auto model = load_model(a.model, parse_math(a.math));
  const ModelConfig& c = model->config;
  const auto& w = model->transformer->weights();
  // K and V per slot: f32, or bf16 only for bf16 attention (model/kv_cache.h: enable_bf16_only).
  const bool kv_bf16 = model->transformer->bf16_attention();
  const uint64_t kv_bytes =
      static_cast<uint64_t>(2 * c.n_layer * (c.max_positions + kScratchSlots) * c.kv_dim()) * (kv_bf16 ? 2 : 4);
  const int64_t n_params = c.matmul_weights() + (c.tie_embeddings ? 0 : c.vocab_size * c.hidden_size);
  int64_t n_sliding = 0;
  for (auto s : c.sliding_window) n_sliding += s > 0;
  nlohmann::json j = {
      {"path", model->path},
      {"architecture", c.arch_name},
      {"parameters", n_params},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"n_layer", c.n_layer},
      {"n_head", c.n_head},
      {"n_kv_head", c.n_kv_head},
      {"head_dim", c.head_dim},
      {"max_positions", c.max_positions},
      {"rope", {{"type", c.rope.type}, {"theta", c.rope.theta}, {"factor", c.rope.factor}}},
      {"sliding_window_layers", n_sliding},
      {"tied_embeddings", c.tie_embeddings},
      {"weight_dtype", w.dtype_summary},
      {"weight_bytes", w.total_bytes},
      {"kv_cache_bytes_full_context", kv_bytes},
      {"resident_bytes_after_load", resident_bytes()},
      {"tokenizer", model->tokenizer ? "sentencepiece" : "none: " + model->tokenizer_error},
      {"identity", fmt::format("{:016x}", model->identity)},
      {"build", build_variant()},
  };
  if (!gguf.is_null()) j["gguf"] = gguf;
  if (a.json) {
    std::puts(j.dump(2).c_str());
    return;
  }
  std::printf("model        %s\n", model->path.c_str());
  std::printf("architecture %s, %.1fM parameters, weights %s (%.1f MiB, memory-mapped), math %s\n", c.arch_name.c_str(),
              n_params / 1e6, w.dtype_summary.c_str(), w.total_bytes / 1048576.0,
              model->transformer->math_description().c_str());
  std::printf("layers       %lld, hidden %lld, mlp %lld, heads %lld (kv %lld, head_dim %lld)\n",
              static_cast<long long>(c.n_layer), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(c.n_head),
              static_cast<long long>(c.n_kv_head), static_cast<long long>(c.head_dim));
  std::printf("vocab        %lld, context %lld, rope %s theta %g, %lld sliding-window layers, %s embeddings\n",
              static_cast<long long>(c.vocab_size), static_cast<long long>(c.max_positions), c.rope.type.c_str(),
              c.rope.theta, static_cast<long long>(n_sliding), c.tie_embeddings ? "tied" : "untied");
  std::printf("memory       KV cache at full context %.1f MiB (%s); resident after load %.1f MiB\n",
              kv_bytes / 1048576.0, kv_bf16 ? "bf16, for bf16 attention" : "f32", resident_bytes() / 1048576.0);
  std::printf("tokenizer    %s\n", j["tokenizer"].get<std::string>().c_str());
  std::printf("identity     %s\n", j["identity"].get<std::string>().c_str());
  std::printf("build        %s\n", build_description().c_str());
  if (gguf.is_null()) return;
  std::printf("\nGGUF v%u, alignment %llu, %zu metadata keys, %zu tensors\n", gguf["version"].get<unsigned>(),
              static_cast<unsigned long long>(gguf["alignment"].get<uint64_t>()), gguf["metadata"].size(),
              gguf["tensors"].size());
  for (const auto& [k, v] : gguf["metadata"].items()) {
    std::string s = v.is_string() ? v.get<std::string>() : v.dump();
    if (s.size() > 80) s = s.substr(0, 77) + "...";
    std::printf("  %-45s %s\n", k.c_str(), s.c_str());
  }
  std::printf("\n  %-36s %-6s %-18s %12s\n", "tensor", "type", "shape", "bytes");
  for (const auto& t : gguf["tensors"]) {
    std::string shape;
    for (const auto& d : t["shape"]) shape += (shape.empty() ? "" : " x ") + std::to_string(d.get<int64_t>());
    std::printf("  %-36s %-6s %-18s %12llu\n", t["name"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(),
                shape.c_str(), static_cast<unsigned long long>(t["bytes"].get<uint64_t>()));
  }
}

}  // namespace

void add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* c = app.add_subcommand("info", "Show a model's architecture, sizes, dtypes and memory use");
  c->add_option("-m,--model", a->model, "Model folder (Hugging Face layout) or GGUF file (also lists its metadata and tensors)")->required();
  add_math_option(*c, a->math);
  c->add_flag("--json", a->json, "Print JSON");
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
