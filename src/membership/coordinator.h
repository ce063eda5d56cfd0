// The coordinator: admits authenticated peers into groups, proposes and
// commits views, detects failures (heartbeats, closed links, suspicions),
// and turns the members' reports into uniform decisions about the
// operations a view change interrupted.
//
// It keeps only soft state. A restarted coordinator (or a standby at another
// address) rebuilds each group from the claims peers send when they
// re-register: the last committed view, and the last transition's report and
// decisions. Epochs never go backwards because the new coordinator continues
// from the highest epoch any peer claims.
//
// Threads: one io_context thread; all state below is touched only there.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/core/clock.h"
#include "src/core/config.h"
#include "src/membership/view.h"
#include "src/protocol/control.h"
#include "transports/tcp/tls.h"

namespace chorus::membership {

class Coordinator {
 public:
  static Result<std::unique_ptr<Coordinator>> start(const CoordinatorConfig& cfg);
  ~Coordinator();
  // The address peers should use (bind address, with the real port).
  HostPort address() const { return address_; }
  void stop();

  struct Session;
  struct Group;

 private:
  explicit Coordinator(const CoordinatorConfig& cfg);
  Status listen();
  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> runSession(std::shared_ptr<Session> s);
  void sweep();
  void armSweep();

  // Group logic (io thread).
  Group& group(const std::string& name);
  void onRegister(const std::shared_ptr<Session>& s, const control::Register& reg);
  void onMessage(const std::shared_ptr<Session>& s, const control::Message& m);
  void onSessionClosed(const std::shared_ptr<Session>& s);
  void membersLost(Group& g, const std::set<uint64_t>& peers, ViewReason reason,
                   const std::string& why);
  void propose(Group& g, View view, ViewReason reason, bool endsUpdate);
  void commit(Group& g);
  void checkUpdateBarrier(Group& g);
  void maybeFormInitialView(Group& g);
  void tryFinishRecovery(Group& g, bool deadlinePassed);
  bool quorumOk(const Group& g, const View& next, const std::set<uint64_t>& gracefulLeavers) const;
  void sendTo(Group& g, uint64_t peerId, control::Type t, const std::vector<uint8_t>& body);
  void removePeer(Group& g, uint64_t peerId, const std::string& why);

  CoordinatorConfig cfg_;
  std::shared_ptr<transport::tcp::TlsContext> tls_;  // null: TLS off
  HostPort address_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer sweepTimer_;
  std::thread thread_;
  bool stopped_ = false;
  // Until then no new group view forms: members of a job that was running
  // when this coordinator (re)started get time to re-register first.
  TimePoint formViewsAfter_;
  int faultReproposeMs_ = 0;  // fault injection: see Group::faultReproposeAt
  uint64_t nextSessionId_ = 1;
  std::map<std::string, std::unique_ptr<Group>> groups_;
  std::set<std::shared_ptr<Session>> sessions_;
};

}  // namespace chorus::membership
