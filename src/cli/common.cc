#include "cli/common.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "util/check.h"

namespace swift::cli {

std::vector<int32_t> parse_ids(const std::string& s, const char* option) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < INT32_MIN || v > INT32_MAX)
      fail("{}: '{}' is not an integer token id (expected a comma-separated list like 1,2,3)", option, item);
    out.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  return out;
}

uint64_t resident_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void add_math_option(CLI::App& app, std::string& value) {
  app.add_option("--math", value,
                 "How matrix products round: auto (default: q8 for quantized GGUF files - Q8_0, Q4_0 and "
                 "K-quant matrices - on CPUs with AVX2, as llama.cpp computes them; f32 for everything else), f32 "
                 "(every product in f32, as the float32 Hugging Face reference; with BF16 weights on AMX tiles the prompt prefill splits each activation into three "
                 "bf16 parts that sum to it exactly: as accurate, ~1.8x faster on the demo model) or bf16 (BF16 "
                 "weight matrices times activations rounded to bf16, as llama.cpp does; on AMX tiles where the CPU "
                 "has them (Intel Sapphire Rapids and later: a 16-token pass ~1.5-1.6x one token instead of ~4x, "
                 "prefill ~2x faster than f32), else AVX-512 BF16 dot products (AMD Zen 4 and later), attention "
                 "included; logits within 0.2 of f32 on the "
                 "demo model; BF16 models only; `info` and `bench` name the kernel) or q8 (Q8_0, Q4_0, Q4_K, "
                 "Q5_K and Q6_K weight matrices times activations quantized to 8 bits per block (32 for Q8_0/Q4_0, "
                 "256 for the K-quants), with integer dot products, as llama.cpp computes quantized models: decoding "
                 "of Q8_0 files "
                 "1.3-1.7x faster than f32 math on the demo model; other matrices as in f32; attention in bf16 "
                 "over a bf16 KV cache where the CPU has AVX-512 BF16, as llama.cpp keeps an f16 cache (half the "
                 "cache memory, ~20% faster decoding of Q4_K_M; `info` and `bench` name the kernels); models with "
                 "such matrices only)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "q8"}));
}

MatMath parse_math(const std::string& value) {
  if (value == "f32") return MatMath::kF32;
  if (value == "bf16") return MatMath::kBf16;
  if (value == "q8") return MatMath::kQ8;
  if (value == "auto") return MatMath::kAuto;
  fail("--math must be auto, f32, bf16 or q8, not '{}'", value);
}

void PromptOptions::add_to(CLI::App& app) {
  app.add_option("-p,--prompt", text, "Prompt text (BOS added as the tokenizer config says)");
  app.add_option("-f,--file", file, "Read the prompt text from a file");
  app.add_option("--prompt-ids", ids, "Prompt as comma-separated token ids, used verbatim (no BOS added)");
  app.add_flag("--no-bos", no_bos, "Do not add BOS to a text prompt");
}

std::vector<int32_t> PromptOptions::resolve(const Model& model) const {
  const int given = !text.empty() + !file.empty() + !ids.empty();
  if (given != 1) fail("give exactly one of -p TEXT, -f FILE or --prompt-ids 1,2,3");
  if (!ids.empty()) return parse_ids(ids, "--prompt-ids");
  const std::string t = text.empty() ? read_file(file) : text;
  return model.tok().encode_with_specials(t, !no_bos);
}

}  // namespace swift::cli
