// XXH3-64 (seed 0, default secret) written once for the host compiler and
// nvcc, so the CUDA hash of a device buffer is, by construction, the same
// function as the CPU's. The CPU path itself uses libxxhash (src/core/hash.cc);
// tests/unit/xxh3_portable_test.cc checks this file against it, bit for bit,
// for every length class and for the lane-split form the GPU kernel uses.
//
// Written from the XXH3 specification (xxHash's doc/xxhash_spec.md): the
// short paths (0, 1-3, 4-8, 9-16, 17-128, 129-240 bytes) and the long path
// (8 accumulators over 64-byte stripes, scrambled every 1024 bytes).
#pragma once

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define CHORUS_HD __host__ __device__ __forceinline__
#else
#define CHORUS_HD inline
#endif

namespace chorus::xxh3 {

constexpr uint64_t kPrime32_1 = 0x9E3779B1u;
constexpr uint64_t kPrime32_2 = 0x85EBCA77u;
constexpr uint64_t kPrime32_3 = 0xC2B2AE3Du;
constexpr uint64_t kPrime64_1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime64_2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kPrime64_3 = 0x165667B19E3779F9ull;
constexpr uint64_t kPrime64_4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kPrime64_5 = 0x27D4EB2F165667C5ull;
constexpr uint64_t kPrimeMx1 = 0x165667919E3779F9ull;
constexpr uint64_t kPrimeMx2 = 0x9FB21C651E98DF25ull;

constexpr size_t kSecretSize = 192;
constexpr size_t kStripe = 64;
constexpr size_t kStripesPerBlock = (kSecretSize - kStripe) / 8;  // 16
constexpr size_t kBlock = kStripe * kStripesPerBlock;             // 1024

// The default secret (specification, section "Default secret").
#define CHORUS_XXH3_SECRET_BYTES                                                                  \
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, \
      0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67,   \
      0x1f, 0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff,   \
      0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81,   \
      0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b,   \
      0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef,   \
      0x46, 0xa9, 0xde, 0xac, 0xd8, 0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc,   \
      0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8,   \
      0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3,   \
      0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, 0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda,   \
      0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47,   \
      0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f, 0x95,   \
      0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e

static constexpr uint8_t kSecretHost[kSecretSize] = {CHORUS_XXH3_SECRET_BYTES};
#if defined(__CUDACC__)
static __constant__ const uint8_t kSecretDevice[kSecretSize] = {CHORUS_XXH3_SECRET_BYTES};
#endif

CHORUS_HD const uint8_t* defaultSecret() {
#if defined(__CUDA_ARCH__)
  return kSecretDevice;
#else
  return kSecretHost;
#endif
}

// Little-endian loads byte by byte: any alignment, any host or device.
CHORUS_HD uint32_t read32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
CHORUS_HD uint64_t read64(const uint8_t* p) {
  return static_cast<uint64_t>(read32(p)) | static_cast<uint64_t>(read32(p + 4)) << 32;
}
// 8-byte aligned data words (the long path's stripes, when the chunk is).
CHORUS_HD uint64_t read64Fast(const uint8_t* p) {
  if ((reinterpret_cast<uintptr_t>(p) & 7) == 0) return *reinterpret_cast<const uint64_t*>(p);
  return read64(p);
}

CHORUS_HD uint64_t rotl64(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}
CHORUS_HD uint64_t swap64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  uint32_t lo = static_cast<uint32_t>(x), hi = static_cast<uint32_t>(x >> 32);
  return static_cast<uint64_t>(__byte_perm(lo, 0, 0x0123)) << 32 | __byte_perm(hi, 0, 0x0123);
#else
  return __builtin_bswap64(x);
#endif
}
CHORUS_HD uint32_t swap32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(x, 0, 0x0123);
#else
  return __builtin_bswap32(x);
#endif
}
// Low 64 bits xor high 64 bits of the 128-bit product.
CHORUS_HD uint64_t mulFold64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return (a * b) ^ __umul64hi(a, b);
#else
  unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
#endif
}

CHORUS_HD uint64_t avalanche(uint64_t h) {
  h ^= h >> 37;
  h *= kPrimeMx1;
  return h ^ (h >> 32);
}
CHORUS_HD uint64_t avalancheXxh64(uint64_t h) {
  h ^= h >> 33;
  h *= kPrime64_2;
  h ^= h >> 29;
  h *= kPrime64_3;
  return h ^ (h >> 32);
}
CHORUS_HD uint64_t rrmxmx(uint64_t h, uint64_t len) {
  h ^= rotl64(h, 49) ^ rotl64(h, 24);
  h *= kPrimeMx2;
  h ^= (h >> 35) + len;
  h *= kPrimeMx2;
  return h ^ (h >> 28);
}
CHORUS_HD uint64_t mix16(const uint8_t* in, const uint8_t* sec) {
  return mulFold64(read64(in) ^ read64(sec), read64(in + 8) ^ read64(sec + 8));
}

// ---- inputs of at most 240 bytes ----

