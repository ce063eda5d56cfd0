// Content hashes (xxHash XXH3-64): result parity checks across peers,
// chorus-bench #wrong checks, shared-state comparison.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace chorus {

uint64_t hash64(const void* data, size_t len, uint64_t seed = 0);
std::string hashHex(uint64_t h);

}  // namespace chorus
