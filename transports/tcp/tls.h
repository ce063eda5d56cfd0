// TLS 1.3 on data links (OpenSSL). A link is first authenticated by the
// run-secret challenge-response (src/membership/handshake.h), then, when TLS
// is on, both ends run a TLS 1.3 handshake on the same socket and every byte
// after it is encrypted. Mutual authentication either way:
//   - secret: an external pre-shared key derived from the run secret
//     (HMAC-SHA256), with ephemeral (EC)DHE for forward secrecy; no
//     certificates to manage. A peer with another secret fails the binder
//     check and is refused.
//   - certificates: each peer presents its chain (CHORUS_TLS_CERT/KEY) and
//     must chain to the job's CA (CHORUS_TLS_CA); a peer without one, or with
//     one from another CA, is refused. Names are not checked (peers dial IP
//     addresses): membership in the job is what the CA vouches for.
// The handshake runs on the Asio reactor without blocking it; the
// connection then belongs to the progress engine as a TlsConnection.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "src/core/status.h"
#include "transports/tcp/connection.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace chorus::transport::tcp {

enum class TlsMode { kOff = 0, kSecret = 1, kCertificates = 2 };

struct TlsSettings {
  TlsMode mode = TlsMode::kOff;
  std::string secret;                     // kSecret: the run secret
  std::string certFile, keyFile, caFile;  // kCertificates: PEM files
};

// The settings of a configuration with tls, secret, tlsCert, tlsKey and
// tlsCa (a peer's CommConfig or a CoordinatorConfig).
template <class Config>
TlsSettings tlsSettingsOf(const Config& c) {
  TlsSettings s;
  s.mode = static_cast<TlsMode>(c.tls);
  s.secret = c.secret;
  s.certFile = c.tlsCert;
  s.keyFile = c.tlsKey;
  s.caFile = c.tlsCa;
  return s;
}

struct SslFree {
  void operator()(SSL* s) const;
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// One SSL_CTX per communicator, for both ends of its links.
class TlsContext {
 public:
  // Loads and checks the files (a wrong path, a key that does not match the
  // certificate, an unreadable CA: refused here, before any link).
  static Result<std::shared_ptr<TlsContext>> create(const TlsSettings& s);
  ~TlsContext();
  TlsMode mode() const { return settings_.mode; }
  const std::string& pskKey() const { return pskKey_; }

  // TLS 1.3 handshake on a connected socket (the dialer is the client).
  // Returns the session, ready for TlsConnection, or why it failed (an
  // authentication failure as kUnauthenticated). The caller bounds the time
  // (a Watchdog closing the socket).
  asio::awaitable<Result<SslPtr>> handshake(asio::ip::tcp::socket& s, bool server) const;

 private:
  TlsContext() = default;
  TlsSettings settings_;
  std::string pskKey_;
  SSL_CTX* ctx_ = nullptr;
};

// Framed connection whose bytes go through TLS. Plaintext is copied into a
// bounded buffer when it is accepted for sending (so sends complete, and may
// be cancelled, exactly as on plain TCP), then encrypted out as the socket
// drains; reads take records until the socket is empty, and a record only
// partly handed out is reported by hasBufferedInput() so the engine comes
// back for it instead of sleeping on a socket that will not wake it.
class TlsConnection : public TcpConnection {
 public:
  TlsConnection(int fd, SslPtr ssl, uint64_t peerId, int stream);
  ~TlsConnection() override;
  const char* transportName() const override { return "tls"; }
  bool hasPendingSends() const override;
  size_t queuedSendBytes() const override;
  bool hasBufferedInput() const override;
  // Encrypted bytes wait for a socket that said it is full (a plaintext
  // copy into tx_ may still succeed, but nothing leaves before EPOLLOUT).
  bool writeBlocked() const override { return socketFull_ && txBegin_ < txEnd_; }

 protected:
  ssize_t writeBytes(const ::iovec* iov, int n) override;
  ssize_t readBytes(const ::iovec* iov, int n) override;
  Result<bool> flushTransport() override;

 private:
  // Encrypts and sends buffered plaintext; -errno on a broken link.
  ssize_t drain();
  SslPtr ssl_;
  std::vector<uint8_t> tx_;  // plaintext accepted, not yet through SSL_write
  size_t txBegin_ = 0, txEnd_ = 0;
  size_t retryLen_ = 0;      // an SSL_write that must be repeated with this length
  bool socketFull_ = false;  // the last SSL_write wanted the socket writable
};

// Whole plaintext reads and writes over a TLS session on an Asio socket
// (coordinator links). One read and one write may be in flight at once on
// the io_context's thread; closing the socket ends both.
asio::awaitable<Status> tlsReadAll(asio::ip::tcp::socket& s, SSL* ssl, void* data, size_t n);
asio::awaitable<Status> tlsWriteAll(asio::ip::tcp::socket& s, SSL* ssl, const void* data, size_t n);

// "off", "secret", "certificates".
std::string tlsModeName(TlsMode m);

}  // namespace chorus::transport::tcp
