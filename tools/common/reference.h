// Deterministic inputs and independently computed expected results for
// all-reduce tests and chorus-bench's #wrong column. Inputs are small
// integers so every exact result is representable in every dtype; the
// reference reduces them with plain scalar code, not with Chorus' kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "chorus.h"

namespace chorus_test {

// Element i of rank r's input, as an integer, for op.
inline int64_t inputValue(int rank, size_t i, chorusRedOp_t op, uint64_t seed) {
  uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^
               (static_cast<uint64_t>(rank) + 1) * 0xC2B2AE3D27D4EB4Full ^ seed;
  h ^= h >> 29;
  if (op == chorusProd) {
    static const int64_t kProd[] = {1, 2, 1, -1};
    return kProd[h % 4];
  }
  return static_cast<int64_t>(h % 8);  // 0..7
}

uint16_t toHalf(float f);
uint16_t toBf16(float f);
float fromHalf(uint16_t h);
float fromBf16(uint16_t b);

// Write value v (an integer) as dtype into p[i].
void store(chorusDataType_t t, void* p, size_t i, double v);
// Fill a rank's input buffer.
void fillInput(chorusDataType_t t, chorusRedOp_t op, void* buf, size_t count, int rank,
               uint64_t seed);
// Expected result of all-reduce over ranks 0..n-1 at element i, stored into p[i].
void fillExpected(chorusDataType_t t, chorusRedOp_t op, void* buf, size_t count, int n,
                  uint64_t seed);
// Number of elements that differ bitwise.
size_t countWrong(const void* a, const void* b, size_t count, size_t elemSize);

}  // namespace chorus_test
