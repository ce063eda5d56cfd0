// Host interface to the CUDA codecs (device memory in and out): one warp per
// block, the CPU's per-value formulas and summation order
// (kernels/common/codec_math.h), so the bytes are identical.
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
// The same, launched on the default stream without waiting (benchmarks time
// them with events); "" means the launch was accepted.
std::string encodeAsync(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                        uint8_t* out);
std::string decodeAsync(const codec::Params& p, const uint8_t* in, size_t count, float* out);

}  // namespace chorus::cuda
