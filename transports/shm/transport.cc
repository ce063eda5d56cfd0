#include "transports/shm/transport.h"

#include <mutex>

#include "src/core/config.h"
#include "transports/shm/connection.h"
#include "transports/tcp/transport.h"

namespace chorus::transport::shm {

bool enabled() {
  return envIntOr("CHORUS_SHM", 1) != 0;
}

size_t ringBytes() {
  // 1 MiB: every ring of a host fits in its last-level cache far longer
  // than 4 MiB ones (N=4: 12 rings), which made copies 15-50% faster at
  // 1-16 MiB (docs/PERFORMANCE.md).
  int v = envIntOr("CHORUS_SHM_RING_BYTES", 1 << 20);
  return static_cast<size_t>(v < (64 << 10) ? (64 << 10) : v);
}

std::unique_ptr<Connection> makeConnection(asio::ip::tcp::socket s, uint64_t peerId, int stream,
                                           uint64_t myPeerId, const std::string& myHost) {
  static std::once_flag swept;
  std::call_once(swept, sweepStaleSegments);  // leftovers of crashed runs
  tcp::tuneDataSocket(s);
  asio::error_code ec;
  int fd = s.release(ec);
  if (ec) return nullptr;
  return std::make_unique<ShmConnection>(fd, peerId, stream, myPeerId, myHost,
                                         enabled() ? ringBytes() : 0);
}

}  // namespace chorus::transport::shm
