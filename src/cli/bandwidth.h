// Memory bandwidth probes for `bench --roofline`: the limits decode speed is measured against.
//
// Two limits, because one does not fit every machine. The STREAM-style triad (issue 6 asks for
// it) streams 3 x 128 MiB, far past any cache: it is the DRAM limit, right where a model's
// weights do not fit in the last-level cache. Where they do (the 42 MB demo model in the 2-core
// Xeon's 480 MiB L3), a decode pass reads them from that cache faster than the triad runs
// (~170% "of triad"), which says nothing about the kernels. So `read_gbps` also reads a buffer
// the size of what one pass reads, the same way the pass does (both threads, disjoint halves,
// every pass again): its best time is the limit for that working set on this machine, whatever
// cache level holds it. Reads only: decode never writes its weights.
#pragma once

#include <cstdint>

#include "util/thread_pool.h"

namespace swift::cli {

// STREAM triad z = x + 0.5 y over 3 arrays of 128 MiB of floats, split over the pool's threads,
// best of 5; bytes counted as STREAM does (3 arrays x 4 bytes per element). GB/s.
double triad_gbps(ThreadPool& pool);

// Reads a buffer of `bytes` (rounded up to whole 64-byte lines) holding the words 0, 1, 2, ...,
// split over the pool's threads like the kernels, best of `reps` after 3 warm-up reads. Throws
// std::invalid_argument for bytes < 1 or reps < 1.
struct ReadProbe {
  double gbps = 0;        // bytes read / best time
  uint64_t checksum = 0;  // sum of the words the last read saw: n (n - 1) / 2 for n words read once
  int64_t words = 0;      // n
};
ReadProbe read_probe(ThreadPool& pool, int64_t bytes, int reps = 30);
inline double read_gbps(ThreadPool& pool, int64_t bytes) { return read_probe(pool, bytes).gbps; }

// Sum of words p[0, n) modulo 2^64 in 8 independent chains (the compiler vectorises it; one
// chain would be bound by add latency, not by reads). The read probe's work, exposed for tests.
uint64_t sum_words(const uint64_t* p, int64_t n);

}  // namespace swift::cli
