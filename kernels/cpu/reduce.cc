#include "kernels/cpu/reduce.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace chorus::kernels {
namespace {

// Inlined into each CPU-specific clone of the entry points below.
#define CHORUS_INLINE inline __attribute__((always_inline))

// Integer ops wrap: compute on the unsigned type of the same width.
template <typename T>
using Wrap = std::conditional_t<std::is_integral_v<T>, std::make_unsigned_t<T>, T>;

template <typename T>
CHORUS_INLINE T opSum(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<Wrap<T>>(a) + static_cast<Wrap<T>>(b));
  else
    return a + b;
}
template <typename T>
CHORUS_INLINE T opProd(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    // Promote narrow types to unsigned int to avoid signed-overflow UB.
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, Wrap<T>>;
    return static_cast<T>(static_cast<U>(static_cast<Wrap<T>>(a)) *
                          static_cast<U>(static_cast<Wrap<T>>(b)));
  } else {
    return a * b;
  }
}
template <typename T>
CHORUS_INLINE T opMax(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return a > b ? a : b;
}
template <typename T>
CHORUS_INLINE T opMin(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return a < b ? a : b;
}

template <typename T>
CHORUS_INLINE T applyOp(RedOp op, T a, T b) {
  switch (op) {
    case RedOp::kSum:
    case RedOp::kAvg:
      return opSum(a, b);
    case RedOp::kProd:
      return opProd(a, b);
    case RedOp::kMax:
      return opMax(a, b);
    case RedOp::kMin:
      return opMin(a, b);
  }
  return a;
}

template <typename T>
CHORUS_INLINE T divide(T v, int n) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(v / static_cast<T>(n));
  else
    return v / static_cast<T>(n);
}

template <typename T>
CHORUS_INLINE void combineT(RedOp op, T* d, const T* a, const T* b, size_t n) {
  // d may alias a: __restrict on d is only a hint for the plain loops below,
  // which read a[i], b[i] before writing d[i]; that is safe for d == a.
  switch (op) {
    case RedOp::kSum:
    case RedOp::kAvg:
      for (size_t i = 0; i < n; ++i) d[i] = opSum(a[i], b[i]);
      break;
    case RedOp::kProd:
      for (size_t i = 0; i < n; ++i) d[i] = opProd(a[i], b[i]);
      break;
    case RedOp::kMax:
      for (size_t i = 0; i < n; ++i) d[i] = opMax(a[i], b[i]);
      break;
    case RedOp::kMin:
      for (size_t i = 0; i < n; ++i) d[i] = opMin(a[i], b[i]);
      break;
  }
}

template <typename T>
CHORUS_INLINE void combineFinalT(RedOp op, T* d, const T* a, const T* b, size_t n,
                                 int contributors) {
  combineT(op, d, a, b, n);
  if (op == RedOp::kAvg && contributors > 1)
    for (size_t i = 0; i < n; ++i) d[i] = divide(d[i], contributors);
}

template <typename T>
CHORUS_INLINE void finalizeT(RedOp op, T* d, const T* a, size_t n, int contributors) {
  if (d != a) std::memmove(d, a, n * sizeof(T));
  if (op == RedOp::kAvg && contributors > 1)
    for (size_t i = 0; i < n; ++i) d[i] = divide(d[i], contributors);
}

using HalfToF = float (*)(uint16_t);
using FToHalf = uint16_t (*)(float);

CHORUS_INLINE float h2f(uint16_t h) {
  return halfToFloat(h);
}
CHORUS_INLINE uint16_t f2h(float f) {
  return floatToHalf(f);
}
CHORUS_INLINE float b2f(uint16_t h) {
  return bf16ToFloat(h);
}
CHORUS_INLINE uint16_t f2b(float f) {
  return floatToBf16(f);
}

template <HalfToF kToF>
CHORUS_INLINE void combineHalf(RedOp op, float* d, const float* a, const uint16_t* b, size_t n) {
  switch (op) {
    case RedOp::kSum:
    case RedOp::kAvg:
      for (size_t i = 0; i < n; ++i) d[i] = a[i] + kToF(b[i]);
      break;
    case RedOp::kProd:
      for (size_t i = 0; i < n; ++i) d[i] = a[i] * kToF(b[i]);
      break;
    case RedOp::kMax:
      for (size_t i = 0; i < n; ++i) d[i] = opMax(a[i], kToF(b[i]));
      break;
    case RedOp::kMin:
      for (size_t i = 0; i < n; ++i) d[i] = opMin(a[i], kToF(b[i]));
      break;
  }
}

template <HalfToF kToF, FToHalf kFromF>
CHORUS_INLINE void combineFinalHalf(RedOp op, uint16_t* d, const float* a, const uint16_t* b,
                                    size_t n, int contributors) {
  const bool avg = op == RedOp::kAvg && contributors > 1;
  const float div = static_cast<float>(contributors);
  for (size_t i = 0; i < n; ++i) {
    float v = applyOp(op, a[i], kToF(b[i]));
    if (avg) v = v / div;
    d[i] = kFromF(v);
  }
}

template <FToHalf kFromF>
CHORUS_INLINE void finalizeHalf(RedOp op, uint16_t* d, const float* a, size_t n, int contributors) {
  const bool avg = op == RedOp::kAvg && contributors > 1;
  const float div = static_cast<float>(contributors);
  for (size_t i = 0; i < n; ++i) d[i] = kFromF(avg ? a[i] / div : a[i]);
}

