#include "engine/swift/plan_store.h"

namespace swift {

std::optional<CachedPlan> PlanStore::lookup(const std::string& task) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(task);
  if (it != entries_.end()) {
    if (it->second.dropped) return std::nullopt;
    return it->second.plan;
  }
  if (path_.empty()) return std::nullopt;
  auto hit = layer_cache_lookup(path_, model_id_, task, n_layer_);
  if (hit) entries_[task] = Entry{*hit, -1, false};
  return hit;
}

void PlanStore::store(const std::string& task, const CachedPlan& plan, double acceptance) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_[task] = Entry{plan, acceptance, false};
  if (!path_.empty()) layer_cache_store(path_, model_id_, task, plan);
}

bool PlanStore::report_use(const std::string& task, double acceptance, int64_t drafted) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(task);
  if (it == entries_.end() || it->second.dropped || drafted < kMinDrafted) return false;
  Entry& e = it->second;
  if (e.acceptance < 0) {  // loaded from a file: the first use sets the reference
    e.acceptance = acceptance;
    return false;
  }
  if (acceptance >= kReoptimizeFraction * e.acceptance) return false;
  e.dropped = true;
  ++reoptimizations_;
  return true;
}

}  // namespace swift
