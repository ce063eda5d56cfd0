// CUDA side of the shared state: the chunk-hash kernel (XXH3-64 from
// kernels/common/xxh3.h, the same source the CPU test checks against
// libxxhash) and plain copies.
//
// Kernel layout: 8 threads per chunk, thread i owns accumulator lane i of
// XXH3's long path (lanes only meet in the final merge), so a warp hashes 4
// chunks and each 64-byte stripe is read by 8 neighbouring threads.
#include <cuda_runtime.h>

#include <vector>

#include "kernels/common/xxh3.h"
#include "kernels/cuda/device.h"

namespace chorus::cuda {

namespace {

__global__ void hashChunksKernel(const uint8_t* data, size_t bytes, size_t chunk, size_t nChunks,
                                 uint64_t* out) {
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t c = tid >> 3;
  const int lane = static_cast<int>(tid & 7);
  if (c >= nChunks) return;  // whole 8-thread groups leave together
  const unsigned group = 0xffu << (threadIdx.x & 24);
  const uint8_t* p = data + c * chunk;
  const size_t len = bytes - c * chunk < chunk ? bytes - c * chunk : chunk;
  if (len <= 240) {
    if (lane == 0) out[c] = xxh3::hashShort(p, len);
    return;
  }
  const uint64_t acc = xxh3::laneLong(p, len, lane);
  uint64_t all[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) all[i] = __shfl_sync(group, acc, i, 8);
  if (lane == 0) out[c] = xxh3::mergeLanes(all, len);
}

std::string err(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorString(e);
}

}  // namespace

bool available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

std::string checkDevicePointer(const void* p) {
  if (!available()) return "no CUDA device is available";
  cudaPointerAttributes attr;
  cudaError_t e = cudaPointerGetAttributes(&attr, p);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state
    return err("cudaPointerGetAttributes", e);
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    return "the buffer is not CUDA device or managed memory";
  return "";
}

std::string hashChunks(const void* device, size_t bytes, size_t chunkBytes, uint64_t* out) {
  if (bytes == 0) return "";
  const size_t n = (bytes + chunkBytes - 1) / chunkBytes;
  uint64_t* dOut = nullptr;
  cudaError_t e = cudaMalloc(&dOut, n * sizeof(uint64_t));
  if (e != cudaSuccess) return err("cudaMalloc", e);
  const unsigned threads = 256;  // a multiple of 8: groups never straddle blocks
  const size_t blocks = (n * 8 + threads - 1) / threads;
  hashChunksKernel<<<static_cast<unsigned>(blocks), threads>>>(static_cast<const uint8_t*>(device),
                                                               bytes, chunkBytes, n, dOut);
  e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpy(out, dOut, n * sizeof(uint64_t), cudaMemcpyDeviceToHost);
  cudaFree(dOut);
  return e == cudaSuccess ? "" : err("chunk hash kernel", e);
}

std::string copyToHost(void* host, const void* device, size_t bytes) {
  cudaError_t e = cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost);
  return e == cudaSuccess ? "" : err("cudaMemcpy device to host", e);
}

std::string copyToDevice(void* device, const void* host, size_t bytes) {
  cudaError_t e = cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice);
  return e == cudaSuccess ? "" : err("cudaMemcpy host to device", e);
}

}  // namespace chorus::cuda
