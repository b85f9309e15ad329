// Encode throughput of our tokenizers on the benchmark prompts (Google Benchmark).
// Run: build/release/bench/tokenizer_bench   (reports bytes/s as MB/s)
#include <benchmark/benchmark.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include "model/hf_tokenizer.h"
#include "model/spm_tokenizer.h"

namespace {

std::string corpus() {
  std::string all;
  for (const char* f : {"code.jsonl", "docs.jsonl"}) {
    std::ifstream in(std::string(SWIFT_TEST_DATA) + "/" + f);
    std::string line;
    while (std::getline(in, line)) all += nlohmann::json::parse(line)["text"].get<std::string>();
  }
  return all;
}

const std::string& text() {
  static const std::string t = corpus();
  return t;
}

void run(benchmark::State& state, const swift::Tokenizer& tok) {
  size_t n_ids = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text());
    n_ids = ids.size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
  state.counters["tokens"] = static_cast<double>(n_ids);
}

void BM_SentencePieceDemoModel(benchmark::State& state) {
  static swift::SpmTokenizer tok(swift::load_spm_model(std::string(SWIFT_MODELS_DIR) + "/swift-mini-24L/tokenizer.model"));
  run(state, tok);
}
BENCHMARK(BM_SentencePieceDemoModel);

void BM_SentencePieceLlama2(benchmark::State& state) {
  static swift::SpmTokenizer tok(swift::load_spm_model(std::string(SWIFT_TEST_DATA) + "/tokenizers/llama2.model"));
  run(state, tok);
}
BENCHMARK(BM_SentencePieceLlama2);

void BM_ByteLevelBpeLlama3Style(benchmark::State& state) {
  static auto tok = swift::load_hf_tokenizer(std::string(SWIFT_TEST_DATA) + "/tokenizers/llama3-style/tokenizer.json");
  run(state, *tok);
}
BENCHMARK(BM_ByteLevelBpeLlama3Style);

// The reference library on the same text, for scale.
void BM_LibSentencePieceLlama2(benchmark::State& state) {
  static sentencepiece::SentencePieceProcessor sp;
  static bool loaded = sp.Load(std::string(SWIFT_TEST_DATA) + "/tokenizers/llama2.model").ok();
  if (!loaded) state.SkipWithError("cannot load llama2.model");
  for (auto _ : state) {
    std::vector<int> ids;
    sp.Encode(text(), &ids).IgnoreError();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}
BENCHMARK(BM_LibSentencePieceLlama2);

}  // namespace

BENCHMARK_MAIN();
