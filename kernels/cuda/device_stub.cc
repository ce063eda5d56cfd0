// Built without the CUDA toolkit: device buffers are refused with a clear
// reason.
#include "kernels/cuda/device.h"

namespace chorus::cuda {

namespace {
const char* kNoCuda = "this Chorus build has no CUDA support (built without the CUDA toolkit)";
}

bool available() {
  return false;
}
std::string checkDevicePointer(const void*) {
  return kNoCuda;
}
std::string hashChunks(const void*, size_t, size_t, uint64_t*) {
  return kNoCuda;
}
std::string copyToHost(void*, const void*, size_t) {
  return kNoCuda;
}
std::string copyToDevice(void*, const void*, size_t) {
  return kNoCuda;
}

}  // namespace chorus::cuda

#include "kernels/cuda/codec.h"

namespace chorus::cuda {

std::string encode(const codec::Params&, const float*, size_t, uint64_t, uint8_t*) {
  return "this Chorus build has no CUDA support (built without the CUDA toolkit)";
}
std::string decode(const codec::Params&, const uint8_t*, size_t, float*) {
  return "this Chorus build has no CUDA support (built without the CUDA toolkit)";
}
std::string encodeAsync(const codec::Params&, const float*, size_t, uint64_t, uint8_t*) {
  return "this Chorus build has no CUDA support (built without the CUDA toolkit)";
}
std::string decodeAsync(const codec::Params&, const uint8_t*, size_t, float*) {
  return "this Chorus build has no CUDA support (built without the CUDA toolkit)";
}

}  // namespace chorus::cuda
