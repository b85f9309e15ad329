#include "engine/lookup/ngram_index.h"

#include <algorithm>
#include <cstdint>

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
  head_.resize(static_cast<size_t>(n_max - n_min + 1));
  prev_.resize(head_.size());
  clear();
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

void NgramIndex::index_position(int64_t p) {
  for (int n = n_min_; n <= n_max_; ++n) {
    auto& prev = prev_[n - n_min_];
    prev.push_back(kNone);  // prev[p]; positions before the first whole n-gram stay unlinked
    if (n > p) continue;
    int32_t& head = head_[n - n_min_][key(seen_.data() + p - n, n) & bucket_mask_];
    prev[p] = head;
    head = static_cast<int32_t>(p);
  }
}

void NgramIndex::rebuild(uint64_t buckets) {
  bucket_mask_ = buckets - 1;
  for (auto& h : head_) h.assign(buckets, kNone);
  for (auto& p : prev_) p.assign(1, kNone);  // position 0: nothing precedes it
  for (int64_t p = 1; p < static_cast<int64_t>(seen_.size()); ++p) index_position(p);
}

void NgramIndex::sync(const std::vector<int32_t>& tokens) {
  // Called every decoding step with the whole history: the prefix check is one pass over ints,
  // and only the appended tokens are copied and indexed.
  if (seen_.size() > tokens.size() || !same(seen_.data(), tokens.data(), static_cast<int64_t>(seen_.size()))) clear();
  append_range(tokens.data() + seen_.size(), tokens.data() + tokens.size());
}

void NgramIndex::append(const std::vector<int32_t>& tokens) { append_range(tokens.data(), tokens.data() + tokens.size()); }

void NgramIndex::append_range(const int32_t* begin, const int32_t* end) {
  const size_t n_new = static_cast<size_t>(end - begin);
  if (n_new == 0) return;
  // Positions are int32 (half the memory of the chains); checked before anything grows.
  if (n_new >= static_cast<size_t>(INT32_MAX) - seen_.size())
    fail("n-gram index: a history of {} + {} tokens exceeds {}", seen_.size(), n_new, INT32_MAX - 1);
  const int64_t start = static_cast<int64_t>(seen_.size());
  seen_.insert(seen_.end(), begin, end);
  uint64_t buckets = bucket_mask_ + 1;
  while (buckets < 2 * static_cast<uint64_t>(seen_.size())) buckets *= 2;  // load <= 1/2
  if (buckets != bucket_mask_ + 1) return rebuild(buckets);
  for (int64_t p = std::max<int64_t>(1, start); p < static_cast<int64_t>(seen_.size()); ++p) index_position(p);
}

void NgramIndex::clear() {
  seen_.clear();
  rebuild(kInitialBuckets);
}

std::vector<NgramMatch> NgramIndex::lookup(const std::vector<int32_t>& query, int max_len, int max_matches) const {
  std::vector<NgramMatch> out;
  const int64_t qsize = static_cast<int64_t>(query.size()), size = static_cast<int64_t>(seen_.size());
  if (max_len <= 0 || max_matches <= 0) return out;
  for (int n = static_cast<int>(std::min<int64_t>(n_max_, qsize)); n >= n_min_ && static_cast<int>(out.size()) < max_matches;
       --n) {
    const int32_t* suffix = query.data() + qsize - n;
    const auto& prev = prev_[n - n_min_];
    int probed = 0;
    for (int32_t p = head_[n - n_min_][key(suffix, n) & bucket_mask_]; p != kNone && probed < kMaxProbe;
         p = prev[p], ++probed) {
      if (!same(suffix, seen_.data() + p - n, n)) continue;  // another n-gram in this bucket
      const int64_t len = std::min<int64_t>(max_len, size - p);
      std::vector<int32_t> cont(seen_.begin() + p, seen_.begin() + p + len);
      const bool redundant = std::any_of(out.begin(), out.end(), [&](const NgramMatch& o) {
        return o.tokens.size() >= cont.size() && same(cont.data(), o.tokens.data(), static_cast<int64_t>(cont.size()));
      });
      if (redundant) continue;
      out.push_back({n, p, std::move(cont)});
      if (static_cast<int>(out.size()) >= max_matches) break;
    }
  }
  return out;
}

}  // namespace swift
