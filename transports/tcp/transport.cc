#include "transports/tcp/transport.h"

#include "src/core/config.h"
#include "transports/tcp/connection.h"

namespace chorus::transport::tcp {

void tuneDataSocket(asio::ip::tcp::socket& s) {
  asio::error_code ec;
  s.set_option(asio::ip::tcp::no_delay(true), ec);
  s.non_blocking(true, ec);
  // Kernel autotuning by default; CHORUS_SOCKET_BUFFER=bytes fixes both
  // buffers (which turns autotuning off: only worth it when the size asked
  // is really granted, see net.core.[rw]mem_max).
  if (int bytes = envIntOr("CHORUS_SOCKET_BUFFER", 0); bytes > 0) {
    s.set_option(asio::socket_base::send_buffer_size(bytes), ec);
    s.set_option(asio::socket_base::receive_buffer_size(bytes), ec);
  }
}

std::unique_ptr<Connection> makeConnection(asio::ip::tcp::socket s, uint64_t peerId, int stream) {
  tuneDataSocket(s);
  // Take the descriptor out of Asio's reactor (see connection.h).
  asio::error_code ec;
  int fd = s.release(ec);
  if (ec) return nullptr;
  return std::make_unique<TcpConnection>(fd, peerId, stream);
}

}  // namespace chorus::transport::tcp
