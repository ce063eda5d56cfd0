#include "src/membership/membership_client.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "src/core/log.h"
#include "src/membership/handshake.h"

namespace chorus::membership {

using asio::ip::tcp;

MembershipClient::MembershipClient(const CommConfig& cfg, uint64_t peerId, std::string hostId,
                                   Sink* sink,
                                   std::shared_ptr<const transport::tcp::TlsContext> tls)
    : cfg_(cfg),
      tls_(std::move(tls)),
      peerId_(peerId),
      hostId_(std::move(hostId)),
      sink_(sink),
      work_(asio::make_work_guard(io_)) {}

MembershipClient::~MembershipClient() {
  stop(0);
}

Status MembershipClient::start() {
  listener_ = std::make_unique<transport::tcp::TcpListener>(io_);
  std::string bindHost = "0.0.0.0";
  CHORUS_RETURN_IF_ERROR(listener_->listen(bindHost, 0, [this](tcp::socket s) {
    asio::co_spawn(io_, acceptLink(std::move(s)), asio::detached);
  }));
  asio::co_spawn(io_, runLink(), asio::detached);
  thread_ = std::thread([this] {
    setLogTag("peer " + std::to_string(peerId_ % 100000));
    io_.run();
  });
  return Status::ok();
}

void MembershipClient::stop(int flushMs) {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] { stopping_ = true; });
  Deadline d = Deadline::afterMs(flushMs);
  while (!queueEmpty_.load() && linkUp_.load() && !d.expired())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  asio::post(io_, [this] {
    if (link_) link_->close();
    if (listener_) listener_->close();
    work_.reset();
    io_.stop();
  });
  thread_.join();
  linkUp_ = false;
}

void MembershipClient::setClaims(const Claims& claims) {
  std::lock_guard<std::mutex> lk(claimsMu_);
  claims_ = claims;
}

control::Register MembershipClient::buildRegister(const tcp::socket& s) {
  control::Register r;
  r.peerId = peerId_;
  if (!cfg_.listenHost.empty()) {
    r.listenHost = cfg_.listenHost;
  } else {
    asio::error_code ec;
    auto ep = s.local_endpoint(ec);
    r.listenHost = ec ? "127.0.0.1" : ep.address().to_string();
  }
  r.listenPort = listenPort();
  r.hostId = hostId_;
  r.expectedPeers = static_cast<uint32_t>(cfg_.expectedPeers);
  r.coordinatorCount = static_cast<uint32_t>(cfg_.coordinators.size());
  std::lock_guard<std::mutex> lk(claimsMu_);
  r.knownView = claims_.knownView;
  r.hasReport = claims_.hasReport;
  r.decisionsReceived = claims_.decisionsReceived;
  r.reportForEpoch = claims_.reportForEpoch;
  r.lastReport = claims_.report;
  r.lastDecisions = claims_.decisions;
  return r;
}

void MembershipClient::send(control::Type type, std::vector<uint8_t> body) {
  queueEmpty_ = false;
  asio::post(io_, [this, buf = control::frame(type, body)]() mutable { enqueue(std::move(buf)); });
}

void MembershipClient::enqueue(std::vector<uint8_t> framed) {
  if (!link_ || !linkUp_) {
    queueEmpty_ = writeq_.empty();
    return;  // dropped: state-driven resends after re-registration cover it
  }
  writeq_.push_back(std::move(framed));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(io_, writeLoop(link_), asio::detached);
  }
}

// The one writer of the coordinator link while the queue has messages.
asio::awaitable<void> MembershipClient::writeLoop(std::shared_ptr<ControlLink> link) {
  while (!writeq_.empty() && link == link_) {
    std::vector<uint8_t> buf = std::move(writeq_.front());
    writeq_.pop_front();
    Status st = co_await link->write(buf.data(), buf.size());
    if (!st.isOk()) {
      writeq_.clear();
      link->close();  // the reader sees it and reconnects
      break;
    }
  }
  if (link != link_) co_return;  // the link was replaced: its writer state was reset
  writing_ = false;
  queueEmpty_ = writeq_.empty();
}

