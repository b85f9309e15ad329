// Running acceptance rates of draft candidates, by source and situation.
//
// The controller (hybrid_decoder.h) needs, for each candidate token it could put in the tree,
// the probability that verification accepts it given that its parent was accepted. That
// depends on where the candidate came from and on cheap features: for prompt lookup the
// matched n-gram length, the depth inside the copied continuation and whether it is the best
// or an alternative match; for layer-skip drafts the draft's confidence and the sibling rank.
// for lookup also whether the previous step accepted a long lookup run ("hot": a copy in
// progress tends to go on, a fresh match is a guess). Each such bucket keeps a Beta posterior (prior mean `prior`, weight 2) with exponential
// forgetting (factor `kDecay` per observation in that bucket) so that the estimate follows the
// text as it changes (code after prose, a loop the model fell into, ...).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace swift {

enum class DraftSource : uint8_t { kLookup = 1, kLayerSkip = 2 };

class AcceptanceStats {
 public:
  // Bucket layout. Lookup: n-gram length 1..4+ x depth 1..12+ x {best, alternative, other
  // request (cache)} x {cold, hot}.
  static constexpr int kLookupN = 4, kLookupDepth = 12;
  // Layer-skip: confidence bucket x sibling rank 0..3+.
  static constexpr int kConfBuckets = 6, kRanks = 4;
  // Effective memory ~50 observations per bucket: counterfactual scoring supplies several per
  // step, and the text changes character within one request.
  static constexpr double kDecay = 0.98;

  AcceptanceStats();

  enum LookupKind { kBest = 0, kAlternative = 1, kCrossRequest = 2 };
  static int lookup_key(int n, int depth, int kind, bool hot);
  // The first layer-skip draft token of a step, before its confidence is known: drives the
  // decision whether to draft at all.
  static constexpr int draft_first_key() { return kKeys - 1; }
  static int draft_key(float confidence, int rank);
  static int conf_bucket(float confidence);

  // Estimated P(accepted | parent accepted).
  double rate(int key) const;
  void observe(int key, bool accepted);
  // Observations (after forgetting) behind the estimate.
  double weight(int key) const { return tried_[key]; }

  static constexpr int kLookupKeys = kLookupN * kLookupDepth * 3 * 2;
  static constexpr int kKeys = kLookupKeys + kConfBuckets * kRanks + 1;

 private:
  std::array<double, kKeys> prior_{}, accepted_{}, tried_{};
};

}  // namespace swift
