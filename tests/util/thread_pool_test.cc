// ThreadPool: the fixed split, and the fallback to the calling thread when other load takes the
// cores (util/thread_pool.h). A worker cannot be made to lose its core on demand, so contention
// is injected with assume_contention_for_test(); whether a long wait counts as contention at
// all is checked for real: a worker that sleeps through a round was not waiting for a CPU.
#include "util/thread_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace swift {
namespace {

// One round over two chunks; returns the thread that ran chunk 1 (begin == 1). The worker, when
// it runs it, sleeps `sleep_ms` (past the pool's spin phase, ~0.2 ms here: a long wait).
std::thread::id chunk1_thread(ThreadPool& p, int sleep_ms) {
  std::thread::id who;
  const std::thread::id caller = std::this_thread::get_id();
  p.parallel_for(2, [&](int64_t b, int64_t, int) {
    if (b != 1) return;
    who = std::this_thread::get_id();
    if (who != caller && sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  });
  return who;
}

TEST(ThreadPool, CoversEveryIndexOnceInFixedChunks) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool p(threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1000}) {
      std::vector<int> hits(n, 0);
      std::vector<std::pair<int64_t, int64_t>> chunks(threads, {-1, -1});
      p.parallel_for(n, [&](int64_t b, int64_t e, int idx) {
        chunks[idx] = {b, e};
        for (int64_t i = b; i < e; ++i) ++hits[i];
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << threads << " threads, n " << n << ", index " << i;
      if (n > 1 && threads > 1)
        for (int t = 0; t < threads; ++t) {
          if (n * t / threads == n * (t + 1) / threads) continue;  // an empty chunk is not called
          EXPECT_EQ(chunks[t].first, n * t / threads);
          EXPECT_EQ(chunks[t].second, n * (t + 1) / threads);
        }
    }
  }
}

// Both chunks busy for `ms` (the worker running, not waiting: a normal round).
void busy_round(ThreadPool& p, int ms) {
  p.parallel_for(2, [&](int64_t, int64_t, int) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
    }
  });
}

TEST(ThreadPool, RunsAloneWhileContentionTakesMostOfTheTimeThenTriesTheWorkersAgain) {
  ThreadPool p(2);
  const std::thread::id caller = std::this_thread::get_id();
  ASSERT_NE(chunk1_thread(p, 0), caller);  // normally the worker takes chunk 1
  p.reset_stats();                         // the first round may have waited for the worker thread to start
  // A contended 20 ms wait: over 45% of a window that is >= 10 ms old.
  p.assume_contention_for_test();
  ASSERT_NE(chunk1_thread(p, 20), caller);
  EXPECT_GE(p.stats().contended, 1u);
  EXPECT_EQ(p.stats().serial_rounds, 0u);
  // Now every chunk runs on the calling thread, same split, every index once.
  std::vector<int> hits(10, 0);
  p.parallel_for(10, [&](int64_t b, int64_t e, int) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    for (int64_t i = b; i < e; ++i) ++hits[i];
  });
  EXPECT_EQ(hits, std::vector<int>(10, 1));
  for (uint64_t r = 1; r < ThreadPool::kSerialRounds; ++r) ASSERT_EQ(chunk1_thread(p, 0), caller) << r;
  EXPECT_EQ(p.stats().serial_rounds, ThreadPool::kSerialRounds);
  EXPECT_NE(chunk1_thread(p, 0), caller);  // the period is over: the worker again
  // Contended again right after the retry: a period twice as long.
  p.assume_contention_for_test();
  ASSERT_NE(chunk1_thread(p, 20), caller);
  for (uint64_t r = 0; r < 2 * ThreadPool::kSerialRounds; ++r) ASSERT_EQ(chunk1_thread(p, 0), caller) << r;
  EXPECT_NE(chunk1_thread(p, 0), caller);
  EXPECT_EQ(p.stats().serial_rounds, 3 * ThreadPool::kSerialRounds);
}

TEST(ThreadPool, BriefContentionKeepsTheWorkers) {
  ThreadPool p(2);
  const std::thread::id caller = std::this_thread::get_id();
  ASSERT_NE(chunk1_thread(p, 0), caller);
  p.reset_stats();
  for (int i = 0; i < 40; ++i) busy_round(p, 1);  // 40 ms of normal rounds in this window
  p.assume_contention_for_test();
  ASSERT_NE(chunk1_thread(p, 10), caller);  // 10 ms lost of ~50: under 45%
  EXPECT_GE(p.stats().contended, 1u);       // more if this machine really delayed a worker meanwhile
  EXPECT_NE(chunk1_thread(p, 0), caller);
  EXPECT_EQ(p.stats().serial_rounds, 0u);
}

TEST(ThreadPool, ALongRoundWhoseWorkerWasRunningIsNotContention) {
  ThreadPool p(2);
  const std::thread::id caller = std::this_thread::get_id();
  chunk1_thread(p, 0);  // the worker has started (which may take a long wait) and published its id
  p.reset_stats();
  std::ifstream probe("/proc/self/task/" + std::to_string(gettid()) + "/schedstat");
  if (!probe) GTEST_SKIP() << "no per-thread schedstat here: contention is never detected";
  constexpr int kRounds = 4;
  for (int i = 0; i < kRounds; ++i) ASSERT_NE(chunk1_thread(p, 20), caller);  // asleep, not waiting for a CPU
  EXPECT_EQ(p.stats().long_waits, static_cast<uint64_t>(kRounds));
  EXPECT_EQ(p.stats().contended, 0u);
  EXPECT_NE(chunk1_thread(p, 0), caller);
  EXPECT_EQ(p.stats().serial_rounds, 0u);
}

}  // namespace
}  // namespace swift
