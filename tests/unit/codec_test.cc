// Codecs (kernels/common/codec_math.h through kernels/cpu/codec.cc): error
// bounds per kind, edge cases, the NaN/Inf policy, fp8 exhaustively, and
// stochastic rounding's determinism and unbiasedness.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/codec.h"

namespace chorus::kernels {
namespace {

using codec::Kind;
using codec::Params;

Params make(Kind k, uint32_t block = 256) {
  Params p;
  p.kind = k;
  p.blockSize = block;
  p.topk = block >= 16 ? block / 16 : 1;
  return p;
}

std::vector<float> gradient(size_t n, uint32_t seed, float scale = 1e-3f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// (encode(), the block code run block by block): what a fast path must equal.
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> fastAndBlockCode(
    const Params& p, const std::vector<float>& x) {
  std::vector<uint8_t> fast(codec::encodedBytes(p, x.size())), ref(fast.size());
  encode(p, x.data(), x.size(), 0, fast.data());
  const size_t full = codec::blockBytes(p, p.blockSize);
  for (size_t b = 0, off = 0; off < x.size(); ++b, off += p.blockSize)
    codec::encodeBlock(p, x.data() + off,
                       static_cast<uint32_t>(std::min<size_t>(p.blockSize, x.size() - off)), off,
                       ref.data() + b * full);
  return {fast, ref};
}

std::vector<float> roundTrip(const Params& p, const std::vector<float>& x, uint64_t first = 0) {
  std::vector<uint8_t> enc(codec::encodedBytes(p, x.size()));
  encode(p, x.data(), x.size(), first, enc.data());
  std::vector<float> out(x.size());
  EXPECT_TRUE(decode(p, enc.data(), enc.size(), x.size(), out.data()).isOk());
  return out;
}

// Per-block quantization step of a linear quantizer.
float step(Kind k, const float* x, size_t n) {
  float lo = x[0], hi = x[0], m = 0;
  for (size_t i = 0; i < n; ++i)
    lo = std::min(lo, x[i]), hi = std::max(hi, x[i]), m = std::max(m, std::fabs(x[i]));
  if (k == codec::kUint8) return (hi - lo) / 255;
  return m / (k == codec::kInt8 ? 127 : 7);
}

class LinearQuantizers : public ::testing::TestWithParam<Kind> {};

TEST_P(LinearQuantizers, ErrorWithinHalfAStepRoundToNearestAndOneStepStochastic) {
  for (size_t count : {size_t{1}, size_t{3}, size_t{255}, size_t{1000}, size_t{4096 + 17}}) {
    auto x = gradient(count, 5);
    for (bool stochastic : {false, true}) {
      Params p = make(GetParam());
      p.stochastic = stochastic;
      p.seed = 99;
      auto y = roundTrip(p, x);
      for (size_t b = 0; b < count; b += p.blockSize) {
        size_t n = std::min<size_t>(p.blockSize, count - b);
        float s = step(p.kind, x.data() + b, n);
        for (size_t i = b; i < b + n; ++i)
          ASSERT_LE(std::fabs(y[i] - x[i]), (stochastic ? 1.0f : 0.5f) * s * 1.0001f + 1e-12f)
              << "kind " << p.kind << " count " << count << " i " << i;
      }
    }
  }
}

TEST_P(LinearQuantizers, ZeroConstantAndAllNegativeBlocks) {
  Params p = make(GetParam(), 64);
  std::vector<float> zeros(130, 0.0f), constant(130, -2.5f), negative = gradient(130, 7);
  for (auto& v : negative) v = -std::fabs(v) - 1e-4f;
  EXPECT_EQ(roundTrip(p, zeros), zeros);
  auto c = roundTrip(p, constant);
  for (float v : c) EXPECT_NEAR(v, -2.5f, p.kind == codec::kUint8 ? 0.0f : 2.5f / 7 / 2 + 1e-6f);
  if (p.kind == codec::kUint8) {
    EXPECT_EQ(c, constant) << "min-max keeps a constant block exact";
  }
  auto n = roundTrip(p, negative);
  for (size_t i = 0; i < n.size(); ++i) EXPECT_LE(n[i], 0.0f) << i;
}

INSTANTIATE_TEST_SUITE_P(Codec, LinearQuantizers,
                         ::testing::Values(codec::kUint8, codec::kInt8, codec::kInt4));

TEST(Codec, Fp8EveryCodeRoundTrips) {
  for (Kind k : {codec::kE4M3, codec::kE5M2}) {
    for (int c = 0; c < 256; ++c) {
      float v = codec::fp8Decode(static_cast<uint8_t>(c), k);
      if (std::isnan(v) || std::isinf(v)) continue;
      uint8_t back = codec::fp8Encode(v, k);
      if (v == 0.0f) {
        EXPECT_EQ(back & 0x7f, 0);
        continue;
      }
      EXPECT_EQ(back, c) << "kind " << k << " value " << v;
    }
    EXPECT_EQ(codec::fp8Decode(codec::fp8Encode(1e9f, k), k), codec::fp8Max(k)) << "saturates";
  }
  EXPECT_EQ(codec::fp8Decode(0x7e, codec::kE4M3), 448.0f);
  EXPECT_EQ(codec::fp8Decode(0x7b, codec::kE5M2), 57344.0f);
  EXPECT_EQ(codec::fp8Decode(0x01, codec::kE4M3), std::ldexp(1.0f, -9));
  EXPECT_EQ(codec::fp8Decode(0x01, codec::kE5M2), std::ldexp(1.0f, -16));
}

TEST(Codec, Fp8RelativeErrorBound) {
  for (Kind k : {codec::kE4M3, codec::kE5M2}) {
    Params p = make(k);
    auto x = gradient(4096, 3);
    auto y = roundTrip(p, x);
    const float rel = k == codec::kE4M3 ? 1.0f / 16 : 1.0f / 8;  // half an ulp: 2^-(m+1)
    for (size_t b = 0; b < x.size(); b += 256) {
      float m = 0;
      for (size_t i = b; i < b + 256; ++i) m = std::max(m, std::fabs(x[i]));
      float scale = m / codec::fp8Max(k);
      float tiny = scale * (k == codec::kE4M3 ? std::ldexp(1.0f, -9) : std::ldexp(1.0f, -16));
      for (size_t i = b; i < b + 256; ++i)
        ASSERT_LE(std::fabs(y[i] - x[i]), rel * std::fabs(x[i]) * 1.0001f + tiny) << i;
    }
  }
}

TEST(Codec, OneBitKeepsSignsAndMeanMagnitude) {
  Params p = make(codec::kOneBit, 100);
  auto x = gradient(250, 9);
  auto y = roundTrip(p, x);
  for (size_t b = 0; b < 250; b += 100) {
    size_t n = std::min<size_t>(100, 250 - b);
    double mean = 0;
    for (size_t i = b; i < b + n; ++i) mean += std::fabs(x[i]);
    mean /= n;
    for (size_t i = b; i < b + n; ++i) {
      EXPECT_EQ(std::signbit(y[i]), std::signbit(x[i])) << i;
      EXPECT_NEAR(std::fabs(y[i]), mean, mean * 1e-5) << i;
    }
  }
}

// The CPU's vectorised 1-bit path (movemask signs) writes exactly the bytes
// of the shared block code, for every tail length, signed zeros and a
// non-finite block.
TEST(Codec, OneBitFastPathMatchesTheBlockCode) {
  for (uint32_t block : {1u, 7u, 8u, 9u, 31u, 256u, 1000u}) {
    Params p = make(codec::kOneBit, block);
    auto x = gradient(block * 5 + 3, block);
    x[1] = -0.0f;
    x[2] = 0.0f;
    if (x.size() > 2 * block) x[2 * block] = std::numeric_limits<float>::infinity();
    auto [fast, ref] = fastAndBlockCode(p, x);
    EXPECT_TRUE(fast == ref) << "block " << block;
  }
}

// Global top-k keeps the k largest magnitudes of the whole buffer (ties by
// index), against a full sort; where per-block top-k must spread its picks
// over the blocks, global keeps a cluster of large values whole.
TEST(Codec, GlobalTopKKeepsTheLargestAcrossTheBuffer) {
  Params p = make(codec::kTopKGlobal, 256);
  p.topk = 8;  // 8 per 256 values: 1/32 of the buffer
  for (size_t n : {size_t{1}, size_t{31}, size_t{1000}, size_t{100003}}) {
    auto x = gradient(n, 17);
    for (size_t i = 0; i < n; i += 7) x[i] = x[(i * 13) % n];  // repeated magnitudes: ties
    const uint32_t k = codec::topkCount(p, static_cast<uint32_t>(n));
    EXPECT_EQ(codec::encodedBytes(p, n), size_t{k} * 8);
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return std::fabs(x[a]) > std::fabs(x[b]);  // stable: ties keep index order
    });
    std::vector<float> want(n, 0.0f);
    for (uint32_t j = 0; j < k; ++j) want[order[j]] = x[order[j]];
    auto y = roundTrip(p, x);
    ASSERT_EQ(std::memcmp(y.data(), want.data(), n * 4), 0) << "n " << n;
  }
  // A cluster: 64 large values inside one block of 256 among 4096 small.
  std::vector<float> x(4096, 1e-3f);
  for (int i = 0; i < 64; ++i) x[512 + i] = 10.0f + i;
  Params g = make(codec::kTopKGlobal, 256), b = make(codec::kTopK, 256);
  g.topk = b.topk = 4;  // both keep 64 values in all
  auto yg = roundTrip(g, x), yb = roundTrip(b, x);
  int keptG = 0, keptB = 0;
  for (int i = 0; i < 64; ++i) keptG += yg[512 + i] != 0, keptB += yb[512 + i] != 0;
  EXPECT_EQ(keptG, 64);
  EXPECT_EQ(keptB, 4);
  // Indices are 32-bit: a corrupt one beyond the buffer is ignored.
  std::vector<uint8_t> enc(codec::encodedBytes(g, 4096));
  encode(g, x.data(), 4096, 0, enc.data());
  codec::put32(enc.data(), 0xfffffff0u);
  std::vector<float> out(4096);
  ASSERT_TRUE(decode(g, enc.data(), enc.size(), 4096, out.data()).isOk());
  EXPECT_FALSE(checkCodecCount(g, size_t{1} << 33).isOk());
  EXPECT_TRUE(checkCodecCount(make(codec::kTopK), size_t{1} << 33).isOk());
}

// The AVX2 fp8 encoder against the block code, on values that reach every
// branch of the scalar selects: subnormal fp8 codes, rounding into the next
// binade, saturation at the max, ties, signed zeros, float subnormals,
// values far below the smallest code, and a block with an infinity.
TEST(Codec, Fp8FastPathMatchesTheBlockCode) {
  std::mt19937 rng(5);
  for (Kind k : {codec::kE4M3, codec::kE5M2})
    for (uint32_t block : {1u, 7u, 8u, 9u, 33u, 256u, 1000u}) {
      Params p = make(k, block);
      std::vector<float> x(block * 7 + 5);
      for (size_t i = 0; i < x.size(); ++i) {
        uint32_t kind = rng() % 6;
        float v = kind == 0
                      ? std::ldexp(static_cast<float>(rng() % 64), -static_cast<int>(rng() % 40))
                  : kind == 1 ? std::bit_cast<float>(static_cast<uint32_t>(rng() % 0x00800000u))
                  : kind == 2 ? static_cast<float>(rng() % 1000) / 8.0f
                  : kind == 3 ? std::ldexp(1.0f + static_cast<float>(rng() % 16) / 16.0f,
                                           static_cast<int>(rng() % 30) - 20)
                  : kind == 4 ? 0.0f
                              : std::normal_distribution<float>(0.0f, 1.0f)(rng);
        x[i] = (rng() & 1) ? -v : v;
      }
      if (x.size() > 3 * block) x[3 * block] = std::numeric_limits<float>::infinity();
      auto [fast, ref] = fastAndBlockCode(p, x);
      ASSERT_TRUE(fast == ref) << "kind " << k << " block " << block;
    }
  // Every float bit pattern class through one block of 8: the scale is 1
  // when the block max is the format max, so y = x exactly.
  for (Kind k : {codec::kE4M3, codec::kE5M2}) {
    Params p = make(k, 8);
    const float maxv = codec::fp8Max(k);
    std::vector<uint8_t> fast(codec::encodedBytes(p, 8)), ref(fast.size());
    for (uint32_t bits = 0; bits < 0x7f800000u; bits += 0x1235u) {
      float x[8] = {maxv,
                    codec::fromBits(bits),
                    -codec::fromBits(bits),
                    codec::fromBits(bits + 1),
                    codec::fromBits(bits >> 3),
                    0.0f,
                    -0.0f,
                    codec::fromBits(bits | 0x80000000u)};
      encode(p, x, 8, 0, fast.data());
      codec::encodeBlock(p, x, 8, 0, ref.data());
      ASSERT_TRUE(fast == ref) << "kind " << k << " bits " << bits;
    }
  }
}

// The table-and-gather fp8 decoder against the block code: every code under
// finite, zero, infinite and NaN scales (NaN codes, inf * 0, overflow).
TEST(Codec, Fp8FastDecodeMatchesTheBlockCode) {
  const float scales[] = {
      1.0f,         3.5e-3f, -2.0f, 0.0f, 1e36f, 1.0e-40f, std::numeric_limits<float>::infinity(),
      std::nanf("")};
  for (Kind k : {codec::kE4M3, codec::kE5M2})
    for (float scale : scales) {
      Params p = make(k, 259);  // 32 full steps of 8 and a tail
      std::vector<uint8_t> enc(codec::encodedBytes(p, 259));
      codec::putF(enc.data(), scale);
      for (int i = 0; i < 259; ++i) enc[4 + i] = static_cast<uint8_t>(i * 97 + 3);
      std::vector<float> fast(259), ref(259);
      ASSERT_TRUE(decode(p, enc.data(), enc.size(), 259, fast.data()).isOk());
      codec::decodeBlock(p, enc.data(), 259, ref.data());
      for (int i = 0; i < 259; ++i)
        ASSERT_EQ(codec::bitsOf(fast[i]), codec::bitsOf(ref[i]))
            << "kind " << k << " scale " << scale << " code " << int(enc[4 + i]);
    }
}

// Decoding checks the header once per block instead of canonicalising every
// value; the bits must equal the per-value rule the CUDA decoder applies
// (canonical(formula)) for any header, finite or not, and any codes.
TEST(Codec, DecodeEqualsThePerValueNaNRuleForAnyHeader) {
  std::mt19937 rng(11);
  const float heads[] = {0.0f,
                         1.5e-3f,
                         -2.0f,
                         3e38f,
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         std::nanf("")};
  for (Kind k : {codec::kUint8, codec::kInt8, codec::kInt4, codec::kOneBit})
    for (float a : heads)
      for (float b : heads) {
        Params p = make(k, 37);
        std::vector<uint8_t> enc(codec::encodedBytes(p, 37));
        for (auto& c : enc) c = static_cast<uint8_t>(rng());
        codec::putF(enc.data(), a);
        if (k == codec::kUint8) codec::putF(enc.data() + 4, b);
        std::vector<float> got(37);
        ASSERT_TRUE(decode(p, enc.data(), enc.size(), 37, got.data()).isOk());
        for (uint32_t i = 0; i < 37; ++i) {
          const uint8_t* in = enc.data();
          float v = 0;
          if (k == codec::kUint8)
            v = codec::fadd(a, codec::fmul(static_cast<float>(in[8 + i]), b));
          else if (k == codec::kInt8)
            v = codec::fmul(static_cast<float>(static_cast<int8_t>(in[4 + i])), a);
          else if (k == codec::kInt4) {
            int nib = (in[4 + i / 2] >> ((i & 1) * 4)) & 0xf;
            v = codec::fmul(static_cast<float>(nib >= 8 ? nib - 16 : nib), a);
          } else {
            float scale = codec::canonical(a);
            v = (in[4 + i / 8] >> (i % 8)) & 1 ? scale : codec::fsub(0.0f, scale);
          }
          v = codec::canonical(v);
          ASSERT_EQ(codec::bitsOf(got[i]), codec::bitsOf(v))
              << "kind " << k << " header " << a << "/" << b << " value " << i;
        }
      }
}

TEST(Codec, TopKKeepsTheLargestMagnitudesTiesByIndex) {
  Params p = make(codec::kTopK, 32);
  p.topk = 4;
  std::vector<float> x(70, 0.0f);
  x[3] = -5, x[7] = 4, x[9] = 4, x[11] = 4, x[20] = 1;  // block 0: 5, then three 4s (ties)
  x[40] = 2, x[50] = -3;                                // block 1
  x[65] = 1;                                            // block 2: 6 values, keeps 1
  auto y = roundTrip(p, x);
  std::vector<float> want(70, 0.0f);
  want[3] = -5, want[7] = 4, want[9] = 4, want[11] = 4;
  want[40] = 2, want[50] = -3;  // + two zeros of block 1, which decode to 0 anyway
  want[65] = 1;
  EXPECT_EQ(y, want);
  x[12] = 4;  // a fourth tie: the lower indices win
  y = roundTrip(p, x);
  EXPECT_EQ(y[12], 0.0f);
  EXPECT_EQ(y[11], 4.0f);
}

TEST(Codec, NonFiniteBlocksDecodeToNaNOthersUntouched) {
  for (Kind k :
       {codec::kUint8, codec::kInt8, codec::kInt4, codec::kE4M3, codec::kE5M2, codec::kOneBit}) {
    Params p = make(k, 16);
    auto x = gradient(48, 1);
    x[20] = std::numeric_limits<float>::infinity();
    x[40] = std::numeric_limits<float>::quiet_NaN();
    auto y = roundTrip(p, x);
    for (size_t i = 0; i < 16; ++i) EXPECT_FALSE(std::isnan(y[i])) << k;
    for (size_t i = 16; i < 48; ++i) EXPECT_TRUE(std::isnan(y[i])) << "kind " << k << " i " << i;
  }
}

TEST(Codec, StochasticRoundingIsDeterministicAndUnbiased) {
  Params p = make(codec::kInt8, 256);
  p.stochastic = true;
  std::vector<float> x(256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (i == 0) ? 1.0f : 0.3f / 127;  // 0.3 of a step
  p.seed = 5;
  EXPECT_EQ(roundTrip(p, x), roundTrip(p, x)) << "same seed, same bytes";
  double mean = 0;
  const int trials = 400;
  for (int t = 0; t < trials; ++t) {
    p.seed = t;
    auto y = roundTrip(p, x);
    for (size_t i = 1; i < x.size(); ++i) mean += y[i];
  }
  mean /= trials * 255.0;
  EXPECT_NEAR(mean, 0.3 / 127, 0.02 / 127) << "stochastic rounding is unbiased";
}

TEST(Codec, ErrorFeedbackMakesTheSumConverge) {
  // Sum of decoded(compress(g + r)) over steps tracks the true sum: the
  // error is the last residual, bounded, not growing with the steps.
  for (Kind k : {codec::kOneBit, codec::kTopK, codec::kInt4}) {
    Params p = make(k, 64);
    const size_t n = 640;
    std::vector<float> r(n, 0.0f), sent(n, 0.0f);
    std::vector<double> truth(n, 0.0), got(n, 0.0);
    double firstErr = 0;
    for (int stepNo = 0; stepNo < 200; ++stepNo) {
      auto g = gradient(n, 1000 + stepNo, 1.0f);
      std::vector<float> v(n);
      for (size_t i = 0; i < n; ++i) v[i] = g[i] + r[i], truth[i] += g[i];
      auto d = roundTrip(p, v);
      for (size_t i = 0; i < n; ++i) r[i] = v[i] - d[i], got[i] += d[i];
      double err = 0;
      for (size_t i = 0; i < n; ++i) err = std::max(err, std::fabs(truth[i] - got[i]));
      if (stepNo == 0) firstErr = err;
      if (stepNo == 199) {
        EXPECT_LT(err, 40.0) << "kind " << k;  // bounded by the residual
        double rel = err / 200;                // per-step average error -> 0
        EXPECT_LT(rel, firstErr) << "kind " << k;
      }
    }
  }
}

TEST(Codec, DecodeRefusesWrongLengthsAndValidateChecksParams) {
  Params p = make(codec::kInt8);
  std::vector<uint8_t> enc(codec::encodedBytes(p, 300));
  std::vector<float> out(300);
  EXPECT_EQ(decode(p, enc.data(), enc.size() - 1, 300, out.data()).code(), Code::kDataLoss);
  EXPECT_TRUE(decode(p, enc.data(), enc.size(), 300, out.data()).isOk());
  Params bad = p;
  bad.blockSize = 0;
  EXPECT_FALSE(validateCodec(bad).isOk());
  bad = make(codec::kTopK, 8);
  bad.topk = 9;
  EXPECT_FALSE(validateCodec(bad).isOk());
  bad.kind = static_cast<Kind>(42);
  EXPECT_FALSE(validateCodec(bad).isOk());
}

}  // namespace
}  // namespace chorus::kernels
