#include "src/core/operation.h"

#include "src/core/communicator.h"
#include "src/core/hash.h"

namespace chorus {

std::string OpKey::toString() const {
  return "(tag " + std::to_string(tag) + ", #" + std::to_string(seq) + ")";
}

// Layout: [63:56] collective  [55:48] algorithm  [47:44] dtype  [43:40] op
//         [39:0] count (or a hash of it when it does not fit)
uint64_t makeDescriptor(const algo::CollectiveArgs& a, uint8_t algoId) {
  uint64_t count = a.count;
  if (count >= (uint64_t{1} << 40)) count = (hash64(&count, sizeof(count)) | (uint64_t{1} << 39));
  return (static_cast<uint64_t>(a.collective) << 56) | (static_cast<uint64_t>(algoId) << 48) |
         (static_cast<uint64_t>(a.dtype) << 44) | (static_cast<uint64_t>(a.op) << 40) |
         (count & ((uint64_t{1} << 40) - 1));
}

std::string describeDescriptor(uint64_t desc) {
  auto coll = static_cast<algo::Collective>(desc >> 56);
  const algo::AlgorithmInfo* al = algo::findAlgorithm(static_cast<uint8_t>(desc >> 48));
  int dt = static_cast<int>((desc >> 44) & 0xf);
  int op = static_cast<int>((desc >> 40) & 0xf);
  uint64_t count = desc & ((uint64_t{1} << 40) - 1);
  std::string s = std::string(algo::collectiveName(coll)) + "(count=" + std::to_string(count) +
                  ", dtype=" + (validDataType(dt) ? dataTypeName(static_cast<DataType>(dt)) : "?") +
                  ", op=" + (validRedOp(op) ? redOpName(static_cast<RedOp>(op)) : "?") +
                  ", algorithm=" + (al ? al->name : "?") + ")";
  return s;
}

Op::Op(Communicator& c, OpKey k, const algo::CollectiveArgs& a, std::shared_ptr<OpResult> r)
    : comm(c), key(k), args(a), result(std::move(r)) {}

Op::~Op() {
  comm.releaseScratch(this);
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

void Op::onSent(uint64_t) {
  if (--sendsOutstanding == 0) comm.onOpSendsDrained(this);
}

int Op::rankOf(uint64_t peerId) const {
  for (size_t i = 0; i < peers_.size(); ++i)
    if (peers_[i] == peerId) return static_cast<int>(i);
  return -1;
}

}  // namespace chorus
