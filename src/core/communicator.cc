#include "src/core/communicator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "algorithms/topology.h"
#include "src/core/hash.h"
#include "src/core/log.h"
#include "src/core/system.h"
#include "transports/shm/transport.h"
#include "transports/tcp/transport.h"

namespace chorus {

using membership::ControlEvent;

namespace {
constexpr size_t kMaxUnexpectedBytes = size_t{4} << 30;
constexpr size_t kMaxAbortMessage = 4096;
constexpr size_t kScratchPoolBuffers = 4;
// A finished operation keeps scratch up to this size until it is freed.
constexpr size_t kKeepScratchUntilReap = size_t{64} << 10;

std::string peerList(const std::vector<uint64_t>& ids) {
  std::string s;
  for (uint64_t id : ids) s += (s.empty() ? "" : ", ") + std::to_string(id);
  return s;
}

int socketPort(int fd, bool peer) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (rc != 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return 0;
}

// "data link to peer P: 4 streams over tcp (local>remote port by stream:
// 0=41000>39001 ...)": lets an operator (and the fault tests) find one
// stream's socket, e.g. with `ss`.
std::string describeStreams(uint64_t peerId,
                            const std::vector<std::unique_ptr<transport::Connection>>& streams) {
  std::string s = "data link to peer " + std::to_string(peerId) + ": " +
                  std::to_string(streams.size()) + " streams over " + streams[0]->transportName() +
                  " (local>remote port by stream:";
  for (size_t i = 0; i < streams.size(); ++i) {
    int fd = streams[i] ? streams[i]->fd() : -1;
    s += ' ';  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on " " + ... + "="
    s += std::to_string(i);
    s += '=';
    s += fd < 0
             ? std::string("-")
             : std::to_string(socketPort(fd, false)) + ">" + std::to_string(socketPort(fd, true));
  }
  return s + ")";
}
}  // namespace

bool Communicator::PeerLink::complete() const {
  if (expected <= 0 || static_cast<int>(streams.size()) < expected) return false;
  for (int i = 0; i < expected; ++i)
    if (!streams[i] || !streams[i]->isOpen()) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Construction, connect, shutdown
// ---------------------------------------------------------------------------

Result<std::shared_ptr<Communicator>> Communicator::create(const CommConfig& cfg) {
  std::shared_ptr<Communicator> c(new Communicator(cfg));
  CHORUS_RETURN_IF_ERROR(c->init());
  return c;
}

namespace {
// "host=a,rack=r,dc=d" -> the value of `key`, or "".
std::string localityLabel(const std::string& locality, const std::string& key) {
  size_t start = 0;
  while (start < locality.size()) {
    size_t comma = locality.find(',', start);
    std::string item =
        locality.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto eq = item.find('=');
    if (eq != std::string::npos && item.substr(0, eq) == key) return item.substr(eq + 1);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return "";
}
}  // namespace

Communicator::Communicator(const CommConfig& cfg)
    : cfg_(cfg), peerId_(randomU64() | 1), hostId_(hostIdentity()) {
  // An explicit host label groups peers into hosts for hierarchical
  // algorithms (tests emulate hosts with network namespaces this way).
  if (std::string host = localityLabel(cfg.locality, "host"); !host.empty())
    hostId_ = "label:" + host;
  int seg = envIntOr("CHORUS_SEGMENT_BYTES", 512 << 10);
  if (seg < 4096) seg = 4096;
  if (seg > (16 << 20)) seg = 16 << 20;
  segmentBytes_ = static_cast<size_t>(seg);
  faultCommitDelayMs_ = std::max(0, envIntOr("CHORUS_FAULT_DELAY_COMMIT_MS", 0));
  faultProposalDelayMs_ = std::max(0, envIntOr("CHORUS_FAULT_DELAY_PROPOSAL_MS", 0));
  faultRemovalDelayMs_ = std::max(0, envIntOr("CHORUS_FAULT_DELAY_REMOVAL_MS", 0));
  if (const char* ranks = std::getenv("CHORUS_FAULT_DELAY_COMMIT_RANKS"))
    for (const char* p = ranks; *p;) {
      char* end = nullptr;
      long r = std::strtol(p, &end, 10);
      if (end == p) {  // a test that relies on it would otherwise test nothing
        LOG_WARN("CHORUS_FAULT_DELAY_COMMIT_RANKS='" << ranks << "': not a comma list of ranks "
                                                     << "from '" << p << "' on; ignored there");
        break;
      }
      faultCommitDelayRanks_.push_back(static_cast<int>(r));
      p = *end == ',' ? end + 1 : end;
    }
  auto rankSeq = [](const char* name, int* rank, uint64_t* seq) {
    const char* v = std::getenv(name);
    if (!v) return;
    int r = -1;
    unsigned long long s = 0;
    if (std::sscanf(v, "%d:%llu", &r, &s) == 2 && r >= 0) {
      *rank = r;
      *seq = s;
    } else {
      LOG_WARN(name << "='" << v << "': not rank:seq; ignored");
    }
  };
  rankSeq("CHORUS_FAULT_CRASH_MIDSEND", &faultCrashRank_, &faultCrashSeq_);
  rankSeq("CHORUS_FAULT_STOP_BEFORE_SEND", &faultStopRank_, &faultStopSeq_);
  faultStopResumeDelayMs_ = std::max(0, envIntOr("CHORUS_FAULT_STOP_RESUME_DELAY_MS", 0));
}

Status Communicator::init() {
  auto sel = algo::Selector::create(cfg_.algorithm);
  if (!sel.isOk()) return sel.status();
  selector_ = std::move(sel).value();
  if (cfg_.tls != chorusTlsOff) {
    auto t = transport::tcp::TlsContext::create(transport::tcp::tlsSettingsOf(cfg_));
    if (!t.isOk()) return t.status();
    tls_ = std::move(t).value();
  }
  int spinUs = cfg_.spinUs >= 0 ? cfg_.spinUs : 50;
  return engine_.init(this, spinUs);
}

Communicator::~Communicator() {
  shutdown();
}

Status Communicator::connect() {
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    switch (state_) {
      case State::kMember:
        return failedPrecondition("communicator is already connected");
      case State::kRemoved:
      case State::kLeft:
        return fatal_;
      case State::kClosed:
        return failedPrecondition("communicator was destroyed");
      default:
        break;
    }
    state_ = State::kConnecting;
    fatal_ = Status::ok();
    linkStatus_ = Status::ok();
  }
  client_ = std::make_unique<membership::MembershipClient>(cfg_, peerId_, hostId_, this, tls_);
  Status st = client_->start();
  if (!st.isOk()) {
    client_->stop(0);
    client_.reset();
    std::lock_guard<std::mutex> lk(engine_.mutex());
    state_ = State::kCreated;
    return st;
  }
  engine_.startThread();
  Deadline deadline = Deadline::afterMs(cfg_.connectTimeoutMs);
  engine_.driveUntil([&] { return state_ == State::kMember || !fatal_.isOk(); }, deadline);

  Status result;
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    if (state_ == State::kMember) {
      LOG_INFO("connected: rank " << myRank_ << " of " << committed_.size() << ", epoch "
                                  << committed_.epoch);
      return Status::ok();
    }
    if (!fatal_.isOk()) {
      result = fatal_;
    } else if (!linkStatus_.isOk()) {
      result = unavailable(linkStatus_.message() + " (gave up after " +
                           std::to_string(cfg_.connectTimeoutMs) + " ms)");
    } else {
      result = deadlineExceeded("not admitted to group '" + cfg_.group + "' within " +
                                std::to_string(cfg_.connectTimeoutMs) +
                                " ms (the coordinator is waiting for more peers, or the job is "
                                "running and its members have not called "
                                "chorusUpdateMembership)");
    }
  }
  // Undo the attempt so connect() can be called again.
  engine_.stopThread();
  client_->stop(0);
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    std::vector<uint64_t> peers;
    for (auto& [id, l] : links_) peers.push_back(id);
    for (uint64_t id : peers) closeLink(id);
    graveyard_.clear();
    proposal_.reset();
    frozen_ = false;
    committed_ = View();
    state_ = (result.code() == Code::kRemoved) ? State::kRemoved : State::kCreated;
  }
  client_.reset();
  return result;
}

void Communicator::shutdown() {
  bool hadClient;
  // Let frames already queued (confirmations of the last operations) reach
  // their peers before this member leaves; bounded, as peers may be gone.
  engine_.driveUntil([&] { return state_ != State::kMember || sendPending_.empty(); },
                     Deadline::afterMs(300));
  // Operations that returned here before the others' DONE: the others hold
  // our input and finish them within moments, and must decide success.
  // Leaving first would make the view change re-run or fail an operation
  // that returned success here (a leaver does not report).
  if (!engine_.driveUntil(
          [&] {
            return state_ != State::kMember || (unconfirmed_.empty() && sendPending_.empty());
          },
          Deadline::afterMs(2000))) {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    if (!unconfirmed_.empty())
      LOG_WARN("leaving with " << unconfirmed_.size()
                               << " operation(s) that returned success here not yet confirmed by "
                                  "every member, the first "
                               << unconfirmed_.front().key.toString());
  }
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    if (state_ == State::kClosed && !client_) return;
    if (state_ == State::kMember && client_ && client_->linkUp()) {
      control::EpochOnly e{committed_.epoch};
      client_->send(control::Type::kLeaveNow, e.encode());
    }
    failAllOps(aborted("the communicator was destroyed"));
    state_ = State::kClosed;
    hadClient = client_ != nullptr;
  }
  engine_.stopThread();
  if (hadClient) client_->stop(200);
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    std::vector<uint64_t> peers;
    for (auto& [id, l] : links_) peers.push_back(id);
    for (uint64_t id : peers) closeLink(id);
    graveyard_.clear();
    reapFinished();
    ops_.clear();
    spareOps_.clear();  // before scratchFree_ goes: they give scratch back
    spareNodes_.clear();
    spareResult_.reset();
    unexpected_.clear();
  }
  // Sockets were bound to the client's io_context: destroy it last.
  client_.reset();
}

int Communicator::rank() {
  std::lock_guard<std::mutex> lk(engine_.mutex());
  return myRank_;
}

int Communicator::worldSize() {
  std::lock_guard<std::mutex> lk(engine_.mutex());
  return committed_.size();
}

uint64_t Communicator::epoch() {
  std::lock_guard<std::mutex> lk(engine_.mutex());
  return committed_.epoch;
}

Status Communicator::asyncError() {
  std::lock_guard<std::mutex> lk(engine_.mutex());
  return asyncErr_;
}

Status Communicator::checkUsable() {
  switch (state_) {
    case State::kMember:
      return Status::ok();
    case State::kCreated:
    case State::kConnecting:
      return failedPrecondition("communicator is not connected: call chorusCommConnect first");
    case State::kRemoved:
    case State::kLeft:
      return fatal_;
    case State::kClosed:
      return fatal_.isOk() ? failedPrecondition("communicator was destroyed") : fatal_;
  }
  return internalError("bad communicator state");
}

// ---------------------------------------------------------------------------
// Public collectives
// ---------------------------------------------------------------------------

Status Communicator::run(const algo::CollectiveArgs& args, OpInfo* info) {
  return blockingOp(args, 0, info);
}

Status Communicator::blockingOp(const algo::CollectiveArgs& args, uint64_t tag, OpInfo* info) {
  std::shared_ptr<OpResult> r;
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    CHORUS_RETURN_IF_ERROR(checkUsable());
    CHORUS_ASSIGN_OR_RETURN(r, submit(args, tag));
  }
  return wait(r, info);
}

Result<std::shared_ptr<OpResult>> Communicator::runAsync(const algo::CollectiveArgs& args,
                                                         uint64_t tag) {
  std::shared_ptr<OpResult> r;
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    CHORUS_RETURN_IF_ERROR(checkUsable());
    CHORUS_ASSIGN_OR_RETURN(r, submit(args, tag));
  }
  engine_.wake();
  return r;
}

Status Communicator::wait(const std::shared_ptr<OpResult>& r, OpInfo* info) {
  if (!r->finished.load(std::memory_order_acquire))
    engine_.driveUntil([&] { return r->finished.load(std::memory_order_acquire); },
                       Deadline::never());
  if (info) *info = r->info;
  return r->status;
}

bool Communicator::test(const std::shared_ptr<OpResult>& r) {
  if (r->finished.load(std::memory_order_acquire)) return true;
  engine_.pollOnce();
  return r->finished.load(std::memory_order_acquire);
}

// ---------------------------------------------------------------------------
// Operations (engine lock held)
// ---------------------------------------------------------------------------

