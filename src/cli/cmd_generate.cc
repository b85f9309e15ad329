// `swiftllm generate`: text generation with streaming output or one JSON object.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/decode_options.h"
#include "engine/generation.h"
#include "util/check.h"

namespace swift::cli {

namespace {

struct GenerateArgs {
  std::string model;
  std::string math = "auto";
  PromptOptions prompt;
  int64_t n = 128;
  float temp = -1.0f;  // -1: generation_config.json decides
  int top_k = -1;
  float top_p = -1.0f, min_p = -1.0f, repeat_penalty = -1.0f;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false, ignore_eos = false;
  std::vector<std::string> stop;
  int64_t ctx = 0;
  DecodeArgs decode;
};

SamplingParams sampling_from(const GenerateArgs& a, const Model& m) {
  SamplingParams p;
  const GenerationDefaults& g = m.gen;
  p.temperature = a.temp >= 0 ? a.temp : (g.do_sample ? g.temperature : 0.0f);
  p.top_k = a.top_k >= 0 ? a.top_k : (g.do_sample ? g.top_k : 0);
  p.top_p = a.top_p >= 0 ? a.top_p : (g.do_sample ? g.top_p : 1.0f);
  p.min_p = a.min_p >= 0 ? a.min_p : (g.do_sample ? g.min_p : 0.0f);
  p.repetition_penalty = a.repeat_penalty >= 0 ? a.repeat_penalty : g.repetition_penalty;
  p.seed = a.seed;
  return p;
}

void run(const GenerateArgs& a) {
  if (a.decode.mode.find(',') != std::string::npos) fail("--decode takes one mode here (use bench to compare modes)");
  auto model = load_model(a.model, parse_math(a.math));
  const std::vector<int32_t> prompt = a.prompt.resolve(*model);
  ThreadPool pool(a.threads > 0 ? a.threads : ThreadPool::default_threads());
  GenerateOptions opt;
  opt.max_tokens = a.n;
  opt.sampling = sampling_from(a, *model);
  opt.stop = a.stop;
  opt.ignore_eos = a.ignore_eos;
  opt.n_ctx = a.ctx;
  DecoderRun run(a.decode, a.decode.mode, *model, opt.sampling, pool);
  TextCallback cb;
  if (!a.json) {
    cb = [](const std::string& s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  GenerateResult r = generate(*model, run.decoder(), prompt, opt, pool, cb);
  const nlohmann::json mode_stats = run.finish(r.stats);
  const auto& s = r.stats;
  if (a.json) {
    nlohmann::json stats = {{"prompt_tokens", s.prompt_tokens},   {"generated_tokens", s.generated_tokens},
                            {"prefill_ms", s.prefill_ms},         {"decode_ms", s.decode_ms},
                            {"decode_tokens_per_s", s.decode_tokens_per_s()}, {"decode", a.decode.mode},
                            {"threads", pool.size()}, {"math", math_name(model->transformer->math())}};
    for (const auto& [k, v] : s.extra) stats[k] = v;
    for (const auto& [k, v] : mode_stats.items()) stats[k] = v;
    nlohmann::json out = {{"tokens", r.tokens}, {"text", r.text}, {"finish_reason", r.finish_reason}, {"stats", stats}};
    std::puts(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (!model->tokenizer) {  // no text to stream: print the ids
      for (size_t i = 0; i < r.tokens.size(); ++i) std::printf("%s%d", i ? "," : "", r.tokens[i]);
    }
    std::printf("\n");
    auto x = [&](const char* key) { return s.extra.count(key) ? s.extra.at(key) : 0.0; };
    if (s.extra.count("opt_proposals")) {
      std::fprintf(stderr, "[swift: acceptance %.2f, %.2f tokens per step, %d proposals, best matchness %.3f, %d sublayers skipped]\n",
                   x("acceptance_rate"), x("mean_accepted_per_step"), static_cast<int>(x("opt_proposals")),
                   x("best_matchness"), static_cast<int>(x("skipped_sublayers")));
    } else if (s.extra.count("accepted_lookup")) {
      std::fprintf(stderr,
                   "[%s: %.2f tokens per step, acceptance %.2f, mean tree %.1f, %d of %d steps plain; accepted from "
                   "lookup %d, layer-skip %d, both %d]\n",
                   a.decode.mode.c_str(), x("mean_accepted_per_step"), x("acceptance_rate"), x("mean_tree_size"),
                   static_cast<int>(x("plain_steps")), static_cast<int>(x("verify_steps")),
                   static_cast<int>(x("accepted_lookup")), static_cast<int>(x("accepted_layer_skip")),
                   static_cast<int>(x("accepted_both")));
    }
    std::fprintf(stderr,
                 "[%lld prompt tokens, prefill %.1f ms; %lld tokens in %.1f ms = %.1f tokens/s; %s; %d threads; %s "
                 "math]\n",
                 static_cast<long long>(s.prompt_tokens), s.prefill_ms, static_cast<long long>(s.generated_tokens),
                 s.decode_ms, s.decode_tokens_per_s(), r.finish_reason.c_str(), pool.size(),
                 math_name(model->transformer->math()));
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* c = app.add_subcommand("generate", "Generate text from a prompt (streams to stdout)");
  c->add_option("-m,--model", a->model, "Model folder (Hugging Face layout)")->required();
  add_math_option(*c, a->math);
  a->prompt.add_to(*c);
  c->add_option("-n,--max-tokens", a->n, "Maximum new tokens (default 128)");
  c->add_option("--temp", a->temp, "Temperature; 0 = greedy (default: generation_config.json, greedy if it does not sample)");
  c->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0 = off)");
  c->add_option("--top-p", a->top_p, "Nucleus sampling mass (1 = off)");
  c->add_option("--min-p", a->min_p, "Drop tokens below min-p times the top probability (0 = off)");
  c->add_option("--repeat-penalty", a->repeat_penalty, "Repetition penalty (1 = off)");
  c->add_option("--seed", a->seed, "Random seed for sampling (default 0)");
  c->add_option("--stop", a->stop, "Stop string (repeatable); the text is cut before it");
  c->add_flag("--ignore-eos", a->ignore_eos, "Keep generating after the end-of-sequence token");
  c->add_option("--ctx-size", a->ctx, "Context length (default: the model's max_position_embeddings)");
  c->add_option("-t,--threads", a->threads, "Threads (default: physical cores)");
  a->decode.mode = "hybrid";  // lossless and never much slower than plain decoding (README, issue 8)
  a->decode.add_to(*c, false);
  c->add_flag("--json", a->json,
              "Print one JSON object {tokens, text, finish_reason, stats} instead of streaming text");
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
