#include "transports/tcp/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/socket.h>
#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <cerrno>
#include <cstring>

#include "src/core/log.h"
#include "src/protocol/auth.h"

namespace chorus::transport::tcp {

namespace {

// TLS_AES_128_GCM_SHA256: AES-NI makes it the cheapest suite on x86; the
// pre-shared key is bound to its SHA-256 handshake hash.
const unsigned char kAes128GcmSha256[2] = {0x13, 0x01};
const char kPskIdentity[] = "chorus-run-secret";
// Plaintext accepted ahead of the socket per connection: four full records,
// small next to the kernel's own buffer so the stripe scheduler still sees
// which stream drains. (256 KiB cost 6-16% at 256 MiB on the emulated
// 100 ms WAN, 64 KiB nothing measurable: docs/PERFORMANCE.md.)
constexpr size_t kTxCapacity = 64 << 10;
// Plaintext handed to one SSL_write (OpenSSL cuts it into 16 KiB records).
constexpr size_t kWriteChunk = 64 << 10;

// Everything OpenSSL queued about the last failure, oldest first.
std::string sslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

SSL_SESSION* pskSession(const TlsContext& self, const SSL_CIPHER* cipher) {
  SSL_SESSION* s = SSL_SESSION_new();
  if (!s) return nullptr;
  const std::string& key = self.pskKey();
  if (!SSL_SESSION_set1_master_key(s, reinterpret_cast<const unsigned char*>(key.data()),
                                   key.size()) ||
      !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

const TlsContext* contextOf(SSL* ssl) {
  return static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

// Client: offer the run-secret key (OpenSSL takes ownership of *sess).
int usePsk(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* idLen,
           SSL_SESSION** sess) {
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kAes128GcmSha256);
  if (!cipher) return 0;
  if (md && md != SSL_CIPHER_get_handshake_digest(cipher)) {
    *sess = nullptr;  // a retry for another hash: no key for it
    return 1;
  }
  *sess = pskSession(*contextOf(ssl), cipher);
  *id = reinterpret_cast<const unsigned char*>(kPskIdentity);
  *idLen = sizeof(kPskIdentity) - 1;
  return *sess ? 1 : 0;
}

// Server: the same key for the one identity peers use. A client with another
// secret offers the same identity and a binder that does not verify, and
// OpenSSL aborts the handshake.
int findPsk(SSL* ssl, const unsigned char* id, size_t idLen, SSL_SESSION** sess) {
  *sess = nullptr;
  if (idLen != sizeof(kPskIdentity) - 1 || std::memcmp(id, kPskIdentity, idLen) != 0) return 1;
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kAes128GcmSha256);
  if (!cipher) return 0;
  *sess = pskSession(*contextOf(ssl), cipher);
  return *sess ? 1 : 0;
}

// The socket under OpenSSL. OpenSSL's own socket BIO writes with write(2),
// which raises SIGPIPE when the peer has gone (and kills a process that did
// not ignore it); this one sends with MSG_NOSIGNAL, never blocks, and keeps
// the errno of its last failure where the connection can read it.
struct SocketIo {
  int fd;
  int lastErrno = 0;
  bool eof = false;
};

int socketIoWrite(BIO* b, const char* data, size_t len, size_t* written) {
  auto* io = static_cast<SocketIo*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t n = ::send(io->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) {
    *written = static_cast<size_t>(n);
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    BIO_set_retry_write(b);
  else
    io->lastErrno = errno;
  return 0;
}

int socketIoRead(BIO* b, char* data, size_t len, size_t* got) {
  auto* io = static_cast<SocketIo*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t n = ::recv(io->fd, data, len, MSG_DONTWAIT);
  if (n > 0) {
    *got = static_cast<size_t>(n);
    return 1;
  }
  if (n == 0)
    io->eof = true;
  else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    BIO_set_retry_read(b);
  else
    io->lastErrno = errno;
  return 0;
}

long socketIoCtrl(BIO* b, int cmd, long, void*) {
  auto* io = static_cast<SocketIo*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return io && io->eof ? 1 : 0;
    default:
      return 0;
  }
}

int socketIoDestroy(BIO* b) {
  delete static_cast<SocketIo*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

const BIO_METHOD* socketIoMethod() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "chorus socket");
    if (!b) return b;
    BIO_meth_set_write_ex(b, socketIoWrite);
    BIO_meth_set_read_ex(b, socketIoRead);
    BIO_meth_set_ctrl(b, socketIoCtrl);
    BIO_meth_set_destroy(b, socketIoDestroy);
    return b;
  }();
  return m;
}

bool attachSocket(SSL* ssl, int fd) {
  const BIO_METHOD* m = socketIoMethod();
  BIO* b = m ? BIO_new(m) : nullptr;
  if (!b) return false;
  BIO_set_data(b, new SocketIo{fd});
  BIO_set_init(b, 1);
  SSL_set_bio(ssl, b, b);  // one reference, owned by the SSL from here
  return true;
}

// The errno of the socket call that broke the link (0: none, end of stream).
int socketErrno(SSL* ssl) {
  BIO* b = SSL_get_rbio(ssl);
  auto* io = b ? static_cast<SocketIo*>(BIO_get_data(b)) : nullptr;
  return io ? io->lastErrno : 0;
}

// True once the peer closed its end (a read saw end of stream).
bool socketEof(SSL* ssl) {
  BIO* b = SSL_get_rbio(ssl);
  auto* io = b ? static_cast<SocketIo*>(BIO_get_data(b)) : nullptr;
  return io && io->eof;
}

bool wants(int sslError) {
  return sslError == SSL_ERROR_WANT_READ || sslError == SSL_ERROR_WANT_WRITE;
}

// Waits, on the reactor, until the socket can do what OpenSSL asked for.
// The link's watchdog closes the socket at its deadline, which ends the wait.
asio::awaitable<Status> awaitWant(asio::ip::tcp::socket& s, int sslError,
                                  const char* what = "TLS handshake") {
  asio::error_code ec;
  co_await s.async_wait(sslError == SSL_ERROR_WANT_READ ? asio::ip::tcp::socket::wait_read
                                                        : asio::ip::tcp::socket::wait_write,
                        asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) co_return Status::ok();
  co_return ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor
      ? deadlineExceeded(std::string(what) + ": timed out or closed")
      : unavailable(std::string(what) + ": " + ec.message());
}

}  // namespace

