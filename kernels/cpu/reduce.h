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

}  // namespace chorus::kernels
