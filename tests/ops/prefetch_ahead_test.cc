// PrefetchAhead's window (ops/prefetch_ahead.h): which lines it requests and when, recorded in
// place of the prefetch instruction. The kernels' results with a `next` hint are checked in
// bf16_dot_test.cc and matmul_test.cc (a hint must not change a bit).
#include "ops/prefetch_ahead.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace swift {
namespace {

struct Recorder {
  static std::vector<const char*>& log() {
    static std::vector<const char*> v;
    return v;
  }
  static void fetch(const char* p) { log().push_back(p); }
  // The range handed to the pool's waits: [first, second), or none.
  static std::pair<const char*, const char*>& idle_range() {
    static std::pair<const char*, const char*> r;
    return r;
  }
  static void idle(const char* begin, const char* end) { idle_range() = {begin, end}; }
};
using Recorded = BasicPrefetchAhead<Recorder>;
constexpr int64_t kLine = Recorded::kLine;

// A thread's share of 10 groups of 1 KiB (16 lines) multiplied in 3 token tiles of 8 steps each
// (24 steps per group: one line per step), then the next product's share.
TEST(PrefetchAhead, KeepsTheNextGroupsRequestedThenTheNextProductsShare) {
  std::vector<char> own(10 * 1024), next(3000);
  Recorder::log().clear();
  // Units 1..2 of 3 of the next product: bytes [1000, 2000) of it (1000 per unit).
  Recorded pf(own.data() + own.size(), NextWeights{next.data(), 3000}, 1, 2, 3);
  const int64_t group = 1024, steps = 24;
  for (int64_t g = 0; g < 10; ++g) {
    const char* start = own.data() + g * group;
    if (g >= 1) {  // every line of this group was requested before it started
      std::set<const char*> seen(Recorder::log().begin(), Recorder::log().end());
      for (int64_t b = 0; b < group; b += kLine) ASSERT_TRUE(seen.count(start + b)) << "group " << g << " byte " << b;
    }
    pf.begin_group(start, start + group, steps);
    for (int64_t s = 0; s < steps; ++s) pf.step();
    // Never more than kGroupsAhead groups past the one running, and never this group or earlier.
    for (const char* p : Recorder::log()) {
      if (p >= next.data() && p < next.data() + next.size()) continue;
      ASSERT_GE(p, own.data() + group) << "group " << g;  // the first group is the demand stream's
      ASSERT_LT(p, start + (1 + Recorded::kGroupsAhead) * group) << "group " << g;
    }
  }
  // Each line once, in order: all of the own share after the first group, then the next
  // product's share from its start (2 groups' worth allowed: it has 1000 bytes, 16 lines).
  const auto& log = Recorder::log();
  std::vector<const char*> want;
  for (int64_t b = group; b < 10 * group; b += kLine) want.push_back(own.data() + b);
  for (int64_t b = 0; b < 1000; b += kLine) want.push_back(next.data() + 1000 + b);
  ASSERT_EQ(log, want);
}

// Wide groups (a matrix of thousands of columns): the window stops kMaxAheadBytes past the
// running group's end instead of two groups (which outgrew L2 and were read twice), and still
// holds all of those bytes by the time the group is done.
TEST(PrefetchAhead, CapsTheWindowOfWideGroups) {
  constexpr int64_t kGroup = 4 * Recorded::kMaxAheadBytes, kGroups = 4;
  static_assert(Recorded::kGroupsAhead * kGroup > static_cast<int64_t>(Recorded::kMaxAheadBytes));
  std::vector<char> own(kGroups * kGroup);
  Recorder::log().clear();
  Recorded pf(own.data() + own.size(), NextWeights{}, 0, 1, 1);
  for (int64_t g = 0; g < kGroups; ++g) {
    const char* start = own.data() + g * kGroup;
    const int64_t steps = 64;
    pf.begin_group(start, start + kGroup, steps);
    for (int64_t s = 0; s < steps; ++s) pf.step();
    const char* end = start + kGroup;
    const char* cap = std::min<const char*>(end + Recorded::kMaxAheadBytes, own.data() + own.size());
    std::set<const char*> seen;
    for (const char* p : Recorder::log()) {
      ASSERT_LT(p, cap) << "group " << g;
      seen.insert(p);
    }
    for (const char* p = end; p < cap; p += kLine) ASSERT_TRUE(seen.count(p)) << "group " << g << " line " << (p - end);
  }
}

// Without a next product, nothing past the own share; several lines per step when a group has
// more lines than steps (one token: a single tile), and the window fills in time.
TEST(PrefetchAhead, StaysInsideTheShareAndKeepsUpWithOneTile) {
  std::vector<char> own(5 * 2048);
  Recorder::log().clear();
  Recorded pf(own.data() + own.size(), NextWeights{}, 0, 1, 1);
  for (int64_t g = 0; g < 5; ++g) {
    const char* start = own.data() + g * 2048;
    if (g >= 1) {
      ASSERT_GE(Recorder::log().size(), static_cast<size_t>(g * 32)) << "group " << g;
    }
    pf.begin_group(start, start + 2048, 8);  // 32 lines in 8 steps: 4 per step
    for (int s = 0; s < 8; ++s) pf.step();
  }
  ASSERT_EQ(Recorder::log().size(), 4u * 32u);  // groups 1..4, each line once
  for (const char* p : Recorder::log()) {
    ASSERT_GE(p, own.data() + 2048);
    ASSERT_LT(p, own.data() + own.size());
  }
}

// An empty share of the next product (u0 == u1) or no steps: nothing is requested from it.
TEST(PrefetchAhead, EmptyShareOrNoStepsRequestNothing) {
  std::vector<char> own(1024), next(4096);
  Recorder::log().clear();
  Recorded pf(own.data() + own.size(), NextWeights{next.data(), 4096}, 2, 2, 4);
  pf.begin_group(own.data(), own.data() + 1024, 4);
  for (int s = 0; s < 4; ++s) pf.step();
  EXPECT_TRUE(Recorder::log().empty());
  Recorded idle(own.data() + own.size(), NextWeights{next.data(), 4096}, 0, 4, 4);
  idle.begin_group(own.data(), own.data() + 1024, 0);
  for (int s = 0; s < 4; ++s) idle.step();
  EXPECT_TRUE(Recorder::log().empty());
}

// With a twin (the up half of a fused gate|up matrix), every line of the own share is requested
// with the line at the twin's distance; the next product's share alone.
TEST(PrefetchAhead, RequestsTheTwinOfEveryOwnLineOnly) {
  std::vector<char> both(2 * 4096), next(2048);
  const char* own = both.data();
  Recorder::log().clear();
  BasicPrefetchAhead<Recorder, true> pf(own + 4096, NextWeights{next.data(), 2048}, 0, 1, 1);
  pf.set_twin(4096);
  for (int64_t g = 0; g < 4; ++g) {
    pf.begin_group(own + g * 1024, own + (g + 1) * 1024, 16);
    for (int s = 0; s < 16; ++s) pf.step();
  }
  std::vector<const char*> want;
  for (int64_t b = 1024; b < 4096; b += kLine) want.push_back(own + b), want.push_back(own + 4096 + b);
  const auto& log = Recorder::log();
  ASSERT_GE(log.size(), want.size());
  ASSERT_EQ(std::vector<const char*>(log.begin(), log.begin() + static_cast<int64_t>(want.size())), want);
  for (size_t i = want.size(); i < log.size(); ++i) {  // then the next share, each line once
    ASSERT_EQ(log[i], next.data() + static_cast<int64_t>(i - want.size()) * kLine);
  }
  EXPECT_GT(log.size(), want.size());
}

// When the share is done, the rest of the next product's share (what the window had not reached)
// is handed to the pool's waits, at most kIdleBytes of it.
TEST(PrefetchAhead, HandsTheRestOfTheNextShareToTheIdleWaits) {
  std::vector<char> own(4 * 1024);
  const auto share = 2 * static_cast<int64_t>(Recorded::kIdleBytes);  // more than is handed over
  std::vector<char> next(3 * share);
  Recorder::log().clear();
  Recorder::idle_range() = {nullptr, nullptr};
  Recorded pf(own.data() + own.size(), NextWeights{next.data(), 3 * share}, 1, 2, 3);
  for (int64_t g = 0; g < 4; ++g) {
    pf.begin_group(own.data() + g * 1024, own.data() + (g + 1) * 1024, 16);
    for (int s = 0; s < 16; ++s) pf.step();
  }
  // The window reached into the next share: its last request + 1 line is where the idle range starts.
  const char* last = Recorder::log().back();
  ASSERT_GE(last, next.data() + share);
  ASSERT_LT(last, next.data() + 2 * share);
  pf.hand_over_to_idle();
  EXPECT_EQ(Recorder::idle_range().first, last + kLine);
  EXPECT_EQ(Recorder::idle_range().second, last + kLine + Recorded::kIdleBytes);

  // A short next share: up to its end only. Without a next product: nothing handed over.
  Recorder::idle_range() = {nullptr, nullptr};
  std::vector<char> small(3000);
  Recorded pf2(own.data() + own.size(), NextWeights{small.data(), 3000}, 0, 1, 3);
  pf2.hand_over_to_idle();  // before any group: the whole share [0, 1000)
  EXPECT_EQ(Recorder::idle_range().first, small.data());
  EXPECT_EQ(Recorder::idle_range().second, small.data() + 1000);
  Recorder::idle_range() = {nullptr, nullptr};
  Recorded pf3(own.data() + own.size(), NextWeights{}, 0, 1, 1);
  pf3.begin_group(own.data(), own.data() + 1024, 4);
  for (int s = 0; s < 4; ++s) pf3.step();
  pf3.hand_over_to_idle();
  EXPECT_EQ(Recorder::idle_range().first, nullptr);
}

}  // namespace
}  // namespace swift
