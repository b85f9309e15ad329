#include "engine/lookup/ngram_index.h"

#include <algorithm>

#include "util/check.h"

namespace swift {

namespace {
// (A loop rather than std::equal: GCC 12 warns about a bogus memcmp bound on the latter.)
bool same(const int32_t* a, const int32_t* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}
}  // namespace

NgramIndex::NgramIndex(int n_min, int n_max) : n_min_(n_min), n_max_(n_max) {
  if (n_min < 1 || n_max < n_min || n_max > 16)
    fail("n-gram sizes must satisfy 1 <= min <= max <= 16, got {}..{}", n_min, n_max);
  maps_.resize(static_cast<size_t>(n_max - n_min + 1));
}

uint64_t NgramIndex::key(const int32_t* t, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) {
    h ^= static_cast<uint32_t>(t[i]);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

void NgramIndex::index_position(const std::vector<int32_t>& tokens, int64_t p) {
  // Position p (a continuation token exists at p) follows the n-grams ending at p - 1.
  for (int n = n_min_; n <= n_max_ && n <= p; ++n)
    maps_[n - n_min_][key(tokens.data() + p - n, n)].push_back(static_cast<int32_t>(p));
}

void NgramIndex::sync(const std::vector<int32_t>& tokens) {
  const bool prefix_ok =
      seen_.size() <= tokens.size() && same(seen_.data(), tokens.data(), static_cast<int64_t>(seen_.size()));
  if (!prefix_ok) {
    for (auto& m : maps_) m.clear();
    seen_.clear();
  }
  for (int64_t p = std::max<int64_t>(1, static_cast<int64_t>(seen_.size())); p < static_cast<int64_t>(tokens.size()); ++p)
    index_position(tokens, p);
  seen_.assign(tokens.begin(), tokens.end());
}

void NgramIndex::append(const std::vector<int32_t>& tokens) {
  const int64_t start = static_cast<int64_t>(seen_.size());
  seen_.insert(seen_.end(), tokens.begin(), tokens.end());
  for (int64_t p = std::max<int64_t>(1, start); p < static_cast<int64_t>(seen_.size()); ++p) index_position(seen_, p);
}

void NgramIndex::clear() {
  for (auto& m : maps_) m.clear();
  seen_.clear();
}

std::vector<NgramMatch> NgramIndex::lookup(const std::vector<int32_t>& query, int max_len, int max_matches) const {
  std::vector<NgramMatch> out;
  const int64_t qsize = static_cast<int64_t>(query.size()), size = static_cast<int64_t>(seen_.size());
  if (max_len <= 0 || max_matches <= 0) return out;
  for (int n = static_cast<int>(std::min<int64_t>(n_max_, qsize)); n >= n_min_ && static_cast<int>(out.size()) < max_matches;
       --n) {
    const int32_t* suffix = query.data() + qsize - n;
    const auto& m = maps_[n - n_min_];
    const auto it = m.find(key(suffix, n));
    if (it == m.end()) continue;
    int probed = 0;
    for (auto p = it->second.rbegin(); p != it->second.rend() && probed < kMaxProbe; ++p, ++probed) {
      if (!same(suffix, seen_.data() + *p - n, n)) continue;  // hash collision
      const int64_t len = std::min<int64_t>(max_len, size - *p);
      std::vector<int32_t> cont(seen_.begin() + *p, seen_.begin() + *p + len);
      const bool redundant = std::any_of(out.begin(), out.end(), [&](const NgramMatch& o) {
        return o.tokens.size() >= cont.size() && same(cont.data(), o.tokens.data(), static_cast<int64_t>(cont.size()));
      });
      if (redundant) continue;
      out.push_back({n, *p, std::move(cont)});
      if (static_cast<int>(out.size()) >= max_matches) break;
    }
  }
  return out;
}

}  // namespace swift
