// Data types and reduction operators, and the exact fp16/bf16 <-> fp32
// conversions every peer uses (round to nearest even, one rounding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace chorus {

enum class DataType : uint8_t {
  kInt8 = 0,
  kUint8 = 1,
  kInt32 = 2,
  kUint32 = 3,
  kInt64 = 4,
  kUint64 = 5,
  kFloat16 = 6,
  kBfloat16 = 7,
  kFloat32 = 8,
  kFloat64 = 9,
  kInt16 = 10,
};
constexpr int kNumDataTypes = 11;

enum class RedOp : uint8_t { kSum = 0, kProd = 1, kMax = 2, kMin = 3, kAvg = 4 };
constexpr int kNumRedOps = 5;

inline bool validDataType(int v) {
  return v >= 0 && v < kNumDataTypes;
}
inline bool validRedOp(int v) {
  return v >= 0 && v < kNumRedOps;
}

size_t dataTypeSize(DataType t);
const char* dataTypeName(DataType t);
const char* redOpName(RedOp op);
bool isHalfType(DataType t);  // fp16 or bf16: reduced in fp32
bool isFloatType(DataType t);
// Element size used while reducing: 4 for fp16/bf16 (accumulated in fp32),
// otherwise the type's own size.
size_t accumulatorSize(DataType t);
bool parseDataType(const std::string& s, DataType* out);
bool parseRedOp(const std::string& s, RedOp* out);

// IEEE binary16 <-> binary32. float->half rounds to nearest even and keeps
// NaN a NaN (quiet); half->float is exact.
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
// bfloat16 <-> binary32; float->bf16 rounds to nearest even, NaN stays NaN.
inline float bf16ToFloat(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

}  // namespace chorus
