// Gradient codecs, one block at a time, written once for the host compiler
// and nvcc: the CPU codec (kernels/cpu/codec.cc) and the CUDA kernels
// (kernels/cuda/codec.cu) run this same source, so a block encoded or
// decoded on either gives the same bytes. Float arithmetic goes through
// add/mul/div helpers that are correctly rounded single operations on both
// (the device's __fadd_rn & co. are never contracted into FMA; the host is
// built with -ffp-contract=off), and every sum runs in index order.
//
// Block formats (n values, n <= blockSize; little-endian):
//   uint8   float lo, float scale, n x uint8      x ~ lo + q * scale
//   int8    float scale, n x int8                 x ~ q * scale, q in [-127, 127]
//   int4    float scale, ceil(n/2) bytes          q in [-7, 7], low nibble first
//   e4m3    float scale, n x fp8 (E4M3, max 448)  x ~ fp8(q) * scale
//   e5m2    float scale, n x fp8 (E5M2, max 57344)
//   onebit  float scale, ceil(n/8) bytes          x ~ +scale (bit 1) / -scale (bit 0),
//                                                 scale = mean |x|
//   topk    k x { uint16 index, float value }     the k largest |x| (ties: lower index)
// A block with a NaN or an infinity encodes scale = NaN (topk: keeps it), so
// the decoded block is NaN: a broken gradient stays visible, never silently
// clipped. Rounding: to nearest even, or stochastic from (seed, global index)
// so every peer and device draws the same numbers.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define CHORUS_HD __host__ __device__ __forceinline__
#else
#define CHORUS_HD inline __attribute__((always_inline))
#endif

namespace chorus::codec {

enum Kind : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kInt4 = 2,
  kE4M3 = 3,
  kE5M2 = 4,
  kOneBit = 5,
  kTopK = 6,
  kTopKGlobal = 7,  // top-k across the whole buffer (one block), 32-bit indices
  kNumKinds = 8,
};

struct Params {
  Kind kind = kUint8;
  uint32_t blockSize = 256;
  uint32_t topk = 16;       // kTopK: values kept per full block; kTopKGlobal: per
                            // blockSize values, chosen across the whole buffer
  bool stochastic = false;  // quantizers: stochastic rounding
  uint64_t seed = 0;
};

// ---- exactly rounded float operations ----
CHORUS_HD float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
CHORUS_HD float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
CHORUS_HD float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
CHORUS_HD float fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
CHORUS_HD float rne(float x) {  // round half to even, exact
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return __builtin_rintf(x);
#endif
}
CHORUS_HD float ffloor(float x) {
#if defined(__CUDA_ARCH__)
  return floorf(x);
#else
  return __builtin_floorf(x);
#endif
}
CHORUS_HD uint32_t bitsOf(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
CHORUS_HD float fromBits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
CHORUS_HD bool finite(float x) {
  return (bitsOf(x) & 0x7f800000u) != 0x7f800000u;
}
CHORUS_HD float fabsBits(float x) {
  return fromBits(bitsOf(x) & 0x7fffffffu);
}
CHORUS_HD float quietNaN() {
  return fromBits(0x7fc00000u);
}
// Every NaN a decoder computes becomes this one NaN: CPUs propagate an
// input NaN's payload (x86 makes 0 * inf negative) where GPUs return
// 0x7fffffff, so without this a NaN block would decode to different bits.
CHORUS_HD float canonical(float v) {
  return (bitsOf(v) & 0x7fffffffu) > 0x7f800000u ? quietNaN() : v;
}
CHORUS_HD void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v), p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16), p[3] = static_cast<uint8_t>(v >> 24);
}
CHORUS_HD uint32_t get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
CHORUS_HD void putF(uint8_t* p, float f) {
  put32(p, bitsOf(f));
}
CHORUS_HD float getF(const uint8_t* p) {
  return fromBits(get32(p));
}

// Uniform in [0, 1) with 24 random bits, from (seed, element index).
CHORUS_HD float uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<uint32_t>(z >> 40)) * (1.0f / 16777216.0f);
}

