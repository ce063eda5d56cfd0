// fp16/bf16 conversions: exhaustive against an independent reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "src/core/dtype.h"
#include "tools/common/reference.h"

using namespace chorus;

TEST(Dtype, HalfToFloatExhaustive) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float got = halfToFloat(static_cast<uint16_t>(h));
    float want = chorus_test::fromHalf(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(std::memcmp(&got, &want, 4), 0) << "half 0x" << std::hex << h;
    }
  }
}

TEST(Dtype, HalfRoundTripExhaustive) {
  for (uint32_t h = 0; h < 65536; ++h) {
    uint16_t x = static_cast<uint16_t>(h);
    if (((x >> 10) & 0x1f) == 0x1f && (x & 0x3ff)) continue;  // NaN payloads are canonicalised
    EXPECT_EQ(floatToHalf(halfToFloat(x)), x) << std::hex << h;
  }
}

TEST(Dtype, FloatToHalfRoundsToNearestEven) {
  // Every float bit pattern in steps: compare with the reference.
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
    uint32_t bits = static_cast<uint32_t>(u);
    float f;
    std::memcpy(&f, &bits, 4);
    uint16_t got = floatToHalf(f);
    uint16_t want = chorus_test::toHalf(f);
    if (std::isnan(f)) {
      EXPECT_EQ(got & 0x7c00, 0x7c00);
      EXPECT_NE(got & 0x3ff, 0);
    } else {
      ASSERT_EQ(got, want) << "float bits 0x" << std::hex << bits;
    }
  }
  // Exact ties between halves.
  EXPECT_EQ(floatToHalf(2049.0f), floatToHalf(2048.0f));  // tie -> even (2048)
  EXPECT_EQ(floatToHalf(2051.0f), floatToHalf(2052.0f));  // tie -> even (2052)
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);               // rounds to inf
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff);
}

TEST(Dtype, Bf16MatchesReference) {
  for (uint64_t u = 0; u < (1ull << 32); u += 65521) {
    uint32_t bits = static_cast<uint32_t>(u);
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(f))));
      continue;
    }
    ASSERT_EQ(floatToBf16(f), chorus_test::toBf16(f)) << std::hex << bits;
  }
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = bf16ToFloat(static_cast<uint16_t>(b));
    if (!std::isnan(f)) {
      EXPECT_EQ(floatToBf16(f), b);
    }
  }
}

TEST(Dtype, SizesAndNames) {
  EXPECT_EQ(dataTypeSize(DataType::kFloat16), 2u);
  EXPECT_EQ(dataTypeSize(DataType::kFloat64), 8u);
  EXPECT_EQ(accumulatorSize(DataType::kBfloat16), 4u);
  DataType t;
  EXPECT_TRUE(parseDataType("bf16", &t));
  EXPECT_EQ(t, DataType::kBfloat16);
  EXPECT_FALSE(parseDataType("float128", &t));
  RedOp op;
  EXPECT_TRUE(parseRedOp("avg", &op));
  EXPECT_FALSE(parseRedOp("xor", &op));
}
