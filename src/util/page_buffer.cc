#include "util/page_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "util/check.h"

namespace swift {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;

struct Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<PageBuffer>> kept;
  size_t kept_bytes = 0;
};
Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: recycle() may run from static destructors
  return *p;
}
}  // namespace

std::unique_ptr<PageBuffer> PageBuffer::take(size_t n_bytes) {
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    // The smallest kept block of n_bytes to 2 n_bytes (size - n_bytes <= n_bytes: no overflow).
    size_t best = p.kept.size();
    for (size_t i = 0; i < p.kept.size(); ++i) {
      const size_t s = p.kept[i]->size();
      if (s >= n_bytes && s - n_bytes <= n_bytes && (best == p.kept.size() || s < p.kept[best]->size())) best = i;
    }
    if (best < p.kept.size()) {
      std::unique_ptr<PageBuffer> b = std::move(p.kept[best]);
      p.kept.erase(p.kept.begin() + static_cast<std::ptrdiff_t>(best));
      p.kept_bytes -= b->size();
      return b;
    }
  }
  return std::make_unique<PageBuffer>(n_bytes);
}

void PageBuffer::recycle(std::unique_ptr<PageBuffer> b) {
  if (!b || b->size() == 0) return;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.kept_bytes + b->size() > kKeepBytes) return;  // b is freed here
  p.kept_bytes += b->size();
  p.kept.push_back(std::move(b));
}

PageBuffer::PageBuffer(size_t n_bytes) : size_(n_bytes) {
  if (n_bytes == 0) return;
  // Over-map by one huge page so the block can start on a 2 MiB boundary (huge pages need it).
  const size_t align = n_bytes >= kHugePage ? kHugePage : 64;
  if (n_bytes > SIZE_MAX - align) fail("cannot allocate a block of {} bytes", n_bytes);
  map_bytes_ = n_bytes + align;
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail("cannot allocate a block of {} bytes: {}", n_bytes, std::strerror(errno));
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
