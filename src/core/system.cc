#include "src/core/system.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <fstream>
#include <random>

namespace chorus {

std::string hostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::string hostIdentity() {
  std::string boot;
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  if (in) std::getline(in, boot);
  // The network namespace too: processes in different ones (containers,
  // emulated datacenters) are different hosts for shared memory and
  // topology, even when they share a kernel.
  char ns[64] = {0};
  ssize_t n = ::readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);
  std::string id = hostName();
  id += '/';
  id += boot;
  if (n > 0) {
    id += '/';
    id.append(ns, static_cast<size_t>(n));
  }
  return id;
}

uint64_t randomU64() {
  uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof(v)) != 1) {
    std::random_device rd;
    v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  return v;
}

int onlineCpus() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace chorus
