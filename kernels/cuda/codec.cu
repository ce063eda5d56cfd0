// CUDA codecs: one warp per codec block, so every load and store is
// coalesced across the warp and a block's statistics are warp reductions.
// The per-value formulas are the CPU's (kernels/common/codec_math.h:
// quantize, fp8EncodeT, canonical..., exactly rounded, never contracted),
// and the two places where order matters follow the CPU's order exactly:
//   - the 1-bit scale (sumAbs): lane j sums values j, j+32, j+64... in
//     index order, which is the CPU's partial sum j; the shuffle tree
//     (+16, +8, +4, +2, +1) is its pairwise combination;
//   - top-k compaction writes the kept values in index order, ties taken
//     by ascending index (ballot + prefix count).
// Max, min and histogram counts are integer and order-free.
#include <cuda_runtime.h>

#include <climits>

#include "kernels/cuda/codec.h"

namespace chorus::cuda {

namespace {

using codec::Kind;
using codec::Params;

constexpr unsigned kAll = 0xffffffffu;
constexpr unsigned kWarpsPerCta = 8;
constexpr unsigned kThreads = kWarpsPerCta * 32;

__device__ __forceinline__ unsigned laneId() {
  return threadIdx.x & 31u;
}
__device__ __forceinline__ uint32_t minu(uint32_t a, uint32_t b) {
  return a < b ? a : b;
}

// x[i..i+3] (zeros past n), one 16-byte load where aligned.
__device__ __forceinline__ void load4(const float* __restrict__ x, uint32_t i, uint32_t n,
                                      float v[4]) {
  if (i + 4 <= n && (reinterpret_cast<uintptr_t>(x + i) & 15) == 0) {
    const float4 f = __ldg(reinterpret_cast<const float4*>(x + i));
    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
    return;
  }
#pragma unroll
  for (uint32_t t = 0; t < 4; ++t) v[t] = i + t < n ? __ldg(x + i + t) : 0.0f;
}
// out[i..] = v[0..3], stopping at n.
__device__ __forceinline__ void store4(float* __restrict__ out, uint32_t i, uint32_t n,
                                       const float v[4]) {
  if (i + 4 <= n && (reinterpret_cast<uintptr_t>(out + i) & 15) == 0) {
    *reinterpret_cast<float4*>(out + i) = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
#pragma unroll
  for (uint32_t t = 0; t < 4; ++t)
    if (i + t < n) out[i + t] = v[t];
}
// The low `count` (1..4) bytes of v, little-endian.
__device__ __forceinline__ void storeBytes(uint8_t* out, uint32_t v, uint32_t count) {
  if (count == 4 && (reinterpret_cast<uintptr_t>(out) & 3) == 0) {
    *reinterpret_cast<uint32_t*>(out) = v;
    return;
  }
  for (uint32_t t = 0; t < count; ++t) out[t] = static_cast<uint8_t>(v >> (8 * t));
}
__device__ __forceinline__ uint32_t loadBytes(const uint8_t* __restrict__ in, uint32_t count) {
  if (count == 4 && (reinterpret_cast<uintptr_t>(in) & 3) == 0)
    return __ldg(reinterpret_cast<const uint32_t*>(in));
  uint32_t v = 0;
  for (uint32_t t = 0; t < count; ++t) v |= static_cast<uint32_t>(__ldg(in + t)) << (8 * t);
  return v;
}

// One byte per value: q[i] = f(x[i], global index), four values per lane.
template <class F>
__device__ __forceinline__ void packBytes(const float* __restrict__ x, uint32_t n, uint64_t first,
                                          uint8_t* q, F f) {
  for (uint32_t i = 4 * laneId(); i < n; i += 128) {
    float v[4];
    load4(x, i, n, v);
    const uint32_t cnt = minu(4, n - i);
    uint32_t w = 0;
#pragma unroll
    for (uint32_t t = 0; t < 4; ++t)
      if (t < cnt) w |= (f(v[t], first + i + t) & 0xffu) << (8 * t);
    storeBytes(q + i, w, cnt);
  }
}
// One byte per value back to floats: out[i] = f(q[i]).
template <class F>
__device__ __forceinline__ void unpackBytes(const uint8_t* __restrict__ q, uint32_t n,
                                            float* __restrict__ out, F f) {
  for (uint32_t i = 4 * laneId(); i < n; i += 128) {
    const uint32_t w = loadBytes(q + i, minu(4, n - i));
    float v[4];
#pragma unroll
    for (uint32_t t = 0; t < 4; ++t) v[t] = codec::canonical(f((w >> (8 * t)) & 0xffu));
    store4(out, i, n, v);
  }
}

// Top-k of one block by a warp: the CPU's radix select (four 8-bit passes
// over the magnitude bits, histograms in shared memory), then compaction in
// index order.
__device__ void encodeTopK(const Params& p, const float* __restrict__ x, uint32_t n, uint8_t* out,
                           uint32_t* hist) {
  const unsigned lane = laneId();
  const uint32_t k = codec::topkCount(p, n);
  uint32_t prefix = 0, prefixMask = 0, need = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (unsigned b = lane; b < 256; b += 32) hist[b] = 0;
    __syncwarp();
    for (uint32_t i = lane; i < n; i += 32) {
      const uint32_t key = codec::bitsOf(__ldg(x + i)) & 0x7fffffffu;
      if ((key & prefixMask) == prefix) atomicAdd(&hist[(key >> shift) & 0xff], 1u);
    }
    __syncwarp();
    // The CPU walks bins down from 255 while hist[b] < need, subtracting;
    // it stops at the highest b whose suffix count (bins >= b) reaches
    // need. Lane L owns bins 8L..8L+7: a suffix scan over lanes finds the
    // owner, which walks its own eight bins.
    uint32_t mine = 0;
#pragma unroll
    for (unsigned t = 0; t < 8; ++t) mine += hist[8 * lane + t];
    uint32_t suffix = mine;
#pragma unroll
    for (unsigned d = 1; d < 32; d <<= 1) {
      const uint32_t o = __shfl_down_sync(kAll, suffix, d);
      if (lane + d < 32) suffix += o;
    }
    const uint32_t reach = __ballot_sync(kAll, suffix >= need);
    const int owner = reach ? 31 - __clz(reach) : 0;
    const uint32_t above = __shfl_sync(kAll, suffix - mine, owner);
    uint32_t bin = 0, left = 0;
    if (static_cast<int>(lane) == owner) {
      left = need - above;
      int b = 8 * owner + 7;
      for (; b > 0 && hist[b] < left; --b) left -= hist[b];
      bin = static_cast<uint32_t>(b);
    }
    bin = __shfl_sync(kAll, bin, owner);
    need = __shfl_sync(kAll, left, owner);
    prefix |= bin << shift;
    prefixMask |= 0xffu << shift;
    __syncwarp();  // the owner has read the histogram before it is cleared
  }
  const uint32_t t = prefix;  // the k-th largest key; `need` of its ties are kept
  const uint32_t below = (1u << lane) - 1;
  uint32_t w = 0;
  for (uint32_t base = 0; base < n && w < k; base += 32) {
    const uint32_t i = base + lane;
    const float v = i < n ? __ldg(x + i) : 0.0f;
    const uint32_t key = codec::bitsOf(v) & 0x7fffffffu;
    const bool tie = i < n && key == t;
    const uint32_t ties = __ballot_sync(kAll, tie);
    const bool take = (i < n && key > t) || (tie && __popc(ties & below) < need);
    const uint32_t taken = __ballot_sync(kAll, take);
    const uint32_t pos = w + __popc(taken & below);
    if (take && pos < k) {
      uint8_t* e = out + 6 * pos;
      e[0] = static_cast<uint8_t>(i), e[1] = static_cast<uint8_t>(i >> 8);
      codec::putF(e + 2, v);
    }
    w += __popc(taken);
    need -= minu(need, __popc(ties));
  }
}

// Top-k has its own kernel: only it needs the shared histograms (the others
// keep that memory as L1 cache).
__global__ void __launch_bounds__(kThreads)
    encodeTopKKernel(Params p, const float* __restrict__ x, size_t count, uint8_t* __restrict__ out,
                     size_t blocks, size_t fullBytes) {
  __shared__ uint32_t hist[kWarpsPerCta][256];
  const size_t b = static_cast<size_t>(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
  if (b >= blocks) return;
  const size_t off = b * p.blockSize;
  const uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
  encodeTopK(p, x + off, n, out + b * fullBytes, hist[threadIdx.x >> 5]);
}

__global__ void __launch_bounds__(kThreads)
    encodeKernel(Params p, const float* __restrict__ x, size_t count, uint64_t first,
                 uint8_t* __restrict__ out, size_t blocks, size_t fullBytes) {
  const size_t b = static_cast<size_t>(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
  if (b >= blocks) return;  // whole warps leave together
  const unsigned lane = laneId();
  const size_t off = b * p.blockSize;
  const uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
  const float* xb = x + off;
  uint8_t* ob = out + b * fullBytes;
  const uint64_t idx0 = first + off;

  // Block statistics: max |x| always (non-finite check), min/max for uint8,
  // the order-fixed sum of |x| for 1-bit.
  uint32_t maxAbs = 0;
  int32_t loKey = INT_MAX, hiKey = INT_MIN;
  float sum = 0.0f;
  if (p.kind == codec::kOneBit) {
    for (uint32_t i = lane; i < n; i += 32) {
      const float v = __ldg(xb + i);
      maxAbs = max(maxAbs, codec::bitsOf(v) & 0x7fffffffu);
      sum = codec::fadd(sum, codec::fabsBits(v));
    }
#pragma unroll
    for (unsigned d = 16; d >= 1; d >>= 1) sum = codec::fadd(sum, __shfl_down_sync(kAll, sum, d));
    sum = __shfl_sync(kAll, sum, 0);
  } else {
    for (uint32_t i = 4 * lane; i < n; i += 128) {
      float v[4];
      load4(xb, i, n, v);
#pragma unroll
      for (uint32_t t = 0; t < 4; ++t) {
        if (i + t >= n) break;
        maxAbs = max(maxAbs, codec::bitsOf(v[t]) & 0x7fffffffu);
        const int32_t key = codec::orderKey(v[t]);
        loKey = min(loKey, key);
        hiKey = max(hiKey, key);
      }
    }
  }
  maxAbs = __reduce_max_sync(kAll, maxAbs);
  if (maxAbs >= 0x7f800000u) {  // NaN or infinity: the block decodes to NaN
    const size_t bytes = codec::blockBytes(p, n);
    for (size_t i = lane; i < bytes; i += 32) ob[i] = 0;
    __syncwarp();
    if (lane == 0) {
      codec::putF(ob, codec::quietNaN());
      if (p.kind == codec::kUint8) codec::putF(ob + 4, codec::quietNaN());
    }
    return;
  }

  switch (p.kind) {
    case codec::kUint8: {
      const float lo = codec::fromOrderKey(__reduce_min_sync(kAll, loKey));
      const float hi = codec::fromOrderKey(__reduce_max_sync(kAll, hiKey));
      const float scale = codec::fdiv(codec::fsub(hi, lo), 255.0f);
      const float inv = scale > 0 ? codec::fdiv(1.0f, scale) : 0.0f;
      if (lane == 0) codec::putF(ob, lo), codec::putF(ob + 4, scale);
      packBytes(xb, n, idx0, ob + 8, [&](float v, uint64_t i) {
        return static_cast<uint32_t>(
            static_cast<int32_t>(codec::quantize(codec::fsub(v, lo), inv, 0.0f, 255.0f, p, i)));
      });
      return;
    }
    case codec::kInt8: {
      const float scale = codec::fdiv(codec::fromBits(maxAbs), 127.0f);
      const float inv = scale > 0 ? codec::fdiv(1.0f, scale) : 0.0f;
      if (lane == 0) codec::putF(ob, scale);
      packBytes(xb, n, idx0, ob + 4, [&](float v, uint64_t i) {
        return static_cast<uint32_t>(
            static_cast<int32_t>(codec::quantize(v, inv, -127.0f, 127.0f, p, i)));
      });
      return;
    }
    case codec::kE4M3:
    case codec::kE5M2: {
      const float scale = codec::fdiv(codec::fromBits(maxAbs), codec::fp8Max(p.kind));
      const float inv = scale > 0 ? codec::fdiv(1.0f, scale) : 0.0f;
      if (lane == 0) codec::putF(ob, scale);
      if (p.kind == codec::kE4M3)
        packBytes(xb, n, idx0, ob + 4, [&](float v, uint64_t) {
          return static_cast<uint32_t>(codec::fp8EncodeT<codec::kE4M3>(codec::fmul(v, inv)));
        });
      else
        packBytes(xb, n, idx0, ob + 4, [&](float v, uint64_t) {
          return static_cast<uint32_t>(codec::fp8EncodeT<codec::kE5M2>(codec::fmul(v, inv)));
        });
      return;
    }
    case codec::kInt4: {
      const float scale = codec::fdiv(codec::fromBits(maxAbs), 7.0f);
      const float inv = scale > 0 ? codec::fdiv(1.0f, scale) : 0.0f;
      if (lane == 0) codec::putF(ob, scale);
      // Eight values (four bytes) per lane; an odd tail leaves the last high
      // nibble zero, as on the CPU.
      for (uint32_t i = 8 * lane; i < n; i += 256) {
        float v[8];
        load4(xb, i, n, v);
        load4(xb, i + 4, n, v + 4);
        const uint32_t cnt = minu(8, n - i);
        uint32_t w = 0;
#pragma unroll
        for (uint32_t t = 0; t < 8; ++t)
          if (t < cnt)
            w |= (static_cast<uint32_t>(static_cast<int32_t>(
                      codec::quantize(v[t], inv, -7.0f, 7.0f, p, idx0 + i + t))) &
                  0xfu)
                 << (4 * t);
        storeBytes(ob + 4 + i / 2, w, (cnt + 1) / 2);
      }
      return;
    }
    case codec::kOneBit: {
      if (lane == 0) codec::putF(ob, codec::fdiv(sum, static_cast<float>(n)));
      // 32 values per ballot = four bytes, bit t of byte j for value 8j + t.
      for (uint32_t base = 0; base < n; base += 32) {
        const uint32_t i = base + lane;
        const bool one = i < n && !(codec::bitsOf(__ldg(xb + i)) >> 31);
        const uint32_t bits = __ballot_sync(kAll, one);
        if (lane == 0) storeBytes(ob + 4 + base / 8, bits, minu(4, (n - base + 7) / 8));
      }
      return;
    }
    default:
      return;
  }
}

__global__ void __launch_bounds__(kThreads)
    decodeKernel(Params p, const uint8_t* __restrict__ in, size_t count, float* __restrict__ out,
                 size_t blocks, size_t fullBytes) {
  const size_t b = static_cast<size_t>(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
  if (b >= blocks) return;
  const unsigned lane = laneId();
  const size_t off = b * p.blockSize;
  const uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
  const uint8_t* ib = in + b * fullBytes;
  float* ob = out + off;
  switch (p.kind) {
    case codec::kUint8: {
      const float lo = codec::getF(ib), scale = codec::getF(ib + 4);
      unpackBytes(ib + 8, n, ob, [&](uint32_t q) {
        return codec::fadd(lo, codec::fmul(static_cast<float>(q), scale));
      });
      return;
    }
    case codec::kInt8: {
      const float scale = codec::getF(ib);
      unpackBytes(ib + 4, n, ob, [&](uint32_t q) {
        return codec::fmul(static_cast<float>(static_cast<int8_t>(q)), scale);
      });
      return;
    }
    case codec::kE4M3: {
      const float scale = codec::getF(ib);
      unpackBytes(ib + 4, n, ob, [&](uint32_t q) {
        return codec::fmul(codec::fp8DecodeT<codec::kE4M3>(static_cast<uint8_t>(q)), scale);
      });
      return;
    }
    case codec::kE5M2: {
      const float scale = codec::getF(ib);
      unpackBytes(ib + 4, n, ob, [&](uint32_t q) {
        return codec::fmul(codec::fp8DecodeT<codec::kE5M2>(static_cast<uint8_t>(q)), scale);
      });
      return;
    }
    case codec::kInt4: {
      const float scale = codec::getF(ib);
      for (uint32_t i = 8 * lane; i < n; i += 256) {
        const uint32_t w = loadBytes(ib + 4 + i / 2, minu(4, (n - i + 1) / 2));
        float v[8];
#pragma unroll
        for (uint32_t t = 0; t < 8; ++t) {
          const int nib = static_cast<int>((w >> (4 * t)) & 0xfu);
          v[t] =
              codec::canonical(codec::fmul(static_cast<float>(nib >= 8 ? nib - 16 : nib), scale));
        }
        store4(ob, i, n, v);
        store4(ob, i + 4, n, v + 4);
      }
      return;
    }
    case codec::kOneBit: {
      const float scale = codec::canonical(codec::getF(ib));
      const float neg = codec::canonical(codec::fsub(0.0f, scale));
      for (uint32_t i = 4 * lane; i < n; i += 128) {
        const uint32_t bits = __ldg(ib + 4 + i / 8) >> (i % 8);  // i % 8 is 0 or 4
        float v[4];
#pragma unroll
        for (uint32_t t = 0; t < 4; ++t) v[t] = (bits >> t) & 1 ? scale : neg;
        store4(ob, i, n, v);
      }
      return;
    }
    case codec::kTopK: {
      const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (uint32_t i = 4 * lane; i < n; i += 128) store4(ob, i, n, zero);
      __syncwarp();
      // Entries in order; where a (corrupt) block repeats an index, the last
      // one wins, as on the CPU.
      const uint32_t k = codec::topkCount(p, n);
      for (uint32_t base = 0; base < k; base += 32) {
        const uint32_t j = base + lane;
        uint32_t idx = UINT_MAX;
        if (j < k)
          idx = static_cast<uint32_t>(ib[6 * j]) | static_cast<uint32_t>(ib[6 * j + 1]) << 8;
        const bool valid = idx < n;
        const uint32_t same = __match_any_sync(kAll, idx);
        if (valid && 31 - __clz(same) == static_cast<int>(lane))
          ob[idx] = codec::getF(ib + 6 * j + 2);
        __syncwarp();
      }
      return;
    }
    default:
      return;
  }
}

std::string done(const char* what, bool sync) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && sync) e = cudaDeviceSynchronize();
  return e == cudaSuccess ? "" : std::string(what) + ": " + cudaGetErrorString(e);
}

// A selection across the whole buffer needs a grid-wide radix select, not
// one warp per block: not written yet.
const char kNoGlobalTopK[] =
    "global top-k runs on host buffers only (use chorusCodecTopK on the device)";

unsigned ctas(size_t blocks) {
  return static_cast<unsigned>((blocks + kWarpsPerCta - 1) / kWarpsPerCta);
}

}  // namespace

std::string encodeAsync(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                        uint8_t* out) {
  if (p.kind == codec::kTopKGlobal) return kNoGlobalTopK;
  if (count == 0) return "";
  const size_t blocks = (count + p.blockSize - 1) / p.blockSize;
  const size_t full = codec::blockBytes(p, p.blockSize);
  if (p.kind == codec::kTopK)
    encodeTopKKernel<<<ctas(blocks), kThreads>>>(p, x, count, out, blocks, full);
  else
    encodeKernel<<<ctas(blocks), kThreads>>>(p, x, count, firstIndex, out, blocks, full);
  return done("codec encode kernel", false);
}

std::string decodeAsync(const codec::Params& p, const uint8_t* in, size_t count, float* out) {
  if (p.kind == codec::kTopKGlobal) return kNoGlobalTopK;
  if (count == 0) return "";
  const size_t blocks = (count + p.blockSize - 1) / p.blockSize;
  decodeKernel<<<ctas(blocks), kThreads>>>(p, in, count, out, blocks,
                                           codec::blockBytes(p, p.blockSize));
  return done("codec decode kernel", false);
}

std::string encode(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                   uint8_t* out) {
  std::string e = encodeAsync(p, x, count, firstIndex, out);
  return e.empty() ? done("codec encode kernel", true) : e;
}

std::string decode(const codec::Params& p, const uint8_t* in, size_t count, float* out) {
  std::string e = decodeAsync(p, in, count, out);
  return e.empty() ? done("codec decode kernel", true) : e;
}

}  // namespace chorus::cuda
