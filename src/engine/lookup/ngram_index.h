// Prompt-lookup drafting: continuations of the newest n-gram's earlier occurrences.
//
// Text that repeats itself (code, quoting, lists, templates) is predicted for free by copying
// what followed the last time the current suffix appeared (Saxena 2023, "prompt lookup
// decoding"; shipped as HF `prompt_lookup_num_tokens`, vLLM `ngram`, llama.cpp `lookup`). No
// forward pass is spent on the proposal; verification decides.
//
// The index maps every n-gram (n_min <= n <= n_max) of the token history to the positions that
// follow it, as hash chains (the LZ77 / zlib match finder's layout): per n, head_[bucket] is the
// newest position whose preceding n-gram hashes to the bucket and prev_[p] the next older one.
// Indexing a token is two int writes per n, with no allocation; a chain is walked newest first
// and every candidate is compared with the query (different n-grams may share a bucket). The
// index is updated incrementally and rebuilt only when the history shrinks or changes, or
// outgrows its buckets. The hybrid decoder syncs it every step right after a forward pass has
// streamed tens of MB through the caches: the unordered_map of vectors it replaces cost ~4 us
// per step in cache misses and allocations. Invariant: every indexed position p satisfies
// 1 <= p < history size, i.e. a continuation token exists.
#pragma once

#include <cstdint>
#include <vector>

namespace swift {

struct NgramMatch {
  int n = 0;                     // length of the matched suffix
  int64_t pos = 0;               // index in the history of the first continuation token
  std::vector<int32_t> tokens;   // the continuation (at most max_len tokens)
};

class NgramIndex {
 public:
  NgramIndex(int n_min, int n_max);

  // Makes the indexed history equal `tokens`, indexing only what was appended since the last
  // call (rebuilds if the prefix changed).
  void sync(const std::vector<int32_t>& tokens);
  // Appends tokens to the indexed history (a cache of many texts, e.g. across requests).
  void append(const std::vector<int32_t>& tokens);
  void clear();
  int64_t size() const { return static_cast<int64_t>(seen_.size()); }
  const std::vector<int32_t>& history() const { return seen_; }

  // Up to max_matches continuations, in the indexed history, of the suffix of `query` (the
  // indexed history itself after sync, or another text for a cache), longest n first, then
  // most recent occurrence first; a continuation that is a prefix of one already chosen is
  // skipped. At most kMaxProbe chain entries (occurrences, and rare other n-grams sharing the
  // bucket) are examined per n, so the cost is bounded.
  std::vector<NgramMatch> lookup(const std::vector<int32_t>& query, int max_len, int max_matches) const;

  int n_min() const { return n_min_; }
  int n_max() const { return n_max_; }
  static constexpr int kMaxProbe = 64;

 private:
  static uint64_t key(const int32_t* t, int n);
  // Links position p (p >= 1, prev_ holding p entries) into the chains of the n-grams ending at
  // p - 1.
  void index_position(int64_t p);
  // Sets `buckets` (a power of two) and relinks every position, oldest first (chains stay
  // newest first).
  void rebuild(uint64_t buckets);
  // Appends [begin, end) to the history and indexes it (append() and sync() share it).
  void append_range(const int32_t* begin, const int32_t* end);

  static constexpr int32_t kNone = -1;
  static constexpr uint64_t kInitialBuckets = 1024;
  int n_min_, n_max_;
  uint64_t bucket_mask_ = 0;
  std::vector<std::vector<int32_t>> head_;  // [n_max - n_min + 1][bucket_mask_ + 1] newest position or kNone
  std::vector<std::vector<int32_t>> prev_;  // [n_max - n_min + 1][history size] next older position or kNone
  std::vector<int32_t> seen_;               // [history size] the history indexed so far
};

}  // namespace swift
