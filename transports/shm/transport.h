// Shared-memory transport entry points (same file set as transports/tcp/).
#pragma once

#include <asio/ip/tcp.hpp>

#include <memory>

#include "transports/transport.h"

namespace chorus::transport::shm {

// Whether this peer offers shared memory to same-host peers (CHORUS_SHM,
// default 1; a link uses it only if both sides offer it) and each ring's
// size (CHORUS_SHM_RING_BYTES, default 1 MiB).
bool enabled();
size_t ringBytes();
// A data connection on an authenticated socket: shared memory if the peer
// turns out to be on this host, TCP otherwise (decided in band).
std::unique_ptr<Connection> makeConnection(asio::ip::tcp::socket s, uint64_t peerId, int stream,
                                           uint64_t myPeerId, const std::string& myHost);

}  // namespace chorus::transport::shm
