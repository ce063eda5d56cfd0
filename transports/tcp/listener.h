// TCP listener for incoming data links. Runs on the control io_context (the
// membership thread); each accepted socket is handed to onAccept, which
// authenticates it before it becomes a Connection.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <functional>
#include <string>

#include "src/core/status.h"

namespace chorus::transport::tcp {

class TcpListener {
 public:
  using AcceptFn = std::function<void(asio::ip::tcp::socket)>;
  explicit TcpListener(asio::io_context& io);
  // Bind host:port (port 0 = any free port) and start accepting.
  Status listen(const std::string& host, uint16_t port, AcceptFn onAccept);
  uint16_t port() const { return port_; }
  void close();

 private:
  void acceptNext();
  asio::ip::tcp::acceptor acceptor_;
  AcceptFn onAccept_;
  uint16_t port_ = 0;
};

}  // namespace chorus::transport::tcp
