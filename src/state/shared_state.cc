#include "src/state/shared_state.h"

#include <algorithm>
#include <cstring>
#include <list>
#include <memory>
#include <vector>

#include "kernels/cuda/device.h"
#include "src/core/communicator.h"
#include "src/core/hash.h"
#include "src/core/log.h"
#include "src/state/joint.h"

namespace chorus::state {

namespace {

constexpr int kMaxRounds = 8;

// What each peer publishes at the start of a round (all-gathered).
struct Header {
  uint64_t strategy = 0, revision = 0, layout = 0, chunks = 0, stateHash = 0, peerId = 0;
};
constexpr size_t kHeaderWords = sizeof(Header) / sizeof(uint64_t);

struct Chunk {
  uint8_t* data;
  size_t bytes;
  bool device;  // CUDA memory: moved through a host staging copy
};

Status allGather(Communicator& comm, const void* in, void* out, size_t words) {
  return allGatherWords(comm, kTagState, static_cast<const uint64_t*>(in),
                        static_cast<uint64_t*>(out), words);
}

}  // namespace

Status SharedState::add(const std::string& name, const Buffer& b) {
  if (name.empty() || name.size() > 255)
    return invalidArgument("shared-state name must have 1 to 255 characters");
  if (!b.data && b.count > 0) return invalidArgument("shared-state buffer '" + name + "' is NULL");
  std::lock_guard<std::mutex> lk(mu_);
  if (buffers_.count(name))
    return invalidArgument("shared-state buffer '" + name + "' is already registered");
  buffers_[name] = b;
  return Status::ok();
}

Status SharedState::remove(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!buffers_.erase(name)) return invalidArgument("no shared-state buffer named '" + name + "'");
  return Status::ok();
}

void SharedState::setRevision(uint64_t r) {
  std::lock_guard<std::mutex> lk(mu_);
  revision_ = r;
}
uint64_t SharedState::revision() {
  std::lock_guard<std::mutex> lk(mu_);
  return revision_;
}
std::map<std::string, Buffer> SharedState::registry() {
  std::lock_guard<std::mutex> lk(mu_);
  return buffers_;
}
size_t SharedState::size() {
  std::lock_guard<std::mutex> lk(mu_);
  return buffers_.size();
}

