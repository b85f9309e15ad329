// Persistent thread pool for data-parallel kernels.
//
// A decode step runs ~200 small parallel regions (every matmul, attention of every layer), so a
// wake-up through a condition variable (~10-50 us) would cost as much as the math. Workers
// therefore spin on an atomic generation counter for a short while after each job and only then
// sleep in std::atomic::wait. The calling thread always takes part in the work.
//
// Invariant: parallel_for splits [0, n) into contiguous chunks, one per thread, in a fixed way
// that depends only on n and the thread count. Kernels make each output element the work of one
// thread, so results never depend on the split (see ops/matmul.h on batch invariance).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
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

  // Physical cores of this machine (threads sharing a core do not add memory bandwidth).
  static int default_threads();

 private:
  void worker_loop(int index);
  void run_chunk(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const Job* job_ = nullptr;
  int64_t job_n_ = 0;
};

}  // namespace swift
