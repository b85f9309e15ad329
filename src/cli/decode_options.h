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

  void add_to(CLI::App& app, bool multi_mode);
};

// A decoder for one generation in `mode`, plus what to do when it ends.
class DecoderRun {
 public:
  DecoderRun(const DecodeArgs& args, const std::string& mode, const Model& model, const SamplingParams& sampling,
             ThreadPool& pool);
  Decoder& decoder() { return *decoder_; }
  // Saves an optimised plan to the layer cache (when one is configured) and returns mode
  // statistics for JSON output (skip plan lists, cache hit).
  nlohmann::json finish();

 private:
  const DecodeArgs& args_;
  const Model& model_;
  std::string mode_;
  std::unique_ptr<Decoder> decoder_;
  SwiftDecoder* swift_ = nullptr;
  bool hybrid_ = false;
  std::optional<SkipPlan> hybrid_plan_;
  bool cache_hit_ = false;
};

}  // namespace swift::cli
