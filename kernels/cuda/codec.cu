// CUDA codecs: one thread per block of values, running the block code the
// CPU runs (kernels/common/codec_math.h) with exactly rounded float
// operations, so encodings and decodings match the CPU's bit for bit.
#include <cuda_runtime.h>

#include "kernels/cuda/codec.h"

namespace chorus::cuda {

namespace {

__global__ void encodeKernel(codec::Params p, const float* x, size_t count, uint64_t first,
                             uint8_t* out, size_t blocks, size_t fullBytes) {
  size_t b = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= blocks) return;
  size_t off = b * p.blockSize;
  uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
  codec::encodeBlock(p, x + off, n, first + off, out + b * fullBytes);
}

__global__ void decodeKernel(codec::Params p, const uint8_t* in, size_t count, float* out,
                             size_t blocks, size_t fullBytes) {
  size_t b = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= blocks) return;
  size_t off = b * p.blockSize;
  uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
  codec::decodeBlock(p, in + b * fullBytes, n, out + off);
}

std::string done(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return e == cudaSuccess ? "" : std::string(what) + ": " + cudaGetErrorString(e);
}

}  // namespace

std::string encode(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                   uint8_t* out) {
  if (count == 0) return "";
  const size_t blocks = (count + p.blockSize - 1) / p.blockSize;
  const unsigned threads = 128;
  encodeKernel<<<static_cast<unsigned>((blocks + threads - 1) / threads), threads>>>(
      p, x, count, firstIndex, out, blocks, codec::blockBytes(p, p.blockSize));
  return done("codec encode kernel");
}

std::string decode(const codec::Params& p, const uint8_t* in, size_t count, float* out) {
  if (count == 0) return "";
  const size_t blocks = (count + p.blockSize - 1) / p.blockSize;
  const unsigned threads = 128;
  decodeKernel<<<static_cast<unsigned>((blocks + threads - 1) / threads), threads>>>(
      p, in, count, out, blocks, codec::blockBytes(p, p.blockSize));
  return done("codec decode kernel");
}

}  // namespace chorus::cuda
