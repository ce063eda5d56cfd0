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
#define CHORUS_HD inline
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
  kNumKinds = 7,
};

struct Params {
  Kind kind = kUint8;
  uint32_t blockSize = 256;
  uint32_t topk = 16;       // kTopK: values kept per full block
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
  uint32_t k = static_cast<uint32_t>((static_cast<uint64_t>(p.topk) * n + p.blockSize - 1) /
                                     p.blockSize);
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
    default:
      return 0;
  }
}
// Bytes of `count` values: full blocks, then the partial one.
CHORUS_HD size_t encodedBytes(const Params& p, size_t count) {
  size_t full = count / p.blockSize, rest = count % p.blockSize;
  return full * blockBytes(p, p.blockSize) + (rest ? blockBytes(p, static_cast<uint32_t>(rest)) : 0);
}

// ---- fp8 (OCP 8-bit floats) ----
// E4M3: bias 7, no infinities, max 448 (S.1111.110), NaN S.1111.111.
// E5M2: bias 15, max 57344, IEEE-like. Encode saturates to the max finite.
CHORUS_HD float fp8Max(Kind k) {
  return k == kE4M3 ? 448.0f : 57344.0f;
}
CHORUS_HD uint8_t fp8Encode(float y, Kind k) {
  const int man = k == kE4M3 ? 3 : 2, bias = k == kE4M3 ? 7 : 15;
  const uint8_t sign = (bitsOf(y) >> 31) ? 0x80 : 0;
  float a = fabsBits(y);
  const float maxv = fp8Max(k);
  if (!(a <= maxv)) a = maxv;  // saturate (NaN never reaches here: its block is NaN-scaled)
  // Exponent of a (a >= 2^(1-bias) normal, else subnormal with that exponent).
  int e = static_cast<int>((bitsOf(a) >> 23) & 0xff) - 127;
  const int emin = 1 - bias;
  if (a == 0.0f) return sign;
  if (e < emin) e = emin;
  // a / 2^(e - man), exact (power-of-two scaling within float range).
  float steps = rne(fmul(a, fromBits(static_cast<uint32_t>(127 - (e - man)) << 23)));
  uint32_t m = static_cast<uint32_t>(steps);
  if (m >= (2u << man)) {  // rounded up to the next binade
    m >>= 1;
    ++e;
  }
  uint32_t code;
  if (m < (1u << man)) {
    code = m;  // subnormal (exponent field 0)
  } else {
    code = (static_cast<uint32_t>(e + bias) << man) | (m - (1u << man));
  }
  const uint32_t maxCode = k == kE4M3 ? 0x7e : 0x7b;
  if (code > maxCode) code = maxCode;
  return static_cast<uint8_t>(sign | code);
}
CHORUS_HD float fp8Decode(uint8_t c, Kind k) {
  const int man = k == kE4M3 ? 3 : 2, bias = k == kE4M3 ? 7 : 15;
  const uint32_t expField = (c & 0x7f) >> man, m = c & ((1u << man) - 1);
  float mag;
  if (k == kE4M3 && (c & 0x7f) == 0x7f) return quietNaN();
  if (k == kE5M2 && expField == 31) return m ? quietNaN() : fromBits((c & 0x80 ? 0x80000000u : 0) | 0x7f800000u);
  if (expField == 0) {
    mag = fmul(static_cast<float>(m), fromBits(static_cast<uint32_t>(127 + 1 - bias - man) << 23));
  } else {
    mag = fmul(static_cast<float>((1u << man) | m),
               fromBits(static_cast<uint32_t>(127 + static_cast<int>(expField) - bias - man) << 23));
  }
  return (c & 0x80) ? -mag : mag;
}