// Rounds v (already scaled to quantization steps) to an integer step.
CHORUS_HD float roundStep(float v, const Params& p, uint64_t index) {
  return p.stochastic ? ffloor(fadd(v, uniform(p.seed, index))) : rne(v);
}
CHORUS_HD float clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// ---- sizes ----
CHORUS_HD uint32_t topkCount(const Params& p, uint32_t n) {
  // Partial blocks keep a proportional share (at least one value).
  uint32_t k =
      static_cast<uint32_t>((static_cast<uint64_t>(p.topk) * n + p.blockSize - 1) / p.blockSize);
  return k < 1 ? 1 : (k > n ? n : k);
}
CHORUS_HD size_t blockBytes(const Params& p, uint32_t n) {
  switch (p.kind) {
    case kUint8:
      return 8 + n;
    case kInt8:
    case kE4M3:
    case kE5M2:
      return 4 + n;
    case kInt4:
      return 4 + (n + 1) / 2;
    case kOneBit:
      return 4 + (n + 7) / 8;
    case kTopK:
      return static_cast<size_t>(topkCount(p, n)) * 6;
    case kTopKGlobal:
      return static_cast<size_t>(topkCount(p, n)) * 8;
    default:
      return 0;
  }
}
// Global top-k treats the whole buffer as one block of up to this many values.
constexpr size_t kMaxGlobalCount = 0xffffffffu;
// Bytes of `count` values: full blocks, then the partial one.
CHORUS_HD size_t encodedBytes(const Params& p, size_t count) {
  if (p.kind == kTopKGlobal) return count ? blockBytes(p, static_cast<uint32_t>(count)) : 0;
  size_t full = count / p.blockSize, rest = count % p.blockSize;
  return full * blockBytes(p, p.blockSize) +
         (rest ? blockBytes(p, static_cast<uint32_t>(rest)) : 0);
}

// ---- fp8 (OCP 8-bit floats) ----
// E4M3: bias 7, no infinities, max 448 (S.1111.110), NaN S.1111.111.
// E5M2: bias 15, max 57344, IEEE-like. Encode saturates to the max finite.
CHORUS_HD float fp8Max(Kind k) {
  return k == kE4M3 ? 448.0f : 57344.0f;
}
template <Kind k>
CHORUS_HD uint8_t fp8EncodeT(float y) {
  // Selects only, no branches.
  const int32_t man = k == kE4M3 ? 3 : 2, bias = k == kE4M3 ? 7 : 15, emin = 1 - bias;
  const uint32_t sign = (bitsOf(y) >> 24) & 0x80u;
  const float maxv = fp8Max(k);
  float a = fabsBits(y);
  a = a < maxv ? a : maxv;  // saturate (NaN never gets here: its block is NaN-scaled)
  int32_t e = static_cast<int32_t>((bitsOf(a) >> 23) & 0xff) - 127;
  e = e < emin ? emin : e;
  // a / 2^(e - man): exact, a power-of-two scaling inside the float range.
  const float steps = rne(fmul(a, fromBits(static_cast<uint32_t>(127 - (e - man)) << 23)));
  uint32_t m = static_cast<uint32_t>(static_cast<int32_t>(steps));
  const uint32_t carry = m >> (man + 1);  // rounded up into the next binade
  m >>= carry;
  e += static_cast<int32_t>(carry);
  const uint32_t sub = 1u << man;
  uint32_t code = m < sub ? m : (static_cast<uint32_t>(e + bias) << man) | (m - sub);
  const uint32_t maxCode = k == kE4M3 ? 0x7eu : 0x7bu;
  code = code > maxCode ? maxCode : code;
  return static_cast<uint8_t>(sign | code);
}
CHORUS_HD uint8_t fp8Encode(float y, Kind k) {
  return k == kE4M3 ? fp8EncodeT<kE4M3>(y) : fp8EncodeT<kE5M2>(y);
}
template <Kind k>
CHORUS_HD float fp8DecodeT(uint8_t c) {
  // Exact: an integer mantissa times a power of two; selects only.
  const int32_t man = k == kE4M3 ? 3 : 2, bias = k == kE4M3 ? 7 : 15;
  const uint32_t expField = (c & 0x7fu) >> man, m = c & ((1u << man) - 1);
  const uint32_t normal = expField != 0;
  const float mant = static_cast<float>((normal << man) | m);
  const int32_t e = (normal ? static_cast<int32_t>(expField) : 1) - bias - man;
  float mag = fmul(mant, fromBits(static_cast<uint32_t>(127 + e) << 23));
  if (k == kE4M3) {
    mag = (c & 0x7fu) == 0x7fu ? quietNaN() : mag;
  } else {
    mag = expField == 31 ? (m ? quietNaN() : fromBits(0x7f800000u)) : mag;
  }
  return fromBits(bitsOf(mag) | (static_cast<uint32_t>(c & 0x80u) << 24));
}
CHORUS_HD float fp8Decode(uint8_t c, Kind k) {
  return k == kE4M3 ? fp8DecodeT<kE4M3>(c) : fp8DecodeT<kE5M2>(c);
}

