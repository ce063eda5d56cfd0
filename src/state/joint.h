// The few collective calls the shared-state and snapshot code makes through
// the communicator, on internal tags (bit 63 set: never a user's tag).
#pragma once

#include <memory>

#include "src/core/communicator.h"

namespace chorus::state {

constexpr uint64_t kTagState = kInternalTagBit | 3;     // chorusSyncSharedState
constexpr uint64_t kTagSnapshot = kInternalTagBit | 4;  // snapshot / recover / protect
// p2p user tags (bit 31: above every tag the C API accepts from users).
constexpr uint64_t kTransferTag = 0x80000001u;       // state chunks
constexpr uint64_t kShardTransferTag = 0x80000002u;  // snapshot shards

// Operations aborted by a view change: the caller may plan again.
inline bool retryable(const Status& s) {
  return s.code() == Code::kAborted || s.code() == Code::kDeadlineExceeded;
}

inline Status allGatherWords(Communicator& comm, uint64_t tag, const uint64_t* in, uint64_t* out,
                             size_t words, OpInfo* info = nullptr) {
  algo::CollectiveArgs a;
  a.collective = algo::Collective::kAllGather;
  a.sendbuf = in;
  a.recvbuf = out;
  a.count = words;
  a.dtype = DataType::kUint64;
  CHORUS_ASSIGN_OR_RETURN(auto r, comm.runAsync(a, tag));
  return comm.wait(r, info);
}

inline Status broadcastBytes(Communicator& comm, uint64_t tag, void* buf, size_t bytes, int root,
                             OpInfo* info = nullptr) {
  algo::CollectiveArgs a;
  a.collective = algo::Collective::kBroadcast;
  a.sendbuf = buf;
  a.recvbuf = buf;
  a.count = bytes;
  a.dtype = DataType::kUint8;
  a.root = root;
  CHORUS_ASSIGN_OR_RETURN(auto r, comm.runAsync(a, tag));
  return comm.wait(r, info);
}

// Posts one side of a point-to-point transfer with the peer named by id.
inline Result<std::shared_ptr<OpResult>> postTransfer(Communicator& comm, bool send, void* buf,
                                                      size_t bytes, uint64_t peerId, uint64_t tag) {
  algo::CollectiveArgs a;
  a.collective = send ? algo::Collective::kSend : algo::Collective::kRecv;
  a.sendbuf = send ? buf : nullptr;
  a.recvbuf = send ? nullptr : buf;
  a.count = bytes;
  a.dtype = DataType::kUint8;
  a.rootPeerId = peerId;
  return comm.runAsync(a, tag);
}

}  // namespace chorus::state
