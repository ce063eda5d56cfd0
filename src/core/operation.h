// One collective operation in flight on a communicator.
//
// Identity: (tag, seq) -- the caller's tag and the call's position among
// calls with that tag on this peer since the last membership update. Every
// peer numbers its calls the same way, so the key names the same operation
// everywhere and survives a failure-driven view change (an operation may be
// re-run in a new epoch under the same key). A joint membership update
// restarts the numbering on every member, joiners included.
//
// Lifecycle (all under the engine lock):
//   kQueued   called while a view change is in progress; starts at commit
//   kRunning  task posted; frames flow
//   kFrozen   a failure/leave view was proposed; traffic stopped, waiting
//             for the coordinator's decision
//   kFinished result published to OpResult
// Completion (uniform outcome): the task has the full result, every send
// has left the buffers, and every other member said DONE (it has the full
// result too) -- or, for a small operation of two members on shared memory,
// without waiting for DONE (agreementFree). See docs/ARCHITECTURE.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/algorithm.h"
#include "src/core/clock.h"
#include "src/core/status.h"
#include "transports/transport.h"

namespace chorus {

class Communicator;

struct OpKey {
  uint64_t tag = 0;
  uint64_t seq = 0;
  bool operator==(const OpKey& o) const { return tag == o.tag && seq == o.seq; }
  bool operator<(const OpKey& o) const { return tag < o.tag || (tag == o.tag && seq < o.seq); }
  std::string toString() const;
};

struct OpKeyHash {
  size_t operator()(const OpKey& k) const { return k.tag * 0x9E3779B97F4A7C15ull ^ k.seq; }
};

struct OpInfo {
  int contributors = 0;
  int attempts = 1;
  uint64_t epoch = 0;
  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;
  std::string algorithm;
};

// Shared between the communicator and whoever waits for the operation (a
// blocking call or a chorusRequest_t), so either may go first.
struct OpResult {
  std::atomic<bool> finished{false};
  Status status;  // written before finished is set
  OpInfo info;
};

// Frame descriptor: collective, algorithm, dtype, op and count, so peers that
// called different things are detected from the first frame.
uint64_t makeDescriptor(const algo::CollectiveArgs& a, uint8_t algoId);
std::string describeDescriptor(uint64_t desc);

enum class OpState { kQueued, kRunning, kFrozen, kFinished };

struct ScratchBuf {
  std::unique_ptr<uint8_t[]> mem;
  size_t cap = 0;
};

class Op final : public transport::SendOwner, public algo::TaskContext {
 public:
  Op(Communicator& comm, OpKey key, const algo::CollectiveArgs& args,
     std::shared_ptr<OpResult> result);
  ~Op() override;
  // A freed operation taken up for another call (Communicator::submit): the
  // state a new one has, but its vectors, and small scratch, keep their
  // memory (five allocations of every small call before its data went out).
  // Every member is set here: one added to Op must be added here too.
  void reset(OpKey key, const algo::CollectiveArgs& args, std::shared_ptr<OpResult> result);

  // TaskContext
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(peers_.size()); }
  void send(int toRank, uint32_t block, const void* data, size_t bytes) override;
  uint8_t* scratch(size_t bytes) override;
  size_t segmentBytes() const override;
  const algo::TopologyView& topology() const override;
  // SendOwner
  void onSent(uint64_t cookie) override;

  int rankOf(uint64_t peerId) const;

  // The previous call's DONE that a DATA frame of this operation carries
  // (frame::kFlagAfterDone), by the peer it goes to, until that frame is
  // written whole: if the frame is cancelled first, the DONE is sent on its
  // own (Communicator::forgetSends). The frame's send cookie is the peer id.
  std::vector<std::pair<uint64_t, frame::Header>> foldedDones;

  Communicator& comm;
  OpKey key;
  algo::CollectiveArgs args;
  uint64_t rootPeer = 0;  // rooted and point-to-point calls: that rank's peer id at call time
  const algo::AlgorithmInfo* algo = nullptr;
  uint64_t desc = 0;
  std::shared_ptr<OpResult> result;

  OpState state = OpState::kQueued;
  uint64_t epoch = 0;
  int rank_ = 0;
  std::vector<uint64_t> peers_;  // rank -> peer id, for `epoch`
  std::unique_ptr<algo::Task> task;
  Deadline deadline = Deadline::never();
  bool timed = false;  // deadline set (by the first pass that read the clock)
  int attempts = 0;

  int sendsOutstanding = 0;
  std::vector<uint8_t> doneFrom;  // by rank
  int donesReceived = 0;
  int donesExpected = 0;  // ranks the task involves
  bool doneSent = false;
  // Finishes without waiting for the other members' DONE (decided when it
  // first holds the full result; see Communicator::mayFinishWithoutAgreement).
  bool agreementFree = false;
  // Frozen, but still taking its frames: the other member may have returned
  // success already, and then the decision is success and this member
  // completes the operation from frames that are still arriving.
  bool receivesWhileFrozen = false;
  // Decided successful at a commit while its input from some member never
  // came (that member died): running again, in the new epoch, until a
  // member that returned success sends the result (frame::Type::kResult).
  bool awaitingResult = false;
  bool completedByResult = false;  // the RESULT arrived: the task is partial
  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;

  // Scratch taken from the communicator's pool (Communicator::
  // acquireScratch), held here rather than in a map keyed by operation: a
  // map node per call was an allocation and two lookups of every small one.
  ScratchBuf scratchBuf;
};

}  // namespace chorus
