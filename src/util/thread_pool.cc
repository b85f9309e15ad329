#include "util/thread_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "util/timer.h"

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SWIFT_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
// isb: a core-local stall of some tens of cycles, the usual spin-wait delay on AArch64 (`yield`
// is a no-op on most cores, and sched_yield a system call per poll).
#define SWIFT_CPU_RELAX() __asm__ __volatile__("isb" ::: "memory")
#else
#define SWIFT_CPU_RELAX() std::this_thread::yield()
#endif

namespace swift {

namespace {
// Spin this many polls before sleeping (or, waiting for the workers, before yielding): ~0.2 ms
// on the Xeon (20,000 pauses measured 200 us), longer than the gap between two kernels
// of one decode step, shorter than anything a user would notice as idle CPU burn.
constexpr int kSpinPolls = 20000;

// The calling thread's idle-prefetch range: next line to request and end (addresses as integers:
// a prefetch never faults, so the range need not be mapped memory).
struct IdleRange {
  uintptr_t at = 0, end = 0;
};
thread_local IdleRange t_idle;
constexpr uintptr_t kLine = 64;
}  // namespace

void ThreadPool::prefetch_while_idle(const void* begin, const void* end) {
  t_idle.at = reinterpret_cast<uintptr_t>(begin) & ~(kLine - 1);
  t_idle.end = reinterpret_cast<uintptr_t>(end);
}

int64_t ThreadPool::idle_prefetch_left() {
  return t_idle.at < t_idle.end ? static_cast<int64_t>(t_idle.end - t_idle.at) : 0;
}

bool ThreadPool::idle_prefetch_step() {
  IdleRange& r = t_idle;
  if (r.at >= r.end) return false;
  for (int k = 0; k < kIdleLinesPerPoll && r.at < r.end; ++k, r.at += kLine)
    __builtin_prefetch(reinterpret_cast<const char*>(r.at), 0, 2);  // locality 2: prefetcht1 (L2) on x86
  return true;
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads < 1 ? 1 : n_threads),
      worker_tids_(new std::atomic<int>[n_threads_]),
      pair_claims_(new PairClaims[static_cast<size_t>(n_threads_ / 2)]) {
  for (int i = 0; i < n_threads_; ++i) worker_tids_[i].store(0);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunk(int index) {
  const int64_t n = job_n_;
  const int64_t begin = n * index / n_threads_;
  const int64_t end = n * (index + 1) / n_threads_;
  if (begin < end) (*job_)(begin, end, index);
}

void ThreadPool::worker_loop(int index) {
#if defined(__linux__)
  worker_tids_[index].store(static_cast<int>(syscall(SYS_gettid)), std::memory_order_relaxed);
#endif
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinPolls; ++spin) {
      if (!idle_prefetch_step()) SWIFT_CPU_RELAX();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = g;
    if (stop_.load()) return;
    run_chunk(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

int64_t ThreadPool::thread_run_delay_ns(int tid) {
#if defined(__linux__)
  if (tid <= 0) return -1;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  const ssize_t got = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (got <= 0) return -1;
  buf[got] = '\0';
  // "<ns on the CPU> <ns runnable, waiting for a CPU> <time slices>"
  char* end = nullptr;
  std::strtoll(buf, &end, 10);
  char* after = nullptr;
  const long long delay = std::strtoll(end, &after, 10);
  if (after == end || delay < 0) return -1;
  return delay;
#else
  (void)tid;
  return -1;
#endif
}

int64_t ThreadPool::workers_run_delay_ns() const {
  if (run_delay_for_test_) return run_delay_for_test_();
  int64_t total = 0;
  for (int i = 1; i < n_threads_; ++i) {
    const int64_t d = thread_run_delay_ns(worker_tids_[i].load(std::memory_order_relaxed));
    if (d < 0) return -1;
    total += d;
  }
  return total;
}

ThreadPool::Stats ThreadPool::stats() const {
  return Stats{rounds_.get(), long_waits_.get(), contended_.get(), serial_rounds_.get()};
}

void ThreadPool::reset_stats() {
  for (Counter* c : {&rounds_, &long_waits_, &contended_, &serial_rounds_}) c->v.store(0, std::memory_order_relaxed);
}

void ThreadPool::note_long_wait(bool contended, int64_t wait_ns, int64_t at_ns) {
  long_waits_.add();
  if (!contended) return;
  contended_.add();
  window_lost_ns_ += wait_ns;
  const int64_t span = at_ns - window_start_ns_;
  if (span < kWindowMinNs || static_cast<double>(window_lost_ns_) <= kLostFraction * static_cast<double>(span)) return;
  const bool soon_after_retry = retry_ns_ > 0 && at_ns - retry_ns_ <= kWindowNs;
  serial_period_ns_ = soon_after_retry ? std::min(2 * serial_period_ns_, kSerialMaxNs) : kSerialNs;
  serial_until_ns_ = at_ns + serial_period_ns_;
  window_start_ns_ = 0;
}

void ThreadPool::parallel_for(int64_t n, Job fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  rounds_.add();
  if (serial_until_ns_ > 0) {  // after contended rounds (see the header): one clock read per round
    const int64_t now = now_ns();
    if (now < serial_until_ns_) {  // every chunk here, in order
      serial_rounds_.add();
      for (int i = 0; i < n_threads_; ++i) run_chunk(i);
      job_ = nullptr;
      return;
    }
    serial_until_ns_ = 0;  // the period is over: the workers again, judged on a fresh window
    retry_ns_ = now;
    window_start_ns_ = 0;
  }
  if ((++clock_ & 1023) == 0 || window_start_ns_ == 0) {  // one clock read per 1,024 rounds
    const int64_t now = now_ns();
    if (window_start_ns_ == 0 || now - window_start_ns_ >= kWindowNs) {
      window_start_ns_ = now;
      window_lost_ns_ = 0;
    }
  }
  pending_.store(n_threads_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  run_chunk(0);
  // Spin briefly (the workers usually finish within microseconds), then yield: when the machine
  // is oversubscribed a descheduled worker must get the core instead of our spinning.
  // Past kSlowPolls (~10 us; a normal round waits ~1 us) the wait is timed, and past the spin
  // phase the workers' run delay is read (see the header): a few syscalls in a round that has
  // already waited ~0.2 ms.
  constexpr int kSlowPolls = 256;
  int64_t slow_since_ns = 0, delay_before = -1;
  bool long_wait = false;
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin == kSlowPolls) slow_since_ns = now_ns();
    if (spin < kSpinPolls) {
      if (!idle_prefetch_step()) SWIFT_CPU_RELAX();
      continue;
    }
    if (!long_wait) {
      long_wait = true;
      delay_before = workers_run_delay_ns();
    }
    std::this_thread::yield();
  }
  job_ = nullptr;
  if (long_wait) {
    const int64_t now = now_ns(), wait_ns = now - slow_since_ns;
    const int64_t delay_after = delay_before >= 0 ? workers_run_delay_ns() : -1;
    const bool contended = delay_after >= 0 && 2 * (delay_after - delay_before) >= wait_ns;
    note_long_wait(contended, wait_ns, now);
  }
}

void ThreadPool::parallel_for_balanced(int64_t n, int64_t shared, Job fn) {
  const int64_t T = n_threads_;
  if (T == 1 || n <= 1 || shared <= 0) return parallel_for(n, fn);
  for (int64_t j = 0; j < T / 2; ++j) pair_claims_[j].taken.store(0, std::memory_order_relaxed);
  // Published to the workers by parallel_for's generation bump (release), like the job itself.
  auto body = [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t begin = n * i / T, end = n * (i + 1) / T;
      if (i == T - 1 && T % 2 == 1) {  // the odd thread out: its own chunk
        if (begin < end) fn(begin, end, static_cast<int>(i));
        continue;
      }
      const bool front = i % 2 == 0;
      const int64_t mid = front ? end : begin;  // the cut between the pair's two chunks
      const int64_t lo = std::max(n * (i - i % 2) / T, mid - shared);
      const int64_t hi = std::min(n * (i - i % 2 + 2) / T, mid + shared);
      if (front && begin < lo) fn(begin, lo, static_cast<int>(i));
      if (!front && hi < end) fn(hi, end, static_cast<int>(i));
      std::atomic<int64_t>& taken = pair_claims_[i / 2].taken;
      for (int64_t k = 0; taken.fetch_add(1, std::memory_order_relaxed) < hi - lo; ++k) {
        const int64_t u = front ? lo + k : hi - 1 - k;
        fn(u, u + 1, static_cast<int>(i));
      }
    }
  };
  parallel_for(T, body);
}

int ThreadPool::default_threads() {
  // Count distinct (physical id, core id) pairs; fall back to hardware_concurrency.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string val = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "physical id") phys = val;
    if (key == "core id") cores.insert({phys, val});
  }
  int n = static_cast<int>(cores.size());
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

}  // namespace swift