Result<std::shared_ptr<OpResult>> Communicator::submit(const algo::CollectiveArgs& given,
                                                       uint64_t tag) {
  using algo::Collective;
  const int n = committed_.size();
  // Callers that planned in an earlier view name the root/partner by peer id,
  // so a view change between planning and submitting cannot redirect the call.
  algo::CollectiveArgs resolved;
  const algo::CollectiveArgs* ap = &given;
  if (given.rootPeerId != 0) {
    resolved = given;
    resolved.root = -1;
    for (int r = 0; r < n; ++r)
      if (committed_.members[r].peerId == given.rootPeerId) resolved.root = r;
    if (resolved.root < 0)
      return aborted("peer " + std::to_string(given.rootPeerId) + " is no longer in the view");
    ap = &resolved;
  }
  const algo::CollectiveArgs& args = *ap;
  bool p2p = args.collective == Collective::kSend || args.collective == Collective::kRecv;
  bool rooted = args.collective == Collective::kBroadcast ||
                args.collective == Collective::kReduce || args.collective == Collective::kGather ||
                args.collective == Collective::kScatter;
  // A call the others re-run after a graceful leave names its root in the
  // view they made it in (see onCommit), where that rank may not exist now.
  const std::vector<uint64_t>* rerunNamed = nullptr;
  if (!rerunViews_.empty() && rooted && given.rootPeerId == 0) {
    auto seq = nextSeq_.find(tag);
    auto rerun = rerunViews_.find(OpKey{tag, seq == nextSeq_.end() ? 0 : seq->second});
    if (rerun != rerunViews_.end() && args.root >= 0 &&
        static_cast<size_t>(args.root) < rerun->second.size())
      rerunNamed = &rerun->second;
  }
  if ((rooted || p2p) && (args.root < 0 || args.root >= n) && !rerunNamed)
    return invalidArgument(std::string(p2p ? "peer" : "root") + " rank " +
                           std::to_string(args.root) + " is not in the view (world size " +
                           std::to_string(n) + ")");
  if (p2p && args.root == myRank_)
    return invalidArgument("point-to-point with this peer itself (rank " + std::to_string(myRank_) +
                           ")");
  // A planned operation for another view fails at start (below), after taking
  // its sequence number like everyone else's call.
  const bool stalePlan = args.plannedEpoch != 0 && args.plannedEpoch != committed_.epoch;
  if (args.collective == Collective::kAllToAllv && !stalePlan &&
      (args.sendCounts.size() != static_cast<size_t>(n) ||
       args.recvCounts.size() != static_cast<size_t>(n)))
    return invalidArgument("all-to-all-v arrays must have worldSize (" + std::to_string(n) +
                           ") entries");
  if (p2p) {
    // Both ends derive the same key: the pair of peer ids, the direction and
    // the user tag; calls are numbered per key.
    uint64_t other = committed_.members[args.root].peerId;
    uint64_t sender = args.collective == Collective::kSend ? peerId_ : other;
    uint64_t receiver = args.collective == Collective::kSend ? other : peerId_;
    uint64_t pair[2] = {std::min(sender, receiver), std::max(sender, receiver)};
    uint64_t h = hash64(pair, sizeof(pair)) & 0x1fffffffu;
    tag = kInternalTagBit | kP2PTagBit | (uint64_t{sender < receiver} << 61) | (h << 32) |
          (tag & 0xffffffffu);
  }
  // Operations that finished without a pass since (a call that completed
  // at once, as at N=1) are freed here by the calling thread that allocated
  // them; left to the engine thread, every operation crossed threads and
  // glibc's per-thread caches missed on both sides. Not one by one, though:
  // this is before our data goes out, where every peer waits for it; the
  // first pass after our send (the caller's own, in a blocking loop) frees
  // the last call's operation while we wait for theirs.
  if (finished_.size() >= kReapBacklog) reapFinished();
  OpKey key{tag, nextSeq_[tag]++};
  // A freed operation, its result and its map node are taken up again
  // (reapFinished keeps a few): each was an allocation before our data went
  // out.
  std::shared_ptr<OpResult> r;
  if (spareResult_) {
    r = std::move(spareResult_);
    r->finished.store(false, std::memory_order_relaxed);
    r->status = Status::ok();
    r->info = OpInfo{};
  } else {
    r = std::make_shared<OpResult>();
  }
  std::unique_ptr<Op> owned;
  if (!spareOps_.empty()) {
    owned = std::move(spareOps_.back());
    spareOps_.pop_back();
    owned->reset(key, args, r);
  } else {
    owned = std::make_unique<Op>(*this, key, args, r);
  }
  Op* op = owned.get();
  // Ranks shift when the view changes; the root (or partner) is the peer
  // that held that rank when the call was made.
  if (rerunNamed)
    op->rootPeer = (*rerunNamed)[static_cast<size_t>(args.root)];
  else if (rooted || p2p)
    op->rootPeer = committed_.members[args.root].peerId;
  if (!rerunViews_.empty()) rerunViews_.erase(key);  // after rerunNamed's last use
  // The timeout starts at the first pass that reads the clock, microseconds
  // from now (a blocking call's first pass; the engine's for an
  // asynchronous one): a clock read here delayed every small call's data.
  op->timed = cfg_.opTimeoutMs < 0;  // never times out
  op->deadline = Deadline::never();
  if (!spareNodes_.empty()) {
    auto node = std::move(spareNodes_.back());
    spareNodes_.pop_back();
    node.key() = key;
    node.mapped() = std::move(owned);
    ops_.insert(std::move(node));
  } else {
    ops_.emplace(key, std::move(owned));
  }
  auto failed = failedKeys_.find(key);
  if (failed != failedKeys_.end()) {
    failedKeys_.erase(failed);
    op->peers_.resize(committed_.size());
    finishOp(op, aborted("a peer was lost before this operation started here " + key.toString() +
                         "; the other members failed it, so it fails here too; "
                         "retry in the new view (epoch " +
                         std::to_string(committed_.epoch) + ")"));
    return r;
  }
  if (proposal_) {
    op->state = OpState::kQueued;  // starts when the view change commits
  } else {
    startOp(op);
  }
  return r;
}

bool Communicator::trivial(const algo::CollectiveArgs& a) const {
  using algo::Collective;
  // Operations every member can skip alike (nothing to move anywhere).
  switch (a.collective) {
    case Collective::kBarrier:
    case Collective::kAllToAllv:
      return false;
    default:
      return a.count == 0;
  }
}

void Communicator::startOp(Op* op, bool othersMayNameRootInNewView) {
  op->epoch = committed_.epoch;
  op->rank_ = myRank_;
  op->peers_.clear();
  op->peers_.reserve(committed_.members.size());
  for (const Member& m : committed_.members) op->peers_.push_back(m.peerId);
  const int n = committed_.size();
  if (op->args.plannedEpoch != 0 && op->args.plannedEpoch != committed_.epoch) {
    finishOp(op, aborted("operation " + op->key.toString() + " was planned for epoch " +
                         std::to_string(op->args.plannedEpoch) + " but the view is now epoch " +
                         std::to_string(committed_.epoch) + "; retry in the new view"));
    return;
  }
  if (op->rootPeer) {
    int r = committed_.rankOf(op->rootPeer);
    const bool p2p = op->args.collective == algo::Collective::kSend ||
                     op->args.collective == algo::Collective::kRecv;
    // The root is the peer that held the given rank when the call was made.
    // A call made while the view was changing named it in the old view; a
    // member that called after the commit named the peer at that rank in
    // the new one (unless a re-run was decided: see onCommit). They agree
    // when that rank still holds the same peer; when it does not (the peer
    // left, or ranks shifted), members may run the call with different
    // roots. So it fails here, and the others are told (ABORT): a member
    // that started it with another root cannot finish without our DONE, and
    // would otherwise wait for its deadline.
    const bool shifted =
        othersMayNameRootInNewView && !p2p && op->args.rootPeerId == 0 && r != op->args.root;
    if (r < 0 || shifted) {
      Status st =
          aborted(std::string(p2p ? "the partner" : "the root") + " (peer " +
                  std::to_string(op->rootPeer) + ") of operation " + op->key.toString() +
                  (r < 0 ? " left the view"
                         : " moved from rank " + std::to_string(op->args.root) + " to rank " +
                               std::to_string(r) + " while the call was made") +
                  " (now epoch " + std::to_string(committed_.epoch) + "); retry in the new view");
      if (p2p)
        finishOp(op, st);  // the partner is the only other member involved
      else
        abortOpEverywhere(op, st);
      return;
    }
    op->args.root = r;
  }
  const size_t bytes = op->args.messageBytes(n);
  if (lastSelection_.bytes != bytes || lastSelection_.collective != op->args.collective) {
    lastSelection_ = {op->args.collective, bytes,
                      selector_.select(op->args.collective, bytes, costInputs_)};
  }
  op->algo = lastSelection_.algo;
  op->doneFrom.assign(n, 0);
  op->donesReceived = 0;
  op->donesExpected = 0;
  op->doneSent = false;
  op->sendsOutstanding = 0;
  op->awaitingResult = false;
  op->completedByResult = false;
  op->attempts += 1;
  op->state = OpState::kRunning;
  if (!op->algo) {
    finishOp(op, unimplemented(std::string("no algorithm for ") +
                               algo::collectiveName(op->args.collective)));
    return;
  }
  op->desc = makeDescriptor(op->args, op->algo->id);
  if (trivial(op->args)) {
    finishOp(op, Status::ok());
    return;
  }
  op->task = op->algo->factory(op->args, *op);
  for (int r = 0; r < n; ++r)
    if (r != myRank_ && op->task->involves(r)) ++op->donesExpected;
  // Frames the start writes at once (postData) are reported sent here, not
  // at the next pass: an operation whose inputs were already here (a peer
  // ahead of us) then finishes in this call, and its lazy DONE can ride in
  // the next call's data instead of going out on its own at that pass.
  collectWrittenEarly_ = true;
  Status st = op->task->start();
  if (st.isOk()) deliverUnexpected(op);
  collectWrittenEarly_ = false;
  for (transport::Connection* c : writtenEarly_) c->reportWritten();
  writtenEarly_.clear();
  if (!st.isOk()) {
    finishOp(op, st);
    return;
  }
  checkOp(op);
}