void SslFree::operator()(SSL* s) const {
  SSL_free(s);
}

std::string tlsModeName(TlsMode m) {
  switch (m) {
    case TlsMode::kOff:
      return "off";
    case TlsMode::kSecret:
      return "secret";
    case TlsMode::kCertificates:
      return "certificates";
  }
  return "?";
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsSettings& s) {
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->settings_ = s;
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_method());
  if (!c->ctx_) return internalError("TLS: cannot create an OpenSSL context: " + sslErrors());
  SSL_CTX_set_app_data(c->ctx_, c.get());
  SSL_CTX_set_min_proto_version(c->ctx_, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(c->ctx_, TLS1_3_VERSION);
  // Peers never resume: no tickets after the handshake.
  SSL_CTX_set_num_tickets(c->ctx_, 0);
  SSL_CTX_set_session_cache_mode(c->ctx_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(c->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  switch (s.mode) {
    case TlsMode::kSecret: {
      if (s.secret.empty())
        return invalidArgument(
            "TLS mode 'secret' derives its key from the run secret, and the secret is empty "
            "(set CHORUS_SECRET or params.secret)");
      auth::Proof k = auth::prove(s.secret, "chorus-tls-psk-v1", "");
      c->pskKey_.assign(reinterpret_cast<const char*>(k.data()), k.size());
      SSL_CTX_set_ciphersuites(c->ctx_, "TLS_AES_128_GCM_SHA256");
      SSL_CTX_set_psk_use_session_callback(c->ctx_, usePsk);
      SSL_CTX_set_psk_find_session_callback(c->ctx_, findPsk);
      SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_NONE, nullptr);
      break;
    }
    case TlsMode::kCertificates: {
      if (s.certFile.empty() || s.keyFile.empty() || s.caFile.empty())
        return invalidArgument(
            "TLS mode 'cert' needs a certificate, its key and the job's CA (CHORUS_TLS_CERT, "
            "CHORUS_TLS_KEY, CHORUS_TLS_CA or params.tlsCert/tlsKey/tlsCa)");
      SSL_CTX_set_ciphersuites(c->ctx_,
                               "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                               "TLS_CHACHA20_POLY1305_SHA256");
      if (SSL_CTX_use_certificate_chain_file(c->ctx_, s.certFile.c_str()) != 1)
        return invalidArgument("TLS: cannot load the certificate '" + s.certFile +
                               "': " + sslErrors());
      if (SSL_CTX_use_PrivateKey_file(c->ctx_, s.keyFile.c_str(), SSL_FILETYPE_PEM) != 1)
        return invalidArgument("TLS: cannot load the private key '" + s.keyFile +
                               "', or it does not match the certificate '" + s.certFile +
                               "': " + sslErrors());
      if (SSL_CTX_check_private_key(c->ctx_) != 1)
        return invalidArgument("TLS: the private key '" + s.keyFile +
                               "' does not match the certificate '" + s.certFile + "'");
      if (SSL_CTX_load_verify_locations(c->ctx_, s.caFile.c_str(), nullptr) != 1)
        return invalidArgument("TLS: cannot load the CA '" + s.caFile + "': " + sslErrors());
      SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
    }
    case TlsMode::kOff:
      return invalidArgument("TlsContext::create with TLS off");
  }
  return c;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

asio::awaitable<Result<SslPtr>> TlsContext::handshake(asio::ip::tcp::socket& s, bool server) const {
  ERR_clear_error();
  SslPtr ssl(SSL_new(ctx_));
  if (!ssl) co_return internalError("TLS: SSL_new failed: " + sslErrors());
  asio::error_code ec;
  s.non_blocking(true, ec);
  if (ec || !attachSocket(ssl.get(), s.native_handle()))
    co_return internalError("TLS: cannot attach the socket");
  if (server)
    SSL_set_accept_state(ssl.get());
  else
    SSL_set_connect_state(ssl.get());
  const char* hint =
      settings_.mode == TlsMode::kSecret
          ? " (both peers need CHORUS_TLS=secret and the same run secret)"
          : " (both peers need CHORUS_TLS=cert and certificates issued by the job's CA)";
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl.get());
    if (r == 1) break;
    int e = SSL_get_error(ssl.get(), r);
    if (wants(e)) {
      Status w = co_await awaitWant(s, e);
      if (!w.isOk()) co_return w;
    } else if (e == SSL_ERROR_SSL) {
      std::string why = sslErrors();
      long v = SSL_get_verify_result(ssl.get());
      if (v != X509_V_OK)
        why += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
      co_return unauthenticated("TLS handshake failed: " + why + hint);
    } else {
      int err = socketErrno(ssl.get());
      co_return unavailable(std::string("TLS handshake: the other side closed the connection") +
                            (err ? std::string(" (") + std::strerror(err) + ")" : "") +
                            "; it may have refused our credentials" + hint);
    }
  }
  // In TLS 1.3 the client finishes before the server has checked the
  // client's credentials, so the server confirms with one byte and the
  // client waits for it: a refusal is then an authentication error on both
  // sides, not a link that breaks at its first frame.
  uint8_t confirm = 1;
  for (;;) {
    ERR_clear_error();
    size_t n = 0;
    int r =
        server ? SSL_write_ex(ssl.get(), &confirm, 1, &n) : SSL_read_ex(ssl.get(), &confirm, 1, &n);
    if (r == 1) break;
    int e = SSL_get_error(ssl.get(), r);
    if (!wants(e)) {
      std::string why = sslErrors();
      co_return unauthenticated("TLS: the other side refused this peer's credentials" +
                                (why.empty() ? std::string() : ": " + why) + hint);
    }
    Status w = co_await awaitWant(s, e);
    if (!w.isOk()) co_return w;
  }
  if (!server && confirm != 1) co_return protocolError("TLS: unexpected confirmation byte");
  co_return ssl;
}

TlsConnection::TlsConnection(int fd, SslPtr ssl, uint64_t peerId, int stream)
    : TcpConnection(fd, peerId, stream), ssl_(std::move(ssl)) {
  tx_.resize(kTxCapacity);
}

TlsConnection::~TlsConnection() = default;

bool TlsConnection::hasPendingSends() const {
  return TcpConnection::hasPendingSends() || txBegin_ < txEnd_;
}

size_t TlsConnection::queuedSendBytes() const {
  return TcpConnection::queuedSendBytes() + (txEnd_ - txBegin_);
}

bool TlsConnection::hasBufferedInput() const {
  // Decrypted bytes only. SSL_has_pending would also count the start of a
  // record still arriving, and the engine would spin until the rest came
  // (the socket wakes it for that).
  return open_ && SSL_pending(ssl_.get()) > 0;
}

ssize_t TlsConnection::drain() {
  while (txBegin_ < txEnd_) {
    // A write that OpenSSL asked to repeat is repeated with the same length
    // (the bytes are the same: the buffer only ever moves as a whole).
    size_t len = retryLen_ ? retryLen_ : std::min(txEnd_ - txBegin_, kWriteChunk);
    size_t written = 0;
    ERR_clear_error();
    int r = SSL_write_ex(ssl_.get(), tx_.data() + txBegin_, len, &written);
    if (r == 1) {
      retryLen_ = 0;
      socketFull_ = false;
      txBegin_ += written;
      continue;
    }
    int e = SSL_get_error(ssl_.get(), r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      retryLen_ = len;
      socketFull_ = e == SSL_ERROR_WANT_WRITE;
      return -EAGAIN;
    }
    int err = socketErrno(ssl_.get());
    LOG_WARN("TLS write to peer " << peerId_ << " failed: "
                                  << (err ? std::strerror(err) : sslErrors().c_str()));
    return err ? -err : -EPROTO;
  }
  txBegin_ = txEnd_ = 0;
  return 0;
}

ssize_t TlsConnection::writeBytes(const ::iovec* iov, int n) {
  ssize_t d = drain();
  if (d < 0 && d != -EAGAIN) return d;
  if (txBegin_ > 0 && retryLen_ == 0) {  // make room at the end
    std::memmove(tx_.data(), tx_.data() + txBegin_, txEnd_ - txBegin_);
    txEnd_ -= txBegin_;
    txBegin_ = 0;
  }
  size_t room = tx_.size() - txEnd_;
  if (room == 0) return -EAGAIN;
  size_t took = 0;
  for (int i = 0; i < n && took < room; ++i) {
    size_t c = std::min(iov[i].iov_len, room - took);
    std::memcpy(tx_.data() + txEnd_ + took, iov[i].iov_base, c);
    took += c;
  }
  txEnd_ += took;
  // The bytes are taken even if this drain fails: records of earlier chunks
  // may have gone out whole, and a frame counts as sent once any of it may
  // have (a replaced stream resends from the peer's count; see
  // takeUnreceived). The error comes back on the next write or flush.
  drain();
  return static_cast<ssize_t>(took);
}

Result<bool> TlsConnection::flushTransport() {
  if (txBegin_ == txEnd_) return false;
  size_t before = txEnd_ - txBegin_;
  ssize_t d = drain();
  if (d < 0 && d != -EAGAIN) return brokenError("failed while sending (TLS)", static_cast<int>(-d));
  return txEnd_ - txBegin_ != before;
}

ssize_t TlsConnection::readBytes(const ::iovec* iov, int n) {
  // Whole records until the socket has nothing more (WANT_READ), so a short
  // result means "drained", as on plain TCP.
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    auto* p = static_cast<uint8_t*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      size_t got = 0;
      ERR_clear_error();
      int r = SSL_read_ex(ssl_.get(), p, left, &got);
      if (r == 1) {
        p += got;
        left -= got;
        total += got;
        continue;
      }
      int e = SSL_get_error(ssl_.get(), r);
      if (total > 0) return static_cast<ssize_t>(total);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -EAGAIN;
      if (e == SSL_ERROR_ZERO_RETURN) return 0;
      if (int err = socketErrno(ssl_.get())) return -err;
      // End of stream without close_notify: a peer that died or closed.
      if (e == SSL_ERROR_SYSCALL || socketEof(ssl_.get())) return 0;
      LOG_WARN("TLS read from peer " << peerId_ << " failed: " << sslErrors());
      return -EPROTO;
    }
  }
  return static_cast<ssize_t>(total);
}

