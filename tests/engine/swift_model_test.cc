// SWIFT on real models: greedy output identical to plain greedy decoding token for token (with
// the layer search running, with a cached plan, chain-only), on the demo model's 32 reference
// prompts and on every architecture fixture; matchness; seeded sampling.
#include <gtest/gtest.h>

#include "engine/ar_decoder.h"
#include "engine/swift/layer_search.h"
#include "engine/swift/swift_decoder.h"
#include "model_fixtures.h"

namespace swift {

namespace {

Model& mini() { return test::demo_model(); }

const nlohmann::json& cases() { return test::reference_cases(); }

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

GenerateResult run_ar(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt) {
  ArDecoder d(m, opt.sampling, pool());
  return generate(m, d, prompt, opt, pool());
}

struct SwiftRun {
  GenerateResult result;
  SkipPlan plan;
  double matchness;
};

SwiftRun run_swift(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                   const SwiftOptions& so) {
  SwiftDecoder d(m, opt.sampling, so, pool());
  SwiftRun r{generate(m, d, prompt, opt, pool()), d.plan(), 0.0};
  r.matchness = r.result.stats.extra["best_matchness"];
  return r;
}

GenerateOptions greedy(int64_t n) {
  GenerateOptions o;
  o.max_tokens = n;
  return o;
}

}  // namespace

TEST(SwiftGreedy, EqualsPlainDecodingOnAllReferencePromptsWhileOptimizing) {
  int64_t accepted = 0, proposals = 0;
  for (const auto& c : cases()) {
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto ar = run_ar(mini(), prompt, greedy(128));
    const auto sw = run_swift(mini(), prompt, greedy(128), SwiftOptions{});
    ASSERT_EQ(sw.result.tokens, ar.tokens) << c["src"];
    EXPECT_EQ(sw.result.finish_reason, ar.finish_reason);
    accepted += static_cast<int64_t>(sw.result.stats.extra.at("accepted_tokens"));
    proposals += static_cast<int64_t>(sw.result.stats.extra.at("opt_proposals"));
  }
  EXPECT_GT(accepted, 0);   // drafts were really accepted...
  EXPECT_GT(proposals, 0);  // ...and the layer search really ran
}

TEST(SwiftGreedy, EqualsPlainDecodingWithCachedPlanAndChainOnly) {
  // A plan found by the search on the first prompt, reused as a cached plan for the others.
  const auto first = cases()[0]["prompt_ids"].get<std::vector<int32_t>>();
  const SkipPlan found = run_swift(mini(), first, greedy(128), SwiftOptions{}).plan;
  EXPECT_FALSE(found.empty());
  SwiftOptions cached;
  cached.plan = found;
  cached.optimize = false;
  SwiftOptions chain = cached;
  chain.tree = false;
  for (const auto& c : cases()) {
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto ar = run_ar(mini(), prompt, greedy(128));
    const auto a = run_swift(mini(), prompt, greedy(128), cached);
    ASSERT_EQ(a.result.tokens, ar.tokens) << "cached plan, " << c["src"];
    EXPECT_EQ(a.result.stats.extra.at("opt_proposals"), 0.0);
    const auto b = run_swift(mini(), prompt, greedy(128), chain);
    ASSERT_EQ(b.result.tokens, ar.tokens) << "no tree, " << c["src"];
    EXPECT_LE(b.result.stats.extra.at("mean_tree_size"), 26.0);
  }
}

TEST(SwiftGreedy, AblationsAndPenaltyStayLossless) {
  const auto prompt = cases()[3]["prompt_ids"].get<std::vector<int32_t>>();
  auto opt = greedy(96);
  opt.sampling.repetition_penalty = 1.3f;  // the target's choice depends on each node's own path
  const auto ar = run_ar(mini(), prompt, opt);
  SwiftOptions no_early;
  no_early.early_stop = false;
  no_early.max_draft = 6;
  EXPECT_EQ(run_swift(mini(), prompt, opt, no_early).result.tokens, ar.tokens);
  SwiftOptions manual;
  manual.plan = LayerSearch::every_other_layer(mini().config.n_layer);
  manual.optimize = false;
  manual.tree = false;  // self-speculative decoding with a fixed plan (Draft & Verify)
  EXPECT_EQ(run_swift(mini(), prompt, opt, manual).result.tokens, ar.tokens);
}

// One reference prompt of the demo model, short enough for a cross build's run under emulation
// (tests/CMakeLists.txt): plain greedy equals Hugging Face's greedy tokens, and SWIFT, searching
// its layer set and then with the plan it found, equals plain greedy.
TEST(SwiftGreedy, FirstReferencePromptEqualsHfGreedyWhileOptimizing) {
  const auto& c = cases()[0];
  const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto hf = c["greedy_ids"].get<std::vector<int32_t>>();
  const auto opt = greedy(64);
  const auto ar = run_ar(mini(), prompt, opt);
  ASSERT_EQ(ar.tokens, std::vector<int32_t>(hf.begin(), hf.begin() + 64));
  const auto sw = run_swift(mini(), prompt, opt, SwiftOptions{});
  EXPECT_EQ(sw.result.tokens, ar.tokens);
  EXPECT_GT(sw.result.stats.extra.at("opt_proposals"), 0.0);  // the layer search really ran
  SwiftOptions cached;
  cached.plan = sw.plan;
  cached.optimize = false;
  const auto again = run_swift(mini(), prompt, opt, cached);
  EXPECT_EQ(again.result.tokens, ar.tokens);
  EXPECT_GT(again.result.stats.extra.at("accepted_tokens"), 0.0);  // drafts were really accepted
}

TEST(SwiftGreedy, EqualsPlainDecodingOnEveryArchitecture) {
  for (const char* arch : {"llama2", "llama3", "qwen2", "qwen3"}) {
    auto m = load_model(test::data_path(std::string("arch/") + arch));
    const auto ref = test::load_json(test::data_path(std::string("arch/") + arch + "/reference.json"));
    const auto prompt = ref["input_ids"].get<std::vector<int32_t>>();
    auto opt = greedy(64);
    opt.ignore_eos = true;
    const auto ar = run_ar(*m, prompt, opt);
    SwiftOptions so;
    so.context_window = 16;  // 3 layers: the search space is layer 1's two sublayers
    const auto sw = run_swift(*m, prompt, opt, so);
    EXPECT_EQ(sw.result.tokens, ar.tokens) << arch;
  }
}

TEST(SwiftMatchness, FullModelMatchesItsOwnGreedyOutputExactly) {
  const auto prompt = cases()[0]["prompt_ids"].get<std::vector<int32_t>>();
  const auto ar = run_ar(mini(), prompt, greedy(60));
  Sequence seq(mini(), 1024, kScratchSlots);
  seq.tokens = prompt;
  seq.tokens.insert(seq.tokens.end(), ar.tokens.begin(), ar.tokens.end());
  seq.n_prompt = static_cast<int64_t>(prompt.size());
  std::vector<float> logits;
  mini().transformer->forward(ForwardBatch::causal(prompt, 0, false), seq.cache, SkipPlan::none(24), pool(), logits);
  seq.n_cached = seq.n_prompt;  // only the prompt is committed; the window is scored from scratch slots
  SwiftDecoder d(mini(), SamplingParams{}, SwiftOptions{}, pool());
  EXPECT_EQ(d.matchness(seq, SkipPlan::none(24)), 1.0);
  const double m = d.matchness(seq, LayerSearch::every_other_layer(24));
  EXPECT_LT(m, 1.0);
  EXPECT_GT(m, 0.0);
  // Scoring never disturbs committed K/V: plain decoding from here still matches.
  EXPECT_EQ(d.matchness(seq, SkipPlan::none(24)), 1.0);
}

TEST(SwiftSampling, SeededRunsReproduceAndDiffer) {
  const auto prompt = cases()[1]["prompt_ids"].get<std::vector<int32_t>>();
  auto opt = greedy(80);
  opt.sampling.temperature = 0.8f;
  opt.sampling.top_p = 0.95f;
  opt.sampling.seed = 7;
  const auto a = run_swift(mini(), prompt, opt, SwiftOptions{});
  const auto b = run_swift(mini(), prompt, opt, SwiftOptions{});
  EXPECT_EQ(a.result.tokens, b.result.tokens);
  opt.sampling.seed = 8;
  const auto c = run_swift(mini(), prompt, opt, SwiftOptions{});
  EXPECT_NE(a.result.tokens, c.result.tokens);
  EXPECT_GT(a.result.stats.extra.at("accepted_tokens"), 0.0);
}

}  // namespace swift