// ---- block statistics, in loops a compiler can vectorise ----

// max |x| as bits; >= 0x7f800000 means the block holds a NaN or an infinity.
CHORUS_HD uint32_t maxAbsBits(const float* x, uint32_t n) {
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t a = bitsOf(x[i]) & 0x7fffffffu;
    m = a > m ? a : m;
  }
  return m;
}
// Integer key with the floats' numeric order (-0 sorts just below +0).
CHORUS_HD int32_t orderKey(float f) {
  int32_t b = static_cast<int32_t>(bitsOf(f));
  return b ^ ((b >> 31) & 0x7fffffff);
}
CHORUS_HD float fromOrderKey(int32_t k) {
  return fromBits(static_cast<uint32_t>(k ^ ((k >> 31) & 0x7fffffff)));
}
CHORUS_HD void minMax(const float* x, uint32_t n, float* lo, float* hi) {
  int32_t a = orderKey(x[0]), b = a;
  for (uint32_t i = 1; i < n; ++i) {
    int32_t k = orderKey(x[i]);
    a = k < a ? k : a;
    b = k > b ? k : b;
  }
  *lo = fromOrderKey(a);
  *hi = fromOrderKey(b);
}
// Sum of |x| in a fixed order every implementation follows: 32 interleaved
// partial sums (element i goes to sum i mod 32; enough independent chains to
// hide the adder's latency), combined pairwise: s[j] += s[j+16], then +8,
// +4, +2, +1.
CHORUS_HD float sumAbs(const float* x, uint32_t n) {
  float acc[32];
  for (int j = 0; j < 32; ++j) acc[j] = 0.0f;
  uint32_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int j = 0; j < 32; ++j) acc[j] = fadd(acc[j], fabsBits(x[i + j]));
  for (int j = 0; i < n; ++i, ++j) acc[j] = fadd(acc[j], fabsBits(x[i]));
  for (int w = 16; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = fadd(acc[j], acc[j + w]);
  return acc[0];
}

// Quantized step index of v * inv, clamped to [lo, hi].
CHORUS_HD float quantize(float v, float inv, float lo, float hi, const Params& p, uint64_t index) {
  float q = roundStep(fmul(v, inv), p, index);
  q = q < lo ? lo : q;
  return q > hi ? hi : q;
}

// The k largest |x| of n values, in index order: emit(slot, index, value).
// Radix select on the magnitude bits (NaN/Inf sort above everything):
// threshold t with count(key > t) < k <= count(key >= t); keep all keys > t,
// then keys == t by ascending index. Four 8-bit histogram passes and one
// compaction pass, no sort.
template <class Emit>
CHORUS_HD void selectTopK(const float* x, uint32_t n, uint32_t k, Emit emit) {
  uint32_t prefix = 0, prefixMask = 0, need = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    uint32_t hist[256];
    for (int b = 0; b < 256; ++b) hist[b] = 0;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t key = bitsOf(x[i]) & 0x7fffffffu;
      if ((key & prefixMask) == prefix) ++hist[(key >> shift) & 0xff];
    }
    int b = 255;
    for (; b > 0 && hist[b] < need; --b) need -= hist[b];
    prefix |= static_cast<uint32_t>(b) << shift;
    prefixMask |= 0xffu << shift;
  }
  const uint32_t t = prefix;  // the k-th largest key; `need` of the ties are kept
  uint32_t w = 0;
  for (uint32_t i = 0; i < n && w < k; ++i) {
    uint32_t key = bitsOf(x[i]) & 0x7fffffffu;
    bool take = key > t || (key == t && need > 0);
    if (key == t && take) --need;
    if (!take) continue;
    emit(w++, i, x[i]);
  }
}

