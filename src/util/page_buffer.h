// An anonymous, page-aligned memory block for large long-lived buffers (panel-packed weights,
// KV caches).
//
// Asks for transparent huge pages (madvise MADV_HUGEPAGE; this machine's kernel grants them only
// on request): packing 42 MB of weights into 4 KiB pages cost ~0.15 s of page faults in this VM,
// and a decode pass that streams the weights walks one TLB entry per 4 KiB otherwise. Without
// huge pages the block still works, with ordinary pages.
//
// take()/recycle() keep released blocks for reuse by the next one of the same size: the kernel
// zeroes a huge page on first touch, ~5 ms for the demo model's 26 MB KV cache, which a
// generation would otherwise pay again each time it allocates its cache.
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

  // A block of n_bytes: a recycled one of exactly that size (contents unspecified) or a new one.
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
