// The peer side of membership: one thread running an Asio io_context that
//  - keeps an authenticated link to the coordinator (trying each configured
//    address in turn, re-registering after the link breaks -- a restarted or
//    standby coordinator rebuilds its soft state from these registrations),
//  - sends heartbeats,
//  - accepts and dials authenticated data links for the communicator.
// Everything it learns is handed to the communicator as ControlEvents; it
// never takes the engine lock.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/core/clock.h"
#include "src/core/config.h"
#include "src/membership/control_link.h"
#include "src/membership/view.h"
#include "src/protocol/control.h"
#include "transports/tcp/listener.h"
#include "transports/tcp/tls.h"

namespace chorus::membership {

// What a peer claims when it (re-)registers; a restarted coordinator
// rebuilds the group from these.
struct Claims {
  View knownView;                  // last committed view
  bool hasReport = false;          // a transition report exists
  bool decisionsReceived = false;  // ... and its commit arrived
  uint64_t reportForEpoch = 0;     // epoch of the proposal the report answered
  Report report;
  Decisions decisions;
};

struct ControlEvent {
  enum class Kind {
    kLinkUp,          // registered; registered.status says pending/member/recovering
    kLinkDown,        // link to the coordinator lost (status says why); retrying
    kFatal,           // cannot continue (authentication refused, protocol mismatch)
    kProposal,        // proposal
    kCommit,          // commit
    kUpdateNoChange,  // epoch
    kRemoved,         // text = reason
    kDataLink,        // peerId, stream, streamCount, generation, socket
    kDialFailed,      // peerId, status
    kRedialRequest,   // peerId, stream, generation (control::Role::kRedial)
  };
  Kind kind = Kind::kLinkDown;
  Status status;
  control::Registered registered;
  control::ViewProposal proposal;
  control::Commit commit;
  uint64_t epoch = 0;
  std::string text;
  uint64_t peerId = 0;
  int stream = 0;
  int streamCount = 1;
  uint32_t generation = 0;
  std::unique_ptr<asio::ip::tcp::socket> socket;
  transport::tcp::SslPtr ssl;  // the link's TLS session when TLS is on
};

class MembershipClient {
 public:
  class Sink {
   public:
    virtual ~Sink() = default;
    // Called on the membership thread; must not block.
    virtual void onControlEvent(ControlEvent ev) = 0;
  };

  // tls: non-null when data links run TLS (see transports/tcp/tls.h).
  MembershipClient(const CommConfig& cfg, uint64_t peerId, std::string hostId, Sink* sink,
                   std::shared_ptr<const transport::tcp::TlsContext> tls = nullptr);
  ~MembershipClient();

  // Open the data listener, start the thread and the coordinator link.
  Status start();
  // Send what is queued (up to flushMs), then close everything and join.
  void stop(int flushMs);

  uint16_t listenPort() const { return listener_ ? listener_->port() : 0; }
  asio::io_context& io() { return io_; }

  // Thread-safe requests.
  void send(control::Type type, std::vector<uint8_t> body);
  void dial(const Member& m, int streams, uint64_t epoch, Deadline deadline);
  // Dial one stream again (it broke); generation: its new connection's.
  void dialStream(const Member& m, int stream, int streams, uint64_t epoch, uint32_t generation,
                  Deadline deadline);
  // Ask m (a lower peer id) to dial stream again: this end lost generation
  // `generation` of it with no other stream open (control::Role::kRedial).
  // Nothing is reported back; the dial it triggers arrives as kDataLink.
  void requestRedial(const Member& m, int stream, int streams, uint64_t epoch, uint32_t generation,
                     Deadline deadline);
  // State claimed when (re-)registering: last committed view and the report
  // of the last transition.
  void setClaims(const Claims& claims);

  // Forget the pending counts (a view change or an update consumed them);
  // the next heartbeat acknowledgement refreshes them.
  void resetPending() {
    pendingJoins_ = 0;
    pendingLeaves_ = 0;
    ++pendingGen_;
  }
  // True while the coordinator cannot have removed this peer for silence
  // with room to spare: a heartbeat sent at t was acknowledged and now is
  // before t + failureTimeout / 2. A peer that was stopped (SIGSTOP, a
  // stall) longer than that has no lease until a new heartbeat is answered,
  // and a removed one gets no answer.
  bool holdsLease(TimePoint now) const {
    return now.time_since_epoch().count() < leaseUntil_.load(std::memory_order_relaxed);
  }
  uint32_t pendingJoins() const { return pendingJoins_.load(); }
  uint32_t pendingLeaves() const { return pendingLeaves_.load(); }
  bool linkUp() const { return linkUp_.load(); }

 private:
  asio::awaitable<void> runLink();
  asio::awaitable<void> heartbeats(std::shared_ptr<ControlLink> link, uint64_t gen);
  asio::awaitable<void> writeLoop(std::shared_ptr<ControlLink> link);
  asio::awaitable<void> acceptLink(asio::ip::tcp::socket s);
  asio::awaitable<void> dialLink(Member m, int stream, int streams, uint64_t epoch,
                                 uint32_t generation, Deadline deadline,
                                 control::Role role = control::Role::kDataLink);
  void enqueue(std::vector<uint8_t> framed);
  void dispatch(const control::Message& m);
  void post(ControlEvent ev) { sink_->onControlEvent(std::move(ev)); }
  control::Register buildRegister(const asio::ip::tcp::socket& s);

  CommConfig cfg_;
  std::shared_ptr<const transport::tcp::TlsContext> tls_;
  uint64_t peerId_;
  std::string hostId_;
  Sink* sink_;

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::unique_ptr<transport::tcp::TcpListener> listener_;

  // io-thread state
  std::shared_ptr<ControlLink> link_;
  uint64_t linkGen_ = 0;
  std::deque<std::vector<uint8_t>> writeq_;
  bool writing_ = false;
  bool stopping_ = false;
  uint32_t heartbeatMs_ = 100;
  uint32_t failureTimeoutMs_ = 1000;
  // When each heartbeat not yet acknowledged on this link was queued: the
  // coordinator answers every heartbeat of a live session, in order.
  std::deque<TimePoint> heartbeatsSent_;

  std::atomic<TimePoint::rep> leaseUntil_{0};  // see holdsLease
  std::atomic<bool> linkUp_{false};
  std::atomic<bool> queueEmpty_{true};
  std::atomic<uint32_t> pendingJoins_{0}, pendingLeaves_{0};
  std::atomic<uint64_t> pendingGen_{0};  // bumped by resetPending
  uint64_t heartbeatGenSent_ = 0;        // pendingGen_ when the last heartbeat left (io thread)
  uint64_t ackGenExpected_ = 0;

  std::mutex claimsMu_;  // leaf lock
  Claims claims_;
};

}  // namespace chorus::membership