asio::awaitable<void> MembershipClient::runLink() {
  int backoffMs = 50;
  size_t idx = 0;
  bool reportedDown = false;
  while (!stopping_) {
    const HostPort& addr = cfg_.coordinators[idx % cfg_.coordinators.size()];
    auto sock = std::make_shared<ControlLink>(io_);
    Status st = co_await connectTo(sock->socket(), addr.host, addr.port, Deadline::afterMs(2000));
    control::Registered reg;
    if (st.isOk()) {
      Watchdog dog(sock->socket(), Deadline::afterMs(5000));
      control::Hello hello;
      hello.role = control::Role::kPeer;
      hello.group = cfg_.group;
      hello.fromPeer = peerId_;
      hello.tls = static_cast<uint8_t>(cfg_.tls);
      st = co_await clientHandshake(*sock, cfg_.secret, hello);
      if (st.isOk() && tls_) {
        st = co_await sock->startTls(*tls_, /*server=*/false);
        if (!st.isOk()) st = st.withContext("TLS with the coordinator");
      }
      if (st.isOk())
        st = co_await writeMessage(*sock, control::Type::kRegister,
                                   buildRegister(sock->socket()).encode());
      if (st.isOk()) {
        auto reply = co_await readMessage(*sock);
        if (!reply.isOk()) {
          st = reply.status();
        } else if (reply->type == control::Type::kRegistered) {
          auto r = control::Registered::decode(reply->body);
          if (r.isOk())
            reg = *r;
          else
            st = r.status();
        } else if (reply->type == control::Type::kRemoved) {
          auto r = control::Removed::decode(reply->body);
          ControlEvent ev;
          ev.kind = ControlEvent::Kind::kRemoved;
          ev.text = r.isOk() ? r->reason : "removed by the coordinator";
          post(std::move(ev));
          co_return;
        } else if (reply->type == control::Type::kError) {
          auto e = control::ErrorMsg::decode(reply->body);
          st = e.isOk() ? e->toStatus() : e.status();
        } else {
          st = protocolError(std::string("expected REGISTERED, got ") +
                             control::typeName(reply->type));
        }
      }
      if (dog.fired() && !st.isOk())
        st = unavailable("coordinator at " + addr.toString() + " did not answer in time");
    }
    if (!st.isOk()) {
      if (st.code() == Code::kUnauthenticated || st.code() == Code::kProtocol ||
          st.code() == Code::kInvalidArgument) {
        ControlEvent ev;
        ev.kind = ControlEvent::Kind::kFatal;
        ev.status = st.withContext("coordinator " + addr.toString());
        post(std::move(ev));
        co_return;
      }
      if (!reportedDown) {
        ControlEvent ev;
        ev.kind = ControlEvent::Kind::kLinkDown;
        ev.status = st.withContext("coordinator " + addr.toString());
        post(std::move(ev));
        reportedDown = true;
      }
      ++idx;
      asio::steady_timer t(io_, std::chrono::milliseconds(backoffMs));
      asio::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoffMs = std::min(backoffMs * 2, 500);
      continue;
    }
    // Link is up.
    LOG_DEBUG("coordinator link over " << (sock->encrypted() ? "tls" : "tcp") << " to "
                                       << addr.toString());
    backoffMs = 50;
    reportedDown = false;
    link_ = sock;
    ++linkGen_;
    heartbeatMs_ = reg.heartbeatMs;
    failureTimeoutMs_ = reg.failureTimeoutMs;
    heartbeatsSent_.clear();
    linkUp_ = true;
    {
      ControlEvent ev;
      ev.kind = ControlEvent::Kind::kLinkUp;
      ev.registered = reg;
      post(std::move(ev));
    }
    asio::co_spawn(io_, heartbeats(sock, linkGen_), asio::detached);
    Status why;
    for (;;) {
      auto msg = co_await readMessage(*sock);
      if (!msg.isOk()) {
        why = msg.status();
        break;
      }
      dispatch(*msg);
    }
    linkUp_ = false;
    link_.reset();
    writeq_.clear();
    writing_ = false;
    queueEmpty_ = true;
    sock->close();
    if (stopping_) break;
    ControlEvent ev;
    ev.kind = ControlEvent::Kind::kLinkDown;
    ev.status = why.withContext("lost the coordinator link " + addr.toString());
    post(std::move(ev));
    reportedDown = true;
  }
}

