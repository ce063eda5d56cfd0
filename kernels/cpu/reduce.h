// Element-wise reduction kernels on host memory.
//
// Vocabulary: every dtype T has an accumulator type A used while reducing:
// float for fp16/bf16 (so a chain of reductions rounds only once, at the
// end), T itself otherwise. Integer arithmetic wraps (two's complement);
// avg of integers truncates toward zero. Float min/max propagate NaN.
// All kernels are element-wise and never reassociate, so every peer that
// reduces the same operands in the same order gets the same bits.
#pragma once

#include <cstddef>

#include "src/core/dtype.h"

namespace chorus::kernels {

// dst[i] (A) = T->A conversion of src[i]; for non-half types a copy.
void toAccumulator(DataType t, void* dst, const void* src, size_t count);

// dst[i] (A) = op(acc[i] (A), in[i] (T)). dst may alias acc.
void combine(DataType t, RedOp op, void* dst, const void* acc, const void* in, size_t count);

// dst[i] (A) = op(a[i] (A), b[i] (A)). dst may alias a.
void combineAcc(DataType t, RedOp op, void* dst, const void* a, const void* b, size_t count);

// dst[i] (T) = finalize(op(acc[i] (A), in[i] (T))): for avg divides by
// contributors; for fp16/bf16 rounds once. dst may alias in.
void combineFinal(DataType t, RedOp op, void* dst, const void* acc, const void* in, size_t count,
                  int contributors);

// dst[i] (T) = finalize(acc[i] (A)). dst may alias acc only for non-half types.
void finalize(DataType t, RedOp op, void* dst, const void* acc, size_t count, int contributors);

// A reduction applied to incoming accumulator-typed (A) elements while they
// are read (from a shared-memory ring), instead of landing them in a buffer
// and reducing that: payload element i gives dst[i] = op(incoming[i],
// other[i]) (combine, dst A), or with `final` combineFinal over
// `contributors` (dst T). other is T-typed. The same kernels and operand
// order as landing then reducing, so the same bits.
struct ArrivalReduction {
  DataType dtype = DataType::kFloat32;
  RedOp op = RedOp::kSum;
  bool final = false;
  int contributors = 0;
  uint8_t* dst = nullptr;  // nullptr: no reduction on arrival
  const uint8_t* other = nullptr;
  // Final step only: dst = other op incoming instead of incoming op other,
  // for a rank whose own input comes first in the expression (direct
  // all-reduce at N=2, rank 0). Needs a dtype that is its own accumulator.
  bool otherFirst = false;
};

// Applies r to `count` incoming elements, payload elements first..first+count.
void applyArrivalReduction(const ArrivalReduction& r, const void* incoming, size_t first,
                           size_t count);

// The first operand of a reduction chain over `in` (T): `in` itself when
// the accumulator type is T (all but fp16/bf16), which saves copying it;
// otherwise its conversion, written to acc. The chain then writes acc.
inline const void* firstOperand(DataType t, void* acc, const void* in, size_t count) {
  if (!isHalfType(t)) return in;
  toAccumulator(t, acc, in, count);
  return acc;
}

// dst (T) = finalize(((x0 op x1) op x2) ... op x(n-1)) for n >= 1 inputs
// input(0..n-1) (T), in that order. acc: scratch for count accumulator (A)
// elements. When A is T the first input serves as the first accumulator
// instead of a copy of it (for N=2 no scratch is touched at all): same
// expression, same kernels, same bits, one buffer pass less. dst must not
// overlap the inputs except as combineFinal allows (dst == input(n-1)).
template <typename InputAt>
void reduceInOrder(DataType t, RedOp op, void* dst, void* acc, int n, size_t count, InputAt input) {
  if (n == 1) {
    toAccumulator(t, acc, input(0), count);
    finalize(t, op, dst, acc, count, 1);
    return;
  }
  const void* first = firstOperand(t, acc, input(0), count);
  for (int p = 1; p < n - 1; ++p) {
    combine(t, op, acc, first, input(p), count);
    first = acc;
  }
  combineFinal(t, op, dst, first, input(n - 1), count, n);
}

}  // namespace chorus::kernels
