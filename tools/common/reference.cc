#include "tools/common/reference.h"

#include <cmath>

namespace chorus_test {

// Plain, obviously-correct conversions (independent of src/core/dtype.cc):
// round to nearest even via the exact float spacing.
uint16_t toHalf(float f) {
  if (std::isnan(f)) return 0x7e00;
  uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;
  if (a < std::ldexp(1.0, -14)) {
    double q = std::nearbyint(a / std::ldexp(1.0, -24));  // FE_TONEAREST: ties to even
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(q));
  }
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5,1)
  int exp = e - 1;    // a in [2^exp, 2^(exp+1))
  double unit = std::ldexp(1.0, exp - 10);
  double q = std::nearbyint(a / unit);  // 1024..2048
  if (q >= 2048) {
    q /= 2;
    ++exp;
  }
  if (exp > 15) return sign | 0x7c00;
  return static_cast<uint16_t>(sign | ((exp + 15) << 10) | (static_cast<uint16_t>(q) - 1024));
}

float fromHalf(uint16_t h) {
  int sign = (h >> 15) ? -1 : 1;
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  if (exp == 0) return static_cast<float>(sign * std::ldexp(mant, -24));
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return static_cast<float>(sign * std::ldexp(1024 + mant, exp - 25));
}

uint16_t toBf16(float f) {
  if (std::isnan(f)) return 0x7fc0;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t upper = u >> 16, lower = u & 0xffff;
  if (lower > 0x8000 || (lower == 0x8000 && (upper & 1))) ++upper;
  return static_cast<uint16_t>(upper);
}

float fromBf16(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void store(chorusDataType_t t, void* p, size_t i, double v) {
  switch (t) {
    case chorusInt8:
      static_cast<int8_t*>(p)[i] = static_cast<int8_t>(static_cast<int64_t>(v));
      break;
    case chorusUint8:
      static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(static_cast<int64_t>(v));
      break;
    case chorusInt16:
      static_cast<int16_t*>(p)[i] = static_cast<int16_t>(static_cast<int64_t>(v));
      break;
    case chorusInt32:
      static_cast<int32_t*>(p)[i] = static_cast<int32_t>(static_cast<int64_t>(v));
      break;
    case chorusUint32:
      static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(static_cast<int64_t>(v));
      break;
    case chorusInt64:
      static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v);
      break;
    case chorusUint64:
      static_cast<uint64_t*>(p)[i] = static_cast<uint64_t>(static_cast<int64_t>(v));
      break;
    case chorusFloat16:
      static_cast<uint16_t*>(p)[i] = toHalf(static_cast<float>(v));
      break;
    case chorusBfloat16:
      static_cast<uint16_t*>(p)[i] = toBf16(static_cast<float>(v));
      break;
    case chorusFloat32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case chorusFloat64:
      static_cast<double*>(p)[i] = v;
      break;
    default:
      break;
  }
}

void fillInput(chorusDataType_t t, chorusRedOp_t op, void* buf, size_t count, int rank,
               uint64_t seed) {
  for (size_t i = 0; i < count; ++i)
    store(t, buf, i, static_cast<double>(inputValue(rank, i, op, seed)));
}

void fillExpected(chorusDataType_t t, chorusRedOp_t op, void* buf, size_t count, int n,
                  uint64_t seed) {
  const bool isFloat =
      t == chorusFloat16 || t == chorusBfloat16 || t == chorusFloat32 || t == chorusFloat64;
  for (size_t i = 0; i < count; ++i) {
    int64_t acc = inputValue(0, i, op, seed);
    for (int r = 1; r < n; ++r) {
      int64_t v = inputValue(r, i, op, seed);
      switch (op) {
        case chorusSum:
        case chorusAvg:
          acc += v;
          break;
        case chorusProd:
          acc *= v;
          break;
        case chorusMax:
          acc = v > acc ? v : acc;
          break;
        case chorusMin:
          acc = v < acc ? v : acc;
          break;
        default:
          break;
      }
    }
    if (op != chorusAvg || n == 1) {
      // Integer types wrap like two's complement when stored.
      store(t, buf, i, static_cast<double>(acc));
      continue;
    }
    // avg: sum (exact) divided by n in the accumulator precision, rounded once.
    if (!isFloat) {
      switch (t) {
        case chorusInt8:
          store(t, buf, i, static_cast<double>(static_cast<int8_t>(acc) / n));
          break;
        case chorusUint8:
          store(t, buf, i, static_cast<double>(static_cast<uint8_t>(acc) / n));
          break;
        case chorusInt16:
          store(t, buf, i, static_cast<double>(static_cast<int16_t>(acc) / n));
          break;
        case chorusInt32:
          store(t, buf, i, static_cast<double>(static_cast<int32_t>(acc) / n));
          break;
        case chorusUint32:
          store(t, buf, i,
                static_cast<double>(static_cast<uint32_t>(acc) / static_cast<uint32_t>(n)));
          break;
        case chorusInt64:
          store(t, buf, i, static_cast<double>(acc / n));
          break;
        case chorusUint64:
          store(t, buf, i,
                static_cast<double>(static_cast<uint64_t>(acc) / static_cast<uint64_t>(n)));
          break;
        default:
          break;
      }
    } else if (t == chorusFloat64) {
      static_cast<double*>(buf)[i] = static_cast<double>(acc) / n;
    } else {
      float q = static_cast<float>(acc) / static_cast<float>(n);
      if (t == chorusFloat32)
        static_cast<float*>(buf)[i] = q;
      else if (t == chorusFloat16)
        static_cast<uint16_t*>(buf)[i] = toHalf(q);
      else
        static_cast<uint16_t*>(buf)[i] = toBf16(q);
    }
  }
}

size_t countWrong(const void* a, const void* b, size_t count, size_t elemSize) {
  size_t wrong = 0;
  auto* pa = static_cast<const uint8_t*>(a);
  auto* pb = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < count; ++i)
    if (std::memcmp(pa + i * elemSize, pb + i * elemSize, elemSize) != 0) ++wrong;
  return wrong;
}

}  // namespace chorus_test
