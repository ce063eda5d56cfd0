#include "src/membership/coordinator.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <cstdlib>
#include <deque>

#include "src/core/log.h"
#include "src/membership/handshake.h"

namespace chorus::membership {

using asio::ip::tcp;

// ---------------------------------------------------------------------------
// Sessions: one per peer connection.
// ---------------------------------------------------------------------------

struct Coordinator::Session : std::enable_shared_from_this<Session> {
  explicit Session(asio::io_context& io) : link(io) {}
  ControlLink link;
  uint64_t id = 0;
  std::string group;
  uint64_t peerId = 0;
  bool registered = false;
  Member info;
  TimePoint lastSeen = Clock::now();
  std::deque<std::vector<uint8_t>> writeq;
  bool writing = false;
  bool closeAfterWrite = false;
  bool closed = false;

  void send(control::Type t, const std::vector<uint8_t>& body) {
    if (closed) return;
    writeq.push_back(control::frame(t, body));
    if (!writing) {
      writing = true;
      asio::co_spawn(link.socket().get_executor(), writeLoop(shared_from_this()), asio::detached);
    }
  }
  // Send, then close once the queue is flushed.
  void sendAndClose(control::Type t, const std::vector<uint8_t>& body) {
    send(t, body);
    closeAfterWrite = true;
    if (!writing) close();
  }
  // The one writer of this session's link, until the queue is empty.
  static asio::awaitable<void> writeLoop(std::shared_ptr<Session> self) {
    while (!self->writeq.empty() && !self->closed) {
      Status st =
          co_await self->link.write(self->writeq.front().data(), self->writeq.front().size());
      self->writeq.pop_front();
      if (!st.isOk()) {
        self->close();
        break;
      }
    }
    self->writing = false;
    if (self->closeAfterWrite) self->close();
  }
  void close() {
    if (closed) return;
    closed = true;
    link.close();
  }
};

struct Coordinator::Group {
  std::string name;
  View committed;
  struct Proposal {
    View view;
    uint64_t lastCommitted = 0;
    ViewReason reason = ViewReason::kInitial;
    bool endsUpdate = false;
    std::map<uint64_t, Report> ready;
    TimePoint deadline;
  };
  std::optional<Proposal> proposal;
  std::map<uint64_t, std::shared_ptr<Session>> peers;  // registered, by peer id
  std::vector<uint64_t> pending;                       // waiting to join, in arrival order
  std::set<uint64_t> announcedLeaves;
  std::set<uint64_t> updateArrived, updateLeavers;
  // Reports that a member cannot be reached, by accused peer: decided at
  // `at` unless resolved first (peersToEvict), with who reported what.
  struct Suspicion {
    TimePoint at;
    std::map<uint64_t, std::string> by;  // accuser -> its reason
  };
  std::map<uint64_t, Suspicion> suspects;
  uint32_t expected = 1;
  bool standbyKnown = false;
  bool recovering = false;
  TimePoint recoveryDeadline;
  std::map<uint64_t, control::Register> claims;
  uint64_t maxEpoch = 0;
  // Every member left or was removed (until a new view commits): a peer
  // that claims membership now was removed while it was away, not a member
  // of a job re-registering after this coordinator restarted.
  bool ended = false;
  // Fault injection (CHORUS_FAULT_REPROPOSE_MS): when to propose the
  // committed view again, with every member alive (that long after each
  // commit).
  std::optional<TimePoint> faultReproposeAt;
};

// ---------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------

Coordinator::Coordinator(const CoordinatorConfig& cfg)
    : cfg_(cfg), acceptor_(io_), sweepTimer_(io_) {
  if (const char* v = std::getenv("CHORUS_FAULT_REPROPOSE_MS")) faultReproposeMs_ = std::atoi(v);
}

Result<std::unique_ptr<Coordinator>> Coordinator::start(const CoordinatorConfig& cfg) {
  std::unique_ptr<Coordinator> c(new Coordinator(cfg));
  if (cfg.tls != 0) {
    CHORUS_ASSIGN_OR_RETURN(c->tls_,
                            transport::tcp::TlsContext::create(transport::tcp::tlsSettingsOf(cfg)));
  }
  CHORUS_RETURN_IF_ERROR(c->listen());
  // Peers re-register within their reconnect back-off (at most 500 ms).
  c->formViewsAfter_ =
      Clock::now() + std::chrono::milliseconds(std::min(cfg.recoveryGraceMs, 1000));
  asio::co_spawn(c->io_, c->acceptLoop(), asio::detached);
  c->armSweep();
  Coordinator* raw = c.get();
  c->thread_ = std::thread([raw] {
    setLogTag("coordinator");
    raw->io_.run();
  });
  LOG_INFO("coordinator listening on "
           << c->address_.toString()
           << (c->tls_ ? " (TLS " + transport::tcp::tlsModeName(c->tls_->mode()) + ")"
                       : std::string()));
  return c;
}

Status Coordinator::listen() {
  asio::error_code ec;
  auto addr = asio::ip::make_address(cfg_.bind.host, ec);
  if (ec) {
    // A host name: resolve it.
    tcp::resolver res(io_);
    auto r = res.resolve(cfg_.bind.host, std::to_string(cfg_.bind.port), ec);
    if (ec || r.empty())
      return invalidArgument("cannot resolve coordinator bind address '" + cfg_.bind.host + "'");
    addr = r.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, cfg_.bind.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return unavailable("coordinator cannot listen on " + cfg_.bind.toString() + ": " +
                       ec.message());
  address_.host = cfg_.bind.host == "0.0.0.0" ? "127.0.0.1" : cfg_.bind.host;
  address_.port = acceptor_.local_endpoint(ec).port();
  return Status::ok();
}

Coordinator::~Coordinator() {
  stop();
}

void Coordinator::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::post(io_, [this] {
    asio::error_code ec;
    acceptor_.close(ec);
    sweepTimer_.cancel();
    for (auto& s : sessions_) s->close();
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
  sessions_.clear();
  groups_.clear();
}

asio::awaitable<void> Coordinator::acceptLoop() {
  for (;;) {
    auto s = std::make_shared<Session>(io_);
    asio::error_code ec;
    co_await acceptor_.async_accept(s->link.socket(),
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      LOG_WARN("accept failed: " << ec.message());
      continue;
    }
    s->link.socket().set_option(tcp::no_delay(true), ec);
    s->id = nextSessionId_++;
    sessions_.insert(s);
    asio::co_spawn(io_, runSession(s), asio::detached);
  }
}

asio::awaitable<void> Coordinator::runSession(std::shared_ptr<Session> s) {
  control::Register reg;
  {
    Watchdog dog(s->link.socket(), Deadline::afterMs(10000));
    int tlsMode = tls_ ? static_cast<int>(tls_->mode()) : 0;
    auto hello = co_await serverHandshake(s->link, cfg_.secret, [tlsMode](const control::Hello& h) {
      if (h.role != control::Role::kPeer)
        return protocolError("this is a coordinator; data links go to peers");
      if (h.group.empty()) return invalidArgument("empty group name");
      if (h.tls != tlsMode)
        return invalidArgument(
            "TLS mismatch: this peer uses CHORUS_TLS=" +
            transport::tcp::tlsModeName(static_cast<transport::tcp::TlsMode>(h.tls)) +
            ", the coordinator " +
            transport::tcp::tlsModeName(static_cast<transport::tcp::TlsMode>(tlsMode)) +
            " (peers and coordinators of a job must use the same TLS mode)");
      return Status::ok();
    });
    if (hello.isOk() && tls_) {
      Status st = co_await s->link.startTls(*tls_, /*server=*/true);
      if (!st.isOk()) hello = st.withContext("TLS with peer " + std::to_string(hello->fromPeer));
    }
    if (!hello.isOk()) {
      LOG_WARN("refused a peer: " << hello.status().toString());
      s->close();
      sessions_.erase(s);
      co_return;
    }
    auto msg = co_await readMessage(s->link);
    Status st = msg.status();
    if (msg.isOk()) {
      if (msg->type != control::Type::kRegister) {
        st = protocolError(std::string("expected REGISTER, got ") + control::typeName(msg->type));
      } else {
        auto r = control::Register::decode(msg->body);
        if (r.isOk())
          reg = *r;
        else
          st = r.status();
      }
    }
    if (!st.isOk()) {
      LOG_WARN("bad registration: " << st.toString());
      control::ErrorMsg e{st.code(), st.message()};
      s->sendAndClose(control::Type::kError, e.encode());
      sessions_.erase(s);
      co_return;
    }
    s->group = hello->group;
  }
  s->peerId = reg.peerId;
  s->info = Member{reg.peerId, reg.listenHost, reg.listenPort, reg.hostId};
  s->registered = true;
  s->lastSeen = Clock::now();
  onRegister(s, reg);
  while (!s->closed) {
    auto msg = co_await readMessage(s->link);
    if (!msg.isOk()) break;
    s->lastSeen = Clock::now();
    onMessage(s, *msg);
  }
  s->close();
  onSessionClosed(s);
}

void Coordinator::armSweep() {
  sweepTimer_.expires_after(std::chrono::milliseconds(std::max(10, cfg_.heartbeatIntervalMs / 2)));
  sweepTimer_.async_wait([this](const asio::error_code& ec) {
    if (ec || stopped_) return;
    sweep();
    armSweep();
  });
}

Coordinator::Group& Coordinator::group(const std::string& name) {
  auto& g = groups_[name];
  if (!g) {
    g = std::make_unique<Group>();
    g->name = name;
  }
  return *g;
}

void Coordinator::sendTo(Group& g, uint64_t peerId, control::Type t,
                         const std::vector<uint8_t>& body) {
  auto it = g.peers.find(peerId);
  if (it != g.peers.end()) it->second->send(t, body);
}

void Coordinator::removePeer(Group& g, uint64_t peerId, const std::string& why) {
  auto it = g.peers.find(peerId);
  if (it == g.peers.end()) return;
  control::Removed r{why};
  it->second->sendAndClose(control::Type::kRemoved, r.encode());
  g.peers.erase(it);
}

// ---------------------------------------------------------------------------
// Registration and messages
// ---------------------------------------------------------------------------

void Coordinator::onRegister(const std::shared_ptr<Session>& s, const control::Register& reg) {
  Group& g = group(s->group);
  if (reg.coordinatorCount > 1) g.standbyKnown = true;
  auto old = g.peers.find(reg.peerId);
  if (old != g.peers.end() && old->second != s) {
    old->second->close();  // replaced by this newer link
  }
  g.peers[reg.peerId] = s;

  auto reply = [&](control::RegisterStatus st) {
    control::Registered r{st, static_cast<uint32_t>(cfg_.heartbeatIntervalMs), g.committed.epoch,
                          static_cast<uint32_t>(cfg_.failureTimeoutMs)};
    s->send(control::Type::kRegistered, r.encode());
  };
  bool claimsMembership = reg.knownView.epoch > 0 || reg.hasReport;

  if (claimsMembership && g.ended && !g.recovering) {
    LOG_WARN("group '" << g.name << "': peer " << reg.peerId << " claims membership of epoch "
                       << reg.knownView.epoch << " but the group ended at epoch " << g.maxEpoch
                       << "; removing it");
    removePeer(g, reg.peerId,
               "not a member: group '" + g.name + "' ended at epoch " + std::to_string(g.maxEpoch) +
                   " (its members left or were removed) while this peer was away");
    return;
  }

  if (claimsMembership && (g.recovering || (g.committed.epoch == 0 && !g.proposal))) {
    // We (re)started and a running job is re-registering: rebuild from claims.
    if (!g.recovering) {
      g.recovering = true;
      g.recoveryDeadline = Clock::now() + std::chrono::milliseconds(cfg_.recoveryGraceMs);
      LOG_INFO("group '" << g.name << "': recovering the running view from re-registrations");
    }
    g.claims[reg.peerId] = reg;
    reply(control::RegisterStatus::kRecovering);
    tryFinishRecovery(g, false);
    return;
  }
  if (claimsMembership) {
    bool member =
        g.committed.contains(reg.peerId) || (g.proposal && g.proposal->view.contains(reg.peerId));
    if (!member) {
      removePeer(g, reg.peerId,
                 "not a member of the current view (epoch " + std::to_string(g.committed.epoch) +
                     "): it was declared dead or it left");
      return;
    }
    reply(control::RegisterStatus::kMember);
    if (g.proposal && g.proposal->view.contains(reg.peerId)) {
      control::ViewProposal p{g.proposal->view, g.proposal->lastCommitted, g.proposal->reason,
                              g.proposal->endsUpdate};
      s->send(control::Type::kViewProposal, p.encode());
    }
    return;
  }
  // A new peer.
  if (std::find(g.pending.begin(), g.pending.end(), reg.peerId) == g.pending.end())
    g.pending.push_back(reg.peerId);
  if (g.committed.epoch == 0 && !g.proposal && !g.recovering)
    g.expected = std::max(g.expected, reg.expectedPeers);
  reply(control::RegisterStatus::kPending);
  maybeFormInitialView(g);
}

void Coordinator::onMessage(const std::shared_ptr<Session>& s, const control::Message& m) {
  Group& g = group(s->group);
  auto current = g.peers.find(s->peerId);
  if (current == g.peers.end() || current->second != s) return;  // stale session
  switch (m.type) {
    case control::Type::kHeartbeat: {
      control::HeartbeatAck a;
      a.epoch = g.committed.epoch;
      a.pendingJoins = g.committed.epoch > 0 ? static_cast<uint32_t>(g.pending.size()) : 0;
      a.pendingLeaves = static_cast<uint32_t>(g.announcedLeaves.size());
      s->send(control::Type::kHeartbeatAck, a.encode());
      break;
    }
    case control::Type::kReady: {
      auto r = control::Ready::decode(m.body);
      if (!r.isOk()) {
        LOG_WARN("bad READY from " << s->peerId << ": " << r.status().toString());
        break;
      }
      if (!g.proposal || r->epoch != g.proposal->view.epoch ||
          !g.proposal->view.contains(s->peerId))
        break;
      g.proposal->ready[s->peerId] = r->report;
      if (g.proposal->ready.size() == g.proposal->view.members.size()) commit(g);
      break;
    }
    case control::Type::kUpdateRequest: {
      auto u = control::UpdateRequest::decode(m.body);
      if (!u.isOk() || !g.committed.contains(s->peerId)) {
        control::ErrorMsg e{Code::kFailedPrecondition, "update request from a non-member"};
        s->send(control::Type::kError, e.encode());
        break;
      }
      g.updateArrived.insert(s->peerId);
      if (u->leave) g.updateLeavers.insert(s->peerId);
      checkUpdateBarrier(g);
      break;
    }
    case control::Type::kLeaveNow:
      LOG_INFO("peer " << s->peerId << " leaves group '" << g.name << "'");
      membersLost(g, {s->peerId}, ViewReason::kLeave, "left the group");
      g.peers.erase(s->peerId);
      break;
    case control::Type::kAnnounceLeave:
      if (g.committed.contains(s->peerId)) g.announcedLeaves.insert(s->peerId);
      break;
    case control::Type::kSuspect: {
      auto sp = control::Suspect::decode(m.body);
      if (!sp.isOk()) break;
      bool member =
          g.committed.contains(sp->peerId) || (g.proposal && g.proposal->view.contains(sp->peerId));
      if (!member || sp->peerId == s->peerId) break;
      // Give a graceful leave or a crash a moment to be seen on the
      // suspect's own link before treating this as a partition.
      auto [it, fresh] = g.suspects.try_emplace(sp->peerId);
      if (fresh) it->second.at = Clock::now() + std::chrono::milliseconds(250);
      if (it->second.by.emplace(s->peerId, sp->reason).second)
        LOG_INFO("peer " << s->peerId << " suspects peer " << sp->peerId << ": " << sp->reason);
      break;
    }
    default:
      LOG_WARN("unexpected " << control::typeName(m.type) << " from peer " << s->peerId);
      break;
  }
}

void Coordinator::onSessionClosed(const std::shared_ptr<Session>& s) {
  sessions_.erase(s);
  if (!s->registered) return;
  auto git = groups_.find(s->group);
  if (git == groups_.end()) return;
  Group& g = *git->second;
  auto it = g.peers.find(s->peerId);
  if (it == g.peers.end() || it->second != s) return;
  g.peers.erase(it);
  if (g.recovering) {
    g.claims.erase(s->peerId);
    return;
  }
  membersLost(g, {s->peerId}, ViewReason::kFailure, "its link to the coordinator closed");
}

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------

void Coordinator::maybeFormInitialView(Group& g) {
  if (g.committed.epoch != 0 || g.proposal || g.recovering) return;
  if (Clock::now() < formViewsAfter_) return;  // the sweep retries
  if (g.pending.size() < g.expected) return;
  View v;
  for (uint64_t id : g.pending) {
    auto it = g.peers.find(id);
    if (it != g.peers.end()) v.members.push_back(it->second->info);
  }
  g.pending.clear();
  if (v.members.empty()) return;
  propose(g, v, ViewReason::kInitial, false);
}

void Coordinator::propose(Group& g, View view, ViewReason reason, bool endsUpdate) {
  view.epoch = ++g.maxEpoch;
  Group::Proposal p;
  p.view = view;
  p.lastCommitted = g.committed.epoch;
  p.reason = reason;
  p.endsUpdate = endsUpdate;
  p.deadline = Clock::now() + std::chrono::milliseconds(cfg_.viewSetupTimeoutMs);
  g.proposal = p;
  LOG_INFO("group '" << g.name << "': proposing epoch " << view.epoch << " ("
                     << viewReasonName(reason) << ", " << view.size() << " members)");
  control::ViewProposal msg{view, g.committed.epoch, reason, endsUpdate};
  auto body = msg.encode();
  for (const Member& m : view.members) sendTo(g, m.peerId, control::Type::kViewProposal, body);
}

void Coordinator::commit(Group& g) {
  std::map<uint64_t, Report> reports(g.proposal->ready.begin(), g.proposal->ready.end());
  control::Commit c;
  c.epoch = g.proposal->view.epoch;
  c.reason = g.proposal->reason;
  c.endsUpdate = g.proposal->endsUpdate;
  c.decisions = decide(reports, g.committed, g.proposal->reason);
  g.committed = g.proposal->view;
  g.ended = false;
  g.proposal.reset();
  if (faultReproposeMs_ > 0)
    g.faultReproposeAt = Clock::now() + std::chrono::milliseconds(faultReproposeMs_);
  for (auto it = g.announcedLeaves.begin(); it != g.announcedLeaves.end();)
    it = g.committed.contains(*it) ? std::next(it) : g.announcedLeaves.erase(it);
  auto body = c.encode();
  for (const Member& m : g.committed.members) sendTo(g, m.peerId, control::Type::kCommit, body);
  size_t failed = 0;
  for (const OpDecision& d : c.decisions.ops)
    if (d.decision == Decision::kFail) ++failed;
  LOG_INFO("group '" << g.name << "': committed epoch " << c.epoch << " ("
                     << viewReasonName(c.reason) << ", " << g.committed.size() << " members, "
                     << c.decisions.ops.size() << " interrupted ops, " << failed << " failed)");
  checkUpdateBarrier(g);
}

bool Coordinator::quorumOk(const Group& g, const View& next,
                           const std::set<uint64_t>& gracefulLeavers) const {
  int policy = cfg_.quorumPolicy;
  if (policy == 0) policy = g.standbyKnown ? 1 : 2;
  if (policy == 2 || g.committed.epoch == 0) return true;
  std::vector<uint64_t> base;
  for (const Member& m : g.committed.members)
    if (!gracefulLeavers.count(m.peerId)) base.push_back(m.peerId);
  if (base.empty()) return true;
  size_t survivors = 0;
  for (uint64_t id : base)
    if (next.contains(id)) ++survivors;
  if (survivors * 2 > base.size()) return true;
  // An even split goes to the half holding the lowest-ranked member.
  return survivors * 2 == base.size() && next.contains(base.front());
}

void Coordinator::membersLost(Group& g, const std::set<uint64_t>& lost, ViewReason reason,
                              const std::string& why) {
  bool committedLost = false, proposalLost = false;
  for (uint64_t p : lost) {
    g.pending.erase(std::remove(g.pending.begin(), g.pending.end(), p), g.pending.end());
    g.updateArrived.erase(p);
    g.updateLeavers.erase(p);
    g.suspects.erase(p);
    g.announcedLeaves.erase(p);
    if (g.committed.contains(p)) committedLost = true;
    if (g.proposal && g.proposal->view.contains(p)) proposalLost = true;
  }
  if (!committedLost && !proposalLost) return;
  for (uint64_t p : lost)
    LOG_INFO("group '" << g.name << "': peer " << p << " lost (" << why << ")");
  const View& base = g.proposal ? g.proposal->view : g.committed;
  View next;
  for (const Member& m : base.members)
    if (!lost.count(m.peerId)) next.members.push_back(m);

  if (g.committed.epoch == 0) {
    // Still forming the first view: survivors wait for enough peers again.
    std::vector<uint64_t> again;
    for (const Member& m : next.members) again.push_back(m.peerId);
    again.insert(again.end(), g.pending.begin(), g.pending.end());
    g.pending = again;
    g.proposal.reset();
    maybeFormInitialView(g);
    return;
  }
  ViewReason r = reason;
  bool endsUpdate = g.proposal ? g.proposal->endsUpdate : false;
  if (g.proposal && g.proposal->reason == ViewReason::kFailure) r = ViewReason::kFailure;
  if (!committedLost && g.proposal) r = g.proposal->reason;  // only joiners were lost
  if (next.members.empty()) {
    LOG_INFO("group '" << g.name << "': no members left");
    g.ended = true;
    g.committed = View();
    g.proposal.reset();
    g.updateArrived.clear();
    g.updateLeavers.clear();
    return;
  }
  std::set<uint64_t> graceful;
  if (reason == ViewReason::kLeave) graceful = lost;
  if (!quorumOk(g, next, graceful)) {
    LOG_ERROR("group '" << g.name << "': losing " << lost.size() << " of " << g.committed.size()
                        << " members leaves no majority; not publishing a new view (a standby "
                           "coordinator may hold the majority)");
    return;
  }
  propose(g, next, r, endsUpdate);
}

void Coordinator::checkUpdateBarrier(Group& g) {
  if (g.proposal || g.recovering || g.committed.epoch == 0 || g.updateArrived.empty()) return;
  for (const Member& m : g.committed.members)
    if (!g.updateArrived.count(m.peerId)) return;
  std::vector<uint64_t> joiners;
  for (uint64_t id : g.pending)
    if (g.peers.count(id)) joiners.push_back(id);
  std::set<uint64_t> leavers = g.updateLeavers;
  g.updateArrived.clear();
  g.updateLeavers.clear();
  if (joiners.empty() && leavers.empty()) {
    control::EpochOnly e{g.committed.epoch};
    auto body = e.encode();
    for (const Member& m : g.committed.members)
      sendTo(g, m.peerId, control::Type::kUpdateNoChange, body);
    return;
  }
  View next;
  for (const Member& m : g.committed.members)
    if (!leavers.count(m.peerId)) next.members.push_back(m);
  for (uint64_t id : joiners) next.members.push_back(g.peers[id]->info);
  g.pending.clear();
  for (uint64_t id : leavers) {
    g.announcedLeaves.erase(id);
    removePeer(g, id, "left the group");
  }
  if (next.members.empty()) {
    g.ended = true;
    g.committed = View();
    return;
  }
  propose(g, next, ViewReason::kUpdate, true);
}

void Coordinator::tryFinishRecovery(Group& g, bool deadlinePassed) {
  if (!g.recovering) return;
  const control::Register* best = nullptr;
  for (auto& [id, c] : g.claims)
    if (!best || c.knownView.epoch > best->knownView.epoch) best = &c;
  if (!best) {
    if (deadlinePassed) {
      g.recovering = false;
      maybeFormInitialView(g);
    }
    return;
  }
  View v = best->knownView;
  std::set<uint64_t> present;
  for (const Member& m : v.members)
    if (g.claims.count(m.peerId) && g.peers.count(m.peerId)) present.insert(m.peerId);
  if (present.size() < v.members.size() && !deadlinePassed) return;

  int policy = cfg_.quorumPolicy;
  if (policy == 0) policy = g.standbyKnown ? 1 : 2;
  if (policy == 1) {
    bool ok = present.size() * 2 > v.members.size() ||
              (present.size() * 2 == v.members.size() && present.count(v.members[0].peerId));
    if (!ok) {
      LOG_WARN("group '" << g.name << "': only " << present.size() << " of " << v.size()
                         << " members re-registered: no majority, stepping aside");
      control::ErrorMsg e{Code::kUnavailable,
                          "this coordinator has no majority of the running job; try another "
                          "coordinator address"};
      for (auto& [id, c] : g.claims) {
        auto it = g.peers.find(id);
        if (it != g.peers.end()) {
          it->second->sendAndClose(control::Type::kError, e.encode());
          g.peers.erase(it);
        }
      }
      g.claims.clear();
      g.recovering = false;
      return;
    }
  }
  g.recovering = false;
  g.committed = v;
  for (auto& [id, c] : g.claims)
    g.maxEpoch = std::max({g.maxEpoch, c.knownView.epoch, c.reportForEpoch});

  // A commit the old coordinator sent to only some members: finish it with
  // the decisions a member that got it holds.
  const control::Register* decided = nullptr;
  for (auto& [id, c] : g.claims)
    if (c.decisionsReceived && c.knownView.epoch == v.epoch && c.reportForEpoch == v.epoch)
      decided = &c;
  std::set<uint64_t> missing;
  for (const Member& m : v.members)
    if (!present.count(m.peerId)) missing.insert(m.peerId);
  bool undecided = false;
  for (auto& [id, c] : g.claims) {
    if (!v.contains(id)) {
      removePeer(g, id, "not a member of the recovered view");
      continue;
    }
    if (c.knownView.epoch < v.epoch) {
      if (decided && c.hasReport && !c.decisionsReceived && c.reportForEpoch == v.epoch) {
        control::ViewProposal p{v, c.knownView.epoch, ViewReason::kRecovery, false};
        sendTo(g, id, control::Type::kViewProposal, p.encode());
        control::Commit cm{v.epoch, ViewReason::kRecovery, false, decided->lastDecisions};
        sendTo(g, id, control::Type::kCommit, cm.encode());
      } else {
        missing.insert(id);  // behind, with no way to catch up
      }
    } else if (c.hasReport && !c.decisionsReceived && c.reportForEpoch > v.epoch) {
      undecided = true;  // a transition the old coordinator never committed
    }
  }
  g.claims.clear();
  LOG_INFO("group '" << g.name << "': recovered epoch " << v.epoch << " with " << present.size()
                     << " of " << v.size() << " members");
  for (uint64_t id : missing) removePeer(g, id, "did not re-register after a coordinator restart");
  if (!missing.empty()) {
    membersLost(g, missing, ViewReason::kFailure,
                "did not re-register after the coordinator restarted");
  } else if (undecided) {
    View same = v;
    propose(g, same, ViewReason::kFailure, false);
  }
  checkUpdateBarrier(g);
  maybeFormInitialView(g);
}

// ---------------------------------------------------------------------------
// Failure detection
// ---------------------------------------------------------------------------

void Coordinator::sweep() {
  TimePoint now = Clock::now();
  auto silentLimit = std::chrono::milliseconds(cfg_.failureTimeoutMs);
  for (auto& [name, gp] : groups_) {
    Group& g = *gp;
    std::map<uint64_t, std::string> dead;  // id -> why, for the log
    for (auto& [id, s] : g.peers)
      if (now - s->lastSeen > silentLimit)
        dead[id] =
            "silent for " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(now - s->lastSeen).count()) +
            " ms";
    // Due suspicions, from accusers still here: a partition between live
    // peers has them accuse each other, and only one side should go.
    std::map<uint64_t, std::set<uint64_t>> accusers;
    std::map<uint64_t, std::string> reasons;
    for (auto it = g.suspects.begin(); it != g.suspects.end();) {
      if (it->second.at > now) {
        ++it;
        continue;
      }
      for (const auto& [by, why] : it->second.by) {
        if (!g.peers.count(by) || dead.count(by)) continue;
        accusers[it->first].insert(by);
        reasons[it->first] += (reasons[it->first].empty() ? "peer " : "; peer ") +
                              std::to_string(by) + " reported " + why;
      }
      it = g.suspects.erase(it);
    }
    std::set<uint64_t> evict = peersToEvict(accusers);
    for (const auto& [accused, by] : accusers)
      if (!evict.count(accused))
        LOG_INFO("group '" << g.name << "': peer " << accused
                           << " stays: every peer that reported it unreachable is removed");
    for (uint64_t id : evict) dead.emplace(id, reasons[id]);
    if (!dead.empty()) {
      for (const auto& [id, why] : dead) {
        LOG_WARN("group '" << g.name << "': peer " << id << " declared dead: " << why);
        removePeer(g, id, "declared dead (silent or unreachable by other members)");
      }
      std::set<uint64_t> ids;
      for (const auto& [id, why] : dead) ids.insert(id);
      if (g.recovering) {
        for (uint64_t id : ids) g.claims.erase(id);
      } else {
        membersLost(g, ids, ViewReason::kFailure, "failure detected");
      }
    }
    if (g.proposal && now > g.proposal->deadline) {
      std::set<uint64_t> late;
      for (const Member& m : g.proposal->view.members)
        if (!g.proposal->ready.count(m.peerId)) late.insert(m.peerId);
      for (uint64_t id : late) removePeer(g, id, "did not open its connections in time");
      membersLost(g, late, ViewReason::kFailure, "not ready before the view setup deadline");
    }
    if (g.recovering && now > g.recoveryDeadline) tryFinishRecovery(g, true);
    if (g.faultReproposeAt && now >= *g.faultReproposeAt && !g.proposal && !g.recovering &&
        g.committed.epoch > 0) {
      // Tests: a view change that every member survives, in the middle of
      // their operations (otherwise a coordinator restart that found a
      // proposal it never committed).
      g.faultReproposeAt.reset();  // the next commit sets it again
      LOG_WARN("fault injection: proposing group '" << g.name << "''s view again");
      propose(g, g.committed, ViewReason::kRecovery, false);
    }
    maybeFormInitialView(g);
  }
}

}  // namespace chorus::membership
