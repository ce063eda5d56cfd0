// Reduction kernels for every dtype x op against a scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/reduce.h"
#include "src/core/dtype.h"

using namespace chorus;

namespace {

template <typename T>
T refOp(RedOp op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    switch (op) {
      case RedOp::kSum:
      case RedOp::kAvg:
        return static_cast<T>(
            static_cast<U>(static_cast<uint64_t>(static_cast<U>(a)) + static_cast<U>(b)));
      case RedOp::kProd:
        return static_cast<T>(static_cast<U>(static_cast<uint64_t>(static_cast<U>(a)) *
                                             static_cast<uint64_t>(static_cast<U>(b))));
      case RedOp::kMax:
        return a > b ? a : b;
      case RedOp::kMin:
        return a < b ? a : b;
    }
  } else {
    switch (op) {
      case RedOp::kSum:
      case RedOp::kAvg:
        return a + b;
      case RedOp::kProd:
        return a * b;
      case RedOp::kMax:
        return std::isnan(a) ? a : std::isnan(b) ? b : (a > b ? a : b);
      case RedOp::kMin:
        return std::isnan(a) ? a : std::isnan(b) ? b : (a < b ? a : b);
    }
  }
  return a;
}

template <typename T>
void checkPlain(DataType t) {
  std::mt19937_64 rng(42);
  const size_t n = 1037;  // odd: exercises vector remainders
  for (int o = 0; o < kNumRedOps; ++o) {
    RedOp op = static_cast<RedOp>(o);
    std::vector<T> a(n), b(n), out(n);
    for (size_t i = 0; i < n; ++i) {
      if constexpr (std::is_integral_v<T>) {
        a[i] = static_cast<T>(rng());
        b[i] = static_cast<T>(rng());
      } else {
        a[i] = static_cast<T>(std::uniform_real_distribution<double>(-100, 100)(rng));
        b[i] = static_cast<T>(std::uniform_real_distribution<double>(-100, 100)(rng));
      }
    }
    kernels::combine(t, op, out.data(), a.data(), b.data(), n);
    for (size_t i = 0; i < n; ++i) {
      T want = refOp(op, a[i], b[i]);
      ASSERT_EQ(std::memcmp(&out[i], &want, sizeof(T)), 0)
          << dataTypeName(t) << " " << redOpName(op) << " at " << i;
    }
    // combineFinal with avg divides once by the contributor count.
    kernels::combineFinal(t, op, out.data(), a.data(), b.data(), n, 3);
    for (size_t i = 0; i < n; ++i) {
      T want = refOp(op, a[i], b[i]);
      if (op == RedOp::kAvg) want = static_cast<T>(want / static_cast<T>(3));
      ASSERT_EQ(std::memcmp(&out[i], &want, sizeof(T)), 0)
          << dataTypeName(t) << " final " << redOpName(op) << " at " << i;
    }
    // Aliasing dst == acc is allowed.
    std::vector<T> acc = a;
    kernels::combine(t, op, acc.data(), acc.data(), b.data(), n);
    for (size_t i = 0; i < n; ++i) {
      T want = refOp(op, a[i], b[i]);
      ASSERT_EQ(std::memcmp(&acc[i], &want, sizeof(T)), 0);
    }
  }
}

}  // namespace

TEST(Reduce, Int8) {
  checkPlain<int8_t>(DataType::kInt8);
}
TEST(Reduce, Uint8) {
  checkPlain<uint8_t>(DataType::kUint8);
}
TEST(Reduce, Int16) {
  checkPlain<int16_t>(DataType::kInt16);
}
TEST(Reduce, Int32) {
  checkPlain<int32_t>(DataType::kInt32);
}
TEST(Reduce, Uint32) {
  checkPlain<uint32_t>(DataType::kUint32);
}
TEST(Reduce, Int64) {
  checkPlain<int64_t>(DataType::kInt64);
}
TEST(Reduce, Uint64) {
  checkPlain<uint64_t>(DataType::kUint64);
}
TEST(Reduce, Float32) {
  checkPlain<float>(DataType::kFloat32);
}
TEST(Reduce, Float64) {
  checkPlain<double>(DataType::kFloat64);
}