void Communicator::postData(Op& op, int toRank, uint32_t block, const void* data, size_t bytes) {
  if (op.state != OpState::kRunning) return;  // frozen but receiving: sends nothing
  if (faultStopRank_ >= 0 && op.rank_ == faultStopRank_ && op.key.seq == faultStopSeq_) {
    faultStopRank_ = -1;
    LOG_WARN("fault injection: stopping (SIGSTOP) in operation " << op.key.toString()
                                                                 << " before its first data frame");
    ::raise(SIGSTOP);
    if (faultStopResumeDelayMs_ > 0) {
      LOG_WARN("fault injection: resumed; the caller goes on in " << faultStopResumeDelayMs_
                                                                  << " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(faultStopResumeDelayMs_));
    }
  }
  auto it = links_.find(op.peers_[toRank]);
  if (it == links_.end() || it->second.streams.empty()) return;  // link lost: view change pending
  PeerLink& link = it->second;
  frame::Header h = opHeader(frame::Type::kData, op.key, op.desc, op.epoch);
  h.length = static_cast<uint32_t>(bytes);
  h.block = block;
  if (link.streams.size() > 1 || link.relinking) {
    stripeOf(link).push({h, data, &op});
    ++op.sendsOutstanding;
    op.bytesSent += bytes;
    pumpStripe(link);
    return;
  }
  transport::Connection* conn = link.streams[0].get();
  if (!conn || !conn->isOpen()) return;
  uint64_t cookie = 0;
  if (!link.lazyDones.empty()) {
    // The DONE of the call just before this one on the same tag, with the
    // same shape, rides in this frame's header; others go out first, in the
    // same write.
    const frame::Header& d = link.lazyDones.front();
    if (link.lazyDones.size() == 1 && conn->deliversWhatItWrote() && d.tag == h.tag &&
        d.seq + 1 == h.seq && d.epoch == h.epoch && d.desc == h.desc) {
      h.flags |= frame::kFlagAfterDone;
      cookie = it->first;
      op.foldedDones.emplace_back(it->first, d);
      link.lazyDones.clear();
    } else {
      flushLazyDones(link);
    }
  }
  conn->postSend(h, data, &op, cookie);
  ++op.sendsOutstanding;
  op.bytesSent += bytes;
  // Out now where that is a copy into shared memory: every peer waits for
  // this frame, and what this call still does before its first pass
  // (registering the operation, the unexpected frames, the lock hand-over)
  // then overlaps with the frame's way to them. The link is polled on every
  // pass, which reports the send.
  if (conn->writeQueuedNow() && collectWrittenEarly_ &&
      std::find(writtenEarly_.begin(), writtenEarly_.end(), conn) == writtenEarly_.end())
    writtenEarly_.push_back(conn);
  if (!conn->needsPolling() || conn->hasPendingSends()) sendPending_.insert(conn);
  if (faultCrashRank_ >= 0 && op.rank_ == faultCrashRank_ && op.key.seq == faultCrashSeq_) {
    bool worked = false;
    for (int i = 0; i < 1000 && conn->isOpen() && conn->hasPendingSends(); ++i)
      progressConnection(conn, &worked);
    LOG_WARN("fault injection: exiting in operation " << op.key.toString()
                                                      << " after its first data frame");
    ::_exit(137);
  }
}

transport::Connection* Communicator::controlStream(PeerLink& link) {
  for (auto& c : link.streams)
    if (c && c->isOpen()) return c.get();
  return nullptr;
}

bool Communicator::postControl(PeerLink& link, const frame::Header& h, const void* payload) {
  if (transport::Connection* c = controlStream(link)) {
    if (h.length == 0)
      c->postSend(h, nullptr, nullptr, 0);  // no copy to make (a DONE on every operation)
    else
      c->postSendCopy(h, payload);
    sendPending_.insert(c);
    return true;
  }
  if (!link.relinking) return false;
  const char* p = static_cast<const char*>(payload);
  link.heldControl.emplace_back(h, p ? std::string(p, h.length) : std::string());
  return true;
}

StripeScheduler& Communicator::stripeOf(PeerLink& link) {
  if (!link.stripe) {
    anyStripe_ = true;
    link.stripe = std::make_unique<StripeScheduler>(static_cast<int>(link.streams.size()),
                                                    cfg_.adaptiveStreams, segmentBytes_);
  }
  return *link.stripe;
}

void Communicator::pumpStripe(PeerLink& link) {
  link.stripe->pump(link.streams, [this](transport::Connection* c) { sendPending_.insert(c); });
  uint64_t sent = 0;
  for (auto& c : link.streams)
    if (c) sent += c->bytesSent();
  uint32_t rtt = 0;
  transport::Connection* control = controlStream(link);
  auto rttUs = [&] { return rtt = control ? control->rttUs() : 0; };
  if (link.stripe->observe(Clock::now(), sent, rttUs) && control)
    LOG_INFO("striping to peer " << control->peerId() << ": " << link.stripe->active() << " of "
                                 << link.stripe->poolSize() << " streams (last window "
                                 << link.stripe->lastRate() / 1e6 << " MB/s, rtt " << rtt / 1000
                                 << " ms)");
}

bool Communicator::mayFinishWithoutAgreement(const Op& op) {
  // Small operations only, where the DONE's extra one-way trip (a whole
  // round of them, with more members) is a large part of the time; only
  // collectives where each member's result needs every other's input, so
  // finishing proves every member called the operation; and only over
  // shared memory, which delivers what was written while the reader lives
  // (a TCP stream may break with frames in flight).
  //
  // Two members: if one dies the other is the sole survivor, so any
  // outcome is uniform. Both alive through a view change is the one case
  // to cover: a member that returned success reports it (OpReport::
  // succeeded), and the other, if it froze the operation partial, completes
  // it from frames this one had written before finishing.
  //
  // More members: a survivor may also lack the input of a member that died
  // after writing to us but before writing to it. Our result then exists
  // only here, so it needs the same value everywhere: all-reduce,
  // all-gather and barrier (not reduce-scatter or all-to-all, whose result
  // differs per member), and we keep a copy of it until every member
  // confirmed; a member left partial gets it in a RESULT frame after the
  // commit that decides success.
  constexpr size_t kMaxBytes = size_t{64} << 10;
  const int n = op.size();
  if (n < 2) return false;
  switch (op.args.collective) {
    case algo::Collective::kAllReduce:
    case algo::Collective::kAllGather:
    case algo::Collective::kBarrier:
      break;
    case algo::Collective::kReduceScatter:
    case algo::Collective::kAllToAll:
      if (n == 2) break;
      return false;
    default:
      return false;
  }
  if (op.args.messageBytes(n) > kMaxBytes) return false;
  for (int r = 0; r < n; ++r) {
    if (r == op.rank_) continue;
    auto it = links_.find(op.peers_[r]);
    if (it == links_.end() || it->second.streams.size() != 1) return false;
    const transport::Connection* c = it->second.streams[0].get();
    if (!c || !c->isOpen() || !c->deliversWhatItWrote()) return false;
  }
  return true;
}

size_t Communicator::resultBytes(const Op& op) {
  switch (op.args.collective) {
    case algo::Collective::kAllReduce:
    case algo::Collective::kAllGather:
      return op.args.messageBytes(op.size());
    default:
      return 0;  // barrier
  }
}

void Communicator::checkOp(Op* op) {
  if (op->state != OpState::kRunning || !op->task) return;
  if (!op->completedByResult && !op->task->haveAll()) return;
  const int n = op->size();
  if (cfg_.uniformOutcome && n > 1) {
    if (!op->doneSent) {
      op->doneSent = true;
      // Completed by a RESULT: the operation was decided successful; it
      // waits for nobody, and says so at once (others keep copies for it).
      // Finishing alone also needs the coordinator's recent word (the
      // lease): a member stopped long enough to be removed may find every
      // input in its rings when it runs again, yet the others, who removed
      // it, failed the call without its input.
      op->agreementFree = op->completedByResult || (mayFinishWithoutAgreement(*op) && client_ &&
                                                    client_->holdsLease(passClock()));
      const frame::Header h = opHeader(frame::Type::kDone, op->key, op->desc, op->epoch);
      for (int r = 0; r < n; ++r) {
        if (r == op->rank_ || !op->task->involves(r)) continue;
        auto it = links_.find(op->peers_[r]);
        if (it == links_.end()) continue;
        if (op->agreementFree && !op->completedByResult) {
          it->second.lazyDones.push_back(h);
          lazyDonesQueued_ = true;
        } else {
          postControl(it->second, h, nullptr);
        }
      }
    }
    if (op->donesReceived < op->donesExpected) {
      if (!op->agreementFree || op->sendsOutstanding > 0) return;
      rememberUnconfirmed(*op);
    }
  }
  if (op->sendsOutstanding > 0) return;
  finishOp(op, Status::ok());
}

void Communicator::finishOp(Op* op, Status st) {
  if (op->state == OpState::kFinished) return;
  forgetSends(op);
  OpInfo& info = op->result->info;
  info.contributors = static_cast<int>(op->peers_.size());
  info.attempts = op->attempts;
  info.epoch = op->epoch;
  info.bytesSent = op->bytesSent;
  info.bytesReceived = op->bytesReceived;
  info.algorithm = op->algo ? op->algo->name : "";
  op->result->status = std::move(st);
  op->state = OpState::kFinished;
  auto it = ops_.find(op->key);
  if (it != ops_.end() && it->second.get() == op) {
    auto node = ops_.extract(it);
    finished_.push_back(std::move(node.mapped()));
    if (spareNodes_.size() < kSpareOps) spareNodes_.push_back(std::move(node));
  }
  // The operation itself is freed a pass later (reapFinished); large
  // scratch goes back now, for the next call to take instead of allocating
  // another. Nothing refers to it any more: forgetSends() above cancelled
  // this operation's sends and detached its receives.
  if (op->scratchBuf.cap > kKeepScratchUntilReap) releaseScratch(op);
  op->result->finished.store(true, std::memory_order_release);
}

void Communicator::forgetSends(Op* op, bool keepReceives) {
  // DONEs riding in frames about to be cancelled go on their own (a frame
  // cancelled after its header went out delivers it twice: harmless).
  for (auto& [peer, done] : op->foldedDones) {
    auto it = links_.find(peer);
    if (it != links_.end()) postControl(it->second, done, nullptr);
  }
  op->foldedDones.clear();
  for (auto& [id, link] : links_) {
    if (link.stripe) link.stripe->cancel(op);
    for (auto& c : link.streams)
      if (c) {
        c->cancelSends(op);
        if (!keepReceives) c->detachReceives(op);
      }
    for (auto& [s, c] : link.lost) c->cancelSends(op);
  }
}

void Communicator::failAllOps(const Status& st) {
  std::vector<Op*> all;
  for (auto& [k, op] : ops_) all.push_back(op.get());
  for (Op* op : all) finishOp(op, st);
}

void Communicator::reapFinished(size_t upTo) {
  upTo = std::min(upTo, finished_.size());
  if (upTo == 0) return;
  for (size_t i = 0; i < upTo; ++i) {
    std::unique_ptr<Op>& op = finished_[i];
    freeUnexpected(op->key);
    if (spareOps_.size() >= kSpareOps) continue;  // freed below
    // Only this operation holds its result (no caller or request does):
    // the next call may take it up.
    if (!spareResult_ && op->result.use_count() == 1) spareResult_ = std::move(op->result);
    op->result.reset();
    op->task.reset();
    if (op->scratchBuf.cap > kKeepScratchUntilReap) releaseScratch(op.get());
    spareOps_.push_back(std::move(op));
  }
  finished_.erase(finished_.begin(), finished_.begin() + static_cast<long>(upTo));
}

Op* Communicator::findOp(const OpKey& key) {
  auto it = ops_.find(key);
  return it == ops_.end() ? nullptr : it->second.get();
}

bool Communicator::keyFinished(const OpKey& key) const {
  auto it = nextSeq_.find(key.tag);
  uint64_t next = it == nextSeq_.end() ? 0 : it->second;
  return key.seq < next && ops_.find(key) == ops_.end();
}

void Communicator::freeUnexpected(const OpKey& key) {
  auto it = unexpected_.find(key);
  if (it == unexpected_.end()) return;
  for (auto& u : it->second) {
    for (auto& [id, link] : links_)
      for (auto& c : link.streams)
        if (c) c->detachReceives(u.get());
    unexpectedBytes_ -= u->size;
  }
  unexpected_.erase(it);
}

void Communicator::dropUnexpectedBefore(uint64_t epoch) {
  for (auto it = unexpected_.begin(); it != unexpected_.end();) {
    auto& vec = it->second;
    for (size_t i = 0; i < vec.size();) {
      if (vec[i]->h.epoch < epoch) {
        for (auto& [id, link] : links_)
          for (auto& c : link.streams)
            if (c) c->detachReceives(vec[i].get());
        unexpectedBytes_ -= vec[i]->size;
        vec.erase(vec.begin() + i);
      } else {
        ++i;
      }
    }
    it = vec.empty() ? unexpected_.erase(it) : std::next(it);
  }
}

bool Communicator::deliverData(Op* op, uint64_t fromPeer, const frame::Header& h,
                               const uint8_t* payload) {
  int from = op->rankOf(fromPeer);
  if (from < 0) return true;
  if (h.desc != op->desc) {
    abortOpEverywhere(
        op, failedPrecondition("peers disagree on operation " + op->key.toString() +
                               ": this peer (rank " + std::to_string(op->rank_) + ") called " +
                               describeDescriptor(op->desc) + ", rank " + std::to_string(from) +
                               " called " + describeDescriptor(h.desc)));
    return false;
  }
  auto target = op->task->recvTarget(from, h.block, h.length);
  if (!target.isOk()) {
    abortOpEverywhere(op, target.status());
    return false;
  }
  if (h.length) std::memcpy(target.value(), payload, h.length);
  op->bytesReceived += h.length;
  Status st = op->task->onRecv(from, h.block);
  if (!st.isOk()) {
    abortOpEverywhere(op, st);
    return false;
  }
  checkOp(op);
  return true;
}

void Communicator::flushLazyDones(PeerLink& link) {
  for (const frame::Header& h : link.lazyDones) postControl(link, h, nullptr);
  link.lazyDones.clear();
}

bool Communicator::eraseUnconfirmed(const OpKey& key) {
  for (size_t i = 0; i < unconfirmed_.size(); ++i)
    if (unconfirmed_[i].key == key) {
      unconfirmed_.erase(unconfirmed_.begin() + static_cast<long>(i));
      return true;
    }
  return false;
}

void Communicator::confirmUnconfirmed(const OpKey& key, uint64_t peerId) {
  for (size_t i = 0; i < unconfirmed_.size(); ++i) {
    Unconfirmed& u = unconfirmed_[i];
    if (u.key != key) continue;
    u.awaiting.erase(std::remove(u.awaiting.begin(), u.awaiting.end(), peerId), u.awaiting.end());
    if (u.awaiting.empty()) unconfirmed_.erase(unconfirmed_.begin() + static_cast<long>(i));
    return;
  }
}

void Communicator::rememberUnconfirmed(const Op& op) {
  Unconfirmed u;
  u.key = op.key;
  u.desc = op.desc;
  for (int r = 0; r < op.size(); ++r)
    if (r != op.rank_ && !op.doneFrom[r] && op.task->involves(r) &&
        committed_.contains(op.peers_[r]))
      u.awaiting.push_back(op.peers_[r]);
  if (u.awaiting.empty()) return;
  u.keepsResult = op.size() > 2;
  if (u.keepsResult) {
    const auto* p = static_cast<const uint8_t*>(op.args.recvbuf);
    u.result.assign(p, p + resultBytes(op));
  }
  unconfirmed_.push_back(std::move(u));
}

frame::Header Communicator::opHeader(frame::Type type, const OpKey& key, uint64_t desc,
                                     uint64_t epoch) {
  frame::Header h;
  h.type = type;
  h.epoch = epoch;
  h.tag = key.tag;
  h.seq = key.seq;
  h.desc = desc;
  return h;
}

void Communicator::postToOthers(const Op& op, const frame::Header& h, const void* payload) {
  for (int r = 0; r < op.size(); ++r) {
    if (r == op.rank_) continue;
    auto it = links_.find(op.peers_[r]);
    if (it != links_.end()) postControl(it->second, h, payload);
  }
}

void Communicator::postDone(Op* op, uint64_t epoch) {
  postToOthers(*op, opHeader(frame::Type::kDone, op->key, op->desc, epoch), nullptr);
}

void Communicator::resendUnconfirmed(bool endsUpdate) {
  // A joint update starts from nothing in flight anywhere, and numbering
  // restarts: nothing left to confirm.
  if (endsUpdate) {
    unconfirmed_.clear();
    return;
  }
  for (size_t i = 0; i < unconfirmed_.size();) {
    Unconfirmed& u = unconfirmed_[i];
    // Two members: the other completed from our frames at this commit
    // (see completeDecidedSuccesses); nothing to keep.
    if (!u.keepsResult) {
      unconfirmed_.erase(unconfirmed_.begin() + static_cast<long>(i));
      continue;
    }
    u.awaiting.erase(std::remove_if(u.awaiting.begin(), u.awaiting.end(),
                                    [&](uint64_t id) { return !committed_.contains(id); }),
                     u.awaiting.end());
    if (u.awaiting.empty()) {
      unconfirmed_.erase(unconfirmed_.begin() + static_cast<long>(i));
      continue;
    }
    // Those that hold the result already answer with a DONE and drop it.
    frame::Header h = opHeader(frame::Type::kResult, u.key, u.desc, committed_.epoch);
    h.length = static_cast<uint32_t>(u.result.size());
    for (uint64_t id : u.awaiting) {
      auto it = links_.find(id);
      if (it != links_.end()) postControl(it->second, h, u.result.data());
    }
    ++i;
  }
}

void Communicator::onDone(Op* op, uint64_t fromPeer) {
  int r = op->rankOf(fromPeer);
  if (r < 0 || op->doneFrom[r] || !op->task || !op->task->involves(r)) return;
  op->doneFrom[r] = 1;
  ++op->donesReceived;
  checkOp(op);
}

void Communicator::deliverUnexpected(Op* op) {
  auto it = unexpected_.find(op->key);
  if (it == unexpected_.end()) return;
  // Take the entries out first: delivering may finish the operation.
  auto entries = std::move(it->second);
  unexpected_.erase(it);
  std::vector<std::unique_ptr<Unexpected>> keep;
  for (auto& u : entries) {
    bool usable = op->state == OpState::kRunning && u->complete && u->h.epoch == op->epoch;
    if (!usable) {
      if (u->h.epoch > op->epoch || !u->complete) {
        keep.push_back(std::move(u));  // a later epoch's, or still arriving
      } else {
        unexpectedBytes_ -= u->size;
      }
      continue;
    }
    unexpectedBytes_ -= u->size;
    switch (u->h.type) {
      case frame::Type::kData:
        deliverData(op, u->peerId, u->h, u->data());
        break;
      case frame::Type::kDone:
        onDone(op, u->peerId);
        break;
      case frame::Type::kResult:
        if (op->awaitingResult && u->size == resultBytes(*op) && u->h.desc == op->desc) {
          if (u->size) std::memcpy(op->args.recvbuf, u->data(), u->size);
          onResult(op);
        }
        break;
      case frame::Type::kAbort:
        finishOp(op, Status(static_cast<Code>(u->h.block),
                            std::string(reinterpret_cast<const char*>(u->data()), u->size)));
        break;
      default:
        break;
    }
  }
  if (!keep.empty()) {
    auto& slot = unexpected_[op->key];
    for (auto& u : keep) slot.push_back(std::move(u));
  }
}

void Communicator::abortOpEverywhere(Op* op, const Status& st) {
  // Tell the other members so they fail the same operation instead of
  // waiting for its deadline.
  std::string msg = st.message().substr(0, kMaxAbortMessage);
  frame::Header h = opHeader(frame::Type::kAbort, op->key, op->desc, op->epoch);
  h.length = static_cast<uint32_t>(msg.size());
  h.block = static_cast<uint32_t>(st.code());
  postToOthers(*op, h, msg.data());
  LOG_WARN("operation " << op->key.toString() << " failed: " << st.toString());
  finishOp(op, st);
}

// ---------------------------------------------------------------------------
// Frames (engine lock held; called from Connection::progress)
// ---------------------------------------------------------------------------

// A frame for an operation this peer has, but not running in the frame's
// epoch: kept for the operation's (re)start when the sender is ahead (it
// committed a view change this peer has not applied yet, and restarted the
// operation there) or the operation waits, queued, for that view. DONE and
// ABORT frames follow the same rule as data: a sender that restarted a
// broadcast as its root confirms at once, and a confirmation dropped here
// left this peer waiting for it until the deadline.
bool Communicator::keepForRestart(const Op& op, uint64_t frameEpoch) {
  return frameEpoch > op.epoch || (frameEpoch == op.epoch && op.state == OpState::kQueued);
}

transport::RecvTarget Communicator::onHeader(transport::Connection& c, const frame::Header& h) {
  switch (h.type) {
    case frame::Type::kData: {
      if ((h.flags & frame::kFlagAfterDone) && h.seq > 0) {
        // The DONE of the call before this one, as its own frame would be.
        frame::Header done = opHeader(frame::Type::kDone, OpKey{h.tag, h.seq - 1}, h.desc, h.epoch);
        onFrame(c, done, transport::RecvTarget{});
      }
      if (h.epoch < committed_.epoch) return {};  // stale epoch
      OpKey key{h.tag, h.seq};
      Op* op = findOp(key);
      if (op && op->epoch == h.epoch &&
          (op->state == OpState::kRunning ||
           (op->state == OpState::kFrozen && op->receivesWhileFrozen))) {
        int from = op->rankOf(c.peerId());
        if (from < 0) return {};
        if (h.desc != op->desc) {
          abortOpEverywhere(
              op, failedPrecondition(
                      "peers disagree on operation " + key.toString() + ": this peer (rank " +
                      std::to_string(op->rank_) + ") called " + describeDescriptor(op->desc) +
                      ", rank " + std::to_string(from) + " called " + describeDescriptor(h.desc)));
          return {};
        }
        auto target = op->task->recvTarget(from, h.block, h.length);
        if (!target.isOk()) {
          abortOpEverywhere(op, target.status());
          return {};
        }
        transport::RecvTarget t{target.value(), op};
        if (c.canReduceOnArrival() && !op->task->arrivalReduction(from, h.block, &t.reduce))
          t.reduce = {};
        return t;
      }
      if (op && !keepForRestart(*op, h.epoch)) return {};  // frozen or stale
      // Only frames of the current epoch can belong to a finished call; a
      // later epoch's may arrive before this peer processed that epoch's
      // commit (which may restart the numbering).
      if (!op && h.epoch == committed_.epoch && keyFinished(key)) return {};
      if (unexpectedBytes_ + h.length > kMaxUnexpectedBytes) {
        LOG_ERROR("dropping a frame: more than " << (kMaxUnexpectedBytes >> 20)
                                                 << " MiB arrived for operations not started here");
        if (asyncErr_.isOk())
          asyncErr_ = resourceExhausted("too much data arrived for operations not started here");
        return {};
      }
      auto u = std::make_unique<Unexpected>(&earlyBuffers_);
      u->h = h;
      u->peerId = c.peerId();
      u->allocate(h.length);
      unexpectedBytes_ += h.length;
      transport::RecvTarget t{u->data(), u.get()};
      unexpected_[key].push_back(std::move(u));
      return t;
    }
    case frame::Type::kAbort:
      if (h.length > kMaxAbortMessage) return {};
      abortBuf_.resize(h.length);
      return {abortBuf_.data(), &abortBuf_};
    case frame::Type::kResult:
      return resultTarget(c, h);
    default:
      return {};  // DONE and STREAM_LOST carry no payload; PING/PONG unused here
  }
}

void Communicator::onFrame(transport::Connection& c, const frame::Header& h,
                           const transport::RecvTarget& t) {
  OpKey key{h.tag, h.seq};
  switch (h.type) {
    case frame::Type::kData: {
      if (!t.ptr) return;
      Op* op = findOp(key);
      if (op && t.owner == op) {
        op->bytesReceived += h.length;
        const int from = op->rankOf(c.peerId());
        Status st =
            t.reduce.dst ? op->task->onReducedRecv(from, h.block) : op->task->onRecv(from, h.block);
        if (!st.isOk()) {
          abortOpEverywhere(op, st);
          return;
        }
        if (op->state == OpState::kFrozen && op->task->haveAll())
          LOG_INFO("operation " << key.toString()
                                << ": the last of its data arrived while the view changes");
        checkOp(op);
        return;
      }
      earlyFrameArrived(t, op, h);
      return;
    }
    case frame::Type::kDone: {
      Op* op = findOp(key);
      // From any epoch: the sender holds the result either way.
      if (!unconfirmed_.empty() && !op) confirmUnconfirmed(key, c.peerId());
      if (h.epoch < committed_.epoch) return;
      if (op && op->state == OpState::kRunning && op->epoch == h.epoch) {
        onDone(op, c.peerId());
      } else if (op ? keepForRestart(*op, h.epoch)
                    : h.epoch > committed_.epoch || !keyFinished(key)) {
        auto u = std::make_unique<Unexpected>(&earlyBuffers_);
        u->h = h;
        u->peerId = c.peerId();
        u->complete = true;
        unexpected_[key].push_back(std::move(u));
      }
      return;
    }
    case frame::Type::kAbort: {
      if (!t.ptr) return;
      std::string msg = "peer " + std::to_string(c.peerId()) +
                        " failed the operation: " + std::string(abortBuf_.begin(), abortBuf_.end());
      Code code = static_cast<Code>(h.block);
      if (h.block == 0 || h.block > static_cast<uint32_t>(Code::kInProgress))
        code = Code::kInternal;
      Op* op = findOp(key);
      if (!op && eraseUnconfirmed(key))
        // Only if it missed the deadline with our frames in its ring.
        LOG_ERROR("operation " << key.toString() << " returned success here, but peer "
                               << c.peerId() << " failed it: " << msg);
      if (op && op->state == OpState::kRunning && op->epoch == h.epoch) {
        finishOp(op, Status(code, msg));
      } else if (op ? keepForRestart(*op, h.epoch)
                    : h.epoch > committed_.epoch || !keyFinished(key)) {
        auto u = std::make_unique<Unexpected>(&earlyBuffers_);
        u->h = h;
        u->h.block = static_cast<uint32_t>(code);
        u->peerId = c.peerId();
        u->assign(msg);
        u->complete = true;
        unexpectedBytes_ += u->size;
        unexpected_[key].push_back(std::move(u));
      }
      return;
    }
    case frame::Type::kStreamLost:
      onStreamLost(c, h);
      return;
    case frame::Type::kResult: {
      if (!t.owner) return;
      Op* op = findOp(key);
      if (op && t.owner == op) {
        onResult(op);
        return;
      }
      earlyFrameArrived(t, op, h);
      return;
    }
    default:
      return;
  }
}

void Communicator::earlyFrameArrived(const transport::RecvTarget& t, Op* op,
                                     const frame::Header& h) {
  static_cast<Unexpected*>(const_cast<void*>(t.owner))->complete = true;
  if (op && op->state == OpState::kRunning && op->epoch == h.epoch) deliverUnexpected(op);
}

transport::RecvTarget Communicator::resultTarget(transport::Connection& c, const frame::Header& h) {
  OpKey key{h.tag, h.seq};
  Op* op = findOp(key);
  if (!op) {
    // Finished here (from its frames, or an earlier RESULT): the sender
    // still keeps its copy for us. Tell it we hold the result.
    if (keyFinished(key)) {
      auto it = links_.find(c.peerId());
      if (it != links_.end())
        postControl(it->second, opHeader(frame::Type::kDone, key, h.desc, committed_.epoch),
                    nullptr);
    }
    return {};
  }
  if (h.desc != op->desc || h.length != resultBytes(*op)) {
    LOG_WARN("ignoring a result for operation " << key.toString() << " from peer " << c.peerId()
                                                << ": it does not match the call made here");
    return {};
  }
  if (op->state == OpState::kRunning && op->awaitingResult && op->epoch == h.epoch) {
    // Zero bytes (a barrier) still needs a non-null target to be taken.
    static uint8_t none;
    return {h.length ? static_cast<uint8_t*>(op->args.recvbuf) : &none, op};
  }
  // The sender applied the commit before we did: keep it for then.
  if (!keepForRestart(*op, h.epoch)) return {};
  auto u = std::make_unique<Unexpected>(&earlyBuffers_);
  u->h = h;
  u->peerId = c.peerId();
  u->allocate(h.length);
  unexpectedBytes_ += h.length;
  transport::RecvTarget t{u->data() ? u->data() : nullptr, u.get()};
  unexpected_[key].push_back(std::move(u));
  return t;
}

void Communicator::onResult(Op* op) {
  if (!op->awaitingResult) return;
  op->awaitingResult = false;
  op->completedByResult = true;
  LOG_INFO("operation " << op->key.toString()
                        << " completed from another member's result: the input of a member "
                           "that left never arrived here");
  checkOp(op);
}

// ---------------------------------------------------------------------------
// Progress (engine lock held)
// ---------------------------------------------------------------------------

void Communicator::progressConnection(transport::Connection* c, bool* worked) {
  auto r = c->progress(*this);
  if (!r.isOk()) {
    onConnectionBroken(c, r.status());
    return;
  }
  if (r->didWork) *worked = true;
  if (anyStripe_ && c->isOpen()) {
    auto it = links_.find(c->peerId());
    if (it != links_.end() && it->second.stripe && !it->second.stripe->empty() &&
        c->queuedSendBytes() < segmentBytes_)
      pumpStripe(it->second);
  }
  if (c->isOpen() && c->hasPendingSends())
    sendPending_.insert(c);
  else
    sendPending_.erase(c);
  // A full socket is left to epoll (EPOLLOUT) instead of being retried on
  // every pass: on a WAN pool most retries failed (89% of sendmsg calls
  // returned EAGAIN), each a system call taken from the delay line and the
  // reductions. The interest follows the state, so a writable socket with
  // nothing blocked does not wake every pass either.
  if (c->isOpen() && !c->needsPolling()) engine_.setWriteInterest(c->fd(), c->writeBlocked());
  if (c->isOpen() && c->hasBufferedInput())
    inputBuffered_.insert(c);
  else
    inputBuffered_.erase(c);
  // A shared-memory link whose set-up settled on TCP: epoll tells from now on.
  if (!c->needsPolling()) polled_.erase(c);
}

template <typename Set>
void Communicator::progressEach(const Set& set, bool* worked, bool skipWriteBlocked) {
  // A connection's progress may take others out of the set, so iterate a
  // snapshot and skip those gone. The snapshot reuses one vector: this runs
  // on every spin of a waiting caller, where an allocation per pass showed
  // up as the most frequent malloc of a small all-reduce.
  if (set.empty()) return;
  passScratch_.assign(set.begin(), set.end());
  for (transport::Connection* c : passScratch_)
    if (set.count(c) && !(skipWriteBlocked && c->writeBlocked())) progressConnection(c, worked);
}

bool Communicator::progressPass(const int* readyFds, int nReady, bool spinning, int64_t nowNs) {
  bool worked = false;
  passNowNs_ = nowNs;
  // Operations this pass finishes are freed by a later one: the pass that
  // completes a call is on the way back to its caller (see submit()).
  const size_t reapable = finished_.size();
  if (lazyDonesQueued_) {
    lazyDonesQueued_ = false;
    for (auto& [id, link] : links_)
      if (!link.lazyDones.empty()) flushLazyDones(link);
  }
  if (inboxFlag_.load(std::memory_order_acquire)) {
    processInbox();
    worked = true;
  }
  if (!heldEvents_.empty()) releaseHeldEvents();
  for (int i = 0; i < nReady; ++i) {
    auto it = byFd_.find(readyFds[i]);
    if (it != byFd_.end()) progressConnection(it->second, &worked);
  }
  progressEach(polled_, &worked);
  progressEach(sendPending_, &worked, /*skipWriteBlocked=*/true);
  progressEach(inputBuffered_, &worked);
  // Deadlines, stalls and the spin policy are coarse (milliseconds): a
  // spinning caller runs a pass every few hundred ns, so its passes read the
  // clock one in 16 (a read is 28 ns on this VM, several per pass before).
  TimePoint now{};
  if (!ops_.empty() && (!spinning || (++passCount_ & 15) == 0)) {
    now = spinning ? passClock() : Clock::now();
    std::vector<Op*> expired;
    for (auto& [k, op] : ops_) {
      // Timed from the first pass that reads the clock (see submit()).
      if (!op->timed) {
        op->timed = true;
        op->deadline = Deadline(now + std::chrono::milliseconds(cfg_.opTimeoutMs));
      }
      if (op->deadline.at() <= now) expired.push_back(op.get());
    }
    for (Op* op : expired) {
      std::string what = "operation " + op->key.toString() + " did not complete within " +
                         std::to_string(cfg_.opTimeoutMs) + " ms";
      if (op->state == OpState::kQueued || op->state == OpState::kFrozen) {
        what += " (a view change did not finish: is the coordinator reachable?)";
      } else if (op->task && op->task->haveAll()) {
        std::vector<uint64_t> missing;
        for (int r = 0; r < op->size(); ++r)
          if (r != op->rank_ && op->task->involves(r) && !op->doneFrom[r])
            missing.push_back(static_cast<uint64_t>(r));
        if (!missing.empty())
          what += " (result complete here; waiting for ranks " + peerList(missing) + " to confirm)";
        else
          what += " (result complete and confirmed here; " + std::to_string(op->sendsOutstanding) +
                  " of its frames not yet sent)";
      } else {
        what += " (waiting for data: did every member call it with the same tag?)";
        // No DONE went out from here, so no member that waits for DONEs
        // can have finished it: tell them all, so they fail it too instead
        // of one finishing it with success later (a member that calls late
        // finds every input in its rings) or waiting for its own deadline.
        if (op->state == OpState::kRunning) {
          abortOpEverywhere(op, deadlineExceeded(what));
          continue;
        }
      }
      finishOp(op, deadlineExceeded(what));
    }
  }
  // Only while operations run: without them no data is in flight to stall
  // (and an idle pass reads no clock).
  const bool clockRead = now != TimePoint{};
  if (cfg_.streamStallMs > 0 && clockRead && now >= nextStallCheck_) checkStalls(now);
  if (cfg_.spinUs < 0 && clockRead && now >= nextSpinCheck_) updateSpinForLinks(now);
  if (relinking_ > 0) checkRelinks(Clock::now());
  maybeSendReady();
  reapFinished(reapable);
  graveyard_.clear();
  passNowNs_ = 0;
  return worked;
}

void Communicator::updateSpinForLinks(TimePoint now) {
  nextSpinCheck_ = now + std::chrono::milliseconds(250);
  std::vector<uint32_t> rtts;
  bool polled = false;
  for (auto& [peer, link] : links_)
    for (auto& c : link.streams) {
      if (!c || !c->isOpen()) continue;
      if (c->needsPolling())
        polled = true;
      else
        rtts.push_back(c->rttUs());
    }
  bool off = !spinPaysOff(rtts, polled);
  if (off == spinOff_) return;
  spinOff_ = off;
  // Off: no spinning and no adaptive boost (a stream of packets a few
  // hundred us apart kept the boost on, a 1 ms spin after every one).
  if (off)
    engine_.setSpinPolicy(0, false, /*adaptive=*/false);
  else
    engine_.setSpinPolicy(viewSpinUs_, viewYield_, /*adaptive=*/true);
  LOG_INFO("progress: " << (off ? "no spinning, every link's round trip is 1 ms or more"
                                : "spinning again, a link answers within 1 ms"));
}

void Communicator::checkStalls(TimePoint now) {
  using std::chrono::milliseconds;
  nextStallCheck_ = now + milliseconds(std::clamp(cfg_.streamStallMs / 4, 20, 250));
  const auto bound = static_cast<uint32_t>(cfg_.streamStallMs);
  struct Stalled {
    uint64_t peer;
    size_t stream;
    uint32_t ms;
  };
  std::vector<Stalled> stalled;
  std::unordered_map<transport::Connection*, StallLook> seen;
  for (auto& [peer, link] : links_) {
    for (size_t s = 0; s < link.streams.size(); ++s) {
      transport::Connection* c = link.streams[s].get();
      if (!c || !c->isOpen()) continue;
      uint32_t ms = c->unackedForMs();
      if (ms < bound) continue;
      // Confirmed on a later look: a stream that starts sending after an
      // idle spell reads the whole spell until its first acknowledgement,
      // one round trip (or a delayed ACK) later. The later look must see
      // the same silence grown by the time between the looks: looks are
      // taken only while operations run, so a member that sleeps past the
      // bound between calls shows, on each call's first pass, a fresh
      // silence as long as its sleep, and two such looks are not a stall.
      StallLook look{now, ms};
      auto it = stallSeen_.find(c);
      if (it != stallSeen_.end()) {
        const auto between = std::chrono::duration_cast<milliseconds>(now - it->second.at);
        constexpr int64_t kSlackMs = 100;  // clock reads and jiffies
        if (int64_t{ms} + kSlackMs >= int64_t{it->second.ms} + between.count())
          look = it->second;  // the same silence, still going on
      }
      seen[c] = look;
      auto confirm = std::max<Clock::duration>(milliseconds(250),
                                               std::chrono::microseconds(2 * int64_t{c->rttUs()}));
      if (now - look.at >= confirm) stalled.push_back({peer, s, ms});
    }
  }
  stallSeen_.swap(seen);
  for (const Stalled& st : stalled) {
    // Handling one may have closed the whole link.
    auto it = links_.find(st.peer);
    if (it == links_.end() || st.stream >= it->second.streams.size()) continue;
    transport::Connection* c = it->second.streams[st.stream].get();
    if (!c || !c->isOpen()) continue;
    stallSeen_.erase(c);
    LOG_WARN(
        "data link to peer " << st.peer << " stream " << st.stream << ": nothing acknowledged for "
                             << st.ms
                             << " ms with data in flight (a dropped flow or an unreachable host)");
    onConnectionBroken(c, unavailable("stalled: no acknowledgement from the peer's host for " +
                                      std::to_string(st.ms) + " ms"));
  }
}

void Communicator::beforeSleep() {
  pollAgain_ = false;
  for (transport::Connection* c : polled_) pollAgain_ |= !c->prepareSleep();
  for (auto& [fd, c] : byFd_) engine_.setWriteInterest(fd, c->wantsWriteReadiness());
}

bool Communicator::wantsBackgroundProgress() {
  return !ops_.empty() || proposal_.has_value() || inboxFlag_.load() || !sendPending_.empty() ||
         !inputBuffered_.empty() || !heldEvents_.empty();
}

bool Communicator::needsReadyFds() {
  // Links that are polled every pass (shared memory) need epoll only for
  // wake-ups while sleeping and for the end of stream, which they also find
  // by reading their socket themselves. Every watched link is in byFd_; the
  // polled ones also in polled_ (a set-up that settles on TCP leaves it).
  return polled_.size() < byFd_.size();
}

Deadline Communicator::nextTimer() {
  // Shared-memory data, or TLS plaintext, already waiting.
  if (pollAgain_ || !inputBuffered_.empty()) return Deadline::afterMs(0);
  Deadline d = Deadline::never();
  for (auto& [k, op] : ops_) {
    if (!op->timed) return Deadline(TimePoint{});  // a pass at once sets its deadline
    d = Deadline::earliest(d, op->deadline);
  }
  if (!heldEvents_.empty()) d = Deadline::earliest(d, Deadline(heldEvents_.front().due));
  if (relinking_ > 0)
    for (auto& [peer, link] : links_)
      if (link.relinking) d = Deadline::earliest(d, Deadline(link.relinkBy));
  return d;
}

// ---------------------------------------------------------------------------
// Scratch pool
// ---------------------------------------------------------------------------

uint8_t* Communicator::acquireScratch(Op* op, size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (op->scratchBuf.mem) {
    if (op->scratchBuf.cap >= bytes) return op->scratchBuf.mem.get();
    releaseScratch(op);
  }
  int best = -1;
  for (size_t i = 0; i < scratchFree_.size(); ++i)
    if (scratchFree_[i].cap >= bytes && (best < 0 || scratchFree_[i].cap < scratchFree_[best].cap))
      best = static_cast<int>(i);
  ScratchBuf buf;
  if (best >= 0) {
    buf = std::move(scratchFree_[best]);
    scratchFree_.erase(scratchFree_.begin() + best);
  } else {
    buf.mem.reset(new uint8_t[bytes]);
    buf.cap = bytes;
  }
  op->scratchBuf = std::move(buf);
  return op->scratchBuf.mem.get();
}

void Communicator::releaseScratch(Op* op) {
  if (!op->scratchBuf.mem) return;
  scratchFree_.push_back(std::move(op->scratchBuf));
  op->scratchBuf = ScratchBuf{};
  // Keep the largest few buffers: steady-state loops then allocate nothing.
  if (scratchFree_.size() > kScratchPoolBuffers) {
    auto smallest =
        std::min_element(scratchFree_.begin(), scratchFree_.end(),
                         [](const ScratchBuf& a, const ScratchBuf& b) { return a.cap < b.cap; });
    scratchFree_.erase(smallest);
  }
}

// ---------------------------------------------------------------------------
// Membership (engine lock held unless noted)
// ---------------------------------------------------------------------------

void Communicator::onControlEvent(ControlEvent ev) {
  // Membership thread: only the inbox lock.
  {
    std::lock_guard<std::mutex> lk(inboxMu_);
    inbox_.push_back(std::move(ev));
    inboxFlag_.store(true, std::memory_order_release);
  }
  engine_.wake();
}

void Communicator::processInbox() {
  std::deque<ControlEvent> events;
  {
    std::lock_guard<std::mutex> lk(inboxMu_);
    events.swap(inbox_);
    inboxFlag_.store(false, std::memory_order_release);
  }
  if (faultCommitDelayMs_ == 0 && faultProposalDelayMs_ == 0 && faultRemovalDelayMs_ == 0 &&
      heldEvents_.empty()) {
    for (ControlEvent& ev : events) handleEvent(ev);
    return;
  }
  const TimePoint now = Clock::now();
  const bool thisRank =
      committed_.epoch > 0 &&
      (faultCommitDelayRanks_.empty() ||
       std::count(faultCommitDelayRanks_.begin(), faultCommitDelayRanks_.end(), myRank_) > 0);
  for (ControlEvent& ev : events) {
    int delayMs = 0;
    if (thisRank && ev.kind == ControlEvent::Kind::kCommit) delayMs = faultCommitDelayMs_;
    if (thisRank && ev.kind == ControlEvent::Kind::kProposal) delayMs = faultProposalDelayMs_;
    if (ev.kind == ControlEvent::Kind::kRemoved) delayMs = faultRemovalDelayMs_;
    heldEvents_.push_back({now + std::chrono::milliseconds(delayMs), delayMs > 0, std::move(ev)});
  }
  releaseHeldEvents();
}

void Communicator::releaseHeldEvents() {
  const TimePoint now = Clock::now();
  while (!heldEvents_.empty() && heldEvents_.front().due <= now) {
    ControlEvent ev = std::move(heldEvents_.front().ev);
    bool late = heldEvents_.front().late;
    heldEvents_.pop_front();
    if (late && ev.kind == ControlEvent::Kind::kCommit)
      LOG_WARN("fault injection: applying the commit of epoch "
               << ev.commit.epoch << " " << faultCommitDelayMs_ << " ms late");
    if (late && ev.kind == ControlEvent::Kind::kProposal)
      LOG_WARN("fault injection: taking the proposal of epoch "
               << ev.proposal.view.epoch << " " << faultProposalDelayMs_ << " ms late");
    if (late && ev.kind == ControlEvent::Kind::kRemoved)
      LOG_WARN("fault injection: taking the removal notice " << faultRemovalDelayMs_ << " ms late");
    handleEvent(ev);
  }
}

void Communicator::handleEvent(ControlEvent& ev) {
  switch (ev.kind) {
    case ControlEvent::Kind::kLinkUp:
      linkStatus_ = Status::ok();
      if (state_ == State::kMember) {
        // Re-registered (coordinator restarted or standby took over):
        // repeat the requests a fresh coordinator cannot know about.
        if (updateWaiting_ && !updateDone_) {
          control::UpdateRequest u{committed_.epoch, leaveAnnounced_};
          client_->send(control::Type::kUpdateRequest, u.encode());
        } else if (leaveAnnounced_) {
          control::EpochOnly e{committed_.epoch};
          client_->send(control::Type::kAnnounceLeave, e.encode());
        }
        if (proposal_ && readySent_) readySent_ = false;  // resend READY
      }
      break;
    case ControlEvent::Kind::kLinkDown:
      linkStatus_ = ev.status;
      LOG_INFO("coordinator link: " << ev.status.toString());
      break;
    case ControlEvent::Kind::kFatal:
      LOG_ERROR(ev.status.toString());
      fatal_ = ev.status;
      if (state_ == State::kMember) {
        asyncErr_ = ev.status;
        failAllOps(ev.status);
        state_ = State::kClosed;
      }
      break;
    case ControlEvent::Kind::kProposal:
      onProposal(ev.proposal);
      break;
    case ControlEvent::Kind::kCommit:
      onCommit(ev.commit);
      break;
    case ControlEvent::Kind::kUpdateNoChange:
      if (updateWaiting_) updateDone_ = true;
      if (client_) client_->resetPending();
      break;
    case ControlEvent::Kind::kRemoved:
      onRemoved(ev.text, updateWaiting_ && leaveAnnounced_);
      break;
    case ControlEvent::Kind::kDataLink:
      onDataLink(ev);
      break;
    case ControlEvent::Kind::kRedialRequest:
      onRedialRequest(ev.peerId, ev.stream, ev.generation);
      break;
    case ControlEvent::Kind::kDialFailed: {
      dialing_.erase(ev.peerId);
      LOG_WARN("could not open a data link to peer " << ev.peerId << ": " << ev.status.toString());
      auto it = links_.find(ev.peerId);
      if (it != links_.end() && it->second.relinking) {
        breakLink(ev.peerId, ev.status.withContext("dialling a lost stream again"));
        break;
      }
      if (proposal_ && proposal_->view.contains(ev.peerId) && client_) {
        control::Suspect s{proposal_->view.epoch, ev.peerId, ev.status.message()};
        client_->send(control::Type::kSuspect, s.encode());
      }
      break;
    }
  }
}

void Communicator::onProposal(const control::ViewProposal& p) {
  if (state_ != State::kConnecting && state_ != State::kMember) return;
  if (!p.view.contains(peerId_)) return;  // REMOVED follows
  if (p.view.epoch <= committed_.epoch) return;
  if (!frozen_) {
    // Frames that already arrived may finish operations (a peer that leaves
    // gracefully confirms its last receives just before it goes): read them
    // first, so the report is as complete as possible.
    progressEveryConnection();
    // Close the committed epoch: stop every operation's traffic and record
    // what each one holds. The coordinator decides their fate from all
    // members' reports.
    report_ = Report();
    report_.ofEpoch = committed_.epoch;
    for (auto& [key, op] : ops_) {
      if (op->state != OpState::kRunning) continue;
      // Striped frames waiting for a stream go too: a re-run resets the
      // operation's send count, which a late onSent would then corrupt.
      // One the other member may have finished already keeps receiving
      // until the decision (which may be success: see completeDecidedSuccesses).
      op->receivesWhileFrozen = cfg_.uniformOutcome && mayFinishWithoutAgreement(*op);
      forgetSends(op.get(), /*keepReceives=*/op->receivesWhileFrozen);
      op->state = OpState::kFrozen;
      OpReport rep;
      rep.tag = key.tag;
      rep.seq = key.seq;
      rep.haveAll = op->task && op->task->haveAll();
      // A send holds "everything" from the start; it is complete only once
      // the receiver said it has the data.
      if (op->args.collective == algo::Collective::kSend && cfg_.uniformOutcome)
        rep.haveAll = rep.haveAll && op->donesReceived >= op->donesExpected;
      rep.inputModified = op->task && op->task->inputModified();
      // Per-rank counts belong to the view they were planned in: never re-run
      // an all-to-all-v in another view (reported like a modified input, so
      // the decision is "fail" on every peer, including those that have not
      // called it yet).
      if (op->args.collective == algo::Collective::kAllToAllv) rep.inputModified = true;
      if (op->args.collective == algo::Collective::kSend ||
          op->args.collective == algo::Collective::kRecv)
        rep.partner = op->rootPeer;
      report_.ops.push_back(rep);
    }
    if (!unconfirmed_.empty())
      LOG_INFO("reporting " << unconfirmed_.size()
                            << " operation(s) that returned success here before the others "
                               "confirmed, the first "
                            << unconfirmed_.front().key.toString());
    for (const Unconfirmed& u : unconfirmed_) {
      OpReport rep;
      rep.tag = u.key.tag;
      rep.seq = u.key.seq;
      rep.haveAll = true;
      rep.succeeded = true;
      report_.ops.push_back(rep);
    }
    // Which calls were made here, so the coordinator can tell a member that
    // finished an operation from one that has not called it yet.
    for (const auto& [tag, next] : nextSeq_) report_.progress.push_back({tag, next});
    frozen_ = true;
    decisionsReceived_ = false;
  }
  reportForEpoch_ = p.view.epoch;
  proposal_ = p;
  readySent_ = false;
  LOG_INFO("view proposal epoch " << p.view.epoch << " (" << viewReasonName(p.reason) << ", "
                                  << p.view.size() << " members)");
  std::vector<uint64_t> gone;
  for (auto& [id, link] : links_)
    if (!p.view.contains(id)) gone.push_back(id);
  for (uint64_t id : gone) closeLink(id);
  for (const Member& m : p.view.members) {
    if (m.peerId == peerId_) continue;
    PeerLink& link = links_[m.peerId];
    // The lower peer id dials; the other side accepts.
    if (peerId_ < m.peerId && !link.complete() && !dialing_.count(m.peerId)) {
      link.expected = cfg_.connectionsPerPeer;
      if (link.streams.size() < static_cast<size_t>(link.expected))
        link.streams.resize(link.expected);
      client_->dial(m, cfg_.connectionsPerPeer, p.view.epoch,
                    Deadline::afterMs(cfg_.connectTimeoutMs));
      dialing_.insert(m.peerId);
    }
  }
  publishClaims();
  maybeSendReady();
}

void Communicator::maybeSendReady() {
  if (!proposal_ || readySent_ || !client_) return;
  for (const Member& m : proposal_->view.members) {
    if (m.peerId == peerId_) continue;
    auto it = links_.find(m.peerId);
    if (it == links_.end() || !it->second.complete()) return;
  }
  control::Ready r{proposal_->view.epoch, report_};
  client_->send(control::Type::kReady, r.encode());
  readySent_ = true;
}

void Communicator::onCommit(const control::Commit& c) {
  if (!proposal_ || c.epoch != proposal_->view.epoch) {
    LOG_DEBUG("ignoring commit of epoch " << c.epoch);
    return;
  }
  completeDecidedSuccesses(c);
  // DONEs nobody waits for: they still confirm, in any epoch.
  for (auto& [id, link] : links_) flushLazyDones(link);
  lazyDonesQueued_ = false;
  View old = committed_;
  committed_ = proposal_->view;
  // Reported and decided (success) with the old epoch. Before any operation
  // restarts below: one may finish at once, and its entry must stay for the
  // next view change.
  resendUnconfirmed(c.endsUpdate);
  myRank_ = committed_.rankOf(peerId_);
  proposal_.reset();
  readySent_ = false;
  frozen_ = false;
  decisionsReceived_ = true;
  lastDecisions_ = c.decisions;
  if (state_ == State::kConnecting) state_ = State::kMember;
  // Before any operation (re)starts below: algorithm selection reads the
  // cost inputs of this view; stale ones made a re-run pick another
  // algorithm than a peer that called the same operation after the commit.
  applyViewPolicy();

  std::vector<uint64_t> lost;
  for (const Member& m : old.members)
    if (!committed_.contains(m.peerId)) lost.push_back(m.peerId);

  std::vector<Op*> all;
  for (auto& [k, op] : ops_) all.push_back(op.get());
  for (Op* op : all) {
    if (op->state == OpState::kFrozen) {
      const bool mayBeUnconfirmed = op->receivesWhileFrozen && op->size() > 2;
      if (op->receivesWhileFrozen) {
        forgetSends(op);  // a re-run must not receive the old epoch's frames
        op->receivesWhileFrozen = false;
      }
      const OpDecision* d = c.decisions.find(op->key.tag, op->key.seq);
      Decision dec = d ? d->decision : Decision::kFail;
      if (dec == Decision::kSuccess && op->awaitingResult) {
        // Runs on in this epoch until a RESULT comes (perhaps already).
        op->state = OpState::kRunning;
        op->epoch = committed_.epoch;
        op->sendsOutstanding = 0;  // forgotten at the freeze
        op->doneSent = false;
        deliverUnexpected(op);
      } else if (dec == Decision::kSuccess) {
        // Members that returned without our DONE keep copies for us.
        if (mayBeUnconfirmed) postDone(op, committed_.epoch);
        finishOp(op, Status::ok());
      } else if (dec == Decision::kRerun) {
        op->task.reset();
        startOp(op);
      } else {
        finishOp(op, aborted("peer(s) " + peerList(lost) + " left the view during operation " +
                             op->key.toString() + " (epoch " + std::to_string(old.epoch) + " -> " +
                             std::to_string(committed_.epoch) + ", " + viewReasonName(c.reason) +
                             "); retry in the new view"));
      }
    }
  }
  // Decisions for operations not called here yet. A failure: they fail when
  // called. A re-run: the others run them with the root they named in the
  // old view, so a call made here names its root in that view too.
  for (const OpDecision& d : c.decisions.ops) {
    OpKey key{d.tag, d.seq};
    if (d.decision == Decision::kSuccess || ops_.count(key)) continue;
    auto it = nextSeq_.find(d.tag);
    uint64_t next = it == nextSeq_.end() ? 0 : it->second;
    if (d.seq < next) continue;
    if (d.decision == Decision::kFail) {
      failedKeys_[key] = Decision::kFail;
    } else if (!(d.tag & kP2PTagBit)) {  // a p2p key already names both ends
      std::vector<uint64_t>& ids = rerunViews_[key];
      ids.clear();
      for (const Member& m : old.members) ids.push_back(m.peerId);
    }
  }
  for (Op* op : all) {
    if (op->state != OpState::kQueued) continue;
    // Called here while the view was changing, but others may have had it in
    // flight: their decision binds this peer too.
    const OpDecision* d = c.decisions.find(op->key.tag, op->key.seq);
    auto f = failedKeys_.find(op->key);
    if ((d && d->decision == Decision::kFail) || f != failedKeys_.end()) {
      if (f != failedKeys_.end()) failedKeys_.erase(f);
      finishOp(op, aborted("a peer was lost before operation " + op->key.toString() +
                           " started here; retry in the new view"));
    } else {
      // Without a decision the others may call it after the commit, naming
      // its root in the new view; with a re-run they re-run it as named in
      // the old one, as this call did.
      startOp(op, /*othersMayNameRootInNewView=*/d == nullptr);
    }
  }
  dropUnexpectedBefore(committed_.epoch);
  if (c.endsUpdate) {
    // A joint update: nothing is in flight anywhere, and joiners start
    // numbering their calls from zero, so everyone does.
    nextSeq_.clear();
    failedKeys_.clear();
    rerunViews_.clear();
  }
  if (updateWaiting_ && c.endsUpdate) updateDone_ = true;
  publishClaims();
  if (client_) client_->resetPending();
  LOG_INFO("committed epoch " << committed_.epoch << " (" << viewReasonName(c.reason) << "): rank "
                              << myRank_ << " of " << committed_.size());
}

bool Communicator::progressEveryConnection() {
  // Progress may close and free connections: keep (fd, pointer) pairs and
  // touch only those still watched under the same descriptor.
  std::vector<std::pair<int, transport::Connection*>> conns(byFd_.begin(), byFd_.end());
  bool worked = false;
  for (auto [fd, conn] : conns) {
    auto it = byFd_.find(fd);
    if (it != byFd_.end() && it->second == conn && conn->isOpen())
      progressConnection(conn, &worked);
  }
  return worked;
}

void Communicator::completeDecidedSuccesses(const control::Commit& c) {
  // The other member returned success and reported it after writing its
  // last frame to our ring, and the coordinator's commit followed that
  // report: every frame it wrote is readable now. Read until the operation
  // holds everything or the links have nothing more.
  std::vector<Op*> pending;
  bool anyReceiving = false;
  for (auto& [key, op] : ops_) {
    if (op->state != OpState::kFrozen || !op->task || op->task->haveAll()) continue;
    const OpDecision* d = c.decisions.find(key.tag, key.seq);
    if (!d || d->decision != Decision::kSuccess) continue;
    pending.push_back(op.get());
    anyReceiving |= op->receivesWhileFrozen;
  }
  if (pending.empty()) return;
  auto allComplete = [&] {
    for (Op* op : pending)
      if (!op->task->haveAll()) return false;
    return true;
  };
  // Bounded: the frames are already there; a peer busy sending more must
  // not hold the commit.
  bool worked = anyReceiving;
  for (int pass = 0; pass < 1000 && worked && !allComplete(); ++pass)
    worked = progressEveryConnection();
  for (Op* op : pending) {
    if (op->task->haveAll()) {
      LOG_INFO("operation " << op->key.toString()
                            << " completed from frames in flight: the other member had "
                               "returned success");
      continue;  // finished by the decision below
    }
    if (op->size() > 2) {
      // A member that died may never have sent us its input; those that
      // returned success send the result with this commit.
      op->awaitingResult = true;
      LOG_INFO("operation " << op->key.toString()
                            << " was decided successful (another member returned success) but "
                               "not all of its input arrived here: waiting for the result");
      continue;
    }
    LOG_ERROR("operation " << op->key.toString()
                           << " was decided successful (another member returned success) but "
                              "its frames did not all arrive here");
    finishOp(op, internalError("operation " + op->key.toString() +
                               " returned success on another member, but its data did not all "
                               "arrive here before the view changed"));
  }
}

void Communicator::applyViewPolicy() {
  const int n = committed_.size();
  // Locality: members with the same host label share a machine.
  topology_ = algo::TopologyView::identity(n);
  topology_.hosts.clear();
  std::map<std::string, int> hostIndex;
  for (int r = 0; r < n; ++r) {
    auto [it, fresh] =
        hostIndex.emplace(committed_.members[r].hostId, static_cast<int>(topology_.hosts.size()));
    if (fresh) topology_.hosts.push_back({});
    topology_.hostOf[r] = it->second;
    topology_.hosts[it->second].push_back(r);
  }
  applyMeasuredTopology();
  // More peers on this host than cores: a spinning caller would hold a core
  // the peer it waits for needs, so spin longer but yield the CPU each round.
  int local = 0;
  for (const Member& m : committed_.members)
    if (m.hostId == hostId_) ++local;
  bool oversubscribed = local > onlineCpus();
  viewSpinUs_ = cfg_.spinUs >= 0 ? cfg_.spinUs : (oversubscribed ? 200 : 50);
  viewYield_ = oversubscribed;
  spinOff_ = false;  // the links are looked at again once operations run
  engine_.setSpinPolicy(viewSpinUs_, viewYield_, /*adaptive=*/cfg_.spinUs < 0);
  // Links over shared memory: everyone here, and the settings that keep a
  // same-host link on TCP (CHORUS_SHM=0, TLS, a pool of streams) are off.
  const bool sharedMemory =
      local == n && transport::shm::enabled() && cfg_.tls == 0 && cfg_.connectionsPerPeer == 1;
  costInputs_ =
      algo::costInputsFor(n, &topology_, local, onlineCpus(), segmentBytes_, sharedMemory);
  lastSelection_ = {};
}

void Communicator::onRemoved(const std::string& why, bool left) {
  if (left) {
    state_ = State::kLeft;
    fatal_ = removedError("this peer left the group");
    updateDone_ = true;
  } else {
    state_ = State::kRemoved;
    fatal_ = removedError("removed from the group: " + why +
                          "; destroy this communicator and create a new one to rejoin");
    asyncErr_ = fatal_;
  }
  failAllOps(fatal_);
  std::vector<uint64_t> peers;
  for (auto& [id, l] : links_) peers.push_back(id);
  for (uint64_t id : peers) closeLink(id);
  proposal_.reset();
}

void Communicator::onDataLink(ControlEvent& ev) {
  if (state_ != State::kConnecting && state_ != State::kMember) return;
  // One-stream links start with the shared-memory set-up exchange on the
  // authenticated socket (transports/shm/): shared memory when the peer is on
  // this host and both sides allow it (CHORUS_SHM, default on), TCP
  // otherwise; either side may have it off. Pools (several streams, for
  // WANs) are plain TCP; with TLS every link is a TLS stream. A stream
  // dialled again (generation > 0) replaces a TCP one (shared memory is never
  // replaced), so it skips the set-up: one round trip less on a WAN relink.
  const bool shmSetup = ev.streamCount == 1 && ev.generation == 0;
  std::unique_ptr<transport::Connection> conn =
      ev.ssl     ? transport::tcp::makeTlsConnection(std::move(*ev.socket), std::move(ev.ssl),
                                                     ev.peerId, ev.stream, ev.streamCount)
      : shmSetup ? transport::shm::makeConnection(std::move(*ev.socket), ev.peerId, ev.stream,
                                                  peerId_, hostId_)
                 : transport::tcp::makeConnection(std::move(*ev.socket), ev.peerId, ev.stream,
                                                  ev.streamCount);
  if (!conn) {
    LOG_ERROR("cannot take over the data link to peer " << ev.peerId);
    return;
  }
  PeerLink& link = links_[ev.peerId];
  if (link.expected != ev.streamCount) link.expected = ev.streamCount;
  if (link.streams.size() < static_cast<size_t>(link.expected)) link.streams.resize(link.expected);
  if (ev.stream >= static_cast<int>(link.streams.size())) return;
  auto& slot = link.streams[ev.stream];
  if (slot) {
    // The peer dials a stream again after it saw it break; this end may not
    // have seen that yet. Its count of what arrived on the old one is final
    // now, and the peer waits for it (STREAM_LOST on the new stream).
    if (!slot->isOpen() || !loseStream(link, slot.get(), unavailable("the peer dialled it again"),
                                       /*redial=*/false)) {
      if (slot) {
        unwatch(slot.get());
        slot->close();
        graveyard_.push_back(std::move(slot));
      }
    }
  }
  // TCP streams survive breaking while the peer is alive (see loseStream);
  // that needs the completion agreement, which says when a frame is no
  // longer needed by anyone. Shared memory keeps nothing: its link only
  // breaks with the peer's process.
  if (cfg_.uniformOutcome) conn->retainSent();
  Status st = engine_.addFd(conn->fd());
  if (!st.isOk()) {
    LOG_ERROR("cannot watch a data link: " << st.toString());
    return;
  }
  byFd_[conn->fd()] = conn.get();
  if (conn->needsPolling()) polled_.insert(conn.get());
  LOG_DEBUG("data link to peer " << ev.peerId << " stream " << ev.stream << " over "
                                 << conn->transportName());
  slot = std::move(conn);
  if (link.generation.size() < link.streams.size()) link.generation.resize(link.streams.size());
  link.generation[ev.stream] = ev.generation;
  if (link.relinking) endRelink(ev.peerId, link);
  if (link.complete()) {
    dialing_.erase(ev.peerId);
    LOG_INFO(describeStreams(ev.peerId, link.streams));
  }
  maybeSendReady();
}

void Communicator::unwatch(transport::Connection* c) {
  if (c->fd() >= 0) {
    engine_.removeFd(c->fd());
    byFd_.erase(c->fd());
  }
  sendPending_.erase(c);
  inputBuffered_.erase(c);
  polled_.erase(c);
}

void Communicator::closeLink(uint64_t peerId) {
  auto it = links_.find(peerId);
  if (it == links_.end()) return;
  for (auto& c : it->second.streams) {
    if (!c) continue;
    unwatch(c.get());
    c->close();
    graveyard_.push_back(std::move(c));
  }
  for (auto& [s, c] : it->second.lost) graveyard_.push_back(std::move(c));
  if (it->second.relinking) --relinking_;
  links_.erase(it);
}

void Communicator::onConnectionBroken(transport::Connection* c, const Status& st) {
  auto it = links_.find(c->peerId());
  if (it != links_.end() && loseStream(it->second, c, st)) return;
  breakLink(c->peerId(), st);
}

bool Communicator::loseStream(PeerLink& link, transport::Connection* c, const Status& why,
                              bool redial) {
  const int s = c->stream();
  const uint64_t peer = c->peerId();
  if (state_ != State::kMember && state_ != State::kConnecting) return false;
  if (s < 0 || s >= static_cast<int>(link.streams.size()) || link.streams[s].get() != c ||
      !c->retainsSent() || link.lost.count(s))
    return false;
  // Nothing more is read from it: the count is final.
  unwatch(c);
  c->close();
  link.lost[s] = std::move(link.streams[s]);
  link.lostGeneration[s] = s < static_cast<int>(link.generation.size()) ? link.generation[s] : 0;
  if (controlStream(link)) {
    postLostNotices(link);
    LOG_WARN("data link to peer " << peer << " stream " << s << " broke (" << why.message()
                                  << "); its unreceived frames go over the other streams");
    return true;
  }
  // No stream is left open: every one-stream link, or a pool's last stream.
  // The peer is probably alive (a crashed process is removed through the
  // coordinator at once), so dial the stream again and settle the counts on
  // it; the bound stops a partition from holding operations for long.
  if (cfg_.relinkMs <= 0) return false;
  if (!link.relinking) {
    link.relinking = true;
    link.relinkBy = Clock::now() + std::chrono::milliseconds(cfg_.relinkMs);
    ++relinking_;
  }
  postLostNotices(link);
  // The lower peer id dials; the other asks it to (it may not have seen the
  // break: a flow the network drops carries no reset).
  const View& view = proposal_ ? proposal_->view : committed_;
  const int r = view.rankOf(peer);
  const bool dial = peerId_ < peer;
  const uint32_t gen = s < static_cast<int>(link.generation.size()) ? link.generation[s] : 0;
  if (redial && r >= 0 && client_) {
    const int streams = static_cast<int>(link.streams.size());
    if (dial) {
      client_->dialStream(view.members[r], s, streams, committed_.epoch, gen + 1,
                          Deadline::afterMs(cfg_.relinkMs));
      dialing_.insert(peer);
    } else {
      client_->requestRedial(view.members[r], s, streams, committed_.epoch, gen,
                             Deadline::afterMs(cfg_.relinkMs));
    }
  }
  LOG_WARN("data link to peer " << peer << " stream " << s << " broke (" << why.message()
                                << "), no other stream is open: "
                                << (dial ? "dialling it again" : "waiting for the peer to dial it")
                                << " (up to " << cfg_.relinkMs << " ms)");
  return true;
}

void Communicator::onRedialRequest(uint64_t peerId, int s, uint32_t gen) {
  auto it = links_.find(peerId);
  if (it == links_.end() || peerId_ > peerId) return;
  PeerLink& link = it->second;
  // Only for the connection the peer lost: one this end replaced already
  // (it saw the break too) is left alone.
  if (s < 0 || s >= static_cast<int>(link.streams.size()) || !link.streams[s] ||
      !link.streams[s]->isOpen() || s >= static_cast<int>(link.generation.size()) ||
      link.generation[s] != gen) {
    LOG_DEBUG("peer " << peerId << " asked for stream " << s << " generation " << gen
                      << " to be dialled again: already replaced");
    return;
  }
  LOG_INFO("peer " << peerId << " lost stream " << s << " and asks for it to be dialled again");
  transport::Connection* c = link.streams[s].get();
  if (!loseStream(link, c, unavailable("the peer lost it (a flow the network drops?)")))
    breakLink(peerId, unavailable("the peer lost stream " + std::to_string(s) +
                                  ", which cannot be replaced"));
}

void Communicator::endRelink(uint64_t peerId, PeerLink& link) {
  transport::Connection* control = controlStream(link);
  if (!control) return;
  link.relinking = false;
  --relinking_;
  // STREAM_LOST first: the peer resends what it owes only once it has it.
  for (auto& [h, payload] : link.heldControl) control->postSendCopy(h, payload.data());
  link.heldControl.clear();
  sendPending_.insert(control);
  if (link.stripe && !link.stripe->empty()) pumpStripe(link);
  LOG_INFO(
      "data link to peer " << peerId << ": stream " << control->stream()
                           << " is open again; the counts of the lost one are exchanged on it");
}

void Communicator::checkRelinks(TimePoint now) {
  std::vector<uint64_t> late;
  for (auto& [peer, link] : links_)
    if (link.relinking && now >= link.relinkBy) late.push_back(peer);
  for (uint64_t peer : late)
    breakLink(peer, unavailable("its lost stream was not dialled again within " +
                                std::to_string(cfg_.relinkMs) + " ms"));
}

void Communicator::postLostNotices(PeerLink& link) {
  for (auto& [s, conn] : link.lost) {
    frame::Header h;
    h.type = frame::Type::kStreamLost;
    h.block = static_cast<uint32_t>(s);
    h.seq = conn->framesReceived();  // final: nothing is read from it any more
    h.tag = link.lostGeneration[s];
    h.epoch = committed_.epoch;
    postControl(link, h, nullptr);
  }
}

void Communicator::onStreamLost(transport::Connection& c, const frame::Header& h) {
  const uint64_t peer = c.peerId();
  auto it = links_.find(peer);
  if (it == links_.end()) return;
  PeerLink& link = it->second;
  auto impossible = [&] {
    breakLink(peer, protocolError("peer " + std::to_string(peer) + " reported stream " +
                                  std::to_string(h.block) + " generation " + std::to_string(h.tag) +
                                  " lost, which cannot be replaced"));
  };
  if (h.block >= link.streams.size() || h.tag > UINT32_MAX) return impossible();
  const int s = static_cast<int>(h.block);
  const auto gen = static_cast<uint32_t>(h.tag);
  if (link.lost.count(s)) {
    const uint32_t mine = link.lostGeneration[s];
    if (gen == mine) return resendLost(peer, link, s, h.seq);
    if (gen < mine) return;  // a notice sent again, settled already
    return impossible();
  }
  const uint32_t current = s < static_cast<int>(link.generation.size()) ? link.generation[s] : 0;
  transport::Connection* open = link.streams[s].get();
  if (open && open->isOpen() && open != &c && gen == current) {
    // The peer saw the break first: close this end too, then settle.
    if (!loseStream(link, open, unavailable("the peer closed it"))) return impossible();
    return resendLost(peer, link, s, h.seq);
  }
  if (gen < current || (gen == current && !open)) return;  // settled already, notice sent again
  impossible();
}

void Communicator::resendLost(uint64_t peerId, PeerLink& link, int s, uint64_t peerReceived) {
  auto lost = link.lost.find(s);
  std::unique_ptr<transport::Connection> conn = std::move(lost->second);
  link.lost.erase(lost);
  link.lostGeneration.erase(s);
  auto frames = conn->takeUnreceived(peerReceived);
  graveyard_.push_back(std::move(conn));
  if (!frames.isOk()) {
    breakLink(peerId, frames.status());
    return;
  }
  size_t bytes = 0;
  StripeScheduler& stripe = stripeOf(link);
  for (const transport::Unreceived& u : *frames) {
    bytes += u.h.length;
    if (!u.owner) {  // DONE, ABORT, STREAM_LOST: on the control stream
      postControl(link, u.h, u.copy.data());
      continue;
    }
    // Only running operations have frames here (forgetSends drops the rest).
    Op* op = static_cast<Op*>(u.owner);
    if (u.sentReported) ++op->sendsOutstanding;  // onSent runs again when it goes out
    stripe.push({u.h, u.payload, u.owner});
  }
  LOG_INFO("stream " << s << " to peer " << peerId << ": the peer received " << peerReceived
                     << " frames; " << frames->size() << " frames (" << bytes
                     << " bytes) go again over the other streams");
  pumpStripe(link);
  // The lower peer id dials, as for the whole link (a relinked stream is
  // already there).
  const View& view = proposal_ ? proposal_->view : committed_;
  const int r = view.rankOf(peerId);
  if (peerId_ < peerId && r >= 0 && client_ && !link.streams[s]) {
    const uint32_t gen = s < static_cast<int>(link.generation.size()) ? link.generation[s] : 0;
    client_->dialStream(view.members[r], s, static_cast<int>(link.streams.size()), committed_.epoch,
                        gen + 1, Deadline::afterMs(cfg_.connectTimeoutMs));
    dialing_.insert(peerId);
  }
}

void Communicator::breakLink(uint64_t peer, const Status& st) {
  bool member = committed_.contains(peer) || (proposal_ && proposal_->view.contains(peer));
  if (member && state_ == State::kMember)
    LOG_INFO("data link to peer " << peer << " broke: " << st.toString());
  closeLink(peer);
  if (member && client_ && (state_ == State::kMember || state_ == State::kConnecting)) {
    control::Suspect s{committed_.epoch, peer, st.message()};
    client_->send(control::Type::kSuspect, s.encode());
  }
}

void Communicator::publishClaims() {
  if (!client_) return;
  membership::Claims c;
  c.knownView = committed_;
  c.hasReport = reportForEpoch_ != 0;
  c.decisionsReceived = decisionsReceived_;
  c.reportForEpoch = reportForEpoch_;
  c.report = report_;
  c.decisions = lastDecisions_;
  client_->setClaims(c);
}

// ---------------------------------------------------------------------------
// Joint membership calls
// ---------------------------------------------------------------------------

Result<int> Communicator::peersPending() {
  int64_t local = 0;
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    CHORUS_RETURN_IF_ERROR(checkUsable());
    local = static_cast<int64_t>(client_->pendingJoins()) + client_->pendingLeaves();
    if (leaveAnnounced_ && local < 1) local = 1;
  }
  int64_t out = 0;
  algo::CollectiveArgs a;
  a.sendbuf = &local;
  a.recvbuf = &out;
  a.count = 1;
  a.dtype = DataType::kInt64;
  a.op = RedOp::kMax;
  CHORUS_RETURN_IF_ERROR(blockingOp(a, kTagPeersPending, nullptr));
  return static_cast<int>(out);
}

