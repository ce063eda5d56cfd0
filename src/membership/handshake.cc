#include "src/membership/handshake.h"

#include <asio/connect.hpp>
#include <asio/ip/address.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "src/core/log.h"

namespace chorus::membership {

namespace {
constexpr const char* kServerLabel = "chorus-server-proof";
constexpr const char* kClientLabel = "chorus-client-proof";

std::string transcript(const control::Hello& h, const auth::Nonce& serverNonce) {
  auth::Transcript t;
  t.add(static_cast<uint64_t>(h.role))
      .add(h.group)
      .add(h.fromPeer)
      .add(h.toPeer)
      .add(static_cast<uint64_t>(h.stream))
      .add(static_cast<uint64_t>(h.streamCount))
      .add(h.epoch)
      .add(h.nonce)
      .add(static_cast<uint64_t>(h.tls))
      .add(serverNonce);
  return t.str();
}

}  // namespace

std::string endpointString(const tcp::socket& s, bool remote) {
  asio::error_code ec;
  auto ep = remote ? s.remote_endpoint(ec) : s.local_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

Watchdog::Watchdog(tcp::socket& s, Deadline d)
    : timer_(s.get_executor()),
      alive_(std::make_shared<bool>(true)),
      fired_(std::make_shared<bool>(false)) {
  if (d.isNever()) return;
  timer_.expires_at(d.at());
  timer_.async_wait([sock = &s, alive = alive_, fired = fired_](const asio::error_code& ec) {
    if (ec || !*alive) return;
    *fired = true;
    asio::error_code ignored;
    sock->cancel(ignored);
    sock->close(ignored);
  });
}

Watchdog::~Watchdog() {
  *alive_ = false;
  timer_.cancel();
}

asio::awaitable<Result<control::Message>> readMessage(ControlLink& s) {
  uint8_t hdr[control::kHeaderSize];
  Status st = co_await s.read(hdr, sizeof(hdr));
  if (!st.isOk()) co_return st;
  control::Message m;
  uint32_t len = 0;
  st = control::decodeHeader(hdr, &m.type, &len);
  if (!st.isOk()) co_return st;
  m.body.resize(len);
  if (len > 0) {
    st = co_await s.read(m.body.data(), len);
    if (!st.isOk()) co_return st;
  }
  co_return m;
}

asio::awaitable<Status> writeMessage(ControlLink& s, control::Type type,
                                     const std::vector<uint8_t>& body) {
  std::vector<uint8_t> buf = control::frame(type, body);
  co_return co_await s.write(buf.data(), buf.size());
}

asio::awaitable<Status> connectTo(tcp::socket& s, const std::string& host, uint16_t port,
                                  Deadline deadline) {
  asio::error_code ec;
  tcp::resolver resolver(s.get_executor());
  Watchdog dog(s, deadline);
  auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return unavailable("cannot resolve '" + host + "': " + ec.message());
  co_await asio::async_connect(s, results, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (dog.fired())
      co_return unavailable("connecting to " + host + ":" + std::to_string(port) + " timed out");
    co_return unavailable("cannot connect to " + host + ":" + std::to_string(port) + ": " +
                          ec.message());
  }
  s.set_option(tcp::no_delay(true), ec);
  co_return Status::ok();
}

asio::awaitable<Status> clientHandshake(ControlLink& s, const std::string& secret,
                                        control::Hello hello) {
  hello.nonce = auth::makeNonce();
  Status st = co_await writeMessage(s, control::Type::kHello, hello.encode());
  if (!st.isOk()) co_return st;
  auto msg = co_await readMessage(s);
  if (!msg.isOk()) co_return msg.status();
  if (msg->type == control::Type::kError) {
    auto e = control::ErrorMsg::decode(msg->body);
    co_return e.isOk() ? e->toStatus() : e.status();
  }
  if (msg->type != control::Type::kChallenge)
    co_return protocolError(std::string("expected CHALLENGE, got ") + control::typeName(msg->type));
  auto ch = control::Challenge::decode(msg->body);
  if (!ch.isOk()) co_return ch.status();
  std::string t = transcript(hello, ch->nonce);
  if (!auth::equal(ch->proof, auth::prove(secret, kServerLabel, t))) {
    control::ErrorMsg e{Code::kUnauthenticated,
                        "your proof of the run secret does not match this peer's secret"};
    co_await writeMessage(s, control::Type::kError, e.encode());
    co_return unauthenticated("authentication failed: the other side (" +
                              endpointString(s.socket(), true) +
                              ") could not prove the run secret; the run secrets differ");
  }
  control::AuthMsg a{auth::prove(secret, kClientLabel, t)};
  st = co_await writeMessage(s, control::Type::kAuth, a.encode());
  if (!st.isOk()) co_return st;
  msg = co_await readMessage(s);
  if (!msg.isOk()) co_return msg.status();
  if (msg->type == control::Type::kError) {
    auto e = control::ErrorMsg::decode(msg->body);
    co_return e.isOk() ? e->toStatus() : e.status();
  }
  if (msg->type != control::Type::kWelcome)
    co_return protocolError(std::string("expected WELCOME, got ") + control::typeName(msg->type));
  co_return Status::ok();
}

asio::awaitable<Result<control::Hello>> serverHandshake(
    ControlLink& s, const std::string& secret,
    const std::function<Status(const control::Hello&)>& admit) {
  auto msg = co_await readMessage(s);
  if (!msg.isOk()) co_return msg.status();
  if (msg->type != control::Type::kHello)
    co_return protocolError(std::string("expected HELLO, got ") + control::typeName(msg->type));
  auto hello = control::Hello::decode(msg->body);
  if (!hello.isOk()) {
    control::ErrorMsg e{Code::kProtocol, hello.status().message()};
    co_await writeMessage(s, control::Type::kError, e.encode());
    co_return hello.status();
  }
  if (hello->protocol != control::kVersion) {
    control::ErrorMsg e{Code::kProtocol, "protocol version " + std::to_string(hello->protocol) +
                                             " not supported; this side speaks " +
                                             std::to_string(control::kVersion)};
    co_await writeMessage(s, control::Type::kError, e.encode());
    co_return e.toStatus();
  }
  control::Challenge ch;
  ch.nonce = auth::makeNonce();
  std::string t = transcript(*hello, ch.nonce);
  ch.proof = auth::prove(secret, kServerLabel, t);
  Status st = co_await writeMessage(s, control::Type::kChallenge, ch.encode());
  if (!st.isOk()) co_return st;
  msg = co_await readMessage(s);
  if (!msg.isOk()) co_return msg.status();
  if (msg->type == control::Type::kError) {
    auto e = control::ErrorMsg::decode(msg->body);
    co_return e.isOk() ? e->toStatus() : e.status();
  }
  if (msg->type != control::Type::kAuth)
    co_return protocolError(std::string("expected AUTH, got ") + control::typeName(msg->type));
  auto a = control::AuthMsg::decode(msg->body);
  if (!a.isOk()) co_return a.status();
  if (!auth::equal(a->proof, auth::prove(secret, kClientLabel, t))) {
    control::ErrorMsg e{Code::kUnauthenticated,
                        "authentication failed: wrong run secret (the coordinator or peer you "
                        "contacted uses a different secret)"};
    co_await writeMessage(s, control::Type::kError, e.encode());
    co_return unauthenticated("a client at " + endpointString(s.socket(), true) +
                              " failed to prove the run secret");
  }
  st = admit(*hello);
  if (!st.isOk()) {
    control::ErrorMsg e{st.code(), st.message()};
    co_await writeMessage(s, control::Type::kError, e.encode());
    co_return st;
  }
  st = co_await writeMessage(s, control::Type::kWelcome, {});
  if (!st.isOk()) co_return st;
  co_return *hello;
}

}  // namespace chorus::membership
