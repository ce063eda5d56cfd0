// CPU codecs (host memory): whole buffers as a run of blocks, each encoded
// and decoded by the block code shared with the CUDA kernels
// (kernels/common/codec_math.h). Runtime CPU dispatch like reduce.cc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common/codec_math.h"
#include "src/core/status.h"

namespace chorus::kernels {

// Checks a codec configuration (block size, top-k, kind).
Status validateCodec(const codec::Params& p);
// Checks that count values fit the format (global top-k: 32-bit indices).
Status checkCodecCount(const codec::Params& p, size_t count);
// out: codec::encodedBytes(p, count) bytes. firstIndex: global index of x[0]
// (stochastic rounding draws from it).
void encode(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
            uint8_t* out);
// Refuses (kDataLoss) an input whose length is not the encoding of `count`.
Status decode(const codec::Params& p, const uint8_t* in, size_t inBytes, size_t count, float* out);

}  // namespace chorus::kernels
