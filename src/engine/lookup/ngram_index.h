// Prompt-lookup drafting: continuations of the newest n-gram's earlier occurrences.
//
// Text that repeats itself (code, quoting, lists, templates) is predicted for free by copying
// what followed the last time the current suffix appeared (Saxena 2023, "prompt lookup
// decoding"; shipped as HF `prompt_lookup_num_tokens`, vLLM `ngram`, llama.cpp `lookup`). No
// forward pass is spent on the proposal; verification decides.
//
// The index maps every n-gram (n_min <= n <= n_max) of the token history to the positions that
// follow it. It is updated incrementally (O(n_max) hash inserts per new token) and rebuilt only
// when the history shrinks or changes. Invariant: every indexed position p satisfies
// p < tokens.size(), i.e. a continuation token exists.
#pragma once

#include <cstdint>
#include <unordered_map>
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
  // skipped. At most kMaxProbe occurrences are examined per n, so the cost is bounded.
  std::vector<NgramMatch> lookup(const std::vector<int32_t>& query, int max_len, int max_matches) const;

  int n_min() const { return n_min_; }
  int n_max() const { return n_max_; }
  static constexpr int kMaxProbe = 64;

 private:
  static uint64_t key(const int32_t* t, int n);
  void index_position(const std::vector<int32_t>& tokens, int64_t p);

  int n_min_, n_max_;
  std::vector<std::unordered_map<uint64_t, std::vector<int32_t>>> maps_;  // [n_max - n_min + 1]
  std::vector<int32_t> seen_;  // the history indexed so far
};

}  // namespace swift
