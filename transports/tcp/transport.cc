#include "transports/tcp/transport.h"

#include "transports/tcp/connection.h"

namespace chorus::transport::tcp {

void tuneDataSocket(asio::ip::tcp::socket& s) {
  asio::error_code ec;
  s.set_option(asio::ip::tcp::no_delay(true), ec);
  s.non_blocking(true, ec);
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
