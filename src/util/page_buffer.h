// An anonymous, page-aligned memory block for large long-lived copies (panel-packed weights).
//
// Asks for transparent huge pages (madvise MADV_HUGEPAGE; this machine's kernel grants them only
// on request): packing 42 MB of weights into 4 KiB pages cost ~0.15 s of page faults in this VM,
// and a decode pass that streams the weights walks one TLB entry per 4 KiB otherwise. Without
// huge pages the block still works, with ordinary pages.
#pragma once

#include <cstddef>
#include <cstdint>

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

 private:
  uint8_t* data_ = nullptr;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  size_t size_ = 0;
};

}  // namespace swift
