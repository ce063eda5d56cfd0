#include "transports/tcp/listener.h"

#include "src/core/log.h"

namespace chorus::transport::tcp {

TcpListener::TcpListener(asio::io_context& io) : acceptor_(io) {}

Status TcpListener::listen(const std::string& host, uint16_t port, AcceptFn onAccept) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return invalidArgument("cannot listen on '" + host + "': not an IP address");
  asio::ip::tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                       ec.message());
  port_ = acceptor_.local_endpoint(ec).port();
  onAccept_ = std::move(onAccept);
  acceptNext();
  return Status::ok();
}

void TcpListener::acceptNext() {
  acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec)
      onAccept_(std::move(s));
    else
      LOG_WARN("accept failed: " << ec.message());
    acceptNext();
  });
}

void TcpListener::close() {
  asio::error_code ec;
  acceptor_.close(ec);
}

}  // namespace chorus::transport::tcp