Status Communicator::updateMembership() {
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    CHORUS_RETURN_IF_ERROR(checkUsable());
    if (!ops_.empty())
      return failedPrecondition("chorusUpdateMembership: " + std::to_string(ops_.size()) +
                                " operation(s) still in flight; wait for them first");
    updateWaiting_ = true;
    updateDone_ = false;
    control::UpdateRequest u{committed_.epoch, leaveAnnounced_};
    client_->send(control::Type::kUpdateRequest, u.encode());
  }
  Deadline deadline = Deadline::afterMs(cfg_.opTimeoutMs);
  bool ok = engine_.driveUntil([&] { return updateDone_ || state_ != State::kMember; }, deadline);
  std::lock_guard<std::mutex> lk(engine_.mutex());
  updateWaiting_ = false;
  if (state_ == State::kLeft) return Status::ok();
  if (state_ != State::kMember) return fatal_.isOk() ? internalError("not a member") : fatal_;
  if (!ok || !updateDone_)
    return deadlineExceeded("membership update did not complete within " +
                            std::to_string(cfg_.opTimeoutMs) +
                            " ms (every member must call chorusUpdateMembership)");
  return Status::ok();
}

Status Communicator::announceLeave() {
  std::lock_guard<std::mutex> lk(engine_.mutex());
  CHORUS_RETURN_IF_ERROR(checkUsable());
  leaveAnnounced_ = true;
  control::EpochOnly e{committed_.epoch};
  client_->send(control::Type::kAnnounceLeave, e.encode());
  return Status::ok();
}

}  // namespace chorus