CHORUS_HD uint64_t hashShort(const uint8_t* p, size_t len) {
  const uint8_t* s = defaultSecret();
  if (len == 0) return avalancheXxh64(read64(s + 56) ^ read64(s + 64));
  if (len <= 3) {
    uint32_t combined = static_cast<uint32_t>(p[0]) << 16 |
                        static_cast<uint32_t>(p[len >> 1]) << 24 |
                        static_cast<uint32_t>(p[len - 1]) | static_cast<uint32_t>(len) << 8;
    uint64_t flip = static_cast<uint64_t>(read32(s) ^ read32(s + 4));
    return avalancheXxh64(static_cast<uint64_t>(combined) ^ flip);
  }
  if (len <= 8) {
    uint64_t flip = read64(s + 8) ^ read64(s + 16);
    uint64_t in64 =
        static_cast<uint64_t>(read32(p + len - 4)) + (static_cast<uint64_t>(read32(p)) << 32);
    return rrmxmx(in64 ^ flip, len);
  }
  if (len <= 16) {
    uint64_t lo = read64(p) ^ (read64(s + 24) ^ read64(s + 32));
    uint64_t hi = read64(p + len - 8) ^ (read64(s + 40) ^ read64(s + 48));
    return avalanche(len + swap64(lo) + hi + mulFold64(lo, hi));
  }
  uint64_t acc = len * kPrime64_1;
  if (len <= 128) {
    if (len > 32) {
      if (len > 64) {
        if (len > 96) {
          acc += mix16(p + 48, s + 96);
          acc += mix16(p + len - 64, s + 112);
        }
        acc += mix16(p + 32, s + 64);
        acc += mix16(p + len - 48, s + 80);
      }
      acc += mix16(p + 16, s + 32);
      acc += mix16(p + len - 32, s + 48);
    }
    acc += mix16(p, s);
    acc += mix16(p + len - 16, s + 16);
    return avalanche(acc);
  }
  // 129..240
  for (size_t i = 0; i < 8; ++i) acc += mix16(p + 16 * i, s + 16 * i);
  acc = avalanche(acc);
  const size_t rounds = len / 16;
  for (size_t i = 8; i < rounds; ++i) acc += mix16(p + 16 * i, s + 16 * (i - 8) + 3);
  acc += mix16(p + len - 16, s + 136 - 17);
  return avalanche(acc);
}

// ---- inputs above 240 bytes: 8 accumulator lanes ----
//
// Lane i receives data word i^1 and the 32x32 product of keyed word i of
// every stripe, and is scrambled on its own: lanes only meet in the final
// merge, so a GPU runs the 8 lanes of one input on 8 threads.

CHORUS_HD uint64_t laneInit(int lane) {
  const uint64_t init[8] = {kPrime32_3, kPrime64_1, kPrime64_2, kPrime64_3,
                            kPrime64_4, kPrime32_2, kPrime64_5, kPrime32_1};
  return init[lane];
}

CHORUS_HD uint64_t laneStripe(uint64_t acc, const uint8_t* stripe, const uint8_t* sec, int lane) {
  uint64_t mine = read64Fast(stripe + 8 * lane);
  uint64_t other = read64Fast(stripe + 8 * (lane ^ 1));
  uint64_t key = mine ^ read64(sec + 8 * lane);
  return acc + other + (key & 0xffffffffull) * (key >> 32);
}

CHORUS_HD uint64_t laneScramble(uint64_t acc, const uint8_t* sec, int lane) {
  acc ^= acc >> 47;
  acc ^= read64(sec + 8 * lane);
  return acc * kPrime32_1;
}

// Lane `lane`'s accumulator after the whole input (len > 240).
CHORUS_HD uint64_t laneLong(const uint8_t* p, size_t len, int lane) {
  const uint8_t* s = defaultSecret();
  uint64_t acc = laneInit(lane);
  const size_t blocks = (len - 1) / kBlock;
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = p + b * kBlock;
#if defined(__CUDA_ARCH__)
#pragma unroll  // all 16 stripes' loads in flight at once
#endif
    for (size_t st = 0; st < kStripesPerBlock; ++st)
      acc = laneStripe(acc, blk + st * kStripe, s + st * 8, lane);
    acc = laneScramble(acc, s + kSecretSize - kStripe, lane);
  }
  const size_t stripes = ((len - 1) - blocks * kBlock) / kStripe;
  const uint8_t* last = p + blocks * kBlock;
  for (size_t st = 0; st < stripes; ++st)
    acc = laneStripe(acc, last + st * kStripe, s + st * 8, lane);
  return laneStripe(acc, p + len - kStripe, s + kSecretSize - kStripe - 7, lane);
}

CHORUS_HD uint64_t mergeLanes(const uint64_t acc[8], size_t len) {
  const uint8_t* s = defaultSecret() + 11;
  uint64_t r = len * kPrime64_1;
  for (int i = 0; i < 4; ++i)
    r += mulFold64(acc[2 * i] ^ read64(s + 16 * i), acc[2 * i + 1] ^ read64(s + 16 * i + 8));
  return avalanche(r);
}

// The whole hash, one thread.
CHORUS_HD uint64_t hash64(const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (len <= 240) return hashShort(p, len);
  uint64_t acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = laneLong(p, len, i);
  return mergeLanes(acc, len);
}

}  // namespace chorus::xxh3
