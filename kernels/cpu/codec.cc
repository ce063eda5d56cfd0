#include "kernels/cpu/codec.h"

#include <string>

namespace chorus::kernels {

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
  for (size_t b = 0, off = 0; off < count; ++b, off += p.blockSize) {
    uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
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