TEST(Reduce, SignedOverflowWraps) {
  int32_t a = std::numeric_limits<int32_t>::max(), b = 1, out = 0;
  kernels::combine(DataType::kInt32, RedOp::kSum, &out, &a, &b, 1);
  EXPECT_EQ(out, std::numeric_limits<int32_t>::min());
  int8_t x = 100, y = 3, z = 0;
  kernels::combine(DataType::kInt8, RedOp::kProd, &z, &x, &y, 1);
  EXPECT_EQ(z, static_cast<int8_t>(300 & 0xff));
}

TEST(Reduce, NanPropagatesInMinMax) {
  float a[2] = {NAN, 1.0f}, b[2] = {1.0f, NAN}, out[2];
  kernels::combine(DataType::kFloat32, RedOp::kMax, out, a, b, 2);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(std::isnan(out[1]));
  kernels::combine(DataType::kFloat32, RedOp::kMin, out, a, b, 2);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(std::isnan(out[1]));
}

// fp16/bf16: accumulate in fp32, round once at the end.
TEST(Reduce, HalfAccumulatesInFloatAndRoundsOnce) {
  for (DataType t : {DataType::kFloat16, DataType::kBfloat16}) {
    auto toH = [&](float f) { return t == DataType::kFloat16 ? floatToHalf(f) : floatToBf16(f); };
    auto fromH = [&](uint16_t h) {
      return t == DataType::kFloat16 ? halfToFloat(h) : bf16ToFloat(h);
    };
    std::mt19937 rng(7);
    const int ranks = 5;
    const size_t n = 513;
    std::vector<std::vector<uint16_t>> in(ranks, std::vector<uint16_t>(n));
    for (auto& v : in)
      for (auto& x : v) x = toH(std::uniform_real_distribution<float>(-3, 3)(rng));
    for (int o = 0; o < kNumRedOps; ++o) {
      RedOp op = static_cast<RedOp>(o);
      std::vector<float> acc(n);
      kernels::toAccumulator(t, acc.data(), in[0].data(), n);
      for (int r = 1; r < ranks - 1; ++r)
        kernels::combine(t, op, acc.data(), acc.data(), in[r].data(), n);
      std::vector<uint16_t> out(n);
      kernels::combineFinal(t, op, out.data(), acc.data(), in[ranks - 1].data(), n, ranks);
      for (size_t i = 0; i < n; ++i) {
        float want = fromH(in[0][i]);
        for (int r = 1; r < ranks; ++r) want = refOp(op, want, fromH(in[r][i]));
        if (op == RedOp::kAvg) want = want / static_cast<float>(ranks);
        ASSERT_EQ(out[i], toH(want)) << dataTypeName(t) << " " << redOpName(op) << " at " << i;
      }
    }
  }
}

// reduceInOrder skips the copy of the first input when the accumulator type
// is the dtype; the bytes must be exactly those of the copy-first chain
// (toAccumulator, combine..., combineFinal) that every algorithm used
// before, for every dtype, op and input count, with random bits (NaNs,
// infinities and rounding included), and with dst being the last input.
TEST(Reduce, ReduceInOrderMatchesTheCopyFirstChainBitForBit) {
  std::mt19937_64 rng(11);
  const size_t count = 517;
  for (int ti = 0; ti < kNumDataTypes; ++ti) {
    const DataType t = static_cast<DataType>(ti);
    const size_t es = dataTypeSize(t), as = accumulatorSize(t);
    for (int o = 0; o < kNumRedOps; ++o) {
      const RedOp op = static_cast<RedOp>(o);
      for (int n = 1; n <= 6; ++n) {
        std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(count * es));
        for (auto& v : in)
          for (auto& b : v) b = static_cast<uint8_t>(rng());
        // Reference: the copy-first chain.
        std::vector<uint8_t> acc(count * as), want(count * es);
        kernels::toAccumulator(t, acc.data(), in[0].data(), count);
        if (n == 1) {
          kernels::finalize(t, op, want.data(), acc.data(), count, 1);
        } else {
          for (int p = 1; p < n - 1; ++p)
            kernels::combine(t, op, acc.data(), acc.data(), in[p].data(), count);
          kernels::combineFinal(t, op, want.data(), acc.data(), in[n - 1].data(), count, n);
        }
        std::vector<uint8_t> scratch(count * as, 0xAB), got(count * es);
        auto input = [&](int p) { return static_cast<const void*>(in[p].data()); };
        kernels::reduceInOrder(t, op, got.data(), scratch.data(), n, count, input);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size()))
            << dataTypeName(t) << " " << redOpName(op) << " n=" << n;
        if (n >= 2) {  // in place over the last input, as combineFinal allows
          kernels::reduceInOrder(t, op, in[n - 1].data(), scratch.data(), n, count, input);
          ASSERT_EQ(0, std::memcmp(in[n - 1].data(), want.data(), want.size()))
              << dataTypeName(t) << " " << redOpName(op) << " n=" << n << " in place";
        }
      }
    }
  }
}

