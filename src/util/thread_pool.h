// Persistent thread pool for data-parallel kernels.
//
// A decode step runs ~200 small parallel regions (every matmul, attention of every layer), so a
// wake-up through a condition variable (~10-50 us) would cost as much as the math. Workers
// therefore spin on an atomic generation counter for a short while after each job and only then
// sleep in std::atomic::wait. The calling thread always takes part in the work.
//
// Invariant: parallel_for splits [0, n) into contiguous chunks, one per thread, in a fixed way
// that depends only on n and the thread count (parallel_for_balanced shares the units around
// the cuts out at run time). Kernels make each output element the work of one call on one
// thread, so results never depend on the split (see ops/matmul.h on batch invariance).
//
// Contention: when other processes keep the cores busy, a worker loses its core for whole
// scheduler slices (milliseconds), often in the middle of a round, and every round then waits
// for it: on the 2-core Xeon with one busy-looping process beside it, plain decoding of
// swift-mini-24L fell from ~830 to 123-250 tokens/s with 2 threads, below what 1 thread makes
// (340-450). So when a round's wait outlasts the spin phase, the pool asks the kernel (Linux:
// /proc/self/task/TID/schedstat) how long the workers sat runnable without a CPU meanwhile; if
// that was over half the wait, the round is contended and its wait counts as lost. Once the lost
// time exceeds kLostFraction of the current window (at least kWindowMinNs old; a new window
// starts every ~kWindowNs, checked every 1,024 rounds), the calling thread runs the next rounds
// alone, chunk by chunk with the same split (so the same results), while the workers sleep.
// Serial work costs ~1.8x here, so waits above ~45% of the time would already favour 1 thread;
// at that break-even a server beside its own load generator (bursty HTTP and client threads)
// ran 10% of its rounds alone and lost ~5%, so the threshold is 60% (3% alone there, no loss).
// Then it tries the workers again; the period starts at kSerialNs and doubles (up to
// kSerialMaxNs) when the time is lost again within kWindowNs of a retry. The period is a time,
// not a count of rounds: a round of a model with 2,048-wide layers lasts ~50x one of the demo
// model's, and the 4,096 rounds that were ~50 ms of the demo model were ~1.8 s there (a random
// 4-layer LLaMA in Q8_0 on the 2-core Xeon VM: 3 of 8 `generate` runs of 256 tokens at half
// speed after one burst of contention, 59-60 against 109-119 tokens/s). A round that is merely
// long (page faults on a fresh KV cache, an uneven split) is not contended: its worker was
// running. stats() counts all of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "util/function_ref.h"

namespace swift {

class ThreadPool {
 public:
  // n_threads >= 1 counts the calling thread.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) on disjoint chunks covering [0, n). Blocks until done.
  // Not reentrant: fn must not call parallel_for on the same pool. fn is referenced, not copied
  // (util/function_ref.h): no allocation per call.
  using Job = FunctionRef<void(int64_t, int64_t, int)>;
  void parallel_for(int64_t n, Job fn);

  // The units of parallel_for's split, shared out at the end so that neither thread of a pair
  // waits for the other: threads 2j and 2j+1 take their two chunks as one range [b, e) with
  // middle m (where parallel_for would cut it); thread 2j runs [b, m - shared) and thread 2j + 1
  // runs [m + shared, e) at once, then each claims single units of [m - shared, m + shared)
  // through a counter the two share, 2j from the front and 2j + 1 from the back, until none is
  // left (an odd last thread runs its chunk alone). fn is called once for the first run and once
  // per claimed unit. Every unit runs exactly once, but which thread runs a middle unit depends
  // on timing, so fn's results must not depend on the thread (the kernels' rule anyway: each
  // output is the work of one call, whatever thread makes it).
  // Why (issue 6): a worker starts a round ~0.4 us after the calling thread, and one half of a
  // split often runs 5-10% longer than the other (whichever thread takes it), so with fixed
  // halves the calling thread waited ~2-4K cycles at the end of most matrix products of a
  // 16-token pass on the 2-core Xeon (~130 us of a 1.65 ms pass, cycle counters per round).
  // Cost: one shared atomic add per claim (a cross-core cache-line transfer, ~0.1 us) and per
  // thread one more to find the middle used up, so a unit should be worth a few microseconds
  // of work or more.
  void parallel_for_balanced(int64_t n, int64_t shared, Job fn);