namespace {
// Repeats step(p, n, &moved) (SSL_read_ex or SSL_write_ex) until n bytes
// have moved, waiting on the reactor whenever OpenSSL asks for the socket;
// a repeated write gets the same bytes, as OpenSSL requires.
template <class Byte, class Step>
asio::awaitable<Status> moveAll(asio::ip::tcp::socket& s, SSL* ssl, Byte* p, size_t n,
                                const char* what, Step step) {
  while (n > 0) {
    size_t moved = 0;
    ERR_clear_error();
    int r = step(p, n, &moved);
    if (r == 1) {
      p += moved;
      n -= moved;
      continue;
    }
    int e = SSL_get_error(ssl, r);
    if (wants(e)) {
      Status w = co_await awaitWant(s, e, what);
      if (!w.isOk()) co_return w;
      continue;
    }
    if (e == SSL_ERROR_ZERO_RETURN || socketEof(ssl))
      co_return unavailable(std::string(what) + ": connection closed by the other side");
    int err = socketErrno(ssl);
    co_return unavailable(std::string(what) + ": " +
                          (err ? std::strerror(err) : sslErrors().c_str()));
  }
  co_return Status::ok();
}
}  // namespace

asio::awaitable<Status> tlsReadAll(asio::ip::tcp::socket& s, SSL* ssl, void* data, size_t n) {
  return moveAll(
      s, ssl, static_cast<uint8_t*>(data), n, "reading (TLS)",
      [ssl](uint8_t* p, size_t len, size_t* got) { return SSL_read_ex(ssl, p, len, got); });
}

asio::awaitable<Status> tlsWriteAll(asio::ip::tcp::socket& s, SSL* ssl, const void* data,
                                    size_t n) {
  return moveAll(s, ssl, static_cast<const uint8_t*>(data), n, "writing (TLS)",
                 [ssl](const uint8_t* p, size_t len, size_t* wrote) {
                   return SSL_write_ex(ssl, p, len, wrote);
                 });
}

}  // namespace chorus::transport::tcp