// Expands STMT(T) once per non-half dtype inside a switch on t.
#define CHORUS_PLAIN_SWITCH(t, STMT) \
  switch (t) {                       \
    case DataType::kInt8:            \
      STMT(int8_t);                  \
      break;                         \
    case DataType::kUint8:           \
      STMT(uint8_t);                 \
      break;                         \
    case DataType::kInt16:           \
      STMT(int16_t);                 \
      break;                         \
    case DataType::kInt32:           \
      STMT(int32_t);                 \
      break;                         \
    case DataType::kUint32:          \
      STMT(uint32_t);                \
      break;                         \
    case DataType::kInt64:           \
      STMT(int64_t);                 \
      break;                         \
    case DataType::kUint64:          \
      STMT(uint64_t);                \
      break;                         \
    case DataType::kFloat32:         \
      STMT(float);                   \
      break;                         \
    case DataType::kFloat64:         \
      STMT(double);                  \
      break;                         \
    case DataType::kFloat16:         \
    case DataType::kBfloat16:        \
      break;                         \
  }

}  // namespace

// Runtime CPU dispatch: GCC builds each entry point for AVX-512, AVX2 and the
// baseline (SSE2) and picks one when the library loads (ifunc). The loops
// are element-wise, so every variant produces the same bits.
#define CHORUS_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

CHORUS_KERNEL void toAccumulator(DataType t, void* dst, const void* src, size_t count) {
  if (t == DataType::kFloat16) {
    auto* d = static_cast<float*>(dst);
    auto* s = static_cast<const uint16_t*>(src);
    for (size_t i = 0; i < count; ++i) d[i] = h2f(s[i]);
  } else if (t == DataType::kBfloat16) {
    auto* d = static_cast<float*>(dst);
    auto* s = static_cast<const uint16_t*>(src);
    for (size_t i = 0; i < count; ++i) d[i] = b2f(s[i]);
  } else if (dst != src) {
    std::memmove(dst, src, count * dataTypeSize(t));
  }
}

CHORUS_KERNEL void combine(DataType t, RedOp op, void* dst, const void* acc, const void* in,
                           size_t count) {
  if (t == DataType::kFloat16) {
    combineHalf<h2f>(op, static_cast<float*>(dst), static_cast<const float*>(acc),
                     static_cast<const uint16_t*>(in), count);
  } else if (t == DataType::kBfloat16) {
    combineHalf<b2f>(op, static_cast<float*>(dst), static_cast<const float*>(acc),
                     static_cast<const uint16_t*>(in), count);
  } else {
#define CHORUS_COMBINE(T)                                                                      \
  combineT<T>(op, static_cast<T*>(dst), static_cast<const T*>(acc), static_cast<const T*>(in), \
              count)
    CHORUS_PLAIN_SWITCH(t, CHORUS_COMBINE)
#undef CHORUS_COMBINE
  }
}

CHORUS_KERNEL void combineAcc(DataType t, RedOp op, void* dst, const void* a, const void* b,
                              size_t count) {
  if (isHalfType(t)) {
    combineT<float>(op, static_cast<float*>(dst), static_cast<const float*>(a),
                    static_cast<const float*>(b), count);
  } else {
#define CHORUS_COMBINE_ACC(T) \
  combineT<T>(op, static_cast<T*>(dst), static_cast<const T*>(a), static_cast<const T*>(b), count)
    CHORUS_PLAIN_SWITCH(t, CHORUS_COMBINE_ACC)
#undef CHORUS_COMBINE_ACC
  }
}

CHORUS_KERNEL void combineFinal(DataType t, RedOp op, void* dst, const void* acc, const void* in,
                                size_t count, int contributors) {
  if (t == DataType::kFloat16) {
    combineFinalHalf<h2f, f2h>(op, static_cast<uint16_t*>(dst), static_cast<const float*>(acc),
                               static_cast<const uint16_t*>(in), count, contributors);
  } else if (t == DataType::kBfloat16) {
    combineFinalHalf<b2f, f2b>(op, static_cast<uint16_t*>(dst), static_cast<const float*>(acc),
                               static_cast<const uint16_t*>(in), count, contributors);
  } else {
#define CHORUS_COMBINE_FINAL(T)                                          \
  combineFinalT<T>(op, static_cast<T*>(dst), static_cast<const T*>(acc), \
                   static_cast<const T*>(in), count, contributors)
    CHORUS_PLAIN_SWITCH(t, CHORUS_COMBINE_FINAL)
#undef CHORUS_COMBINE_FINAL
  }
}

CHORUS_KERNEL void finalize(DataType t, RedOp op, void* dst, const void* acc, size_t count,
                            int contributors) {
  if (t == DataType::kFloat16) {
    finalizeHalf<f2h>(op, static_cast<uint16_t*>(dst), static_cast<const float*>(acc), count,
                      contributors);
  } else if (t == DataType::kBfloat16) {
    finalizeHalf<f2b>(op, static_cast<uint16_t*>(dst), static_cast<const float*>(acc), count,
                      contributors);
  } else {
#define CHORUS_FINALIZE(T) \
  finalizeT<T>(op, static_cast<T*>(dst), static_cast<const T*>(acc), count, contributors)
    CHORUS_PLAIN_SWITCH(t, CHORUS_FINALIZE)
#undef CHORUS_FINALIZE
  }
}

void applyArrivalReduction(const ArrivalReduction& r, const void* incoming, size_t first,
                           size_t count) {
  const size_t es = dataTypeSize(r.dtype), as = accumulatorSize(r.dtype);
  const uint8_t* other = r.other + first * es;
  if (r.final && r.otherFirst)
    combineFinal(r.dtype, r.op, r.dst + first * es, other, incoming, count, r.contributors);
  else if (r.final)
    combineFinal(r.dtype, r.op, r.dst + first * es, incoming, other, count, r.contributors);
  else
    combine(r.dtype, r.op, r.dst + first * as, incoming, other, count);
}

}  // namespace chorus::kernels
