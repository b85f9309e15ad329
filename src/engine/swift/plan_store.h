// Skip plans shared by every generation of a process (the server's requests, bench's prompts),
// per task key, optionally persisted in a --layer-cache file (layer_cache.h).
//
// SWIFT's search is worth paying once per task, not per request (Xia et al. reuse optimised
// layer sets for later inputs of a task). A plan found by one request is handed to the next
// ones; when a request that used a stored plan accepts far fewer drafts than the request that
// found it (below kReoptimizeFraction of it, over at least kMinDrafted drafted tokens), the
// plan no longer fits the traffic and is dropped, so the next request searches again.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "engine/swift/layer_cache.h"

namespace swift {

class PlanStore {
 public:
  static constexpr double kReoptimizeFraction = 0.6;
  static constexpr int64_t kMinDrafted = 32;

  // `path` empty: memory only.
  PlanStore(std::string path, uint64_t model_id, int64_t n_layer)
      : path_(std::move(path)), model_id_(model_id), n_layer_(n_layer) {}

  std::optional<CachedPlan> lookup(const std::string& task);
  // A search result and the acceptance rate of the generation that found it.
  void store(const std::string& task, const CachedPlan& plan, double acceptance);
  // Acceptance of a generation that used the stored plan; returns true when the plan was dropped.
  bool report_use(const std::string& task, double acceptance, int64_t drafted);

  int64_t reoptimizations() const { return reoptimizations_; }

 private:
  struct Entry {
    CachedPlan plan;
    double acceptance = -1;  // of the generation that found it; < 0 = unknown (loaded from file)
    bool dropped = false;
  };
  std::mutex mu_;
  std::string path_;
  uint64_t model_id_;
  int64_t n_layer_;
  std::map<std::string, Entry> entries_;
  int64_t reoptimizations_ = 0;
};

}  // namespace swift