Result<SyncReport> SharedState::sync(Communicator& comm, Strategy strategy) {
  std::lock_guard<std::mutex> lk(mu_);  // one sync at a time; registry fixed meanwhile
  // Layout (names, types, counts of compared buffers) and chunk table.
  std::string layoutText;
  std::vector<Chunk> chunks;
  for (auto& [name, b] : buffers_) {
    if (!b.checkEquality) continue;
    layoutText += name + '\0' + std::to_string(static_cast<int>(b.dtype)) + ':' +
                  std::to_string(b.count) + ';';
    auto* p = static_cast<uint8_t*>(b.data);
    for (size_t off = 0; off < b.bytes(); off += kChunkBytes)
      chunks.push_back({p + off, std::min(kChunkBytes, b.bytes() - off), b.device});
  }
  const uint64_t layout = hash64(layoutText.data(), layoutText.size());
  const size_t nChunks = chunks.size();
  std::vector<uint64_t> mine(nChunks);
  // Device buffers are hashed on the GPU by the same XXH3 (kernels/common/xxh3.h).
  for (size_t c = 0, base = 0; c < nChunks; c = base) {
    base = c + 1;
    if (!chunks[c].device) {
      mine[c] = hash64(chunks[c].data, chunks[c].bytes);
      continue;
    }
    size_t bytes = chunks[c].bytes;
    while (base < nChunks && chunks[base].device && chunks[base].data == chunks[c].data + bytes)
      bytes += chunks[base++].bytes;
    std::string e = cuda::hashChunks(chunks[c].data, bytes, kChunkBytes, &mine[c]);
    if (!e.empty()) return Status(Code::kSystem, "hashing a device buffer: " + e);
  }

  SyncReport report;
  for (int round = 0; round < kMaxRounds; ++round) {
    const int n = comm.worldSize(), me = comm.rank();
    Header h;
    h.strategy = static_cast<uint64_t>(strategy);
    h.revision = revision_;
    h.layout = layout;
    h.chunks = nChunks;
    h.stateHash = hash64(mine.data(), mine.size() * sizeof(uint64_t), layout);
    h.peerId = comm.peerId();
    std::vector<Header> all(n);
    Status st = allGather(comm, &h, all.data(), kHeaderWords);
    if (!st.isOk())
      LOG_DEBUG("shared state round " << round << ": header gather: " << st.toString());
    if (retryable(st)) continue;  // the view changed: plan again with the survivors
    CHORUS_RETURN_IF_ERROR(st);
    for (int r = 0; r < n; ++r)
      if (all[r].layout != layout || all[r].chunks != nChunks)
        return failedPrecondition("shared state differs in layout: rank " + std::to_string(r) +
                                  " registered other buffers (names, dtypes or counts) than rank " +
                                  std::to_string(me) + " (" + std::to_string(all[r].chunks) +
                                  " vs " + std::to_string(nChunks) + " chunks)");
    std::vector<uint64_t> hashes(static_cast<size_t>(n) * nChunks);
    if (nChunks > 0) {
      st = allGather(comm, mine.data(), hashes.data(), nChunks);
      if (!st.isOk())
        LOG_DEBUG("shared state round " << round << ": hash gather: " << st.toString());
      if (retryable(st)) continue;
      CHORUS_RETURN_IF_ERROR(st);
    }

    // The target: most voters, then higher revision, then lower rank.
    int target = -1, targetVotes = 0;
    for (int r = 0; r < n; ++r) {
      if (all[r].strategy == static_cast<uint64_t>(Strategy::kReceiveOnly)) continue;
      int votes = 0;
      for (int q = 0; q < n; ++q)
        votes += all[q].strategy != static_cast<uint64_t>(Strategy::kReceiveOnly) &&
                 all[q].stateHash == all[r].stateHash && all[q].revision == all[r].revision;
      if (target < 0 || votes > targetVotes ||
          (votes == targetVotes && all[r].revision > all[target].revision)) {
        target = r;
        targetVotes = votes;
      }
    }
    if (target < 0)
      return failedPrecondition(
          "every peer called chorusSyncSharedState receive-only: nobody holds the state");
    const uint64_t want = all[target].stateHash;
    for (int r = 0; r < n; ++r)
      if (all[r].strategy == static_cast<uint64_t>(Strategy::kSendOnly) && all[r].stateHash != want)
        return failedPrecondition(
            "send-only peer rank " + std::to_string(r) + " holds state " +
            hashHex(all[r].stateHash) + " (revision " + std::to_string(all[r].revision) +
            ") but the group's state is " + hashHex(want) + " (revision " +
            std::to_string(all[target].revision) + ", rank " + std::to_string(target) +
            "); a send-only peer is never overwritten");
    std::vector<int> holders;
    for (int r = 0; r < n; ++r)
      if (all[r].stateHash == want) holders.push_back(r);
    const uint64_t* good = hashes.data() + static_cast<size_t>(target) * nChunks;
    if (round == 0) report.peersUpdated = n - static_cast<int>(holders.size());
    if (static_cast<int>(holders.size()) == n) {
      revision_ = all[target].revision;
      report.rounds = round;  // the last round only confirmed
      report.revision = revision_;
      report.stateHash = want;
      return report;
    }

    // Plan: peer p gets chunk c from holders[(c + p + round) % H]. Every peer
    // walks (p, c) in the same order, so each pair's sends and receives match.
    std::vector<std::shared_ptr<OpResult>> ops;
    std::vector<size_t> received;  // chunk per receive op (same order as recvOps)
    std::vector<std::shared_ptr<OpResult>> recvOps;
    std::list<std::vector<uint8_t>> staging;  // host copies of device chunks (stable addresses)
    std::vector<uint8_t*> receivedInto;       // per receive posted: where the bytes land
    Status deviceError;
    const size_t H = holders.size();
    for (int p = 0; p < n && deviceError.isOk(); ++p) {
      if (all[p].stateHash == want) continue;
      const uint64_t* theirs = hashes.data() + static_cast<size_t>(p) * nChunks;
      for (size_t c = 0; c < nChunks; ++c) {
        if (theirs[c] == good[c]) continue;
        int from = holders[(c + p + round) % H];
        if (from != me && p != me) continue;
        algo::CollectiveArgs a;
        a.dtype = DataType::kUint8;
        a.count = chunks[c].bytes;
        uint8_t* buf = chunks[c].data;
        if (chunks[c].device) {
          staging.emplace_back(chunks[c].bytes);
          buf = staging.back().data();
          if (from == me) {
            std::string e = cuda::copyToHost(buf, chunks[c].data, chunks[c].bytes);
            if (!e.empty()) {
              deviceError = Status(Code::kSystem, "staging a device chunk: " + e);
              break;  // wait for what is posted (it uses staging), then fail
            }
          }
        }
        if (from == me) {
          a.collective = algo::Collective::kSend;
          a.sendbuf = buf;
          a.rootPeerId = all[p].peerId;  // the plan's ranks are this round's view
        } else {
          a.collective = algo::Collective::kRecv;
          a.recvbuf = buf;
          a.rootPeerId = all[from].peerId;
        }
        auto r = comm.runAsync(a, kTransferTag);
        if (!r.isOk()) {
          if (r.status().code() == Code::kRemoved) return r.status();
          continue;  // planned again next round
        }
        if (from == me) {
          ops.push_back(std::move(r).value());
        } else {
          recvOps.push_back(std::move(r).value());
          received.push_back(c);
          receivedInto.push_back(buf);
        }
      }
    }
    LOG_DEBUG("shared state round " << round << " epoch " << comm.epoch() << ": rank " << me << "/"
                                    << n << " posted " << ops.size() << " sends, " << recvOps.size()
                                    << " receives; " << H << " holders");
    for (auto& op : ops) {
      OpInfo info;
      if (comm.wait(op, &info).isOk()) report.bytesSent += info.bytesSent;
    }
    for (size_t i = 0; i < recvOps.size(); ++i) {
      OpInfo info;
      Status rs = comm.wait(recvOps[i], &info);
      size_t c = received[i];
      // Verified against the target hash; a failed or corrupt chunk keeps a
      // hash that differs, so the next round fetches it again elsewhere.
      const uint8_t* landed = receivedInto[i];
      mine[c] = hash64(landed, chunks[c].bytes);
      if (chunks[c].device && mine[c] == good[c]) {
        std::string e = cuda::copyToDevice(chunks[c].data, landed, chunks[c].bytes);
        if (!e.empty() && deviceError.isOk())
          deviceError = Status(Code::kSystem, "writing a device chunk: " + e);
      }
      if (rs.isOk()) report.bytesReceived += info.bytesReceived;
      if (rs.isOk() && mine[c] != good[c])
        LOG_WARN("shared state: chunk " << c << " received in round " << round
                                        << " does not match the group's hash; fetching again");
    }
    CHORUS_RETURN_IF_ERROR(deviceError);
  }
  return unavailable("shared state did not converge in " + std::to_string(kMaxRounds) +
                     " rounds (peers kept failing during the transfer)");
}

}  // namespace chorus::state
