// Host interface to the CUDA codecs (device memory in and out). Same block
// code as the CPU (kernels/common/codec_math.h), so the bytes are identical.
// Each returns "" or the CUDA error; without CUDA, a "no CUDA support" text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/common/codec_math.h"

namespace chorus::cuda {

// x: count floats on the device; out: codec::encodedBytes(p, count) device bytes.
std::string encode(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                   uint8_t* out);
// in: codec::encodedBytes(p, count) device bytes; out: count device floats.
std::string decode(const codec::Params& p, const uint8_t* in, size_t count, float* out);

}  // namespace chorus::cuda