// ---- one block ----
// x: n values starting at global element index `first`; out: blockBytes.
CHORUS_HD void encodeBlock(const Params& p, const float* x, uint32_t n, uint64_t first,
                           uint8_t* out) {
  bool bad = false;
  float lo = 0, hi = 0, maxabs = 0, sumabs = 0;
  for (uint32_t i = 0; i < n; ++i) {
    float v = x[i];
    if (!finite(v)) {
      bad = true;
      continue;
    }
    if (i == 0 || v < lo) lo = v;
    if (i == 0 || v > hi) hi = v;
    float a = fabsBits(v);
    if (a > maxabs) maxabs = a;
    sumabs = fadd(sumabs, a);
  }
  switch (p.kind) {
    case kUint8: {
      float scale = bad ? quietNaN() : fdiv(fsub(hi, lo), 255.0f);
      putF(out, bad ? quietNaN() : lo);
      putF(out + 4, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      for (uint32_t i = 0; i < n; ++i) {
        float q = bad ? 0.0f : clampf(roundStep(fmul(fsub(x[i], lo), inv), p, first + i), 0, 255);
        out[8 + i] = static_cast<uint8_t>(q);
      }
      return;
    }
    case kInt8:
    case kInt4: {
      const float top = p.kind == kInt8 ? 127.0f : 7.0f;
      float scale = bad ? quietNaN() : fdiv(maxabs, top);
      putF(out, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      if (p.kind == kInt4)
        for (uint32_t i = 0; i < (n + 1) / 2; ++i) out[4 + i] = 0;
      for (uint32_t i = 0; i < n; ++i) {
        float q = bad ? 0.0f : clampf(roundStep(fmul(x[i], inv), p, first + i), -top, top);
        int qi = static_cast<int>(q);
        if (p.kind == kInt8) {
          out[4 + i] = static_cast<uint8_t>(static_cast<int8_t>(qi));
        } else {
          uint8_t nib = static_cast<uint8_t>(qi & 0xf);
          out[4 + i / 2] |= (i & 1) ? static_cast<uint8_t>(nib << 4) : nib;
        }
      }
      return;
    }
    case kE4M3:
    case kE5M2: {
      float scale = bad ? quietNaN() : fdiv(maxabs, fp8Max(p.kind));
      putF(out, scale);
      float inv = scale > 0 ? fdiv(1.0f, scale) : 0.0f;
      for (uint32_t i = 0; i < n; ++i) out[4 + i] = bad ? 0 : fp8Encode(fmul(x[i], inv), p.kind);
      return;
    }
    case kOneBit: {
      float scale = bad ? quietNaN() : fdiv(sumabs, static_cast<float>(n));
      putF(out, scale);
      for (uint32_t i = 0; i < (n + 7) / 8; ++i) out[4 + i] = 0;
      for (uint32_t i = 0; i < n; ++i)
        if (!(bitsOf(x[i]) >> 31)) out[4 + i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      return;
    }
    case kTopK: {
      // Radix select on the magnitude bits (NaN/Inf sort above everything):
      // threshold t with count(key > t) < k <= count(key >= t); keep all
      // keys > t, then keys == t by ascending index. Four 8-bit passes.
      const uint32_t k = topkCount(p, n);
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
        out[6 * w] = static_cast<uint8_t>(i), out[6 * w + 1] = static_cast<uint8_t>(i >> 8);
        putF(out + 6 * w + 2, x[i]);
        ++w;
      }
      return;
    }
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
      for (uint32_t i = 0; i < n; ++i) out[i] = fadd(lo, fmul(static_cast<float>(in[8 + i]), scale));
      return;
    }
    case kInt8: {
      float scale = getF(in);
      for (uint32_t i = 0; i < n; ++i)
        out[i] = fmul(static_cast<float>(static_cast<int8_t>(in[4 + i])), scale);
      return;
    }
    case kInt4: {
      float scale = getF(in);
      for (uint32_t i = 0; i < n; ++i) {
        int nib = (in[4 + i / 2] >> ((i & 1) * 4)) & 0xf;
        int q = nib >= 8 ? nib - 16 : nib;
        out[i] = fmul(static_cast<float>(q), scale);
      }
      return;
    }
    case kE4M3:
    case kE5M2: {
      float scale = getF(in);
      for (uint32_t i = 0; i < n; ++i) out[i] = fmul(fp8Decode(in[4 + i], p.kind), scale);
      return;
    }
    case kOneBit: {
      float scale = getF(in), neg = fsub(0.0f, scale);
      for (uint32_t i = 0; i < n; ++i) out[i] = ((in[4 + i / 8] >> (i % 8)) & 1) ? scale : neg;
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
    default:
      return;
  }
}

}  // namespace chorus::codec
