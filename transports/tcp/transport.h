// TCP transport: the factory that turns an authenticated Asio socket into a
// data Connection, and the socket options every data socket gets.
//
// Why Asio's sockets but not its completion handlers on the data path: a
// completion runs on whichever thread runs the io_context, so a caller
// blocked in an all-reduce would wait for another thread to run its
// handlers -- a thread hand-off per message, which costs up to a 4 ms tick on
// an oversubscribed 2-core machine. Asio owns resolution, connect, accept and
// socket lifetime (control plane, src/membership/); the progress engine moves
// data with non-blocking readv/sendmsg on the connected sockets.
#pragma once

#include <asio/ip/tcp.hpp>

#include <memory>

#include "transports/tcp/tls.h"
#include "transports/transport.h"

namespace chorus::transport::tcp {

// Apply data-socket options: TCP_NODELAY, non-blocking, BBR congestion
// control where the kernel offers it, and on pools of more than one stream
// TCP_NOTSENT_LOWAT (see transport.cc).
void tuneDataSocket(asio::ip::tcp::socket& s, int streamCount = 1);
std::unique_ptr<Connection> makeConnection(asio::ip::tcp::socket s, uint64_t peerId, int stream,
                                           int streamCount = 1);
// The same for a link whose TLS handshake is done (ssl is its session).
std::unique_ptr<Connection> makeTlsConnection(asio::ip::tcp::socket s, SslPtr ssl, uint64_t peerId,
                                              int stream, int streamCount = 1);

}  // namespace chorus::transport::tcp
