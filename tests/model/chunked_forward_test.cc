// Transformer::forward runs a causal batch longer than chunk_tokens() as consecutive chunks
// (model/transformer.h). The chunks must give the bits of one batch: every logit row, in the
// caller's order, and the cache they leave behind (checked through the pass that follows). On the
// demo model with f32 math and, where the CPU has AVX-512 BF16, bf16 math (its products and
// attention kernels differ); on a sliding-window model, whose lists skip slots by position.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "model/model.h"
#include "model_fixtures.h"
#include "ops/bf16_dot.h"

namespace swift {

namespace {

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

// Logits of `b` (a fresh cache) with the transformer's chunk size set to `chunk`, then of one
// token decoded after it (reads every slot the batch wrote), appended. The batch must run in
// `chunks` passes.
std::vector<float> run(Model& m, const ForwardBatch& b, int64_t chunk, int64_t chunks) {
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  KvCache cache(m.config, b.n_prefix + n + 1);
  const SkipPlan plan = SkipPlan::none(m.config.n_layer);
  std::vector<float> logits, next;
  if (b.n_prefix > 0) {  // a committed prefix before the batch (one batch, never chunked here)
    std::vector<int32_t> pre(static_cast<size_t>(b.n_prefix));
    for (int64_t i = 0; i < b.n_prefix; ++i) pre[i] = static_cast<int32_t>(7 + i % 50);
    m.transformer->forward(ForwardBatch::causal(pre, 0, false), cache, plan, pool(), next);
  }
  m.transformer->set_chunk_tokens_for_test(chunk);
  m.transformer->forward(b, cache, plan, pool(), logits);
  EXPECT_EQ(m.transformer->last_chunks(), chunks) << n << " tokens, chunks of at most " << chunk;
  m.transformer->set_chunk_tokens_for_test(Transformer::kChunkTokens);
  m.transformer->forward(ForwardBatch::causal({b.tokens[0]}, b.n_prefix + n, true), cache, plan, pool(), next);
  logits.insert(logits.end(), next.begin(), next.end());
  return logits;
}

std::vector<int32_t> prompt_ids(int64_t n) {
  std::vector<int32_t> ids;
  for (const auto& c : test::reference_cases())
    for (int32_t t : c["prompt_ids"].get<std::vector<int32_t>>())
      if (static_cast<int64_t>(ids.size()) < n) ids.push_back(t);
  return ids;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_GT(a.size(), 0u) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

void check_model(Model& m, const std::string& name) {
  const auto ids = prompt_ids(150);
  ASSERT_EQ(ids.size(), 150u);
  // A prompt prefill (last row's logits): chunks of 37-38 tokens, all past kPrefillGemmMin, so
  // every chunk takes the prompt products as the whole batch does.
  ForwardBatch pre = ForwardBatch::causal(ids, 0, false);
  pre.prefill = true;
  expect_same_bits(run(m, pre, 40, 4), run(m, pre, 512, 1), name + ": prefill in 4 chunks");
  // A scored text (every row's logits) after 20 committed slots, in chunks of 7-8 tokens; and
  // logit rows out of order and repeated, across chunk boundaries.
  ForwardBatch all = ForwardBatch::causal(std::vector<int32_t>(ids.begin(), ids.begin() + 60), 20, true);
  expect_same_bits(run(m, all, 8, 8), run(m, all, 512, 1), name + ": all logits in 8 chunks");
  all.logit_rows = {59, 3, 31, 3, 0, 44};
  expect_same_bits(run(m, all, 8, 8), run(m, all, 512, 1), name + ": rows out of order");
}

}  // namespace

TEST(ChunkedForward, ChunksGiveTheBitsOfOneBatchF32) { check_model(test::demo_model(), "f32"); }

TEST(ChunkedForward, ChunksGiveTheBitsOfOneBatchBf16) {
  if (!bf16_dot_native()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  static std::unique_ptr<Model> m = load_model(test::model_path("swift-mini-24L"), MatMath::kBf16);
  check_model(*m, "bf16");
}

// The llama2 fixture with its config edited, 40 tokens of its reference text (repeated), all
// logits: run unchunked and with chunks of at most 5 tokens, which must take `chunks` passes.
void check_fixture_variant(const std::function<void(nlohmann::json&)>& edit, int64_t chunks, const std::string& what) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("swift_chunk_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto cfg = test::load_json(test::data_path("arch/llama2/config.json"));
  edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump();
  fs::copy_file(test::data_path("arch/llama2/model.safetensors"), dir / "model.safetensors",
                fs::copy_options::overwrite_existing);
  auto m = load_model(dir.string());
  fs::remove_all(dir);
  const auto ref = test::load_json(test::data_path("arch/llama2/reference.json"));
  std::vector<int32_t> ids = ref["input_ids"].get<std::vector<int32_t>>();
  while (ids.size() < 40) ids.push_back(ids[ids.size() % 8]);
  ids.resize(40);
  const ForwardBatch b = ForwardBatch::causal(ids, 0, true);
  expect_same_bits(run(*m, b, 5, chunks), run(*m, b, 512, 1), what);
}

TEST(ChunkedForward, SlidingWindowListsAcrossChunks) {
  // Mistral's window (transformers: key visible iff kv_pos > q_pos - window) spans chunk edges.
  check_fixture_variant(
      [](nlohmann::json& c) {
        c["architectures"] = {"MistralForCausalLM"};
        c["model_type"] = "mistral";
        c["sliding_window"] = 6;
      },
      8, "sliding window, chunks of 5");
}

TEST(ChunkedForward, DynamicRotaryIsNotChunked) {
  // Dynamic NTK scaling past 16 positions: the frequencies depend on the batch's largest
  // position, so the 40 tokens must run as one batch (chunks would rotate by other angles).
  check_fixture_variant(
      [](nlohmann::json& c) {
        c["max_position_embeddings"] = 16;
        c["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}, {"factor", 2.0}};
      },
      1, "dynamic rope, not chunked");
}

}  // namespace swift
