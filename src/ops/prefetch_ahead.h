// Software prefetch of the weights a thread multiplies next, spread over its current work.
//
// Why (issue 6): a thread's share of a matrix product is a run of groups of weight rows, and
// each group is multiplied by every token of the batch in turn (token tiles), so the weights
// stream in from L3/DRAM only during the group's first tile while the later tiles compute from
// L1/L2 and memory sits idle. The hardware prefetchers run only a few lines ahead of the demand
// stream and do not fill that gap, nor the one at the start of every product (a thread's first
// group arrives cold, after the pool's round trip, the norms and attention). Here every step of
// every tile also prefetches a share of the lines that follow, into L2: the next kGroupsAhead
// groups of the thread's share and then, once that is all requested, the same share of the
// product that runs next (NextWeights, given by the caller who knows the order of the layer).
// Measured on the 2-core Zen 4 VM, BF16 demo model (in-process alternation, paired medians):
// within products alone, 16-token passes 0.90-0.92x the time under `--math bf16`, one-token
// passes 0.95-0.98x; the next product's share on top of that 0.94-0.97x for both; one thread
// over 40 products of 1536 x 256 (31 MB, L3/DRAM) 72 -> 100 G multiply-adds/s for 16 tokens.
// Prefetching 4 or 16 KiB ahead of each group in the Q4_K/Q6_K tiles (ops/matmul_rows8.cc; the
// demo model's 13 MB stay in L3 here) did not pay: one-token passes 1.04-1.06x slower, 16 tokens
// 0.95-0.99x, so those tiles do without.
//
// Users: the panel kernels (ops/matmul_panel.cc), the BF16 dot-product kernels (ops/matmul_bf16_dot.cc)
// and the Q8_0 / Q4_0 rows (ops/matmul_q8_dot.cc, where the next product is not known).
//
// When a thread's share is done, hand_over_to_idle() gives the rest of its share of the next
// product to the pool, which prefetches it while the thread waits for the other threads and for
// the next round (ThreadPool::prefetch_while_idle).
//
// A prefetch is only a hint: it never changes a result, never faults, and a line fetched but not
// used costs bandwidth only. Locality 2 is prefetcht1 on x86 (into L2: the current group's lines
// in L1 stay there). Lines are counted from the group's start, so a window need not be aligned.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/dtype.h"
#include "util/thread_pool.h"

namespace swift {

// The weights of the product that runs after this one, or none (data null).
struct NextWeights {
  const void* data = nullptr;
  int64_t bytes = 0;
};
inline NextWeights next_weights(const MatView& m) {
  return m.data ? NextWeights{m.data, static_cast<int64_t>(m.bytes())} : NextWeights{};
}

// The instruction: prefetcht1 on x86 (see above); idle: the range handed to the pool's waits
// (util/thread_pool.h). Tests substitute a recorder.
struct HardwarePrefetch {
  [[gnu::always_inline]] static void fetch(const char* p) { __builtin_prefetch(p, 0, 2); }
  static void idle(const char* begin, const char* end) { ThreadPool::prefetch_while_idle(begin, end); }
};

// Requests [p, p + bytes) into L2 at once, one prefetcht1 per line: for data a kernel is about
// to read in full whose first touches would each wait on DRAM (attention's cached keys and
// values, evicted by the weights streaming through L3 since the layer last ran).
inline void prefetch_burst(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 2);
}

// Attention requests at most this much of a unit's keys and as much of its values when the unit
// starts (the rest streams on): all of a 300-token context at head dim 64 in bf16 (38 KB each),
// and little enough of a long one not to push the unit's own rows out of a 1 MiB L2.
constexpr int64_t kKvBurstBytes = 64 << 10;

// kTwin: a second stream at a fixed distance (set_twin); a separate type, so that the kernels
// without one test nothing more per prefetched line.
template <typename Fetch, bool kTwin = false>
class BasicPrefetchAhead {
 public:
  static constexpr int64_t kLine = 64;
  // Groups prefetched ahead of the one being multiplied (further: evicted from L2 before use).
  static constexpr int64_t kGroupsAhead = 2;
  // ... and never more than this many bytes ahead. Why: a group is P panels of a whole matrix
  // width, so two groups grew with the model: 256 KB for the demo model's F32 matrices (256
  // columns), 2 MB at 2,048 columns, 5.8 MB for a 5,632-column down projection, past a 2 MB L2,
  // where the lines were evicted before use and read twice. Measured on the 2-core Xeon VM, a
  // 4-layer random LLaMA of width 2,048 (F32 GGUF 813 MB, BF16 407 MB: weights from DRAM),
  // `bench --verify-cost --math f32`, ms per pass after 300 tokens, two runs: F32 one token 38.0-40.4
  // uncapped, 32.3 at 512 KB, 28.5 at 256 KB, 27.3 at 128 KB, 26.3-26.6 with no window; 16 tokens
  // 61-65, 57-58, 51-54, 53-56, 54-56; BF16 one token 17.6, 16.5-16.9, 14.8-15.2, 14.8-15.0,
  // 14.4-14.5. The demo model's windows are 64-256 KB: capped at 128 KB its passes (1, 4, 16 tokens,
  // BF16 and F32) measured the same within noise (three alternations).
  static constexpr uintptr_t kMaxAheadBytes = 128 << 10;

