// The cache of buffers for frames that arrive before their operation:
// reuse, best fit, and the bounds on what it keeps.
#include <gtest/gtest.h>

#include "src/core/buffer_cache.h"

namespace chorus {
namespace {

TEST(BufferCache, ABufferGivenBackIsTheNextOneTaken) {
  BufferCache cache;
  BufferCache::Buffer a = cache.take(256 << 10);
  ASSERT_NE(a.data, nullptr);
  EXPECT_EQ(a.capacity, size_t{256} << 10);
  uint8_t* p = a.data.get();
  cache.give(std::move(a));
  EXPECT_EQ(cache.cachedBuffers(), 1u);
  EXPECT_EQ(cache.cachedBytes(), size_t{256} << 10);
  BufferCache::Buffer b = cache.take(100 << 10);  // smaller fits in it
  EXPECT_EQ(b.data.get(), p);
  EXPECT_EQ(cache.cachedBuffers(), 0u);
  EXPECT_EQ(cache.cachedBytes(), 0u);
}

TEST(BufferCache, TakesTheSmallestBufferThatFitsAndNeverOneTooSmall) {
  BufferCache cache;
  BufferCache::Buffer big = cache.take(1 << 20), mid = cache.take(64 << 10),
                      small = cache.take(4 << 10);
  uint8_t* midPtr = mid.data.get();
  cache.give(std::move(big));
  cache.give(std::move(small));
  cache.give(std::move(mid));
  BufferCache::Buffer got = cache.take(10 << 10);
  EXPECT_EQ(got.data.get(), midPtr);
  BufferCache::Buffer huge = cache.take(2 << 20);  // nothing cached fits
  EXPECT_EQ(huge.capacity, size_t{2} << 20);
  EXPECT_EQ(cache.cachedBuffers(), 2u);
}

TEST(BufferCache, ZeroBytesStillGetsAUsablePointer) {
  BufferCache cache;
  BufferCache::Buffer b = cache.take(0);
  EXPECT_NE(b.data, nullptr);
  EXPECT_GE(b.capacity, 1u);
}

TEST(BufferCache, KeepsNoMoreThanItsBoundsAndPrefersLargeBuffers) {
  BufferCache cache(/*maxBuffers=*/2, /*maxBytes=*/1000);
  cache.give(cache.take(100));
  cache.give(cache.take(200));
  EXPECT_EQ(cache.cachedBuffers(), 2u);
  cache.give(cache.take(50));  // full, and smaller than all kept: dropped
  EXPECT_EQ(cache.cachedBuffers(), 2u);
  EXPECT_EQ(cache.cachedBytes(), 300u);
  cache.give(cache.take(700));  // a larger one replaces the smallest kept
  EXPECT_EQ(cache.cachedBuffers(), 2u);
  EXPECT_EQ(cache.cachedBytes(), 900u);
  cache.give(cache.take(1001));  // over the byte bound on its own: never kept
  EXPECT_EQ(cache.cachedBytes(), 900u);
  cache.give(cache.take(800));  // 900 + 800 > 1000: both others dropped for it
  EXPECT_EQ(cache.cachedBuffers(), 1u);
  EXPECT_EQ(cache.cachedBytes(), 800u);
}

TEST(BufferCache, GivingAnEmptyBufferKeepsNothing) {
  BufferCache cache;
  cache.give(BufferCache::Buffer{});
  EXPECT_EQ(cache.cachedBuffers(), 0u);
}

}  // namespace
}  // namespace chorus
