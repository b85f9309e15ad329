#include "engine/hybrid/acceptance_stats.h"

#include <algorithm>

#include "util/check.h"

namespace swift {

namespace {
// Prior means before any evidence. Lookup: a long exact n-gram match usually continues, a
// single-token match often does not. Layer-skip: the draft's own confidence (calibration is
// learned). Both are overridden by a few dozen observations.
constexpr double kLookupPrior[AcceptanceStats::kLookupN] = {0.3, 0.5, 0.6, 0.7};
constexpr float kConfEdges[AcceptanceStats::kConfBuckets - 1] = {0.95f, 0.8f, 0.6f, 0.4f, 0.2f};
constexpr double kConfPrior[AcceptanceStats::kConfBuckets] = {0.9, 0.75, 0.6, 0.45, 0.3, 0.15};
constexpr double kPriorWeight = 2.0;
}  // namespace

AcceptanceStats::AcceptanceStats() {
  for (int n = 1; n <= kLookupN; ++n)
    for (int d = 1; d <= kLookupDepth; ++d)
      for (int kind = 0; kind < 3; ++kind)
        for (int hot = 0; hot < 2; ++hot)
          prior_[lookup_key(n, d, kind, hot)] = std::min(0.9, kLookupPrior[n - 1] * (kind ? 0.5 : 1.0) * (hot ? 1.3 : 1.0));
  for (int b = 0; b < kConfBuckets; ++b)
    for (int r = 0; r < kRanks; ++r)  // siblings share what the top-1 leaves, shrinking with rank
      prior_[kLookupKeys + b * kRanks + r] = r == 0 ? kConfPrior[b] : (1 - kConfPrior[b]) / (2 * r + 1);
  prior_[draft_first_key()] = 0.5;
}

int AcceptanceStats::lookup_key(int n, int depth, int kind, bool hot) {
  SWIFT_CHECK(n >= 1 && depth >= 1 && kind >= 0 && kind < 3);
  const int ni = std::min(n, kLookupN) - 1, di = std::min(depth, kLookupDepth) - 1;
  return ((ni * kLookupDepth + di) * 3 + kind) * 2 + (hot ? 1 : 0);
}

int AcceptanceStats::conf_bucket(float confidence) {
  int b = 0;
  while (b < kConfBuckets - 1 && !(confidence > kConfEdges[b])) ++b;
  return b;
}

int AcceptanceStats::draft_key(float confidence, int rank) {
  SWIFT_CHECK(rank >= 0);
  return kLookupKeys + conf_bucket(confidence) * kRanks + std::min(rank, kRanks - 1);
}

double AcceptanceStats::rate(int key) const {
  SWIFT_CHECK(key >= 0 && key < kKeys);
  return (accepted_[key] + kPriorWeight * prior_[key]) / (tried_[key] + kPriorWeight);
}

void AcceptanceStats::observe(int key, bool accepted) {
  SWIFT_CHECK(key >= 0 && key < kKeys);
  accepted_[key] = accepted_[key] * kDecay + (accepted ? 1.0 : 0.0);
  tried_[key] = tried_[key] * kDecay + 1.0;
}

}  // namespace swift
