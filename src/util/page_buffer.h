// An anonymous, page-aligned memory block for large long-lived buffers (panel-packed weights,
// KV caches).
//
// Asks for transparent huge pages (madvise MADV_HUGEPAGE; this machine's kernel grants them only
// on request): packing 42 MB of weights into 4 KiB pages cost ~0.15 s of page faults in this VM,
// and a decode pass that streams the weights walks one TLB entry per 4 KiB otherwise. Without
// huge pages the block still works, with ordinary pages.
//
// take()/recycle() keep released blocks for reuse by the next request of up to their size: the
// kernel zeroes a page on first touch, which a generation would otherwise pay again each time it
// allocates its cache: ~5 ms for the demo model's 26 MB KV cache where huge pages come at once,
// 20-35 ms on the 2-core Xeon VM (THP defrag on madvise: the faults compact memory). Any kept
// block of n to 2n bytes serves a request of n (issue 6): with exact sizes only, a bench prompt
// whose cache rounded to another size than the one before prefilled ~1.7x slower (255 tokens,
// f32 math: 51 against 29-30 ms warm), and so does a server request of another length bucket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace swift {

class PageBuffer {
 public:
  // Throws swift::Error when the memory cannot be mapped (naming the size).
  explicit PageBuffer(size_t n_bytes);
  ~PageBuffer();
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() const { return data_; }  // 2 MiB aligned when n_bytes >= 2 MiB
  size_t size() const { return size_; }

  // A block of at least n_bytes: the smallest recycled one of n_bytes to 2 n_bytes (contents
  // unspecified; its size() may exceed n_bytes) or a new one of n_bytes.
  static std::unique_ptr<PageBuffer> take(size_t n_bytes);
  // Keeps `b` for a later take() while the kept blocks stay under kKeepBytes; frees it otherwise.
  // Thread-safe, like take().
  static void recycle(std::unique_ptr<PageBuffer> b);
  // The bound only matters after a burst of concurrent caches; kept blocks are what the process
  // already held at its peak.
  static constexpr size_t kKeepBytes = size_t{8} << 30;

 private:
  uint8_t* data_ = nullptr;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  size_t size_ = 0;
};

}  // namespace swift
