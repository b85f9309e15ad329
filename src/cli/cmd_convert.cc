// `swiftllm convert`: a Hugging Face model folder (or a GGUF file) to a GGUF file that
// llama.cpp loads, with llama.cpp's key and tensor names (src/model/gguf_model.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/common.h"
#include "model/gguf_model.h"
#include "util/check.h"
#include "util/timer.h"

namespace swift::cli {

namespace {

struct ConvertArgs {
  std::string in, out, type = "f16";
  bool force = false, no_tokenizer = false;
};

// The --type names: a DType, and for the _M names llama.cpp's Q6_K mix on top of it.
DType parse_type(const std::string& t, bool* k_mix) {
  *k_mix = t == "q4_k_m" || t == "q5_k_m";
  if (t == "q4_k_m") return DType::kQ4_K;
  if (t == "q5_k_m") return DType::kQ5_K;
  if (t == "f32") return DType::kF32;
  if (t == "f16") return DType::kF16;
  if (t == "bf16") return DType::kBF16;
  if (t == "q8_0") return DType::kQ8_0;
  if (t == "q4_0") return DType::kQ4_0;
  if (t == "q4_k") return DType::kQ4_K;
  if (t == "q5_k") return DType::kQ5_K;
  if (t == "q6_k") return DType::kQ6_K;
  fail("unknown --type '{}' (f32, f16, bf16, q8_0, q4_0, q4_k, q4_k_m, q5_k, q5_k_m, q6_k)", t);
}

void run(const ConvertArgs& a) {
  namespace fs = std::filesystem;
  bool k_mix = false;
  const DType type = parse_type(a.type, &k_mix);
  if (fs::exists(a.out) && !a.force) fail("'{}' exists; pass --force to overwrite it", a.out);
  auto model = load_model(a.in);
  ConvertOptions opt;
  opt.type = type;
  opt.k_mix = k_mix;
  opt.with_tokenizer = !a.no_tokenizer;
  const double t0 = now_ms();
  const bool tty = isatty(2) != 0;
  opt.note = [&](const std::string& s) { std::fprintf(stderr, "%snote: %s\n", tty ? "\r" : "", s.c_str()); };
  opt.progress = [&](size_t i, size_t n, const std::string& name) {
    if (tty) {
      std::fprintf(stderr, "\r[%zu/%zu] %-40s", i + 1, n, name.c_str());
    } else if (i % std::max<size_t>(1, n / 10) == 0) {  // logs: about ten lines
      std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, n, name.c_str());
    }
    std::fflush(stderr);
  };
  // Written next to the target and renamed at the end: an interrupted conversion never leaves a
  // truncated file under the requested name.
  const std::string part = a.out + ".part";
  try {
    write_gguf(*model, part, opt);
  } catch (...) {
    std::error_code ec;
    fs::remove(part, ec);
    throw;
  }
  fs::rename(part, a.out);
  std::fprintf(stderr, "%swrote %s (%s, %.1f MiB) in %.1f s%s\n", tty ? "\r" : "", a.out.c_str(), a.type.c_str(),
               static_cast<double>(fs::file_size(a.out)) / 1048576.0, (now_ms() - t0) / 1000.0,
               tty ? "                              " : "");
}

}  // namespace

void add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* c = app.add_subcommand("convert", "Write a model as a GGUF file (llama.cpp's format)");
  c->add_option("input", a->in, "Hugging Face model folder (or GGUF file to re-encode)")->required();
  c->add_option("output", a->out, "GGUF file to write")->required();
  c->add_option("--type", a->type,
                "Type of the large matrices: f32, f16 (default), bf16, q8_0, q4_0, q4_k, q5_k, q6_k, or "
                "llama.cpp's mixes q4_k_m and q5_k_m (Q4_K / Q5_K with Q6_K for the LM head and for attn_v and "
                "ffn_down of the first and last eighth of the layers and every third between); norms and biases "
                "stay F32 (rows that are not whole blocks - 32 weights, 256 for k-quants - fall back to q8_0 or "
                "f16, and each fallback is reported)");
  c->add_flag("--force", a->force, "Overwrite the output file if it exists");
  c->add_flag("--no-tokenizer", a->no_tokenizer, "Write the weights only (for models without a SentencePiece tokenizer)");
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
