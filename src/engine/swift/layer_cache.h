// Persisted SWIFT skip plans, keyed by model identity and task (Xia et al.: optimised layer
// sets can be reused for later inputs of the same task, skipping the search).
//
// File format (JSON): {"version": 1, "entries": [{"model": "<16 hex digits>", "task": "code",
// "skip_attn": [layer, ...], "skip_mlp": [layer, ...], "score": 0.81, "objective": "matchness",
// "n_layer": 24}]}. Writes go to a temporary file renamed over the old one, so a crash never
// leaves a half-written cache.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/skip_plan.h"

namespace swift {

struct CachedPlan {
  SkipPlan plan;
  double score = 0.0;
  std::string objective;
};

// Missing file: no hit. Malformed file or entry: swift::Error naming the file.
std::optional<CachedPlan> layer_cache_lookup(const std::string& path, uint64_t model_id, const std::string& task,
                                             int64_t n_layer);
void layer_cache_store(const std::string& path, uint64_t model_id, const std::string& task, const CachedPlan& entry);

// "3,5,8" <-> layer lists (validated against n_layer; first and last layer may not be skipped).
std::vector<int64_t> plan_layers(const std::vector<uint8_t>& mask);
SkipPlan plan_from_layers(const std::vector<int64_t>& attn, const std::vector<int64_t>& mlp, int64_t n_layer,
                          const std::string& what);

}  // namespace swift
