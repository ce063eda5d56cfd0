// Host-side interface to CUDA device memory for the shared state: the
// library core includes only this (no CUDA headers). Built from device.cu
// when the CUDA toolkit is present, from device_stub.cc otherwise; every
// function then reports that CUDA is unavailable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace chorus::cuda {

// A usable CUDA device is present (and this build has CUDA).
bool available();
// "" if p is device (or managed) memory of the current device, else why not.
std::string checkDevicePointer(const void* p);
// XXH3-64 of every chunkBytes-long chunk of [device, device+bytes) (the last
// one shorter), computed on the GPU; identical to the CPU's hash64(chunk).
// out has ceil(bytes / chunkBytes) entries. Returns "" or the CUDA error.
std::string hashChunks(const void* device, size_t bytes, size_t chunkBytes, uint64_t* out);
std::string copyToHost(void* host, const void* device, size_t bytes);
std::string copyToDevice(void* device, const void* host, size_t bytes);

}  // namespace chorus::cuda
