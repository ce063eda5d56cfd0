// Algorithms are Tasks: state machines posted by the communicator and driven
// by arriving frames. A Task never blocks and never touches a socket; it asks
// its TaskContext to send blocks and says where incoming blocks go.
//
// Each algorithm lives in its own file (algorithms/<collective>/<name>.cc)
// and registers an AlgorithmInfo (id, name, one-line description, factory,
// cost model). algorithms/registry.cc lists them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/reduce.h"
#include "src/core/dtype.h"
#include "src/core/status.h"

namespace chorus::algo {

enum class Collective : uint8_t {
  kAllReduce = 1,
  kBroadcast = 2,
  kReduce = 3,
  kAllGather = 4,
  kReduceScatter = 5,
  kAllToAll = 6,
  kAllToAllv = 7,
  kGather = 8,
  kScatter = 9,
  kBarrier = 10,
  kSend = 11,
  kRecv = 12,
};
constexpr int kNumCollectives = 12;
const char* collectiveName(Collective c);
bool parseCollective(const std::string& s, Collective* out);

// What the caller asked for. `count` means what chorus.h says for the
// collective (elements per rank block for gather-like ones).
struct CollectiveArgs {
  Collective collective = Collective::kAllReduce;
  const void* sendbuf = nullptr;
  void* recvbuf = nullptr;
  size_t count = 0;
  DataType dtype = DataType::kFloat32;
  RedOp op = RedOp::kSum;
  int root = 0;             // broadcast/reduce/gather/scatter root; send/recv: the peer
  uint64_t rootPeerId = 0;  // nonzero: the root/peer by id (its current rank replaces root)
  // Nonzero: planned for this epoch only (counts, chunking). The operation
  // fails, on every peer alike, if it would start in another view; callers
  // take the epoch from an earlier operation's (uniform) result.
  uint64_t plannedEpoch = 0;
  std::vector<size_t> sendCounts, sendDispls, recvCounts, recvDispls;  // all-to-all-v

