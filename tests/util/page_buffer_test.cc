// PageBuffer: alignment, and recycling of released blocks (util/page_buffer.h), which the KV
// cache relies on to avoid the kernel's zeroing of fresh huge pages per generation.
#include "util/page_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "model/kv_cache.h"

namespace swift {

TEST(PageBuffer, LargeBlocksStartOnAHugePageAndAreWritable) {
  PageBuffer b((size_t{3} << 20) + 123);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (size_t{2} << 20), 0u);
  std::memset(b.data(), 0x5a, b.size());
  EXPECT_EQ(b.data()[b.size() - 1], 0x5a);
  PageBuffer small(100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
}

TEST(PageBuffer, RecycledBlockServesRequestsOfHalfToAllOfItsSize) {
  const size_t n = (size_t{5} << 20) + 4096;  // sizes no other test uses
  auto a = PageBuffer::take(n);
  uint8_t* p = a->data();
  PageBuffer::recycle(std::move(a));
  auto larger = PageBuffer::take(n + 64);  // larger than the kept block: a new block
  EXPECT_NE(larger->data(), p);
  EXPECT_EQ(larger->size(), n + 64);
  auto tiny = PageBuffer::take(n / 2 - 1);  // under half its size: a new block
  EXPECT_NE(tiny->data(), p);
  auto again = PageBuffer::take(n);  // same size: the recycled block
  EXPECT_EQ(again->data(), p);
  auto fresh = PageBuffer::take(n);  // the pool is empty again: a new block
  EXPECT_NE(fresh->data(), p);
  // A smaller request within a factor 2 takes it too, whole, and gives it back whole.
  PageBuffer::recycle(std::move(again));
  auto half = PageBuffer::take(n / 2);
  EXPECT_EQ(half->data(), p);
  EXPECT_EQ(half->size(), n);
  // Of two fitting blocks the smaller one.
  PageBuffer::recycle(std::move(fresh));   // size n
  PageBuffer::recycle(std::move(larger));  // size n + 64
  auto best = PageBuffer::take(n - 100);
  EXPECT_EQ(best->size(), n);
  auto next = PageBuffer::take(n - 100);
  EXPECT_EQ(next->size(), n + 64);
  PageBuffer::recycle(nullptr);  // no-op
}

TEST(PageBuffer, KvCacheHandsItsBlocksToTheNextCacheOfTheSameShape) {
  ModelConfig cfg;
  cfg.n_layer = 3;
  cfg.n_kv_head = 2;
  cfg.head_dim = 16;
  cfg.n_head = 2;
  const float* k0;
  {
    KvCache c(cfg, 777);
    k0 = c.k(0);
  }
  KvCache c2(cfg, 777);
  EXPECT_TRUE(c2.k(0) == k0 || c2.v(0) == k0);  // one of the two recycled blocks
}

}  // namespace swift
