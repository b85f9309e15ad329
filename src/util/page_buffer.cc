#include "util/page_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "util/check.h"

namespace swift {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

PageBuffer::PageBuffer(size_t n_bytes) : size_(n_bytes) {
  if (n_bytes == 0) return;
  // Over-map by one huge page so the block can start on a 2 MiB boundary (huge pages need it).
  const size_t align = n_bytes >= kHugePage ? kHugePage : 64;
  if (n_bytes > SIZE_MAX - align) fail("cannot allocate {} bytes for packed weights", n_bytes);
  map_bytes_ = n_bytes + align;
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail("cannot allocate {} bytes for packed weights: {}", n_bytes, std::strerror(errno));
  }
  const auto base = reinterpret_cast<uintptr_t>(map_);
  data_ = reinterpret_cast<uint8_t*>((base + align - 1) / align * align);
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) ::madvise(data_, n_bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice only
#endif
}

PageBuffer::~PageBuffer() {
  if (map_) ::munmap(map_, map_bytes_);
}

}  // namespace swift
