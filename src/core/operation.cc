#include "src/core/operation.h"

#include "src/core/communicator.h"
#include "src/core/hash.h"

namespace chorus {

std::string OpKey::toString() const {
  return "(tag " + std::to_string(tag) + ", #" + std::to_string(seq) + ")";
}

// Layout: [63:58] collective  [57:50] algorithm  [49:46] dtype  [45:43] op
//         [42] 1 = [41:0] is a hash  else [41:26] root + 1 (0 = none), [25:0] count
// Peers that called different things are detected from the first frame, and
// for counts below 2^26 the message can say exactly what each called.
uint64_t makeDescriptor(const algo::CollectiveArgs& a, uint8_t algoId) {
  bool rooted =
      a.collective == algo::Collective::kBroadcast || a.collective == algo::Collective::kReduce ||
      a.collective == algo::Collective::kGather || a.collective == algo::Collective::kScatter;
  uint64_t root = rooted ? static_cast<uint64_t>(a.root) + 1 : 0;
  uint64_t count = a.collective == algo::Collective::kAllToAllv ? 0 : a.count;
  // Both ends of a point-to-point transfer describe it the same way.
  algo::Collective coll =
      a.collective == algo::Collective::kRecv ? algo::Collective::kSend : a.collective;
  if (a.collective == algo::Collective::kRecv) algoId = algo::findAlgorithm(coll, "send")->id;
  uint64_t low;
  if (count < (uint64_t{1} << 26) && root < (uint64_t{1} << 16)) {
    low = (root << 26) | count;
  } else {
    uint64_t both[2] = {count, root};
    low = (uint64_t{1} << 42) | (hash64(both, sizeof(both)) & ((uint64_t{1} << 42) - 1));
  }
  return (static_cast<uint64_t>(coll) << 58) | (static_cast<uint64_t>(algoId) << 50) |
         (static_cast<uint64_t>(a.dtype) << 46) | (static_cast<uint64_t>(a.op) << 43) | low;
}

std::string describeDescriptor(uint64_t desc) {
  auto coll = static_cast<algo::Collective>(desc >> 58);
  const algo::AlgorithmInfo* al = algo::findAlgorithm(static_cast<uint8_t>((desc >> 50) & 0xff));
  int dt = static_cast<int>((desc >> 46) & 0xf);
  int op = static_cast<int>((desc >> 43) & 0x7);
  std::string s = std::string(algo::collectiveName(coll)) + "(";
  if (desc & (uint64_t{1} << 42)) {
    s += "large count";
  } else {
    s += "count=" + std::to_string(desc & ((uint64_t{1} << 26) - 1));
    uint64_t root = (desc >> 26) & 0xffff;
    if (root) s += ", root=" + std::to_string(root - 1);
  }
  s +=
      std::string(", dtype=") + (validDataType(dt) ? dataTypeName(static_cast<DataType>(dt)) : "?");
  if (coll == algo::Collective::kAllReduce || coll == algo::Collective::kReduce ||
      coll == algo::Collective::kReduceScatter)
    s += std::string(", op=") + (validRedOp(op) ? redOpName(static_cast<RedOp>(op)) : "?");
  s += std::string(", algorithm=") + (al ? al->name : "?") + ")";
  return s;
}

Op::Op(Communicator& c, OpKey k, const algo::CollectiveArgs& a, std::shared_ptr<OpResult> r)
    : comm(c), key(k), args(a), result(std::move(r)) {}

void Op::reset(OpKey k, const algo::CollectiveArgs& a, std::shared_ptr<OpResult> r) {
  foldedDones.clear();
  key = k;
  args = a;
  rootPeer = 0;
  algo = nullptr;
  desc = 0;
  result = std::move(r);
  state = OpState::kQueued;
  epoch = 0;
  rank_ = 0;
  peers_.clear();
  task.reset();
  deadline = Deadline::never();
  timed = false;
  attempts = 0;
  sendsOutstanding = 0;
  doneFrom.clear();
  donesReceived = 0;
  donesExpected = 0;
  doneSent = false;
  agreementFree = false;
  receivesWhileFrozen = false;
  awaitingResult = false;
  completedByResult = false;
  bytesSent = 0;
  bytesReceived = 0;
  // scratchBuf stays: small scratch the last call used is this call's too.
}

Op::~Op() {
  if (scratchBuf.mem) comm.releaseScratch(this);
}

void Op::send(int toRank, uint32_t block, const void* data, size_t bytes) {
  comm.postData(*this, toRank, block, data, bytes);
}

uint8_t* Op::scratch(size_t bytes) {
  return comm.acquireScratch(this, bytes);
}

size_t Op::segmentBytes() const {
  return comm.segmentBytes();
}

const algo::TopologyView& Op::topology() const {
  return comm.topologyView();
}

void Op::onSent(uint64_t cookie) {
  if (cookie != 0)
    for (size_t i = 0; i < foldedDones.size(); ++i)
      if (foldedDones[i].first == cookie) {
        foldedDones.erase(foldedDones.begin() + static_cast<long>(i));
        break;
      }
  if (--sendsOutstanding == 0) comm.onOpSendsDrained(this);
}

int Op::rankOf(uint64_t peerId) const {
  for (size_t i = 0; i < peers_.size(); ++i)
    if (peers_[i] == peerId) return static_cast<int>(i);
  return -1;
}

}  // namespace chorus
