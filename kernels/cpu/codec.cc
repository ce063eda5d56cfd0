#include "kernels/cpu/codec.h"

#include <immintrin.h>

#include <string>

namespace chorus::kernels {

namespace {
// 1-bit signs with one movemask per eight values (bit t of byte j is set
// when value 8j + t is >= +0, as codec::encodeBlock writes it); the portable
// loop does not turn into this by itself.
__attribute__((target("avx2"))) void packSignsAvx2(const float* x, uint32_t n, uint8_t* out) {
  uint32_t j = 0;
  for (; 8 * j + 8 <= n; ++j)
    out[j] = static_cast<uint8_t>(~_mm256_movemask_ps(_mm256_loadu_ps(x + 8 * j)));
  if (8 * j < n) {
    uint32_t bits = 0;
    for (uint32_t t = 0; 8 * j + t < n; ++t)
      bits |= ((codec::bitsOf(x[8 * j + t]) >> 31) ^ 1u) << t;
    out[j] = static_cast<uint8_t>(bits);
  }
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
}  // namespace

#define CHORUS_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

Status validateCodec(const codec::Params& p) {
  if (p.kind >= codec::kNumKinds)
    return invalidArgument("unknown codec kind " + std::to_string(p.kind));
  if (p.blockSize < 1 || p.blockSize > 65536)
    return invalidArgument("codec block size must be 1..65536 values (got " +
                           std::to_string(p.blockSize) + ")");
  if (p.kind == codec::kTopK && (p.topk < 1 || p.topk > p.blockSize))
    return invalidArgument("top-k must keep 1..blockSize values per block (got " +
                           std::to_string(p.topk) + " of " + std::to_string(p.blockSize) + ")");
  return Status::ok();
}

CHORUS_KERNEL void encode(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                          uint8_t* out) {
  const size_t full = codec::blockBytes(p, p.blockSize);
  const bool fastSigns = p.kind == codec::kOneBit && kHaveAvx2;
  for (size_t b = 0, off = 0; off < count; ++b, off += p.blockSize) {
    uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
    if (fastSigns && codec::maxAbsBits(x + off, n) < 0x7f800000u) {
      // The same bytes as encodeBlock: the order-fixed mean |x|, then signs.
      uint8_t* o = out + b * full;
      codec::putF(o, codec::fdiv(codec::sumAbs(x + off, n), static_cast<float>(n)));
      packSignsAvx2(x + off, n, o + 4);
      continue;
    }
    codec::encodeBlock(p, x + off, n, firstIndex + off, out + b * full);
  }
}

CHORUS_KERNEL Status decode(const codec::Params& p, const uint8_t* in, size_t inBytes, size_t count,
                            float* out) {
  if (inBytes != codec::encodedBytes(p, count))
    return dataLoss("compressed data has " + std::to_string(inBytes) + " bytes, the encoding of " +
                    std::to_string(count) + " values has " +
                    std::to_string(codec::encodedBytes(p, count)));
  const size_t full = codec::blockBytes(p, p.blockSize);
  for (size_t b = 0, off = 0; off < count; ++b, off += p.blockSize) {
    uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
    codec::decodeBlock(p, in + b * full, n, out + off);
  }
  return Status::ok();
}

}  // namespace chorus::kernels
