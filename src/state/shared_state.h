// Shared state: named buffers every peer of a job must hold bit-identically
// (model weights, optimizer moments, step counters), with a revision.
//
// sync() is a joint call. Each round, every peer hashes its buffers in fixed
// chunks (XXH3-64), the group all-gathers a header and the chunk hashes, and
// everybody computes the same plan from the same data: the target state (the
// most popular among voters, ties to the higher revision, then the lower
// rank), the up-to-date holders, and for every chunk a peer lacks, the holder
// that sends it (spread over the holders, so a joiner receives from all of
// them in parallel). Transfers are point-to-point, posted all at once; each
// received chunk is verified against the target hash. A holder that dies or a
// chunk that arrives corrupt only costs those chunks: the next round (in the
// new view) re-plans from what every peer verifiably holds, so nothing
// already received is sent again.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "src/core/dtype.h"
#include "src/core/status.h"

namespace chorus {
class Communicator;
}

namespace chorus::state {

enum class Strategy : uint32_t {
  kEnforcePopular = 0,  // vote; receive if different from the group's state
  kReceiveOnly = 1,     // never vote (a joiner); receive if different
  kSendOnly = 2,        // vote; never overwritten: refused if different
};

struct Buffer {
  void* data = nullptr;
  size_t count = 0;
  DataType dtype = DataType::kUint8;
  bool checkEquality = true;  // false: per-peer content (RNG state), never compared
  bool device = false;        // CUDA device memory (hashed on the GPU, staged through host)
  size_t bytes() const { return count * dataTypeSize(dtype); }
};

struct SyncReport {
  uint64_t revision = 0;   // the group's revision after the sync
  uint64_t stateHash = 0;  // hash of the group's state (all chunk hashes)
  int rounds = 0;          // transfer rounds: 0 if all agreed, 1 unless peers failed
  int peersUpdated = 0;    // peers that received something
  uint64_t bytesSent = 0;  // by this peer
  uint64_t bytesReceived = 0;
};

class SharedState {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  Status add(const std::string& name, const Buffer& b);
  Status remove(const std::string& name);
  void setRevision(uint64_t r);
  uint64_t revision();
  size_t size();
  // A copy of the registry (ordered by name); the buffers stay the caller's.
  std::map<std::string, Buffer> registry();

  Result<SyncReport> sync(Communicator& comm, Strategy strategy);

 private:
  std::mutex mu_;
  std::map<std::string, Buffer> buffers_;  // ordered by name: the same order everywhere
  uint64_t revision_ = 0;
};

}  // namespace chorus::state