// ---------------------------------------------------------------------------
// Topology
// ---------------------------------------------------------------------------

namespace chorus {

namespace {
// Internal point-to-point tags (the user's are below 2^31).
constexpr uint64_t kProbeTag = 0x80000001u;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

void Communicator::applyMeasuredTopology() {
  const int n = committed_.size();
  if (n < 2) return;
  algo::Matrix bw(n, std::vector<double>(n, 0));
  std::vector<double> lats, bws;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      auto it = measured_.find({committed_.members[i].peerId, committed_.members[j].peerId});
      if (it == measured_.end()) return;  // not measured for this view (yet)
      lats.push_back(it->second.first);
      bws.push_back(it->second.second);
      bw[i][j] = it->second.second;
    }
  topology_.ring = algo::bestRing(bw);
  for (int p = 0; p < n; ++p) topology_.position[topology_.ring[p]] = p;
  topology_.latencyUs = median(lats);
  // Algorithms that use every pair run at the slowest pair's pace.
  topology_.bandwidthGBps = *std::min_element(bws.begin(), bws.end());
  topology_.minRingBandwidthGBps = algo::ringBottleneck(topology_.ring, bw);
  // The hierarchical all-reduce's links, as it uses them: each host's ranks
  // to and from their leader (its lowest rank), and the leaders' ring in
  // host order. Costing it on these (not on the slowest pair anywhere) keeps
  // it comparable with the ring, which is costed on its own links.
  double inter = 0, intra = 0;
  auto slowest = [&](double& slot, int from, int to) {
    slot = slot == 0 ? bw[from][to] : std::min(slot, bw[from][to]);
  };
  const size_t hosts = topology_.hosts.size();
  for (size_t h = 0; h < hosts; ++h) {
    const std::vector<int>& members = topology_.hosts[h];
    for (size_t k = 1; k < members.size(); ++k) {
      slowest(intra, members[k], members[0]);
      slowest(intra, members[0], members[k]);
    }
    if (hosts > 1) slowest(inter, members[0], topology_.hosts[(h + 1) % hosts][0]);
  }
  topology_.interHostBandwidthGBps = inter;
  topology_.intraHostBandwidthGBps = intra;
}

Status Communicator::optimizeTopology() {
  int n, me;
  {
    std::lock_guard<std::mutex> lk(engine_.mutex());
    CHORUS_RETURN_IF_ERROR(checkUsable());
    if (!ops_.empty())
      return failedPrecondition("chorusOptimizeTopology: operations still in flight");
    n = committed_.size();
    me = myRank_;
  }
  // Round-robin pairing (circle method): every pair meets once, each rank
  // has at most one partner per round, so measurements do not overlap.
  int m = n % 2 ? n + 1 : n;
  std::vector<double> row(2 * static_cast<size_t>(n), 0.0);  // latency us, bandwidth GB/s to j
  auto p2p = [&](algo::Collective c, int peer, void* buf, size_t bytes) {
    algo::CollectiveArgs a;
    a.collective = c;
    a.root = peer;
    a.dtype = DataType::kUint8;
    a.count = bytes;
    a.sendbuf = a.recvbuf = buf;
    return blockingOp(a, kProbeTag, nullptr);
  };
  std::vector<uint8_t> buf(16 << 20);
  for (int round = 0; round < m - 1; ++round) {
    // Fixed seat m-1 meets `round`; the others pair (round+k, round-k).
    int partner = -1;
    for (int k = 0; k < m / 2 && partner < 0; ++k) {
      int a = k == 0 ? m - 1 : (round + k) % (m - 1);
      int b = k == 0 ? round : (round - k + m - 1) % (m - 1);
      if (a == me)
        partner = b;
      else if (b == me)
        partner = a;
    }
    if (partner < 0 || partner >= n) continue;  // paired with the dummy
    bool lo = me < partner;
    // Latency: the lower rank times blocking 8-byte sends (a send completes
    // when the receiver confirms, so each is one round trip).
    uint64_t word = 0;
    std::vector<double> rtts;
    for (int k = 0; k < 16; ++k) {
      if (lo) {
        int64_t t0 = nowNs();
        CHORUS_RETURN_IF_ERROR(p2p(algo::Collective::kSend, partner, &word, 8));
        rtts.push_back((nowNs() - t0) / 1e3);
      } else {
        CHORUS_RETURN_IF_ERROR(p2p(algo::Collective::kRecv, partner, &word, 8));
      }
    }
    double rttUs = median(rtts);
    if (lo) row[partner] = rttUs / 2;
    // Bandwidth, each direction timed by its sender: a 256 KiB probe, then
    // three transfers, each sized from the best rate so far to last about
    // 15 ms (at most 16 MiB); the fastest counts. A busy machine only ever
    // slows a transfer (a receiver not scheduled for a 4 ms tick), so the
    // best sample is the link's capacity and one unlucky sample cannot
    // decide the topology. The receiver learns each size first.
    constexpr int kSamples = 3;
    for (int dir = 0; dir < 2; ++dir) {
      bool sending = (dir == 0) == lo;
      uint64_t size = 256 << 10;
      if (sending) {
        auto timed = [&](uint64_t bytes, double* bytesPerSec) {
          int64_t t0 = nowNs();
          Status st = p2p(algo::Collective::kSend, partner, buf.data(), bytes);
          *bytesPerSec = bytes / std::max(1e-6, (nowNs() - t0) / 1e9 - rttUs / 1e6);
          return st;
        };
        double rate = 0, best = 0;
        CHORUS_RETURN_IF_ERROR(timed(size, &rate));
        for (int k = 0; k < kSamples; ++k) {
          uint64_t next = static_cast<uint64_t>(
              std::clamp((k == 0 ? rate : best) * 0.015, 256.0 * 1024, 16.0 * 1024 * 1024));
          CHORUS_RETURN_IF_ERROR(p2p(algo::Collective::kSend, partner, &next, 8));
          CHORUS_RETURN_IF_ERROR(timed(next, &rate));
          best = std::max(best, rate);
        }
        row[n + partner] = best / 1e9;
      } else {
        CHORUS_RETURN_IF_ERROR(p2p(algo::Collective::kRecv, partner, buf.data(), size));
        for (int k = 0; k < kSamples; ++k) {
          uint64_t next = 0;
          CHORUS_RETURN_IF_ERROR(p2p(algo::Collective::kRecv, partner, &next, 8));
          if (next > buf.size())
            return protocolError("topology probe of " + std::to_string(next) + " bytes");
          CHORUS_RETURN_IF_ERROR(p2p(algo::Collective::kRecv, partner, buf.data(), next));
        }
      }
    }
  }
  // Everyone gets every row, so every member holds the same matrix.
  std::vector<double> all(2 * static_cast<size_t>(n) * n);
  algo::CollectiveArgs g;
  g.collective = algo::Collective::kAllGather;
  g.sendbuf = row.data();
  g.recvbuf = all.data();
  g.count = 2 * static_cast<size_t>(n);
  g.dtype = DataType::kFloat64;
  CHORUS_RETURN_IF_ERROR(blockingOp(g, kTagTopology, nullptr));
  std::lock_guard<std::mutex> lk(engine_.mutex());
  if (committed_.size() != n)
    return aborted("the view changed while measuring the topology; call it again");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      double lat = all[i * 2 * n + j] > 0 ? all[i * 2 * n + j] : all[j * 2 * n + i];
      double bw = all[i * 2 * n + n + j];
      measured_[{committed_.members[i].peerId, committed_.members[j].peerId}] = {lat, bw};
    }
  applyViewPolicy();
  std::string order;
  for (int r : topology_.ring) order += (order.empty() ? "" : " ") + std::to_string(r);
  LOG_INFO("topology: ring " << order << ", slowest ring link " << topology_.minRingBandwidthGBps
                             << " GB/s, median latency " << topology_.latencyUs << " us");
  return Status::ok();
}

std::string Communicator::describeSelection() {
  std::lock_guard<std::mutex> lk(engine_.mutex());
  std::string s = selector_.describe(costInputs_);
  s += "ring order:";
  for (int r : topology_.ring) {
    s += ' ';
    s += std::to_string(r);
  }
  if (topology_.minRingBandwidthGBps > 0)
    s += " (slowest link " + std::to_string(topology_.minRingBandwidthGBps) + " GB/s)";
  s += "\n";
  if (topology_.bandwidthGBps > 0) {
    std::ostringstream m;
    m << "measured: median latency " << topology_.latencyUs << " us, slowest pair "
      << topology_.bandwidthGBps << " GB/s, " << topology_.hosts.size() << " host(s)";
    if (topology_.interHostBandwidthGBps > 0)
      m << ", leaders' ring " << topology_.interHostBandwidthGBps << " GB/s";
    if (topology_.intraHostBandwidthGBps > 0)
      m << ", slowest rank-leader link " << topology_.intraHostBandwidthGBps << " GB/s";
    s += m.str() + "\n";
  }
  return s;
}

}  // namespace chorus
