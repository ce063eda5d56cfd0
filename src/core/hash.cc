#include "src/core/hash.h"

#include <xxhash.h>

#include <cstdio>

namespace chorus {

uint64_t hash64(const void* data, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

std::string hashHex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace chorus
