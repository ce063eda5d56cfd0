#include "transports/tcp/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "src/core/config.h"
#include "transports/tcp/connection.h"
#include "transports/tcp/tls.h"

namespace chorus::transport::tcp {

void tuneDataSocket(asio::ip::tcp::socket& s, int streamCount) {
  asio::error_code ec;
  s.set_option(asio::ip::tcp::no_delay(true), ec);
  s.non_blocking(true, ec);
  int fd = s.native_handle();
  // BBR paces to the measured bottleneck instead of filling queues until
  // loss, which is what long fat links need; refused (harmlessly) where the
  // kernel lacks it or does not allow it. CHORUS_TCP_CONGESTION overrides
  // ("" keeps the system default).
  const char* cc = std::getenv("CHORUS_TCP_CONGESTION");
  if (!cc) cc = "bbr";
  if (*cc)
    ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, static_cast<socklen_t>(std::strlen(cc)));
  // On a striped pool the kernel keeps at most this many unsent bytes per
  // stream, so frames wait in the stripe scheduler, which hands each to the
  // stream that drains first, instead of piling up behind a slow stream.
  if (streamCount > 1) {
    int lowat = envIntOr("CHORUS_NOTSENT_LOWAT", 256 << 10);
    if (lowat > 0) ::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
  }
  // Kernel autotuning by default; CHORUS_SOCKET_BUFFER=bytes fixes both
  // buffers (which turns autotuning off: only worth it when the size asked
  // is really granted, see net.core.[rw]mem_max).
  if (int bytes = envIntOr("CHORUS_SOCKET_BUFFER", 0); bytes > 0) {
    s.set_option(asio::socket_base::send_buffer_size(bytes), ec);
    s.set_option(asio::socket_base::receive_buffer_size(bytes), ec);
  }
}

std::unique_ptr<Connection> makeConnection(asio::ip::tcp::socket s, uint64_t peerId, int stream,
                                           int streamCount) {
  tuneDataSocket(s, streamCount);
  // Take the descriptor out of Asio's reactor (see connection.h).
  asio::error_code ec;
  int fd = s.release(ec);
  if (ec) return nullptr;
  return std::make_unique<TcpConnection>(fd, peerId, stream);
}

std::unique_ptr<Connection> makeTlsConnection(asio::ip::tcp::socket s, SslPtr ssl, uint64_t peerId,
                                              int stream, int streamCount) {
  tuneDataSocket(s, streamCount);
  asio::error_code ec;
  int fd = s.release(ec);
  if (ec) return nullptr;
  return std::make_unique<TlsConnection>(fd, std::move(ssl), peerId, stream);
}

}  // namespace chorus::transport::tcp
