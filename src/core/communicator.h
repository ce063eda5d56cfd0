// The communicator: one peer's membership in a group, its data links to the
// other members, and the collective operations in flight.
//
// Threads:
//  - application threads call the public methods;
//  - the progress engine's thread and blocking callers run progressPass();
//  - the membership client's thread delivers ControlEvents into the inbox.
// Locks (acquire in this order): engine lock (engine_.mutex()) guards all
// state below unless a member says otherwise; inboxMu_ guards inbox_ only.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "algorithms/selector.h"
#include "src/core/buffer_cache.h"
#include "src/core/config.h"
#include "src/core/operation.h"
#include "src/core/progress_engine.h"
#include "src/core/stripe.h"
#include "src/membership/membership_client.h"
#include "src/membership/view.h"
#include "transports/transport.h"

namespace chorus {

// Tags with the top bit set are reserved for Chorus' own operations.
constexpr uint64_t kInternalTagBit = uint64_t{1} << 63;
constexpr uint64_t kTagPeersPending = kInternalTagBit | 1;
constexpr uint64_t kTagTopology = kInternalTagBit | 2;
// Point-to-point keys: [63]=1 [62]=1 [61] direction [60:32] pair hash [31:0] user tag.
constexpr uint64_t kP2PTagBit = uint64_t{1} << 62;

class Communicator final : public ProgressEngine::Client,
                           public transport::FrameSink,
                           public membership::MembershipClient::Sink {
 public:
  static Result<std::shared_ptr<Communicator>> create(const CommConfig& cfg);
  ~Communicator() override;

  // Register, authenticate, wait for admission, open data links.
  Status connect();
  // Leave gracefully (if a member), fail what is pending, release everything.
  void shutdown();

  int rank();
  int worldSize();
  uint64_t epoch();
  uint64_t peerId() const { return peerId_; }
  Status asyncError();

  // Collectives and point-to-point operations (args.collective says which).
  Status run(const algo::CollectiveArgs& args, OpInfo* info);
  Result<std::shared_ptr<OpResult>> runAsync(const algo::CollectiveArgs& args, uint64_t tag);
  Status allReduce(const algo::CollectiveArgs& args, OpInfo* info) { return run(args, info); }
  // Wait for / poll an operation started by *Async.
  Status wait(const std::shared_ptr<OpResult>& r, OpInfo* info);
  bool test(const std::shared_ptr<OpResult>& r);
  // Wakes threads waiting in wait(): work finished outside the engine (a
  // background snapshot thread completing a request).
  void wake() { engine_.wake(); }

  // Topology.
  Status optimizeTopology();
  std::string describeSelection();
  const algo::TopologyView& topologyView() const { return topology_; }

  // Membership.
  Result<int> peersPending();
  Status updateMembership();
  Status announceLeave();

  // Used by Op.
  void postData(Op& op, int toRank, uint32_t block, const void* data, size_t bytes);
  void onOpSendsDrained(Op* op) { checkOp(op); }
  uint8_t* acquireScratch(Op* op, size_t bytes);
  void releaseScratch(Op* op);
  size_t segmentBytes() const { return segmentBytes_; }

  // ProgressEngine::Client
  bool progressPass(const int* readyFds, int nReady, bool spinning, int64_t nowNs) override;
  void beforeSleep() override;
  bool wantsBackgroundProgress() override;
  Deadline nextTimer() override;
  bool needsReadyFds() override;
  // FrameSink
  transport::RecvTarget onHeader(transport::Connection& c, const frame::Header& h) override;
  void onFrame(transport::Connection& c, const frame::Header& h,
               const transport::RecvTarget& t) override;
  // MembershipClient::Sink (membership thread)
  void onControlEvent(membership::ControlEvent ev) override;

 private:
  enum class State { kCreated, kConnecting, kMember, kRemoved, kLeft, kClosed };

  struct PeerLink {
    std::vector<std::unique_ptr<transport::Connection>> streams;  // by stream index
    std::vector<uint32_t> generation;  // by stream index: of the connection last installed
    int expected = 0;
    std::unique_ptr<StripeScheduler> stripe;  // pools of more than one stream
    // Streams that broke while the peer is alive: closed here and waiting
    // for the peer's count of the frames it received on them (kStreamLost),
    // then their other frames are sent on the rest.
    std::map<int, std::unique_ptr<transport::Connection>> lost;
    std::map<int, uint32_t> lostGeneration;  // of each lost connection
    // No stream is open (the last one broke; every one-stream link that
    // breaks): the lower peer id dials it again by relinkBy. Data frames
    // wait at the stripe scheduler, control frames here, until it is up.
    bool relinking = false;
    TimePoint relinkBy{};
    std::vector<std::pair<frame::Header, std::string>> heldControl;
    // DONEs that nobody waits for (the operation finished without the
    // agreement): they only let the peer forget its unconfirmed_ entry, so
    // they ride with the next data to the peer, or go on the next pass,
    // instead of costing a write before the call returns.
    std::vector<frame::Header> lazyDones;
    bool complete() const;
  };

  // A frame that arrived before its operation started.
  // Its payload buffer comes from, and goes back to, the communicator's
  // BufferCache (early frames are routine in a loop of collectives).
  struct Unexpected {
    explicit Unexpected(BufferCache* c) : cache(c) {}
    ~Unexpected() { cache->give(std::move(buf)); }
    Unexpected(const Unexpected&) = delete;
    Unexpected& operator=(const Unexpected&) = delete;
    BufferCache* cache;
    frame::Header h;
    uint64_t peerId = 0;
    BufferCache::Buffer buf;  // size bytes used (not zero-filled); empty for DONE
    size_t size = 0;
    bool complete = false;
    uint8_t* data() { return buf.data.get(); }
    void allocate(size_t bytes) {
      buf = cache->take(bytes);
      size = bytes;
    }
    void assign(const std::string& s) {
      allocate(s.size());
      std::copy(s.begin(), s.end(), data());
    }
  };

  explicit Communicator(const CommConfig& cfg);
  Status init();

  // --- operations (engine lock held) ---
  Result<std::shared_ptr<OpResult>> submit(const algo::CollectiveArgs& args, uint64_t tag);
  // othersMayNameRootInNewView: queued while the view changed (its root
  // named in the old view) and no decision binds it.
  void startOp(Op* op, bool othersMayNameRootInNewView = false);
  void checkOp(Op* op);
  // Whether op may return success before the other member's DONE: see
  // "Uniform outcome" in docs/ARCHITECTURE.md.
  bool mayFinishWithoutAgreement(const Op& op);
  // Bytes of the result every member holds alike (all-reduce, all-gather;
  // a barrier's is empty): what a RESULT frame carries.
  static size_t resultBytes(const Op& op);
  // Frozen operations decided successful that this member holds only in
  // part: read the frames still arriving (they left the other member before
  // it reported). Before the new epoch is applied, which drops old frames.
  void completeDecidedSuccesses(const control::Commit& c);
  // One progress of every watched connection (outside the engine's passes:
  // before a report, before a commit). True if anything moved.
  bool progressEveryConnection();
  void finishOp(Op* op, Status st);
  void failAllOps(const Status& st);
  void deliverUnexpected(Op* op);
  static bool keepForRestart(const Op& op, uint64_t frameEpoch);
  bool deliverData(Op* op, uint64_t fromPeer, const frame::Header& h, const uint8_t* payload);
  void onDone(Op* op, uint64_t fromPeer);
  bool eraseUnconfirmed(const OpKey& key);
  // Peer `peerId` holds the full result of `key`: it no longer needs ours.
  void confirmUnconfirmed(const OpKey& key, uint64_t peerId);
  // op returned success before every DONE: remember it (and, with more
  // than two members, its result) until the rest confirm.
  void rememberUnconfirmed(const Op& op);
  // With a commit: forget members that left, send our result to those that
  // have not confirmed (they may lack it), drop what needs nothing more.
  void resendUnconfirmed(bool endsUpdate);
  // A RESULT frame: where its payload goes, or nowhere.
  transport::RecvTarget resultTarget(transport::Connection& c, const frame::Header& h);
  // A RESULT completed op (an operation decided successful that waited for it).
  void onResult(Op* op);
  // The whole payload of a frame kept for an operation not running here
  // (t.owner is its Unexpected): deliver it if the operation runs now.
  void earlyFrameArrived(const transport::RecvTarget& t, Op* op, const frame::Header& h);
  // A frame header naming operation `key` (described by desc) in `epoch`.
  static frame::Header opHeader(frame::Type type, const OpKey& key, uint64_t desc, uint64_t epoch);
  // h to every other member of op that still has a link.
  void postToOthers(const Op& op, const frame::Header& h, const void* payload);
  void postDone(Op* op, uint64_t epoch);
  void flushLazyDones(PeerLink& link);
  void abortOpEverywhere(Op* op, const Status& st);
  void dropUnexpectedBefore(uint64_t epoch);
  void freeUnexpected(const OpKey& key);
  template <typename Set>
  void progressEach(const Set& set, bool* worked, bool skipWriteBlocked = false);
  bool keyFinished(const OpKey& key) const;
  Op* findOp(const OpKey& key);
  // Frees the first upTo finished operations (all by default).
  void reapFinished(size_t upTo = SIZE_MAX);
  static constexpr size_t kReapBacklog = 16;

  // --- membership (engine lock held) ---
  void processInbox();
  void handleEvent(membership::ControlEvent& ev);
  void onProposal(const control::ViewProposal& p);
  void onCommit(const control::Commit& c);
  void onRemoved(const std::string& why, bool left);
  void onDataLink(membership::ControlEvent& ev);
  void maybeSendReady();
  void publishClaims();
  void applyViewPolicy();
  // Ring order from the measured pair bandwidths of the current members.
  void applyMeasuredTopology();
  bool trivial(const algo::CollectiveArgs& a) const;
  void closeLink(uint64_t peerId);
  // Stop watching a connection (it is being closed or replaced).
  void unwatch(transport::Connection* c);
  // Drop an operation's queued and retained sends and (unless keepReceives)
  // its receives, on every stream (it finished, or its view is changing).
  void forgetSends(Op* op, bool keepReceives = false);
  void onConnectionBroken(transport::Connection* c, const Status& st);
  // The whole link is gone: close it and tell the coordinator.
  void breakLink(uint64_t peerId, const Status& st);
  // Replaceable stream c of link broke (or the peer says it did): close it,
  // send our received count on the control stream. False if the link must
  // break.
  // With no other stream open, the link is dialled again (relinking; the
  // dial only if redial and this is the lower peer id).
  bool loseStream(PeerLink& link, transport::Connection* c, const Status& why, bool redial = true);
  // A new stream is open on a relinking link: send what waited.
  void endRelink(uint64_t peerId, PeerLink& link);
  // Relinks past their bound break their links.
  void checkRelinks(TimePoint now);
  // DONE, ABORT, STREAM_LOST: on the control stream, or held while relinking.
  // False if the link has neither.
  bool postControl(PeerLink& link, const frame::Header& h, const void* payload);
  void onStreamLost(transport::Connection& c, const frame::Header& h);
  // STREAM_LOST for every lost stream not settled yet (idempotent at the
  // peer: each names the generation it lost). An earlier notice may sit
  // unreceived on a stream that broke since, and the peer's notice for that
  // one may sit on ours: sending them all again breaks that circle.
  void postLostNotices(PeerLink& link);
  // The peer (a higher id) lost stream s, generation gen, with no other
  // stream open, and asks us to dial it again.
  void onRedialRequest(uint64_t peerId, int s, uint32_t gen);
  // The peer received peerReceived frames of lost stream s: send the rest
  // on the other streams, and (the dialing side) dial s again.
  void resendLost(uint64_t peerId, PeerLink& link, int s, uint64_t peerReceived);
  StripeScheduler& stripeOf(PeerLink& link);
  // Where DONE, ABORT and STREAM_LOST go: the lowest-numbered open stream
  // (receivers take them from any stream), or null.
  transport::Connection* controlStream(PeerLink& link);
  void progressConnection(transport::Connection* c, bool* worked);
  // Striped links: hand waiting frames to streams with room, adapt the pool.
  void pumpStripe(PeerLink& link);
  // Data streams whose data the peer's host has not acknowledged for
  // cfg_.streamStallMs are broken on purpose (a pool replaces them).
  void checkStalls(TimePoint now);

  Status blockingOp(const algo::CollectiveArgs& args, uint64_t tag, OpInfo* info);
  Status checkUsable();

  CommConfig cfg_;
  uint64_t peerId_;
  std::string hostId_;
  algo::Selector selector_;
  size_t segmentBytes_;
  ProgressEngine engine_;
  std::unique_ptr<membership::MembershipClient> client_;
  std::shared_ptr<const transport::tcp::TlsContext> tls_;  // data-link TLS, or null

  // ---- guarded by the engine lock ----
  State state_ = State::kCreated;
  Status fatal_;       // why the communicator cannot be used (removed, auth...)
  Status asyncErr_;    // first asynchronous error (sticky)
  Status linkStatus_;  // last coordinator link problem (for messages)
  View committed_;
  int myRank_ = -1;
  std::optional<control::ViewProposal> proposal_;
  bool readySent_ = false;
  bool frozen_ = false;  // ops of committed_ are frozen, report_ describes them
  Report report_;
  uint64_t reportForEpoch_ = 0;
  bool decisionsReceived_ = false;
  Decisions lastDecisions_;
  std::set<uint64_t> dialing_;  // peers with a dial in progress
  bool updateWaiting_ = false, updateDone_ = false;
  bool leaveAnnounced_ = false;

  std::unordered_map<uint64_t, PeerLink> links_;
  std::set<transport::Connection*> polled_;  // shared-memory links: progressed every pass
  bool pollAgain_ = false;                   // one of them had work when the engine meant to sleep
  std::unordered_map<int, transport::Connection*> byFd_;
  std::unordered_set<transport::Connection*> sendPending_;
  std::unordered_set<transport::Connection*> inputBuffered_;  // hasBufferedInput(): go again
  std::vector<transport::Connection*> passScratch_;           // progressEach's snapshot
  // Links startOp() reports writes of (postData's writeQueuedNow) once the
  // task has started.
  bool collectWrittenEarly_ = false;
  std::vector<transport::Connection*> writtenEarly_;
  std::vector<std::unique_ptr<transport::Connection>> graveyard_;

  std::map<OpKey, std::unique_ptr<Op>> ops_;
  std::vector<std::unique_ptr<Op>> finished_;
  // Freed operations, results and ops_ nodes kept for the next calls
  // (submit): a few suffice for a loop of calls.
  static constexpr size_t kSpareOps = 4;
  std::vector<std::unique_ptr<Op>> spareOps_;
  std::vector<std::map<OpKey, std::unique_ptr<Op>>::node_type> spareNodes_;
  std::shared_ptr<OpResult> spareResult_;
  std::unordered_map<uint64_t, uint64_t> nextSeq_;  // tag -> next seq
  algo::TopologyView topology_;                     // of committed_
  algo::CostInputs costInputs_;                     // of committed_
  // The selector's last answer: a loop of calls asks the same question, and
  // the cost model's evaluation was ~70 ns of every small call. Valid for
  // the costInputs_ it was made with (reset where they change).
  struct LastSelection {
    algo::Collective collective{};
    size_t bytes = SIZE_MAX;
    const algo::AlgorithmInfo* algo = nullptr;
  } lastSelection_;
  // Measured pair latency (us) and bandwidth (GB/s) by peer ids; survives
  // view changes for the members that stay.
  std::map<std::pair<uint64_t, uint64_t>, std::pair<double, double>> measured_;
  std::map<OpKey, Decision> failedKeys_;  // decided failures not yet called here
  // Re-runs decided for calls not made here yet: the members of the view the
  // others made them in (a rooted call names its root there).
  std::map<OpKey, std::vector<uint64_t>> rerunViews_;
  // An operation that returned success here without every other member's
  // DONE, until those DONEs arrive: reported as succeeded if the view
  // changes first. A few at most (one per operation the others still have in
  // flight). With more than two members it keeps a copy of the result:
  // a member that lost some input with a dead sender completes from it
  // (frame::Type::kResult, sent with each commit to those not confirmed).
  struct Unconfirmed {
    OpKey key;
    uint64_t desc = 0;
    std::vector<uint64_t> awaiting;  // peer ids whose DONE has not arrived
    bool keepsResult = false;        // more than two members
    std::vector<uint8_t> result;
  };
  std::vector<Unconfirmed> unconfirmed_;
  bool lazyDonesQueued_ = false;  // some PeerLink::lazyDones is not empty
  uint32_t passCount_ = 0;        // progressPass() calls: paces its clock reads
  // During a pass, the clock as read just before it (0 outside passes or
  // when the engine read none): checkOp's lease test uses it.
  int64_t passNowNs_ = 0;
  // Now, as a pass sees it: the clock the engine read just before the pass,
  // else a fresh read. At most a pass earlier than the truth: for the lease
  // (checkOp) as if this member had been paused that long after its test,
  // which the lease allows for (it lasts half the failure timeout past an
  // acknowledged heartbeat; see holdsLease).
  TimePoint passClock() const {
    return passNowNs_ != 0 ? TimePoint(std::chrono::duration_cast<Duration>(
                                 std::chrono::nanoseconds(passNowNs_)))
                           : Clock::now();
  }
  BufferCache earlyBuffers_;  // declared before unexpected_: outlives its entries
  std::map<OpKey, std::vector<std::unique_ptr<Unexpected>>> unexpected_;
  size_t unexpectedBytes_ = 0;
  std::vector<uint8_t> abortBuf_;
  // Stalled streams (checkStalls): the first look at each stream's current
  // silence past the bound, and when to look next.
  struct StallLook {
    TimePoint at;
    uint32_t ms;  // how long it had been silent then
  };
  std::unordered_map<transport::Connection*, StallLook> stallSeen_;
  TimePoint nextStallCheck_{};
  int relinking_ = 0;  // links with relinking set
  // Spinning while waiting, per view (applyViewPolicy), switched off while
  // every link is a long one (updateSpinForLinks).
  int viewSpinUs_ = 50;
  bool viewYield_ = false;
  bool spinOff_ = false;
  TimePoint nextSpinCheck_{};
  void updateSpinForLinks(TimePoint now);

  // Fault injection for tests (CHORUS_FAULT_DELAY_COMMIT_MS): once a member,
  // this peer applies each view commit that many ms late, and control events
  // behind it after it, while it keeps reading frames. Peers that applied
  // the commit at once run ahead of it, as a slow peer would.
  // CHORUS_FAULT_DELAY_PROPOSAL_MS does the same with view proposals: the
  // peer goes on running operations while the others have frozen theirs.
  // CHORUS_FAULT_DELAY_COMMIT_RANKS (comma list) limits either to those ranks.
  int faultCommitDelayMs_ = 0;
  int faultProposalDelayMs_ = 0;
  // CHORUS_FAULT_DELAY_REMOVAL_MS: the coordinator's notice that this peer
  // was removed is taken that late, as from a distant coordinator.
  int faultRemovalDelayMs_ = 0;
  std::vector<int> faultCommitDelayRanks_;
  // Fault injection (tests): CHORUS_FAULT_CRASH_MIDSEND=rank:seq makes that
  // rank exit (status 137, as a kill -9) in its operation number seq right
  // after its first data frame went out, so one member has its input and
  // the others never will.
  int faultCrashRank_ = -1;
  uint64_t faultCrashSeq_ = 0;
  // CHORUS_FAULT_STOP_BEFORE_SEND=rank:seq: that rank stops itself
  // (SIGSTOP) in operation number seq before its first data frame, once; the
  // test sends SIGCONT after the others removed it.
  int faultStopRank_ = -1;
  uint64_t faultStopSeq_ = 0;
  // CHORUS_FAULT_STOP_RESUME_DELAY_MS: after that SIGCONT the calling thread
  // sleeps this long before going on, as a resumed process whose caller is
  // scheduled late; its membership thread runs meanwhile.
  int faultStopResumeDelayMs_ = 0;
  struct HeldEvent {
    TimePoint due;
    bool late;  // a commit or proposal held back (the rest only wait behind it)
    membership::ControlEvent ev;
  };
  std::deque<HeldEvent> heldEvents_;
  void releaseHeldEvents();

  std::vector<ScratchBuf> scratchFree_;
  // Some link has had a stripe scheduler (never reset): until then a pass
  // skips looking up each connection's link for one (a hash lookup per
  // connection per pass, in the spin of every waiting caller).
  bool anyStripe_ = false;

  // ---- inbox (inboxMu_) ----
  std::mutex inboxMu_;
  std::deque<membership::ControlEvent> inbox_;
  std::atomic<bool> inboxFlag_{false};
};

}  // namespace chorus
