// Small OS helpers: identity of this host, random numbers, CPU count.
#pragma once

#include <cstdint>
#include <string>

namespace chorus {

// Hostname plus kernel boot id: equal for processes on the same host (used to
// detect same-host peers).
std::string hostIdentity();
std::string hostName();
// Cryptographically random 64-bit value (OpenSSL RAND_bytes).
uint64_t randomU64();
int onlineCpus();

}  // namespace chorus