  // Idle prefetch (issue 6): this thread's range [begin, end) is prefetched into L2, a few cache
  // lines per poll, whenever the thread next waits in the pool (a worker for the next round, the
  // calling thread for the workers); a new range replaces the old one. The matrix kernels hand
  // each thread the rest of its share of the next product's weights here when their share of the
  // current one is done (ops/prefetch_ahead.h), so a thread that finishes first streams its next
  // weights instead of idling: in a one-token pass each thread waits ~15-20% of its time (one
  // half of a split often runs longer, whichever thread takes it), while a single core reads at
  // ~half the two cores' bandwidth. A hint only: prefetches never fault and never change a result.
  static void prefetch_while_idle(const void* begin, const void* end);
  // Bytes of the calling thread's range not yet prefetched (for tests).
  static int64_t idle_prefetch_left();
  static constexpr int kIdleLinesPerPoll = 4;  // 2-16 measured alike

  // Physical cores of this machine (threads sharing a core do not add memory bandwidth).
  static int default_threads();

  static constexpr double kLostFraction = 0.6;
  static constexpr int64_t kWindowMinNs = 10'000'000;  // 10 ms
  static constexpr int64_t kWindowNs = 50'000'000;     // 50 ms
  static constexpr int64_t kSerialNs = 50'000'000;     // 50 ms (~40 decode steps of swift-mini-24L)
  static constexpr int64_t kSerialMaxNs = 1'600'000'000;  // 1.6 s: 50 ms doubled five times
  struct Stats {
    uint64_t rounds = 0;         // parallel_for calls that split the work
    uint64_t long_waits = 0;     // rounds that waited for a worker past the spin phase
    uint64_t contended = 0;      // of those, rounds whose workers waited for a CPU most of the wait
    uint64_t serial_rounds = 0;  // rounds the calling thread ran alone after contended ones
  };
  // Since construction or the last reset_stats(). stats() may run on any thread (a snapshot of
  // counters the calling thread updates; the server's /metrics reads it); reset from the calling
  // thread.
  Stats stats() const;
  void reset_stats();
  // Nanoseconds thread `tid` (a Linux thread id) has spent runnable but waiting for a CPU, from
  // /proc/self/task/TID/schedstat; -1 where the kernel does not say. No heap allocation.
  static int64_t thread_run_delay_ns(int tid);
  // Test seam: the workers' summed run delay comes from `source` instead of the kernel (a test
  // cannot make a worker lose its core at a chosen moment). Empty: the kernel again.
  void set_run_delay_source_for_test(std::function<int64_t()> source) { run_delay_for_test_ = std::move(source); }

 private:
  // One poll's share of the idle range; false when none is left (then the poll pauses instead).
  static bool idle_prefetch_step();
  void worker_loop(int index);
  void run_chunk(int index);
  // Sum over the workers of the time they were runnable but not running (ns), or -1 where the
  // kernel does not say. No heap allocation (it may run inside a forward pass).
  int64_t workers_run_delay_ns() const;
  void note_long_wait(bool contended, int64_t wait_ns, int64_t at_ns);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const Job* job_ = nullptr;
  int64_t job_n_ = 0;
  std::unique_ptr<std::atomic<int>[]> worker_tids_;  // [n_threads_] Linux thread ids, 0 until known
  // parallel_for_balanced: per pair of threads, the units of the shared middle claimed so far
  // (own cache line each, so pairs do not contend with one another).
  struct alignas(64) PairClaims {
    std::atomic<int64_t> taken{0};
  };
  std::unique_ptr<PairClaims[]> pair_claims_;  // [n_threads_ / 2]
  // Written by the calling thread only (one writer: a relaxed load and store, no locked add).
  struct Counter {
    std::atomic<uint64_t> v{0};
    void add() { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };
  Counter rounds_, long_waits_, contended_, serial_rounds_;
  // Calling thread only (parallel_for is not reentrant):
  uint64_t clock_ = 0;           // parallel rounds since construction (stats can be reset)
  int64_t window_start_ns_ = 0;  // steady_clock; 0: start one at the next parallel round
  int64_t window_lost_ns_ = 0;   // waits of contended rounds in this window
  int64_t retry_ns_ = 0;         // steady_clock when the workers were last tried again (0: never)
  int64_t serial_until_ns_ = 0;  // steady_clock; rounds run alone until then (0: not alone)
  int64_t serial_period_ns_ = kSerialNs;
  std::function<int64_t()> run_delay_for_test_;
};

}  // namespace swift
