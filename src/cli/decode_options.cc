#include "cli/decode_options.h"

#include "cli/common.h"

#include <cstdio>
#include "engine/ar_decoder.h"
#include "engine/swift/layer_cache.h"
#include "util/check.h"

namespace swift::cli {

namespace {

std::vector<int64_t> layer_list(const std::string& s, const char* option) {
  std::vector<int64_t> out;
  if (s.empty()) return out;
  for (int32_t v : parse_ids(s, option)) out.push_back(v);
  return out;
}

}  // namespace

void DecodeArgs::add_to(CLI::App& app, bool multi_mode) {
  app.add_option("--decode", mode,
                 multi_mode ? "Comma-separated modes to compare: ar, hybrid, lookup, swift, swift-notree, "
                              "swift-noearly, swift-noopt, self-sd (default ar,hybrid,lookup,swift); MODE#LABEL runs a mode again "
                              "under another name (ar,ar#2 measures the noise floor)"
                            : "Decoding mode: hybrid (default: prompt lookup + layer-skip drafts in one tree, "
                              "sized by a cost-aware controller), lookup (prompt lookup, fixed drafts), ar "
                              "(plain), swift (SWIFT self-speculative, paper settings), self-sd (fixed "
                              "--skip-attn/--skip-mlp plan, chain drafting, as Draft & Verify)");
  auto& h = hybrid;
  app.add_option("--lookup-tokens", lookup_tokens,
                 "hybrid/lookup: longest continuation copied from an earlier n-gram match (default: lookup 10, "
                 "as HF's prompt_lookup_num_tokens; hybrid 16, trimmed by the controller)");
  app.add_option("--lookup-branches", h.lookup_branches,
                 "hybrid: alternative lookup continuations offered to the controller (default 3)");
  app.add_option("--ngram-min", h.ngram_min, "hybrid/lookup: shortest n-gram matched (default 1)");
  app.add_option("--ngram-max", h.ngram_max, "hybrid/lookup: longest n-gram matched, tried first (default 4)");
  app.add_option("--max-tree", h.max_tree,
                 "hybrid: most tokens in one verification pass, root included (default 32; the controller "
                 "usually picks fewer)");
  app.add_option("--draft-siblings", h.draft_siblings,
                 "hybrid: candidates per layer-skip draft depth, top-1 included (default 3)");
  auto& s = swift;
  app.add_option("--max-draft", s.max_draft, "SWIFT: most tokens drafted per step (default 25)");
  app.add_option("--stop-threshold", s.stop_threshold,
                 "SWIFT: stop drafting when the draft's top-1 probability falls below this (default 0.8)");
  app.add_option("--tree-widths", widths_greedy,
                 "SWIFT: candidates per draft depth for top-1 confidence >0.95,>0.8,>0.5,else when greedy "
                 "(default 3,5,8,10)");
  app.add_option("--tree-widths-sampling", widths_sampling,
                 "SWIFT: the same when sampling (default 1,3,5,10)");
  app.add_flag("--no-tree", no_tree, "SWIFT ablation: verify the top-1 chain only (no sibling candidates)");
  app.add_flag("--no-early-stop", no_early_stop, "SWIFT ablation: always draft --max-draft tokens");
  app.add_flag("--no-optimize", no_optimize, "SWIFT ablation: keep the starting or cached plan, no layer search");
  app.add_option("--context-window", s.context_window,
                 "SWIFT: generated tokens used to score skip plans (matchness window, default 50)");
  app.add_option("--skip-ratio", s.search.skip_ratio, "SWIFT: fraction of the 2(L-2) sublayers a plan skips (0.45)");
  app.add_option("--bayes-interval", s.search.bayes_interval,
                 "SWIFT: every Nth proposal comes from Bayesian optimisation (default 25)");
  app.add_option("--opt-max-score", s.search.max_score, "SWIFT: stop the search above this score (default 0.93)");
  app.add_option("--opt-max-tolerance", s.search.max_tolerance,
                 "SWIFT: stop after this many proposals without gain (default 300)");
  app.add_option("--opt-max-iter", s.search.max_iter, "SWIFT: stop after this many proposals (default 1000)");
  app.add_option("--opt-per-step", s.opt_per_step,
                 "SWIFT: proposals scored per decoding step while the search runs (default 1, as the paper)");
  app.add_option("--opt-objective", s.objective,
                 "SWIFT: matchness (paper: fraction of window tokens the draft predicts, at --skip-ratio) or "
                 "speed (estimated speed-up; also searches the skip ratio in [0.05, 0.5])");
  app.add_option("--layer-cache", layer_cache,
                 "SWIFT: JSON file of optimised plans per model and --task; a hit skips the search, the "
                 "result of a search is saved");
  app.add_option("--task", task, "SWIFT: task name for --layer-cache (default 'default')");
  app.add_option("--skip-attn", skip_attn,
                 "Skip plan by hand: attention sublayers to skip, e.g. 3,5,8 (used as is: no layer search)");
  app.add_option("--skip-mlp", skip_mlp, "Skip plan by hand: MLP sublayers to skip, e.g. 4,9");
  app.add_flag("-v,--verbose", verbose, "Log each layer-search improvement and the cost calibration to stderr");
}

PlanStore* DecodeArgs::plan_store(const Model& model) const {
  if (!share_plans && layer_cache.empty()) return nullptr;
  if (!plans_) plans_ = std::make_shared<PlanStore>(layer_cache, model.identity, model.config.n_layer);
  return plans_.get();
}

DecoderRun::DecoderRun(const DecodeArgs& a, const std::string& mode, const Model& model,
                       const SamplingParams& sampling, ThreadPool& pool, const std::string& task)
    : args_(a), model_(model), mode_(mode), task_(task.empty() ? a.task : task) {
  const int64_t L = model.config.n_layer;
  if (mode == "ar") {
    decoder_ = std::make_unique<ArDecoder>(model, sampling, pool);
    return;
  }
  if (mode == "hybrid" || mode == "lookup") {
    HybridOptions o = a.hybrid;
    // lookup copies HF's prompt_lookup_num_tokens (10); hybrid offers more, the controller trims.
    o.lookup_tokens = a.lookup_tokens.value_or(mode == "lookup" ? 10 : 16);
    o.verbose = a.verbose;
    if (mode == "lookup") {
      o.controller = false;
      o.lookup_branches = 1;
      o.max_tree = std::max(o.max_tree, 1 + o.lookup_tokens);
    } else {
      // Layer-skip drafting joins the tree only with a plan: by hand, or found by a `--decode
      // swift` run and saved in --layer-cache. No search here: on small models a search costs
      // more than it can win back within one request (issue 8 measurements).
      if (!a.skip_attn.empty() || !a.skip_mlp.empty()) {
        o.plan = plan_from_layers(layer_list(a.skip_attn, "--skip-attn"), layer_list(a.skip_mlp, "--skip-mlp"), L,
                                  "--skip-attn/--skip-mlp");
      } else if (PlanStore* store = a.plan_store(model)) {
        if (auto hit = store->lookup(task_)) {
          o.plan = hit->plan;
          cache_hit_ = true;
        }
      }
      o.validate();  // before calibrating for o.max_tree
      HybridShared& sh = *a.hybrid_shared;
      if (!sh.cost.calibrated() || sh.cost.max_tokens() < o.max_tree) {
        sh.calibrate(model, pool, o.max_tree);
        if (a.verbose) {
          std::string line;
          for (size_t i = 0; i < sh.cost.sizes().size(); ++i)
            line += fmt::format(" {}:{:.2f}", sh.cost.sizes()[i], sh.cost.ratios()[i]);
          std::fprintf(stderr, "[hybrid] verification cost calibrated in %.0f ms (tokens:cost vs 1 token)%s\n",
                       sh.cost.calibration_ms(), line.c_str());
        }
      }
    }
    hybrid_ = true;
    hybrid_plan_ = o.plan;
    decoder_ = std::make_unique<HybridDecoder>(model, sampling, o, pool, *a.hybrid_shared);
    return;
  }
  SwiftOptions o = a.swift;
  o.verbose = a.verbose;
  if (o.objective == "speed" && o.search.ratio_max <= o.search.ratio_min) {
    o.search.ratio_min = 0.05;
    o.search.ratio_max = 0.5;
    o.search.max_score = 1e9;  // a speed estimate has no natural ceiling; stop on tolerance/iterations
  }
  if (!a.skip_attn.empty() || !a.skip_mlp.empty())
    o.plan = plan_from_layers(layer_list(a.skip_attn, "--skip-attn"), layer_list(a.skip_mlp, "--skip-mlp"), L,
                              "--skip-attn/--skip-mlp");
  auto widths = [](const std::string& s, const char* option, std::array<int, 4>& out) {
    if (s.empty()) return;
    const auto v = parse_ids(s, option);
    if (v.size() != 4) fail("{} takes 4 comma-separated counts, got {}", option, v.size());
    for (size_t i = 0; i < 4; ++i) out[i] = v[i];
  };
  widths(a.widths_greedy, "--tree-widths", o.greedy_width);
  widths(a.widths_sampling, "--tree-widths-sampling", o.sampling_width);
  bool no_tree = a.no_tree, no_early = a.no_early_stop, no_opt = a.no_optimize;
  if (mode == "swift-notree") no_tree = true;
  else if (mode == "swift-noearly") no_early = true;
  else if (mode == "swift-noopt") no_opt = true;
  else if (mode == "self-sd") {
    if (!o.plan) fail("--decode self-sd needs a fixed plan: give --skip-attn and/or --skip-mlp");
    no_tree = no_opt = true;
  } else if (mode != "swift") {
    fail("unknown decoding mode '{}' (ar, hybrid, lookup, swift, swift-notree, swift-noearly, swift-noopt, self-sd)",
         mode);
  }
  o.tree = !no_tree;
  o.early_stop = !no_early;
  o.optimize = !no_opt && !o.plan;  // a plan given by hand is used as is
  PlanStore* store = a.plan_store(model);
  if (store && !o.plan) {
    if (auto hit = store->lookup(task_)) {
      o.plan = hit->plan;
      o.optimize = false;
      cache_hit_ = true;
    }
  }
  auto d = std::make_unique<SwiftDecoder>(model, sampling, o, pool);
  swift_ = d.get();
  decoder_ = std::move(d);
}

nlohmann::json DecoderRun::finish(const GenerateStats& stats) {
  nlohmann::json j = nlohmann::json::object();
  if (hybrid_) {
    if (hybrid_plan_) {
      j["skip_attn"] = plan_layers(hybrid_plan_->skip_attn);
      j["skip_mlp"] = plan_layers(hybrid_plan_->skip_mlp);
    }
    j["layer_cache_hit"] = cache_hit_;
    return j;
  }
  if (!swift_) return j;
  j["skip_attn"] = plan_layers(swift_->plan().skip_attn);
  j["skip_mlp"] = plan_layers(swift_->plan().skip_mlp);
  j["layer_cache_hit"] = cache_hit_;
  PlanStore* store = args_.plan_store(model_);
  if (!store) return j;
  auto x = [&](const char* k) { return stats.extra.count(k) ? stats.extra.at(k) : 0.0; };
  if (swift_->optimized()) {
    store->store(task_, CachedPlan{swift_->plan(), swift_->best_score(), args_.swift.objective}, x("acceptance_rate"));
  } else if (cache_hit_ && store->report_use(task_, x("acceptance_rate"), static_cast<int64_t>(x("drafted_tokens")))) {
    j["plan_dropped_for_reoptimization"] = true;
  }
  return j;
}

}  // namespace swift::cli