// ---- one block ----
// x: n values starting at global element index `first`; out: blockBytes.
CHORUS_HD void encodeBlock(const Params& p, const float* x, uint32_t n, uint64_t first,
                           uint8_t* out) {
  const bool bad = p.kind != kTopK && p.kind != kTopKGlobal && maxAbsBits(x, n) >= 0x7f800000u;
  if (bad) {  // NaN or infinity: the block decodes to NaN
    size_t bytes = blockBytes(p, n);
    for (size_t i = 0; i < bytes; ++i) out[i] = 0;
    putF(out, quietNaN());
    if (p.kind == kUint8) putF(out + 4, quietNaN());
    return;
  }
  switch (p.kind) {
    case kUint8: {
      float lo, hi;
      minMax(x, n, &lo, &hi);
      float scale = fdiv(fsub(hi, lo), 255.0f);
      putF(out, lo);
      putF(out + 4, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      uint8_t* q = out + 8;
      if (!p.stochastic) {
        for (uint32_t i = 0; i < n; ++i) {
          float v = rne(fmul(fsub(x[i], lo), inv));
          v = v < 0.0f ? 0.0f : v;
          q[i] = static_cast<uint8_t>(static_cast<int32_t>(v > 255.0f ? 255.0f : v));
        }
      } else {
        for (uint32_t i = 0; i < n; ++i)
          q[i] = static_cast<uint8_t>(
              static_cast<int32_t>(quantize(fsub(x[i], lo), inv, 0.0f, 255.0f, p, first + i)));
      }
      return;
    }
    case kInt8: {
      float scale = fdiv(fromBits(maxAbsBits(x, n)), 127.0f);
      putF(out, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      uint8_t* q = out + 4;
      if (!p.stochastic) {
        for (uint32_t i = 0; i < n; ++i) {
          float v = rne(fmul(x[i], inv));
          v = v < -127.0f ? -127.0f : v;
          q[i] = static_cast<uint8_t>(static_cast<int32_t>(v > 127.0f ? 127.0f : v));
        }
      } else {
        for (uint32_t i = 0; i < n; ++i)
          q[i] = static_cast<uint8_t>(
              static_cast<int32_t>(quantize(x[i], inv, -127.0f, 127.0f, p, first + i)));
      }
      return;
    }
    case kInt4: {
      float scale = fdiv(fromBits(maxAbsBits(x, n)), 7.0f);
      putF(out, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      uint8_t* q = out + 4;
      const uint32_t pairs = n / 2;
      if (!p.stochastic) {
        for (uint32_t i = 0; i < pairs; ++i) {
          float a = rne(fmul(x[2 * i], inv)), b = rne(fmul(x[2 * i + 1], inv));
          a = a < -7.0f ? -7.0f : (a > 7.0f ? 7.0f : a);
          b = b < -7.0f ? -7.0f : (b > 7.0f ? 7.0f : b);
          q[i] = static_cast<uint8_t>((static_cast<int32_t>(a) & 0xf) |
                                      ((static_cast<int32_t>(b) & 0xf) << 4));
        }
      } else {
        for (uint32_t i = 0; i < pairs; ++i) {
          int32_t a = static_cast<int32_t>(quantize(x[2 * i], inv, -7.0f, 7.0f, p, first + 2 * i));
          int32_t b =
              static_cast<int32_t>(quantize(x[2 * i + 1], inv, -7.0f, 7.0f, p, first + 2 * i + 1));
          q[i] = static_cast<uint8_t>((a & 0xf) | ((b & 0xf) << 4));
        }
      }
      if (n & 1)
        q[pairs] = static_cast<uint8_t>(
            static_cast<int32_t>(quantize(x[n - 1], inv, -7.0f, 7.0f, p, first + n - 1)) & 0xf);
      return;
    }
    case kE4M3:
    case kE5M2: {
      float scale = fdiv(fromBits(maxAbsBits(x, n)), fp8Max(p.kind));
      putF(out, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      if (p.kind == kE4M3)
        for (uint32_t i = 0; i < n; ++i) out[4 + i] = fp8EncodeT<kE4M3>(fmul(x[i], inv));
      else
        for (uint32_t i = 0; i < n; ++i) out[4 + i] = fp8EncodeT<kE5M2>(fmul(x[i], inv));
      return;
    }
    case kOneBit: {
      putF(out, fdiv(sumAbs(x, n), static_cast<float>(n)));
      const uint32_t full = n / 8;
      for (uint32_t j = 0; j < full; ++j) {
        uint32_t bits = 0;
        for (uint32_t t = 0; t < 8; ++t) bits |= ((bitsOf(x[8 * j + t]) >> 31) ^ 1u) << t;
        out[4 + j] = static_cast<uint8_t>(bits);
      }
      if (n % 8) {
        uint32_t bits = 0;
        for (uint32_t t = 0; 8 * full + t < n; ++t)
          bits |= ((bitsOf(x[8 * full + t]) >> 31) ^ 1u) << t;
        out[4 + full] = static_cast<uint8_t>(bits);
      }
      return;
    }
    case kTopK:
      selectTopK(x, n, topkCount(p, n), [&](uint32_t w, uint32_t i, float v) {
        out[6 * w] = static_cast<uint8_t>(i), out[6 * w + 1] = static_cast<uint8_t>(i >> 8);
        putF(out + 6 * w + 2, v);
      });
      return;
    case kTopKGlobal:
      selectTopK(x, n, topkCount(p, n), [&](uint32_t w, uint32_t i, float v) {
        put32(out + 8 * w, i);
        putF(out + 8 * w + 4, v);
      });
      return;
    default:
      return;
  }
}

// Decodes one block into out (n values); bounds were checked by the caller
// (in is blockBytes long). topk indices outside the block are ignored.
CHORUS_HD void decodeBlock(const Params& p, const uint8_t* in, uint32_t n, float* out) {
  switch (p.kind) {
    case kUint8: {
      float lo = getF(in), scale = getF(in + 4);
      // With a finite header no value can be NaN, so the per-value
      // canonical() is needed only for non-finite headers (same bits).
      if (finite(lo) && finite(scale))
        for (uint32_t i = 0; i < n; ++i)
          out[i] = fadd(lo, fmul(static_cast<float>(in[8 + i]), scale));
      else
        for (uint32_t i = 0; i < n; ++i)
          out[i] = canonical(fadd(lo, fmul(static_cast<float>(in[8 + i]), scale)));
      return;
    }
    case kInt8: {
      float scale = getF(in);
      if (finite(scale))
        for (uint32_t i = 0; i < n; ++i)
          out[i] = fmul(static_cast<float>(static_cast<int8_t>(in[4 + i])), scale);
      else
        for (uint32_t i = 0; i < n; ++i)
          out[i] = canonical(fmul(static_cast<float>(static_cast<int8_t>(in[4 + i])), scale));
      return;
    }
    case kInt4: {
      float scale = getF(in);
      const bool clean = finite(scale);
      for (uint32_t i = 0; i < n; ++i) {
        int nib = (in[4 + i / 2] >> ((i & 1) * 4)) & 0xf;
        int q = nib >= 8 ? nib - 16 : nib;
        float v = fmul(static_cast<float>(q), scale);
        out[i] = clean ? v : canonical(v);
      }
      return;
    }
    case kE4M3:
    case kE5M2: {
      const float scale = getF(in);
      if (p.kind == kE4M3)
        for (uint32_t i = 0; i < n; ++i)
          out[i] = canonical(fmul(fp8DecodeT<kE4M3>(in[4 + i]), scale));
      else
        for (uint32_t i = 0; i < n; ++i)
          out[i] = canonical(fmul(fp8DecodeT<kE5M2>(in[4 + i]), scale));
      return;
    }
    case kOneBit: {
      const float scale = canonical(getF(in)), neg = canonical(fsub(0.0f, scale));
      const uint32_t full = n / 8;
      for (uint32_t j = 0; j < full; ++j) {
        const uint32_t bits = in[4 + j];
        for (uint32_t t = 0; t < 8; ++t) out[8 * j + t] = ((bits >> t) & 1) ? scale : neg;
      }
      for (uint32_t i = 8 * full; i < n; ++i)
        out[i] = ((in[4 + i / 8] >> (i % 8)) & 1) ? scale : neg;
      return;
    }
    case kTopK: {
      for (uint32_t i = 0; i < n; ++i) out[i] = 0.0f;
      const uint32_t k = topkCount(p, n);
      for (uint32_t j = 0; j < k; ++j) {
        uint32_t idx = static_cast<uint32_t>(in[6 * j]) | static_cast<uint32_t>(in[6 * j + 1]) << 8;
        if (idx < n) out[idx] = getF(in + 6 * j + 2);
      }
      return;
    }
    case kTopKGlobal: {
      for (uint32_t i = 0; i < n; ++i) out[i] = 0.0f;
      const uint32_t k = topkCount(p, n);
      for (uint32_t j = 0; j < k; ++j) {
        uint32_t idx = get32(in + 8 * j);
        if (idx < n) out[idx] = getF(in + 8 * j + 4);
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace chorus::codec