  size_t elemSize() const { return dataTypeSize(dtype); }
  // sendbuf == recvbuf (the in-place form of all-reduce and reduce).
  bool inPlace() const { return sendbuf == recvbuf; }
  // Bytes one rank contributes (selector input).
  size_t messageBytes(int worldSize) const;
};

// Ring order and locality, identical on every member.
struct TopologyView {
  std::vector<int> ring;                // ring position -> rank (identity unless optimised)
  std::vector<int> position;            // rank -> ring position
  std::vector<int> hostOf;              // rank -> host index (ranks sharing a host label)
  std::vector<std::vector<int>> hosts;  // host index -> ranks, ascending
  double latencyUs = 0;                 // median pair latency (0 = not measured)
  double bandwidthGBps = 0;             // slowest pair bandwidth (0 = not measured)
  double minRingBandwidthGBps = 0;      // slowest link of `ring` (0 = not measured)
  double interHostBandwidthGBps = 0;    // slowest link of the host leaders' ring (0 = not measured)
  double intraHostBandwidthGBps = 0;    // slowest rank<->leader link in a host (0 = not measured)
  static TopologyView identity(int n);
  bool multiHost() const { return hosts.size() > 1; }
};

// Services the communicator provides to a running task.
class TaskContext {
 public:
  virtual ~TaskContext() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Queue block `block` of this operation to peer `toRank`. data must stay
  // valid until the operation completes (the communicator tracks the send).
  virtual void send(int toRank, uint32_t block, const void* data, size_t bytes) = 0;
  // Scratch memory owned by the operation, zero-initialisation not promised.
  // One buffer per operation; a second call may move it.
  virtual uint8_t* scratch(size_t bytes) = 0;
  // Largest payload of one frame for this transport (segment size hint).
  virtual size_t segmentBytes() const = 0;
  virtual const TopologyView& topology() const = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  // Post the first sends.
  virtual Status start() = 0;
  // Where block `block` from `fromRank` of `bytes` bytes should land, or an
  // error if the task expects no such block (a protocol violation).
  virtual Result<uint8_t*> recvTarget(int fromRank, uint32_t block, size_t bytes) = 0;
  // That block has landed.
  virtual Status onRecv(int fromRank, uint32_t block) = 0;
  // Optional, asked right after recvTarget on transports that read from
  // memory (shared memory): the reduction onRecv would apply to the landed
  // block, to be applied while it is read instead (one copy less). If the
  // transport did, onReducedRecv follows instead of onRecv.
  virtual bool arrivalReduction(int /*fromRank*/, uint32_t /*block*/,
                                kernels::ArrivalReduction* /*r*/) {
    return false;
  }
  virtual Status onReducedRecv(int /*fromRank*/, uint32_t block) {
    return internalError("block " + std::to_string(block) + " was reduced on arrival unasked");
  }
  // This rank's result is complete.
  virtual bool haveAll() const = 0;
  // An in-place operation has overwritten part of its input.
  virtual bool inputModified() const = 0;
  // Ranks this operation exchanges data with; the completion agreement waits
  // for their DONE only. Collectives involve everyone.
  virtual bool involves(int rank) const { return true; }
};

using TaskFactory = std::unique_ptr<Task> (*)(const CollectiveArgs& args, TaskContext& ctx);

// Inputs of an algorithm's cost estimate: alpha (per dependent round,
// seconds), beta (per byte on the slowest link used, seconds) and gamma (per
// message handled by one rank, seconds: CPU and wake-ups, large when peers
// share cores).
struct CostInputs {
  size_t bytes = 0;  // CollectiveArgs::messageBytes
  int n = 1;
  const TopologyView* topo = nullptr;
  double alpha = 20e-6, beta = 1.0 / 2e9, gamma = 5e-6;
  size_t segmentBytes = 512 << 10;
  // Every member on this host and links over shared memory (the view's host
  // labels, CHORUS_SHM, no TLS, one stream per pair): the same on every
  // member as long as those settings are.
  bool sharedMemory = false;
};

struct AlgorithmInfo {
  uint8_t id;  // stable: part of every frame's descriptor
  Collective collective;
  const char* name;         // CHORUS_ALGO / chorus-bench --algo name
  const char* description;  // one line
  TaskFactory factory;
  // Estimated seconds, or a negative value when not applicable.
  double (*cost)(const CostInputs& in);
};

// All registered algorithms (algorithms/registry.cc).
const std::vector<const AlgorithmInfo*>& allAlgorithms();
const AlgorithmInfo* findAlgorithm(Collective c, const std::string& name);
const AlgorithmInfo* findAlgorithm(uint8_t id);

// Chunk c of n equal parts of count elements: [chunkBegin(c), chunkBegin(c+1)).
inline size_t chunkBegin(size_t count, int n, int c) {
  size_t base = count / static_cast<size_t>(n), rem = count % static_cast<size_t>(n);
  size_t cc = static_cast<size_t>(c);
  return base * cc + (cc < rem ? cc : rem);
}

// Segments of an element range [begin, end): fixed size, the last shorter.
struct Segments {
  size_t begin = 0, end = 0, per = 1;
  uint32_t count = 0;
  Segments() = default;
  Segments(size_t b, size_t e, size_t perSeg)
      : begin(b),
        end(e),
        per(perSeg ? perSeg : 1),
        count(static_cast<uint32_t>(e > b ? (e - b + per - 1) / per : 0)) {}
  size_t first(uint32_t g) const { return begin + static_cast<size_t>(g) * per; }
  size_t last(uint32_t g) const {
    size_t l = first(g) + per;
    return l < end ? l : end;
  }
  size_t len(uint32_t g) const { return last(g) - first(g); }
};

inline int ceilLog2(int n) {
  int k = 0;
  while ((1 << k) < n) ++k;
  return k;
}

}  // namespace chorus::algo
