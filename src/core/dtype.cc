#include "src/core/dtype.h"

#include <cmath>

namespace chorus {

size_t dataTypeSize(DataType t) {
  switch (t) {
    case DataType::kInt8:
    case DataType::kUint8:
      return 1;
    case DataType::kFloat16:
    case DataType::kBfloat16:
    case DataType::kInt16:
      return 2;
    case DataType::kInt32:
    case DataType::kUint32:
    case DataType::kFloat32:
      return 4;
    case DataType::kInt64:
    case DataType::kUint64:
    case DataType::kFloat64:
      return 8;
  }
  return 0;
}

const char* dataTypeName(DataType t) {
  switch (t) {
    case DataType::kInt8:
      return "int8";
    case DataType::kUint8:
      return "uint8";
    case DataType::kInt32:
      return "int32";
    case DataType::kUint32:
      return "uint32";
    case DataType::kInt64:
      return "int64";
    case DataType::kUint64:
      return "uint64";
    case DataType::kFloat16:
      return "half";
    case DataType::kBfloat16:
      return "bfloat16";
    case DataType::kFloat32:
      return "float";
    case DataType::kFloat64:
      return "double";
    case DataType::kInt16:
      return "int16";
  }
  return "?";
}

const char* redOpName(RedOp op) {
  switch (op) {
    case RedOp::kSum:
      return "sum";
    case RedOp::kProd:
      return "prod";
    case RedOp::kMax:
      return "max";
    case RedOp::kMin:
      return "min";
    case RedOp::kAvg:
      return "avg";
  }
  return "?";
}

bool isHalfType(DataType t) {
  return t == DataType::kFloat16 || t == DataType::kBfloat16;
}
bool isFloatType(DataType t) {
  return isHalfType(t) || t == DataType::kFloat32 || t == DataType::kFloat64;
}
size_t accumulatorSize(DataType t) {
  return isHalfType(t) ? 4 : dataTypeSize(t);
}

bool parseDataType(const std::string& s, DataType* out) {
  struct {
    const char* name;
    DataType t;
  } static const kNames[] = {
      {"int8", DataType::kInt8},         {"int16", DataType::kInt16},
      {"uint8", DataType::kUint8},       {"int32", DataType::kInt32},
      {"uint32", DataType::kUint32},     {"int64", DataType::kInt64},
      {"uint64", DataType::kUint64},     {"half", DataType::kFloat16},
      {"fp16", DataType::kFloat16},      {"float16", DataType::kFloat16},
      {"bfloat16", DataType::kBfloat16}, {"bf16", DataType::kBfloat16},
      {"float", DataType::kFloat32},     {"fp32", DataType::kFloat32},
      {"float32", DataType::kFloat32},   {"double", DataType::kFloat64},
      {"fp64", DataType::kFloat64},      {"float64", DataType::kFloat64},
  };
  for (const auto& n : kNames) {
    if (s == n.name) {
      *out = n.t;
      return true;
    }
  }
  return false;
}

bool parseRedOp(const std::string& s, RedOp* out) {
  for (int i = 0; i < kNumRedOps; ++i) {
    if (s == redOpName(static_cast<RedOp>(i))) {
      *out = static_cast<RedOp>(i);
      return true;
    }
  }
  return false;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal half: normalise into a float.
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((absu >> 13) & 0x3ffu));
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (absu < 0x38800000u) {
    // Result is subnormal or zero: shift the implicit-1 mantissa and round
    // to nearest even.
    if (absu < 0x33000000u) return static_cast<uint16_t>(sign);  // < half of smallest subnormal
    uint32_t exp = absu >> 23;
    uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
    // value = mant * 2^(exp-150) and the subnormal unit is 2^-24, so the
    // subnormal mantissa is mant >> (126 - exp); shift is 14..24 here.
    uint32_t shift = 126 - exp;
    uint32_t result = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (result & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  // Normal: rebias exponent, round mantissa from 23 to 10 bits (nearest even).
  uint32_t v = absu - ((127u - 15u) << 23);
  uint32_t rounding = 0xfffu + ((v >> 13) & 1u);
  v += rounding;
  return static_cast<uint16_t>(sign | (v >> 13));
}

}  // namespace chorus
