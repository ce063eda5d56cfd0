#include "src/membership/control_link.h"

#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace chorus::membership {

namespace {
Status fromAsio(const asio::error_code& ec, const char* what) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset)
    return unavailable(std::string(what) + ": connection closed by the other side");
  if (ec == asio::error::operation_aborted)
    return deadlineExceeded(std::string(what) + ": timed out");
  return unavailable(std::string(what) + ": " + ec.message());
}
}  // namespace

asio::awaitable<Status> ControlLink::startTls(const transport::tcp::TlsContext& ctx, bool server) {
  auto s = co_await ctx.handshake(sock_, server);
  if (!s.isOk()) co_return s.status();
  ssl_ = std::move(s).value();
  co_return Status::ok();
}

asio::awaitable<Status> ControlLink::read(void* data, size_t n) {
  if (ssl_) co_return co_await transport::tcp::tlsReadAll(sock_, ssl_.get(), data, n);
  asio::error_code ec;
  co_await asio::async_read(sock_, asio::buffer(data, n),
                            asio::redirect_error(asio::use_awaitable, ec));
  co_return ec ? fromAsio(ec, "reading control message") : Status::ok();
}

asio::awaitable<Status> ControlLink::write(const void* data, size_t n) {
  if (ssl_) co_return co_await transport::tcp::tlsWriteAll(sock_, ssl_.get(), data, n);
  asio::error_code ec;
  co_await asio::async_write(sock_, asio::buffer(data, n),
                             asio::redirect_error(asio::use_awaitable, ec));
  co_return ec ? fromAsio(ec, "writing control message") : Status::ok();
}

void ControlLink::close() {
  asio::error_code ec;
  sock_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  sock_.close(ec);
}

}  // namespace chorus::membership
