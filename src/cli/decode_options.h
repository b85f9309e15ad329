// Decoding-mode options shared by `generate` and `bench`: plain decoding, SWIFT and its
// ablations, and the layer-set cache.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/generation.h"
#include "engine/hybrid/hybrid_decoder.h"
#include "engine/server/scheduler.h"
#include "engine/swift/plan_store.h"
#include "engine/swift/swift_decoder.h"

namespace swift::cli {

struct DecodeArgs {
  std::string mode = "ar";  // ar | hybrid | lookup | swift | self-sd (+ swift ablations)
  SwiftOptions swift;
  HybridOptions hybrid;
  std::optional<int> lookup_tokens;  // unset: per-mode default (lookup 10, hybrid 16)
  // Cost model and acceptance statistics shared by every hybrid generation of this process
  // (copies of DecodeArgs share it).
  std::shared_ptr<HybridShared> hybrid_shared = std::make_shared<HybridShared>();
  bool no_tree = false, no_early_stop = false, no_optimize = false;
  std::string layer_cache, task = "default", skip_attn, skip_mlp, widths_greedy, widths_sampling;
  bool verbose = false;
  // Hand plans found by one generation to the next ones of the same task, in memory (the
  // server); with --layer-cache they are shared through the file in any case.
  bool share_plans = false;

  void add_to(CLI::App& app, bool multi_mode);
  // The plan store of this process for `model` (created on first use); null when plans are
  // neither shared nor cached.
  PlanStore* plan_store(const Model& model) const;

 private:
  mutable std::shared_ptr<PlanStore> plans_;
};

// A decoder for one generation in `mode`, plus what to do when it ends.
class DecoderRun : public DecoderHandle {
 public:
  // `task` overrides args.task (the server's per-request key).
  DecoderRun(const DecodeArgs& args, const std::string& mode, const Model& model, const SamplingParams& sampling,
             ThreadPool& pool, const std::string& task = "");
  Decoder& decoder() override { return *decoder_; }
  // Hands an optimised plan to the plan store (memory and/or --layer-cache file), reports how a
  // stored plan did (the store may drop it for re-optimisation), and returns mode statistics
  // for JSON output (skip plan lists, cache hit).
  nlohmann::json finish(const GenerateStats& stats) override;

 private:
  const DecodeArgs& args_;
  const Model& model_;
  std::string mode_;
  std::unique_ptr<Decoder> decoder_;
  SwiftDecoder* swift_ = nullptr;
  bool hybrid_ = false;
  std::optional<SkipPlan> hybrid_plan_;
  bool cache_hit_ = false;
  std::string task_;
};

}  // namespace swift::cli