// Direct all-reduce at N=2 on shared memory reduces the arriving input
// straight out of the ring, in pieces, while a rank whose input arrived
// before its call reduces from a landing slot with reduceInOrder: both must
// give the same bits, on the rank whose input comes first (otherFirst) and
// on the other, for every dtype that is its own accumulator and every op,
// with random bytes (NaNs and signed zeros included for floats).
TEST(Reduce, ArrivalReductionInPiecesMatchesReduceInOrderForTwoInputs) {
  std::mt19937_64 rng(5);
  const size_t count = 1031;
  for (int ti = 0; ti < kNumDataTypes; ++ti) {
    const DataType t = static_cast<DataType>(ti);
    if (isHalfType(t)) continue;
    const size_t es = dataTypeSize(t);
    for (int o = 0; o < kNumRedOps; ++o) {
      const RedOp op = static_cast<RedOp>(o);
      std::vector<uint8_t> x0(count * es), x1(count * es);
      for (auto* v : {&x0, &x1})
        for (auto& b : *v) b = static_cast<uint8_t>(rng());
      // Two NaNs with different payloads meet at a few places: which one an
      // operation keeps depends on the operand order, so a rank that
      // evaluated x1 op x0 instead of x0 op x1 would differ there.
      for (size_t at : {size_t{3}, size_t{64}, count - 2}) {
        if (t == DataType::kFloat32) {
          uint32_t a = 0x7FC00011u, b = 0x7FC00022u;
          std::memcpy(&x0[at * es], &a, es);
          std::memcpy(&x1[at * es], &b, es);
        } else if (t == DataType::kFloat64) {
          uint64_t a = 0x7FF8000000000011ull, b = 0x7FF8000000000022ull;
          std::memcpy(&x0[at * es], &a, es);
          std::memcpy(&x1[at * es], &b, es);
        }
      }
      std::vector<uint8_t> want(count * es), scratch(count * es);
      auto input = [&](int p) { return static_cast<const void*>(p == 0 ? x0.data() : x1.data()); };
      kernels::reduceInOrder(t, op, want.data(), scratch.data(), 2, count, input);
      for (int rank = 0; rank < 2; ++rank) {
        kernels::ArrivalReduction r;
        r.dtype = t;
        r.op = op;
        r.final = true;
        r.contributors = 2;
        std::vector<uint8_t> got(count * es, 0xCD);
        r.dst = got.data();
        r.other = rank == 0 ? x0.data() : x1.data();  // this rank's own input
        r.otherFirst = rank == 0;
        const uint8_t* incoming = rank == 0 ? x1.data() : x0.data();
        // Pieces of odd sizes, as a ring hands out what has arrived.
        for (size_t first = 0, piece = 1; first < count; first += piece, piece = piece * 3 + 1) {
          size_t n = std::min(piece, count - first);
          kernels::applyArrivalReduction(r, incoming + first * es, first, n);
          piece = n;
        }
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size()))
            << dataTypeName(t) << " " << redOpName(op) << " rank " << rank;
      }
    }
  }
}
