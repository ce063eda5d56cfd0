// kernels/common/xxh3.h (the code the CUDA hash kernel runs) against
// libxxhash (what the CPU path runs): every length class, unaligned starts,
// and the 8-lane split the GPU uses, bit for bit.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <random>
#include <vector>

#include "kernels/common/xxh3.h"

namespace {

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(Xxh3Portable, EveryLengthUpTo4096AtEveryAlignment) {
  auto buf = randomBytes(4096 + 8, 1);
  for (size_t len = 0; len <= 4096; ++len)
    for (size_t off = 0; off < 8; off += (len < 300 ? 1 : 3))
      ASSERT_EQ(chorus::xxh3::hash64(buf.data() + off, len), XXH3_64bits(buf.data() + off, len))
          << "len " << len << " offset " << off;
}

TEST(Xxh3Portable, LargeAndBlockBoundaryLengths) {
  auto buf = randomBytes((3 << 20) + 64, 2);
  for (size_t len : {size_t{1024}, size_t{1025}, size_t{2048}, size_t{65536}, size_t{65537},
                     size_t{1} << 20, (size_t{1} << 20) + 3, size_t{3} << 20})
    ASSERT_EQ(chorus::xxh3::hash64(buf.data(), len), XXH3_64bits(buf.data(), len)) << len;
}

TEST(Xxh3Portable, LaneSplitMatches) {
  auto buf = randomBytes(1 << 20, 3);
  for (size_t len : {size_t{241}, size_t{1000}, size_t{1 << 20}}) {
    uint64_t acc[8];
    for (int lane = 0; lane < 8; ++lane) acc[lane] = chorus::xxh3::laneLong(buf.data(), len, lane);
    EXPECT_EQ(chorus::xxh3::mergeLanes(acc, len), XXH3_64bits(buf.data(), len)) << len;
  }
}

TEST(Xxh3Portable, AllZeroAndAllOnes) {
  std::vector<uint8_t> z(1 << 16, 0), o(1 << 16, 0xff);
  for (size_t len : {size_t{0}, size_t{7}, size_t{129}, size_t{1 << 16}}) {
    EXPECT_EQ(chorus::xxh3::hash64(z.data(), len), XXH3_64bits(z.data(), len));
    EXPECT_EQ(chorus::xxh3::hash64(o.data(), len), XXH3_64bits(o.data(), len));
  }
}

}  // namespace
