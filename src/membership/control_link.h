// A control-plane connection (peer <-> coordinator, and a data link before
// it is handed to the progress engine): a TCP socket that may be upgraded to
// TLS 1.3 once the run-secret handshake has passed. Reads and writes are
// whole buffers; one read and one write may be in flight together, both on
// the owning io_context's single thread.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include "src/core/status.h"
#include "transports/tcp/tls.h"

namespace chorus::membership {

class ControlLink {
 public:
  explicit ControlLink(asio::io_context& io) : sock_(io) {}
  explicit ControlLink(asio::ip::tcp::socket s) : sock_(std::move(s)) {}

  asio::ip::tcp::socket& socket() { return sock_; }
  const asio::ip::tcp::socket& socket() const { return sock_; }
  bool encrypted() const { return ssl_ != nullptr; }

  // TLS handshake on the socket; from then on every byte is encrypted.
  asio::awaitable<Status> startTls(const transport::tcp::TlsContext& ctx, bool server);

  asio::awaitable<Status> read(void* data, size_t n);
  asio::awaitable<Status> write(const void* data, size_t n);

  // Shuts down and closes the socket (pending reads and writes end).
  void close();

 private:
  asio::ip::tcp::socket sock_;
  transport::tcp::SslPtr ssl_;
};

}  // namespace chorus::membership
