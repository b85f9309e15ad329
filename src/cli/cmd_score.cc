// `swiftllm score`: full-precision logits of the model at every input position (top K).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli/common.h"
#include "model/kv_cache.h"
#include "util/check.h"

namespace swift::cli {

namespace {

struct ScoreArgs {
  std::string model;
  std::string math = "auto";
  PromptOptions prompt;
  int top = 5;
  int threads = 0;
  bool json = false;
};

void run(const ScoreArgs& a) {
  auto model = load_model(a.model, parse_math(a.math));
  const std::vector<int32_t> ids = a.prompt.resolve(*model);
  const int64_t n = static_cast<int64_t>(ids.size()), V = model->config.vocab_size;
  if (n == 0) fail("nothing to score: the prompt is empty");
  if (n > model->config.max_positions)
    fail("{} tokens exceed the model's context length {}", n, model->config.max_positions);
  if (a.top < 1 || a.top > V) fail("--top must be in [1, {}], got {}", V, a.top);
  ThreadPool pool(a.threads > 0 ? a.threads : ThreadPool::default_threads());
  KvCache cache(model->config, n);
  std::vector<float> logits;
  model->transformer->forward(ForwardBatch::causal(ids, 0, true), cache, SkipPlan::none(model->config.n_layer), pool,
                              logits);
  nlohmann::json positions = nlohmann::json::array();
  std::vector<int32_t> order(V);
  for (int64_t i = 0; i < n; ++i) {
    const float* l = logits.data() + i * V;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + a.top, order.end(),
                      [&](int32_t x, int32_t y) { return l[x] > l[y] || (l[x] == l[y] && x < y); });
    nlohmann::json top_ids = nlohmann::json::array(), top_logits = nlohmann::json::array();
    for (int k = 0; k < a.top; ++k) {
      top_ids.push_back(order[k]);
      top_logits.push_back(l[order[k]]);
    }
    if (a.json) {
      positions.push_back({{"top_ids", top_ids}, {"top_logits", top_logits}});
    } else {
      std::printf("%5lld  token %6d  ->", static_cast<long long>(i), ids[i]);
      for (int k = 0; k < a.top; ++k) std::printf("  %6d (%.4f)", order[k], l[order[k]]);
      std::printf("\n");
    }
  }
  if (a.json) std::puts(nlohmann::json({{"positions", positions}}).dump().c_str());
}

}  // namespace

void add_score(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* c = app.add_subcommand("score", "Print the top-K next-token logits at every prompt position");
  c->add_option("-m,--model", a->model, "Model folder (Hugging Face layout)")->required();
  add_math_option(*c, a->math);
  a->prompt.add_to(*c);
  c->add_option("--top", a->top, "How many top tokens per position (default 5)");
  c->add_option("-t,--threads", a->threads, "Threads (default: physical cores)");
  c->add_flag("--json", a->json, "Print {\"positions\": [{\"top_ids\", \"top_logits\"}, ...]}");
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
