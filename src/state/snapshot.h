// Erasure-coded snapshots of the shared state.
//
// A snapshot is a point-in-time copy of every registered buffer: one copy of
// the replicated buffers (identical on every peer, checked by hash) and each
// peer's own CHORUS_STATE_NO_EQUALITY buffers. Laid end to end they form the
// snapshot's byte image, cut into k data shards; m parity shards are computed
// with Reed-Solomon (ISA-L, Cauchy matrix). Shard i lives in memory on the
// member with rank i (so k + m members are needed, each holds one shard); the
// manifest (sections, shard hashes) is kept by every member.
//
// Every peer computes its own shard locally: the replicated buffers are
// already everywhere, only the private buffers are all-gathered first. So
// taking a snapshot costs one encode pass per parity holder and almost no
// traffic.
//
// recover() rebuilds the image from any k intact shards (a shard whose bytes
// no longer match its hash is excluded and counted as corrupt), restores
// every member's buffers and revision, and re-protects: shards whose holder
// is gone are recomputed on members that hold none. protect() does the same
// re-protection without restoring (the new holder pulls k shards and
// decodes); it runs in the background after each membership update.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/core/status.h"
#include "src/state/shared_state.h"

namespace chorus {
class Communicator;
}

namespace chorus::state {

struct SnapshotReport {
  uint64_t snapshotId = 0;
  uint64_t revision = 0;
  int dataShards = 0, parityShards = 0;
  uint64_t stateBytes = 0;  // the snapshot's image (all sections)
  uint64_t shardBytes = 0;
  int shardsHeld = 0;     // by this peer, after the call
  int shardsLost = 0;     // without an intact holder when the call started
  int shardsCorrupt = 0;  // excluded: bytes did not match their hash
  int shardsRebuilt = 0;  // placed on new holders by this call
  int shardsMissing = 0;  // still without a holder after the call (no member free)
  uint64_t bytesSent = 0, bytesReceived = 0;
  double codecSeconds = 0;  // this peer's encode or decode time
};

// One buffer's bytes inside the image. owner 0: replicated; else the peer id.
struct Section {
  uint64_t owner = 0;
  std::string name;
  uint8_t dtype = 0;
  uint64_t count = 0, offset = 0, bytes = 0, hash = 0;
};

struct Manifest {
  uint64_t id = 0, revision = 0;
  uint32_t k = 0, m = 0;
  uint64_t stateBytes = 0, shardBytes = 0;
  std::vector<Section> sections;
  std::vector<uint64_t> shardHash;  // k + m

  std::vector<uint8_t> serialize() const;
  static Result<Manifest> parse(const uint8_t* p, size_t n);  // bounds-checked
};

class ErasureCode;

// The snapshot's byte image: the manifest's sections laid end to end, each
// read from its own source (a registered buffer, or received bytes).
struct Image {
  const Manifest* m = nullptr;
  std::vector<const uint8_t*> src;  // per section

  // Copies image bytes [off, off+len) into dst; past the end reads zeros.
  void copy(uint64_t off, size_t len, uint8_t* dst) const;
  // A pointer to [off, off+len) where it lies inside one section (no copy),
  // else the bytes copied into scratch.
  const uint8_t* range(uint64_t off, size_t len, uint8_t* scratch) const;
};

// Shard `index` of the image into out (shardBytes): a slice for data shards,
// one parity row otherwise, computed in 1 MiB pieces straight from the
// sources so they stay in cache.
void computeShard(const ErasureCode& ec, const Image& img, int index, uint8_t* out);

class SnapshotStore {
 public:
  // Joint calls.
  Result<SnapshotReport> take(Communicator& comm, SharedState& state, int k, int m,
                              const std::string& spillDir);
  Result<SnapshotReport> recover(Communicator& comm, SharedState& state, uint64_t adoptPeerId);
  Result<SnapshotReport> protect(Communicator& comm);
  // Local: adopt the newest snapshot spilled to dir (manifest and whichever
  // shard files are there and verify); a later recover() restores from it.
  Result<SnapshotReport> load(const std::string& dir);
  SnapshotReport describe();

 private:
  using Shard = std::shared_ptr<const std::vector<uint8_t>>;
  struct Held {
    std::shared_ptr<const Manifest> manifest;
    std::map<int, Shard> shards;
  };
  Held current();
  void install(Held h);
  Result<SnapshotReport> takeOnce(Communicator& comm, SharedState& state, int k, int m,
                                  const std::string& spillDir);
  Result<SnapshotReport> recoverOnce(Communicator& comm, SharedState& state, uint64_t adopt,
                                     bool restore);

  // A shard buffer the previous snapshot no longer needs: periodic snapshots
  // reuse it instead of faulting in fresh pages every time.
  std::vector<uint8_t> takeSpare(size_t bytes);

  std::mutex mu_;
  Held held_;
  std::vector<uint8_t> spare_;
};

}  // namespace chorus::state