  // For a thread whose weights end at `end` (exclusive: nothing of this product past it is
  // prefetched) and whose share of the work is units [u0, u1) of n_units: after its own weights
  // it prefetches the same fraction of `next`.
  BasicPrefetchAhead(const void* end, NextWeights next, int64_t u0, int64_t u1, int64_t n_units)
      : end_(address(end)) {
    if (next.data && n_units > 0 && u0 < u1) {
      const int64_t per_unit = next.bytes / n_units;  // rounded down: stays inside next
      chain_ = address(next.data) + static_cast<uintptr_t>(per_unit * u0);
      chain_end_ = address(next.data) + static_cast<uintptr_t>(per_unit * u1);
    }
  }

  // The thread starts multiplying the group of weights [group, group_end) in `steps` calls of
  // step() over all its token tiles. From here the steps prefetch what follows the group, up to
  // kGroupsAhead groups of this size (at most kMaxAheadBytes), at a rate that covers one group in
  // those steps (a little more when lines do not divide evenly: the window fills over a few groups).
  void begin_group(const void* group, const void* group_end, int64_t steps) {
    const uintptr_t next = address(group_end), bytes = next - address(group);
    const uintptr_t window = std::min<uintptr_t>(kGroupsAhead * bytes, kMaxAheadBytes);
    if (chained_) {  // in the next product's share already: keep the window ahead of the requests
      limit_ = ahead(at_, window);
    } else {
      at_ = std::max(at_, next);
      limit_ = ahead(next, window);
      if (at_ >= end_ && chain_ < chain_end_) {  // own share all requested: on to the next product
        chained_ = true;
        at_ = chain_, end_ = chain_end_, twin_ = 0;  // the next product's share is one stream
        limit_ = ahead(at_, window);
      }
    }
    const auto lines = static_cast<int64_t>((bytes + kLine - 1) / kLine);
    per_step_ = steps > 0 ? static_cast<int>((lines + steps - 1) / steps) : 0;
  }

  // The thread's share is done: what it would have requested next, up to kIdleBytes of the next
  // product's share, is prefetched while the thread waits in the pool for the other threads and
  // for the next round (ThreadPool::prefetch_while_idle). Measured on the 2-core Zen 4 VM
  // (in-process alternation, paired medians, 300-token context): one-token passes 0.96-0.98x the
  // time (BF16 weights, either math; F32 GGUF 0.97-0.98x), 4-token passes 0.95x, 16 tokens 1.00x.
  static constexpr uintptr_t kIdleBytes = 512 << 10;  // half of a Zen 4 core's L2; 256 KiB-1 MiB alike
  void hand_over_to_idle() {
    if (!chained_ && chain_ < chain_end_) {  // the window never reached the next product's share
      chained_ = true;
      at_ = chain_, end_ = chain_end_;
    }
    if (!chained_) return;  // no next product: nothing to hand over
    const uintptr_t stop = ahead(at_, kIdleBytes);
    if (at_ < stop) Fetch::idle(reinterpret_cast<const char*>(at_), reinterpret_cast<const char*>(stop));
  }

  // A second stream at a fixed distance: each line of the own share is requested together with
  // the line `offset` bytes further on (the up half of a fused gate|up matrix, whose panels a
  // SwiGLU kernel multiplies beside the gate panels: ops/bf16_dot.h). Not for the next product's
  // share, which is one stream.
  void set_twin(uintptr_t offset) requires kTwin { twin_ = offset; }

  // One step's share (one compare once the window is requested).
  [[gnu::always_inline]] void step() {
    for (int k = 0; k < per_step_ && at_ < limit_; ++k, at_ += kLine) {
      Fetch::fetch(reinterpret_cast<const char*>(at_));
      if constexpr (kTwin)
        if (twin_) Fetch::fetch(reinterpret_cast<const char*>(at_ + twin_));
    }
  }

 private:
  // Addresses as integers: the window may end past the weights' allocation before it is clamped,
  // which pointer arithmetic must not do.
  static uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }
  // from + n, at most end_.
  uintptr_t ahead(uintptr_t from, uintptr_t n) const { return from >= end_ || end_ - from <= n ? end_ : from + n; }

  uintptr_t end_;            // end of the range being prefetched (own share, then next's)
  uintptr_t at_ = 0;         // next line to prefetch
  uintptr_t limit_ = 0;      // not past here while the current group runs
  uintptr_t chain_ = 0;      // the share of the next product, [chain_, chain_end_)
  uintptr_t chain_end_ = 0;
  uintptr_t twin_ = 0;  // 0: none (set_twin; cleared on to the next product)
  int per_step_ = 0;
  bool chained_ = false;
};

using PrefetchAhead = BasicPrefetchAhead<HardwarePrefetch>;
using PrefetchAheadTwin = BasicPrefetchAhead<HardwarePrefetch, true>;

}  // namespace swift