asio::awaitable<void> MembershipClient::heartbeats(std::shared_ptr<ControlLink> sock,
                                                   uint64_t gen) {
  asio::steady_timer t(io_);
  while (!stopping_ && gen == linkGen_ && link_ == sock) {
    control::Heartbeat hb;
    {
      std::lock_guard<std::mutex> lk(claimsMu_);
      hb.epoch = claims_.knownView.epoch;
    }
    heartbeatGenSent_ = pendingGen_.load();
    heartbeatsSent_.push_back(Clock::now());
    enqueue(control::frame(control::Type::kHeartbeat, hb.encode()));
    t.expires_after(std::chrono::milliseconds(heartbeatMs_));
    asio::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void MembershipClient::dispatch(const control::Message& m) {
  ControlEvent ev;
  switch (m.type) {
    case control::Type::kHeartbeatAck: {
      auto a = control::HeartbeatAck::decode(m.body);
      if (!a.isOk()) return;
      uint64_t known;
      {
        std::lock_guard<std::mutex> lk(claimsMu_);
        known = claims_.knownView.epoch;
      }
      if (!heartbeatsSent_.empty()) {
        TimePoint until =
            heartbeatsSent_.front() + std::chrono::milliseconds(failureTimeoutMs_ / 2);
        heartbeatsSent_.pop_front();
        // A lease only from a coordinator running the view we are in: one
        // that is recovering (epoch 0) or has moved on may be answering a
        // peer it no longer counts, or does not know yet, as a member.
        if (known != 0 && a->epoch == known &&
            until.time_since_epoch().count() > leaseUntil_.load(std::memory_order_relaxed))
          leaseUntil_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
      }
      // An acknowledgement of a heartbeat sent before the last reset, or
      // describing an older view, would resurrect consumed counts.
      if (a->epoch < known || heartbeatGenSent_ != pendingGen_.load()) return;
      pendingJoins_ = a->pendingJoins;
      pendingLeaves_ = a->pendingLeaves;
      return;
    }
    case control::Type::kViewProposal: {
      auto p = control::ViewProposal::decode(m.body);
      if (!p.isOk()) {
        LOG_WARN("dropping bad VIEW_PROPOSAL: " << p.status().toString());
        return;
      }
      ev.kind = ControlEvent::Kind::kProposal;
      ev.proposal = std::move(*p);
      break;
    }
    case control::Type::kCommit: {
      auto c = control::Commit::decode(m.body);
      if (!c.isOk()) {
        LOG_WARN("dropping bad COMMIT: " << c.status().toString());
        return;
      }
      ev.kind = ControlEvent::Kind::kCommit;
      ev.commit = std::move(*c);
      break;
    }
    case control::Type::kUpdateNoChange: {
      auto e = control::EpochOnly::decode(m.body);
      if (!e.isOk()) return;
      ev.kind = ControlEvent::Kind::kUpdateNoChange;
      ev.epoch = e->epoch;
      break;
    }
    case control::Type::kRemoved: {
      auto r = control::Removed::decode(m.body);
      ev.kind = ControlEvent::Kind::kRemoved;
      ev.text = r.isOk() ? r->reason : "removed by the coordinator";
      break;
    }
    case control::Type::kError: {
      auto e = control::ErrorMsg::decode(m.body);
      LOG_WARN("coordinator reported: " << (e.isOk() ? e->toStatus().toString() : "?"));
      return;
    }
    default:
      LOG_WARN("unexpected control message " << control::typeName(m.type));
      return;
  }
  post(std::move(ev));
}

asio::awaitable<void> MembershipClient::acceptLink(tcp::socket s) {
  ControlLink link(std::move(s));
  Watchdog dog(link.socket(), Deadline::afterMs(10000));
  auto hello = co_await serverHandshake(link, cfg_.secret, [this](const control::Hello& h) {
    if (h.role != control::Role::kDataLink && h.role != control::Role::kRedial)
      return protocolError("this port accepts data links only");
    if (h.group != cfg_.group)
      return failedPrecondition("peer belongs to group '" + h.group + "', this peer to '" +
                                cfg_.group + "'");
    if (h.toPeer != peerId_) return failedPrecondition("data link addressed to another peer");
    if (h.tls != cfg_.tls)
      return failedPrecondition(
          "TLS mismatch: the dialing peer uses CHORUS_TLS=" +
          transport::tcp::tlsModeName(static_cast<transport::tcp::TlsMode>(h.tls)) +
          ", this peer " +
          transport::tcp::tlsModeName(static_cast<transport::tcp::TlsMode>(cfg_.tls)) +
          " (every peer of a job must use the same TLS mode)");
    return Status::ok();
  });
  if (!hello.isOk()) {
    LOG_WARN("refused a data link: " << hello.status().toString());
    co_return;
  }
  if (dog.fired() || !link.socket().is_open()) co_return;
  transport::tcp::SslPtr ssl;
  if (tls_) {
    auto s = co_await tls_->handshake(link.socket(), /*server=*/true);
    if (!s.isOk()) {
      LOG_WARN("refused a data link from peer " << hello->fromPeer << ": "
                                                << s.status().toString());
      co_return;
    }
    ssl = std::move(s).value();
    if (dog.fired() || !link.socket().is_open()) co_return;
  }
  ControlEvent ev;
  ev.kind = hello->role == control::Role::kRedial ? ControlEvent::Kind::kRedialRequest
                                                  : ControlEvent::Kind::kDataLink;
  ev.peerId = hello->fromPeer;
  ev.stream = hello->stream;
  ev.streamCount = hello->streamCount;
  ev.generation = hello->generation;
  ev.epoch = hello->epoch;
  if (ev.kind == ControlEvent::Kind::kRedialRequest) {  // nothing flows on it
    post(std::move(ev));
    co_return;
  }
  ev.ssl = std::move(ssl);
  ev.socket = std::make_unique<tcp::socket>(std::move(link.socket()));
  post(std::move(ev));
}

void MembershipClient::dial(const Member& m, int streams, uint64_t epoch, Deadline deadline) {
  asio::post(io_, [this, m, streams, epoch, deadline] {
    for (int i = 0; i < streams; ++i)
      asio::co_spawn(io_, dialLink(m, i, streams, epoch, 0, deadline), asio::detached);
  });
}

void MembershipClient::dialStream(const Member& m, int stream, int streams, uint64_t epoch,
                                  uint32_t generation, Deadline deadline) {
  asio::post(io_, [this, m, stream, streams, epoch, generation, deadline] {
    asio::co_spawn(io_, dialLink(m, stream, streams, epoch, generation, deadline), asio::detached);
  });
}

void MembershipClient::requestRedial(const Member& m, int stream, int streams, uint64_t epoch,
                                     uint32_t generation, Deadline deadline) {
  asio::post(io_, [this, m, stream, streams, epoch, generation, deadline] {
    asio::co_spawn(
        io_, dialLink(m, stream, streams, epoch, generation, deadline, control::Role::kRedial),
        asio::detached);
  });
}

asio::awaitable<void> MembershipClient::dialLink(Member m, int stream, int streams, uint64_t epoch,
                                                 uint32_t generation, Deadline deadline,
                                                 control::Role role) {
  Status last;
  while (!stopping_ && !deadline.expired()) {
    ControlLink link(io_);
    Deadline attempt = Deadline::earliest(deadline, Deadline::afterMs(3000));
    Status st = co_await connectTo(link.socket(), m.host, m.port, attempt);
    if (st.isOk()) {
      Watchdog dog(link.socket(), attempt);
      control::Hello hello;
      hello.role = role;
      hello.group = cfg_.group;
      hello.fromPeer = peerId_;
      hello.toPeer = m.peerId;
      hello.stream = static_cast<uint16_t>(stream);
      hello.streamCount = static_cast<uint16_t>(streams);
      hello.epoch = epoch;
      hello.tls = static_cast<uint8_t>(cfg_.tls);
      hello.generation = generation;
      st = co_await clientHandshake(link, cfg_.secret, hello);
      transport::tcp::SslPtr ssl;
      if (st.isOk() && !dog.fired() && tls_) {
        auto s = co_await tls_->handshake(link.socket(), /*server=*/false);
        if (s.isOk())
          ssl = std::move(s).value();
        else
          st = s.status().withContext("data link to peer " + std::to_string(m.peerId));
      }
      if (st.isOk() && !dog.fired() && role == control::Role::kRedial) co_return;  // asked
      if (st.isOk() && !dog.fired()) {
        ControlEvent ev;
        ev.kind = ControlEvent::Kind::kDataLink;
        ev.ssl = std::move(ssl);
        ev.peerId = m.peerId;
        ev.stream = stream;
        ev.streamCount = streams;
        ev.generation = generation;
        ev.epoch = epoch;
        ev.socket = std::make_unique<tcp::socket>(std::move(link.socket()));
        post(std::move(ev));
        co_return;
      }
    }
    last = st;
    if (st.code() == Code::kUnauthenticated || st.code() == Code::kProtocol) break;
    asio::steady_timer t(io_, std::chrono::milliseconds(50));
    asio::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (stopping_) co_return;
  if (role == control::Role::kRedial) {  // the relink bound covers it
    LOG_DEBUG("could not ask peer " << m.peerId << " to dial stream " << stream
                                    << " again: " << last.toString());
    co_return;
  }
  ControlEvent ev;
  ev.kind = ControlEvent::Kind::kDialFailed;
  ev.peerId = m.peerId;
  ev.status = last.isOk() ? deadlineExceeded("dialing peer timed out") : last;
  post(std::move(ev));
}

}  // namespace chorus::membership
