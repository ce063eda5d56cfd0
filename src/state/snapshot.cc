#include "src/state/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kernels/cuda/device.h"
#include "src/core/communicator.h"
#include "src/core/hash.h"
#include "src/core/log.h"
#include "src/state/erasure.h"
#include "src/state/joint.h"

namespace chorus::state {

namespace {

constexpr int kMaxRounds = 8;
constexpr size_t kAlign = 64;            // shard length: a multiple of ISA-L's vector width
constexpr size_t kPieceBytes = 1 << 20;  // encode granularity (stays in cache)
constexpr uint64_t kManifestMagic = 0x314D50414E534843ull;  // "CHSNAPM1"
constexpr uint64_t kShardMagic = 0x315350414E534843ull;     // "CHSNAPS1"
constexpr int kMaskWords = 4;  // 256 bits: one per shard (k + m <= 255)

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- manifest serialisation (little-endian host; bounds-checked reads) ----

void put64(std::vector<uint8_t>& out, uint64_t v) {
  uint8_t b[8];
  std::memcpy(b, &v, 8);
  out.insert(out.end(), b, b + 8);
}

struct Reader {
  const uint8_t* p;
  size_t n, off = 0;
  bool ok = true;
  uint64_t u64() {
    if (n - off < 8) {
      ok = false;
      return 0;
    }
    uint64_t v;
    std::memcpy(&v, p + off, 8);
    off += 8;
    return v;
  }
  std::string str(size_t len) {
    if (!ok || n - off < len) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p + off), len);
    off += len;
    return s;
  }
};

// ---- census: what every member holds (all-gathered) ----

struct Census {
  uint64_t manifestId = 0, revision = 0, peerId = 0, adopt = 0, manifestBytes = 0;
  uint64_t intact[kMaskWords] = {}, corrupt[kMaskWords] = {};
};
constexpr size_t kCensusWords = sizeof(Census) / sizeof(uint64_t);

bool bit(const uint64_t* mask, int i) {
  return (mask[i / 64] >> (i % 64)) & 1;
}
void setBit(uint64_t* mask, int i) {
  mask[i / 64] |= uint64_t{1} << (i % 64);
}

// The agreed snapshot: held by the most members, then the higher revision,
// then the lower id. Every member computes the same from the same census.
int chooseSnapshot(const std::vector<Census>& all) {
  int best = -1, bestVotes = 0;
  for (size_t r = 0; r < all.size(); ++r) {
    if (!all[r].manifestId) continue;
    int votes = 0;
    for (const Census& c : all) votes += c.manifestId == all[r].manifestId;
    if (best < 0 || votes > bestVotes ||
        (votes == bestVotes && all[r].revision > all[best].revision) ||
        (votes == bestVotes && all[r].revision == all[best].revision &&
         all[r].manifestId < all[best].manifestId)) {
      best = static_cast<int>(r);
      bestVotes = votes;
    }
  }
  return best;
}

// The lowest rank holding an intact copy of shard i of snapshot id, or -1.
int holderOf(const std::vector<Census>& all, uint64_t id, int i) {
  for (size_t r = 0; r < all.size(); ++r)
    if (all[r].manifestId == id && bit(all[r].intact, i)) return static_cast<int>(r);
  return -1;
}

std::string indexList(const std::vector<int>& v) {
  std::string s;
  for (int i : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(i);
  }
  return s.empty() ? "none" : s;
}

// ---- spill files ----

std::string idHex(uint64_t id) {
  return hashHex(id);
}

Status writeAtomically(const std::filesystem::path& path, const std::vector<uint8_t>& head,
                       const uint8_t* body, size_t bodyBytes) {
  std::string tmp = path.string() + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return systemError("cannot create " + tmp, errno);
  auto writeAll = [&](const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  bool ok = writeAll(head.data(), head.size()) && writeAll(body, bodyBytes) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    ::unlink(tmp.c_str());
    return systemError("cannot write " + path.string(), err);
  }
  return Status::ok();
}

Result<std::vector<uint8_t>> readFile(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return systemError("cannot open " + path.string(), errno);
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return data;
}

Status spill(const std::string& dir, const Manifest& m,
             const std::map<int, std::shared_ptr<const std::vector<uint8_t>>>& shards) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return systemError("cannot create snapshot directory " + dir, ec.value());
  std::filesystem::path base = std::filesystem::path(dir) / ("snapshot-" + idHex(m.id));
  std::vector<uint8_t> body = m.serialize();
  std::vector<uint8_t> head;
  put64(head, kManifestMagic);
  put64(head, body.size());
  put64(head, hash64(body.data(), body.size()));
  CHORUS_RETURN_IF_ERROR(
      writeAtomically(base.string() + ".manifest", head, body.data(), body.size()));
  for (const auto& [i, bytes] : shards) {
    std::vector<uint8_t> h;
    put64(h, kShardMagic);
    put64(h, m.id);
    put64(h, static_cast<uint64_t>(i));
    put64(h, bytes->size());
    CHORUS_RETURN_IF_ERROR(writeAtomically(base.string() + ".shard" + std::to_string(i), h,
                                           bytes->data(), bytes->size()));
  }
  return Status::ok();
}

// The manifest's part of a report.
void describeManifest(const Manifest& m, SnapshotReport* rep) {
  rep->snapshotId = m.id;
  rep->revision = m.revision;
  rep->dataShards = static_cast<int>(m.k);
  rep->parityShards = static_cast<int>(m.m);
  rep->stateBytes = m.stateBytes;
  rep->shardBytes = m.shardBytes;
}

// Fault injection for tests: CHORUS_FAULT_CORRUPT_SHARD set on a peer flips
// one byte of every shard it stores, after its hash went into the manifest.
void maybeCorrupt(std::vector<uint8_t>& shard) {
  if (std::getenv("CHORUS_FAULT_CORRUPT_SHARD") && !shard.empty()) {
    shard[shard.size() / 2] ^= 0x5a;
    LOG_WARN("fault injection: corrupted a snapshot shard in memory");
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Image
// ---------------------------------------------------------------------------

void Image::copy(uint64_t off, size_t len, uint8_t* dst) const {
  size_t done = 0;
  auto it = std::upper_bound(m->sections.begin(), m->sections.end(), off,
                             [](uint64_t o, const Section& s) { return o < s.offset + s.bytes; });
  for (size_t i = it - m->sections.begin(); done < len && i < m->sections.size(); ++i) {
    const Section& s = m->sections[i];
    uint64_t at = off + done;
    if (at < s.offset || s.bytes == 0) continue;
    size_t take = static_cast<size_t>(std::min<uint64_t>(len - done, s.offset + s.bytes - at));
    std::memcpy(dst + done, src[i] + (at - s.offset), take);
    done += take;
  }
  if (done < len) std::memset(dst + done, 0, len - done);
}

const uint8_t* Image::range(uint64_t off, size_t len, uint8_t* scratch) const {
  auto it = std::upper_bound(m->sections.begin(), m->sections.end(), off,
                             [](uint64_t o, const Section& s) { return o < s.offset + s.bytes; });
  if (it != m->sections.end() && off >= it->offset && off + len <= it->offset + it->bytes)
    return src[it - m->sections.begin()] + (off - it->offset);
  copy(off, len, scratch);
  return scratch;
}

void computeShard(const ErasureCode& ec, const Image& img, int index, uint8_t* out) {
  const Manifest& m = *img.m;
  if (index < static_cast<int>(m.k)) {
    img.copy(static_cast<uint64_t>(index) * m.shardBytes, m.shardBytes, out);
    return;
  }
  std::vector<uint8_t> scratch(static_cast<size_t>(m.k) * kPieceBytes);
  std::vector<const uint8_t*> src(m.k);
  for (uint64_t o = 0; o < m.shardBytes; o += kPieceBytes) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(kPieceBytes, m.shardBytes - o));
    for (uint32_t i = 0; i < m.k; ++i)
      src[i] = img.range(i * m.shardBytes + o, len, scratch.data() + i * kPieceBytes);
    ec.encodeOne(index - static_cast<int>(m.k), src.data(), out + o, len);
  }
}

// ---------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------

std::vector<uint8_t> Manifest::serialize() const {
  std::vector<uint8_t> out;
  put64(out, id);
  put64(out, revision);
  put64(out, k);
  put64(out, m);
  put64(out, stateBytes);
  put64(out, shardBytes);
  put64(out, sections.size());
  for (const Section& s : sections) {
    put64(out, s.owner);
    put64(out, s.name.size());
    out.insert(out.end(), s.name.begin(), s.name.end());
    put64(out, s.dtype);
    put64(out, s.count);
    put64(out, s.offset);
    put64(out, s.bytes);
    put64(out, s.hash);
  }
  for (uint64_t h : shardHash) put64(out, h);
  return out;
}

Result<Manifest> Manifest::parse(const uint8_t* p, size_t n) {
  Reader r{p, n};
  Manifest m;
  m.id = r.u64();
  m.revision = r.u64();
  uint64_t k = r.u64(), mm = r.u64();
  m.stateBytes = r.u64();
  m.shardBytes = r.u64();
  uint64_t nsec = r.u64();
  if (!r.ok || k < 1 || mm < 1 || k + mm > ErasureCode::kMaxShards || nsec > n / 56 ||
      m.shardBytes * k < m.stateBytes)
    return protocolError("snapshot manifest is malformed (header)");
  m.k = static_cast<uint32_t>(k);
  m.m = static_cast<uint32_t>(mm);
  uint64_t at = 0;
  for (uint64_t i = 0; i < nsec && r.ok; ++i) {
    Section s;
    s.owner = r.u64();
    uint64_t len = r.u64();
    if (len > 255) return protocolError("snapshot manifest is malformed (section name)");
    s.name = r.str(len);
    s.dtype = static_cast<uint8_t>(r.u64());
    s.count = r.u64();
    s.offset = r.u64();
    s.bytes = r.u64();
    s.hash = r.u64();
    if (s.offset != at || s.bytes > m.stateBytes - at)
      return protocolError("snapshot manifest is malformed (section bounds)");
    at += s.bytes;
    m.sections.push_back(std::move(s));
  }
  for (uint64_t i = 0; i < k + mm; ++i) m.shardHash.push_back(r.u64());
  if (!r.ok || at != m.stateBytes || r.off != n)
    return protocolError("snapshot manifest is malformed (truncated or trailing bytes)");
  return m;
}

// ---------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------

SnapshotStore::Held SnapshotStore::current() {
  std::lock_guard<std::mutex> lk(mu_);
  return held_;
}

void SnapshotStore::install(Held h) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [i, shard] : held_.shards) {
    bool kept = false;
    for (auto& [j, s] : h.shards) kept |= s == shard;
    // Only this store references it (no send in flight): reusable.
    if (!kept && shard.use_count() == 1)
      spare_ = std::move(*std::const_pointer_cast<std::vector<uint8_t>>(shard));
  }
  held_ = std::move(h);
}

std::vector<uint8_t> SnapshotStore::takeSpare(size_t bytes) {
  std::vector<uint8_t> v;
  {
    std::lock_guard<std::mutex> lk(mu_);
    v.swap(spare_);
  }
  v.resize(bytes);  // same size as last time: no page is touched here
  return v;
}

SnapshotReport SnapshotStore::describe() {
  Held h = current();
  SnapshotReport rep;
  if (!h.manifest) return rep;
  describeManifest(*h.manifest, &rep);
  rep.shardsHeld = static_cast<int>(h.shards.size());
  return rep;
}

Result<SnapshotReport> SnapshotStore::take(Communicator& comm, SharedState& state, int k, int m,
                                           const std::string& spillDir) {
  CHORUS_RETURN_IF_ERROR(ErasureCode::create(k, m).status());
  for (int round = 0;; ++round) {
    auto r = takeOnce(comm, state, k, m, spillDir);
    if (r.isOk() || !retryable(r.status()) || round + 1 >= kMaxRounds) return r;
    LOG_INFO("snapshot: " << r.status().toString() << "; taking it again in the new view");
  }
}

Result<SnapshotReport> SnapshotStore::takeOnce(Communicator& comm, SharedState& state, int k, int m,
                                               const std::string& spillDir) {
  auto reg = state.registry();
  const uint64_t revision = state.revision();
  const int n = comm.worldSize(), me = comm.rank();
  if (reg.empty())
    return failedPrecondition("chorusSnapshot: no shared-state buffer is registered");
  // Device buffers: snapshot a host copy (taken now: the point in time).
  std::map<std::string, std::vector<uint8_t>> staged;
  for (auto& [name, b] : reg) {
    if (!b.device) continue;
    auto& copy = staged[name];
    copy.resize(b.bytes());
    std::string e = cuda::copyToHost(copy.data(), b.data, b.bytes());
    if (!e.empty()) return Status(Code::kSystem, "snapshot of device buffer '" + name + "': " + e);
    b.data = copy.data();
  }

  // Layout of every buffer; hash of the replicated ones; my private bytes.
  std::string layoutText;
  std::vector<uint64_t> replHashes;
  std::vector<uint8_t> mine;
  for (auto& [name, b] : reg) {
    layoutText += name + '\0' + std::to_string(static_cast<int>(b.dtype)) + ':' +
                  std::to_string(b.count) + (b.checkEquality ? "r;" : "p;");
    if (b.checkEquality) {
      replHashes.push_back(hash64(b.data, b.bytes()));
    } else {
      auto* p = static_cast<const uint8_t*>(b.data);
      mine.insert(mine.end(), p, p + b.bytes());
    }
  }
  uint64_t head[5] = {hash64(layoutText.data(), layoutText.size()),
                      hash64(replHashes.data(), replHashes.size() * 8), revision, mine.size(),
                      comm.peerId()};
  std::vector<uint64_t> heads(static_cast<size_t>(n) * 5);
  CHORUS_RETURN_IF_ERROR(allGatherWords(comm, kTagSnapshot, head, heads.data(), 5));
  for (int r = 0; r < n; ++r) {
    const uint64_t* h = &heads[static_cast<size_t>(r) * 5];
    if (h[0] != head[0])
      return failedPrecondition("chorusSnapshot: rank " + std::to_string(r) +
                                " registered other shared-state buffers (names, dtypes, counts or "
                                "flags) than rank " +
                                std::to_string(me));
    if (h[1] != head[1] || h[2] != head[2])
      return failedPrecondition("chorusSnapshot: rank " + std::to_string(r) + " holds state " +
                                hashHex(h[1]) + " revision " + std::to_string(h[2]) + ", rank " +
                                std::to_string(me) + " holds " + hashHex(head[1]) + " revision " +
                                std::to_string(head[2]) +
                                "; call chorusSyncSharedState before snapshotting");
  }
  if (n < k + m)
    return failedPrecondition("chorusSnapshot: " + std::to_string(k) + "+" + std::to_string(m) +
                              " shards need " + std::to_string(k + m) +
                              " members (one shard each), the group has " + std::to_string(n));
  auto ec = ErasureCode::create(k, m).value();

  // Everyone's private buffers (identical sizes: the layouts match).
  std::vector<uint8_t> privates(mine.size() * n);
  OpInfo info;
  SnapshotReport rep;
  if (!mine.empty()) {
    algo::CollectiveArgs a;
    a.collective = algo::Collective::kAllGather;
    a.sendbuf = mine.data();
    a.recvbuf = privates.data();
    a.count = mine.size();
    a.dtype = DataType::kUint8;
    CHORUS_ASSIGN_OR_RETURN(auto op, comm.runAsync(a, kTagSnapshot));
    CHORUS_RETURN_IF_ERROR(comm.wait(op, &info));
    rep.bytesSent += info.bytesSent;
    rep.bytesReceived += info.bytesReceived;
  }

  // Sections: replicated buffers, then each rank's private ones.
  auto man = std::make_shared<Manifest>();
  Image img;
  img.m = man.get();
  auto addSection = [&](uint64_t owner, const std::string& name, const Buffer& b,
                        const uint8_t* src) {
    Section s;
    s.owner = owner;
    s.name = name;
    s.dtype = static_cast<uint8_t>(b.dtype);
    s.count = b.count;
    s.offset = man->stateBytes;
    s.bytes = b.bytes();
    s.hash = hash64(src, s.bytes);
    man->stateBytes += s.bytes;
    man->sections.push_back(std::move(s));
    img.src.push_back(src);
  };
  for (auto& [name, b] : reg)
    if (b.checkEquality) addSection(0, name, b, static_cast<const uint8_t*>(b.data));
  for (int r = 0; r < n; ++r) {
    size_t off = 0;
    for (auto& [name, b] : reg) {
      if (b.checkEquality) continue;
      addSection(heads[static_cast<size_t>(r) * 5 + 4], name, b,
                 privates.data() + static_cast<size_t>(r) * mine.size() + off);
      off += b.bytes();
    }
  }
  man->revision = revision;
  man->k = static_cast<uint32_t>(k);
  man->m = static_cast<uint32_t>(m);
  uint64_t per = (man->stateBytes + k - 1) / k;
  man->shardBytes = std::max<uint64_t>(kAlign, (per + kAlign - 1) / kAlign * kAlign);

  // My shard (rank i holds shard i), and everybody's shard hash.
  Held next;
  uint64_t myHash = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (me < k + m) {
    auto bytes = takeSpare(man->shardBytes);
    computeShard(ec, img, me, bytes.data());
    myHash = hash64(bytes.data(), bytes.size());
    maybeCorrupt(bytes);
    next.shards[me] = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  }
  rep.codecSeconds = secondsSince(t0);
  std::vector<uint64_t> hashes(n);
  CHORUS_RETURN_IF_ERROR(allGatherWords(comm, kTagSnapshot, &myHash, hashes.data(), 1));
  man->shardHash.assign(hashes.begin(), hashes.begin() + k + m);
  uint64_t idIn[6] = {comm.epoch(),
                      revision,
                      head[1],
                      man->stateBytes,
                      static_cast<uint64_t>(k) << 8 | static_cast<uint64_t>(m),
                      hash64(man->shardHash.data(), man->shardHash.size() * 8)};
  man->id = hash64(idIn, sizeof(idIn), head[0]) | 1;  // never 0 ("none")
  next.manifest = man;
  if (!spillDir.empty()) CHORUS_RETURN_IF_ERROR(spill(spillDir, *man, next.shards));
  install(next);

  describeManifest(*man, &rep);
  rep.shardsHeld = static_cast<int>(next.shards.size());
  LOG_INFO("snapshot " << idHex(man->id) << " revision " << revision << ": " << man->stateBytes
                       << " bytes in " << k << "+" << m << " shards of " << man->shardBytes);
  return rep;
}

// ---------------------------------------------------------------------------
// Census and manifest distribution (recover and protect)
// ---------------------------------------------------------------------------

namespace {

struct Agreed {
  std::vector<Census> all;
  int chosen = -1;  // rank whose manifest is the agreed one; -1: no snapshot anywhere
  std::shared_ptr<const Manifest> manifest;
  std::vector<int> lost, corrupt;  // shard indices without an intact holder / seen corrupt
};

// Every member re-hashes its shards (catching corruption in memory), the
// group all-gathers what it holds, agrees on one snapshot, and members
// lacking that snapshot's manifest receive it.
Result<Agreed> agree(Communicator& comm, const std::shared_ptr<const Manifest>& mine,
                     const std::map<int, std::shared_ptr<const std::vector<uint8_t>>>& shards,
                     uint64_t adopt, SnapshotReport& rep) {
  const int n = comm.worldSize(), me = comm.rank();
  Census c;
  c.peerId = comm.peerId();
  c.adopt = adopt ? adopt : comm.peerId();
  std::vector<uint8_t> manBytes;
  if (mine) {
    c.manifestId = mine->id;
    c.revision = mine->revision;
    manBytes = mine->serialize();
    c.manifestBytes = manBytes.size();
    for (const auto& [i, bytes] : shards) {
      if (hash64(bytes->data(), bytes->size()) == mine->shardHash[i]) {
        setBit(c.intact, i);
      } else {
        setBit(c.corrupt, i);
        LOG_WARN("snapshot " << idHex(mine->id) << ": shard " << i
                             << " held here no longer matches its hash; excluded");
      }
    }
  }
  Agreed g;
  g.all.resize(n);
  CHORUS_RETURN_IF_ERROR(allGatherWords(comm, kTagSnapshot, reinterpret_cast<uint64_t*>(&c),
                                        reinterpret_cast<uint64_t*>(g.all.data()), kCensusWords));
  g.chosen = chooseSnapshot(g.all);
  if (g.chosen < 0) return g;
  const Census& owner = g.all[g.chosen];
  bool someoneLacks = false;
  for (const Census& x : g.all) someoneLacks |= x.manifestId != owner.manifestId;
  if (someoneLacks) {
    if (owner.manifestBytes > (uint64_t{64} << 20))
      return protocolError("snapshot manifest of " + std::to_string(owner.manifestBytes) +
                           " bytes is implausibly large");
    std::vector<uint8_t> buf =
        me == g.chosen ? manBytes : std::vector<uint8_t>(owner.manifestBytes);
    CHORUS_RETURN_IF_ERROR(broadcastBytes(comm, kTagSnapshot, buf.data(), buf.size(), g.chosen));
    if (me == g.chosen) {
      g.manifest = mine;
    } else if (c.manifestId == owner.manifestId) {
      g.manifest = mine;
    } else {
      CHORUS_ASSIGN_OR_RETURN(Manifest parsed, Manifest::parse(buf.data(), buf.size()));
      if (parsed.id != owner.manifestId)
        return dataLoss("snapshot manifest received does not carry the agreed id");
      g.manifest = std::make_shared<const Manifest>(std::move(parsed));
    }
  } else {
    g.manifest = mine;
  }
  const int total = static_cast<int>(g.manifest->k + g.manifest->m);
  for (int i = 0; i < total; ++i) {
    if (holderOf(g.all, owner.manifestId, i) < 0) g.lost.push_back(i);
    for (const Census& x : g.all)
      if (x.manifestId == owner.manifestId && bit(x.corrupt, i)) {
        g.corrupt.push_back(i);
        break;
      }
  }
  describeManifest(*g.manifest, &rep);
  rep.shardsLost = static_cast<int>(g.lost.size());
  rep.shardsCorrupt = static_cast<int>(g.corrupt.size());
  return g;
}

// Shard indices whose holders are gone, matched with members that hold no
// shard of the snapshot (rank order): identical on every member.
std::vector<std::pair<int, int>> placements(const Agreed& g, int* missing) {
  std::vector<int> vacant;
  const uint64_t id = g.manifest->id;
  for (size_t r = 0; r < g.all.size(); ++r) {
    bool holds = false;
    if (g.all[r].manifestId == id)
      for (int w = 0; w < kMaskWords; ++w) holds |= g.all[r].intact[w] != 0;
    if (!holds) vacant.push_back(static_cast<int>(r));
  }
  std::vector<std::pair<int, int>> out;  // (shard, rank)
  for (size_t i = 0; i < g.lost.size(); ++i)
    if (i < vacant.size()) out.push_back({g.lost[i], vacant[i]});
  *missing = static_cast<int>(g.lost.size() - out.size());
  return out;
}

// The first k shards that have an intact holder (data shards first: with
// all of them, no decoding at all). Empty if fewer than k survive.
std::vector<std::pair<int, int>> sources(const Agreed& g) {
  std::vector<std::pair<int, int>> out;  // (shard, holder rank)
  const int total = static_cast<int>(g.manifest->k + g.manifest->m);
  for (int i = 0; i < total && out.size() < g.manifest->k; ++i) {
    int h = holderOf(g.all, g.manifest->id, i);
    if (h >= 0) out.push_back({i, h});
  }
  if (out.size() < g.manifest->k) out.clear();
  return out;
}

Status tooManyLost(const Agreed& g) {
  std::vector<int> gone;
  for (int i : g.lost)
    if (std::find(g.corrupt.begin(), g.corrupt.end(), i) == g.corrupt.end()) gone.push_back(i);
  const Manifest& m = *g.manifest;
  return dataLoss("snapshot " + idHex(m.id) + " (revision " + std::to_string(m.revision) +
                  ") cannot be rebuilt: it needs " + std::to_string(m.k) + " of its " +
                  std::to_string(m.k + m.m) + " shards, only " +
                  std::to_string(m.k + m.m - g.lost.size()) +
                  " survive (lost with their holders: " + indexList(gone) +
                  "; corrupt: " + indexList(g.corrupt) + "); more than m=" + std::to_string(m.m) +
                  " shards are gone");
}

}  // namespace

// ---------------------------------------------------------------------------
// Recover
// ---------------------------------------------------------------------------

Result<SnapshotReport> SnapshotStore::recover(Communicator& comm, SharedState& state,
                                              uint64_t adoptPeerId) {
  for (int round = 0;; ++round) {
    auto r = recoverOnce(comm, state, adoptPeerId, true);
    if (r.isOk() || !retryable(r.status()) || round + 1 >= kMaxRounds) return r;
    LOG_INFO("snapshot recover: " << r.status().toString() << "; again in the new view");
  }
}

Result<SnapshotReport> SnapshotStore::recoverOnce(Communicator& comm, SharedState& state,
                                                  uint64_t adopt, bool restore) {
  Held held = current();
  SnapshotReport rep;
  CHORUS_ASSIGN_OR_RETURN(Agreed g, agree(comm, held.manifest, held.shards, adopt, rep));
  if (g.chosen < 0) return failedPrecondition("chorusRecover: no member holds a snapshot");
  const Manifest& man = *g.manifest;
  auto src = sources(g);
  if (src.empty()) return tooManyLost(g);
  const int me = comm.rank(), k = static_cast<int>(man.k), total = k + static_cast<int>(man.m);
  auto ec = ErasureCode::create(k, static_cast<int>(man.m)).value();

  // The k source shards, broadcast from their holders to everyone.
  const size_t S = man.shardBytes;
  std::vector<uint8_t> image(static_cast<size_t>(k) * S);
  std::vector<std::vector<uint8_t>> parity(man.m);
  std::vector<uint8_t*> slot(total);
  for (int i = 0; i < k; ++i) slot[i] = image.data() + static_cast<size_t>(i) * S;
  std::vector<bool> present(total, false), rebuild(total, false);
  for (auto [i, holder] : src) {
    if (i >= k) {
      parity[i - k].resize(S);
      slot[i] = parity[i - k].data();
    }
    if (holder == me) std::memcpy(slot[i], held.shards.at(i)->data(), S);
    OpInfo info;
    CHORUS_RETURN_IF_ERROR(broadcastBytes(comm, kTagSnapshot, slot[i], S, holder, &info));
    rep.bytesSent += info.bytesSent;
    rep.bytesReceived += info.bytesReceived;
    if (hash64(slot[i], S) != man.shardHash[i])
      return dataLoss("snapshot shard " + std::to_string(i) + " from rank " +
                      std::to_string(holder) + " arrived corrupt");
    present[i] = true;
  }
  for (int i = 0; i < k; ++i) rebuild[i] = !present[i];
  auto t0 = std::chrono::steady_clock::now();
  CHORUS_RETURN_IF_ERROR(ec.decode(slot.data(), present, rebuild, S));
  rep.codecSeconds = secondsSince(t0);

  // Every section verified before any buffer is touched.
  Image img;
  img.m = &man;
  for (const Section& s : man.sections) {
    img.src.push_back(image.data() + s.offset);
    if (hash64(image.data() + s.offset, s.bytes) != s.hash)
      return dataLoss("snapshot section '" + s.name + "' does not match its hash after decoding");
  }
  if (restore) {
    const uint64_t owner = adopt ? adopt : comm.peerId();
    auto reg = state.registry();
    for (const Section& s : man.sections) {
      if (s.owner != 0 && s.owner != owner) continue;
      auto it = reg.find(s.name);
      if (it == reg.end() || static_cast<uint8_t>(it->second.dtype) != s.dtype ||
          it->second.count != s.count || it->second.checkEquality != (s.owner == 0))
        return failedPrecondition("chorusRecover: the snapshot has buffer '" + s.name + "' (" +
                                  dataTypeName(static_cast<DataType>(s.dtype)) + " x " +
                                  std::to_string(s.count) +
                                  "); register it the same way before recovering");
    }
    for (const Section& s : man.sections) {
      if (s.owner != 0 && s.owner != owner) continue;
      const Buffer& b = reg.at(s.name);
      if (!b.device) {
        std::memcpy(b.data, image.data() + s.offset, s.bytes);
        continue;
      }
      std::string e = cuda::copyToDevice(b.data, image.data() + s.offset, s.bytes);
      if (!e.empty())
        return Status(Code::kSystem, "restoring device buffer '" + s.name + "': " + e);
    }
    state.setRevision(man.revision);
  }

  // Re-protect: everyone has the image now, so lost shards are recomputed
  // locally by the members chosen to hold them.
  Held next;
  next.manifest = g.manifest;
  if (g.all[me].manifestId == man.id)
    for (const auto& [i, bytes] : held.shards)
      if (bit(g.all[me].intact, i)) next.shards[i] = bytes;
  int missing = 0;
  for (auto [i, rank] : placements(g, &missing)) {
    ++rep.shardsRebuilt;
    if (rank != me) continue;
    std::vector<uint8_t> bytes(S);
    computeShard(ec, img, i, bytes.data());
    if (hash64(bytes.data(), bytes.size()) != man.shardHash[i])
      return internalError("snapshot shard " + std::to_string(i) + " recomputed with another hash");
    next.shards[i] = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  }
  rep.shardsMissing = missing;
  rep.shardsHeld = static_cast<int>(next.shards.size());
  install(next);
  LOG_INFO("snapshot " << idHex(man.id) << " recovered (revision " << man.revision
                       << "): " << rep.shardsLost << " shards lost, " << rep.shardsCorrupt
                       << " corrupt, " << rep.shardsRebuilt << " re-placed");
  return rep;
}

// ---------------------------------------------------------------------------
// Protect: rebuild lost shards on new holders without restoring anything
// ---------------------------------------------------------------------------

Result<SnapshotReport> SnapshotStore::protect(Communicator& comm) {
  Held held = current();
  SnapshotReport rep;
  CHORUS_ASSIGN_OR_RETURN(Agreed g, agree(comm, held.manifest, held.shards, 0, rep));
  if (g.chosen < 0) return rep;  // nothing to protect
  const Manifest& man = *g.manifest;
  const int me = comm.rank(), k = static_cast<int>(man.k), total = k + static_cast<int>(man.m);
  Held next;
  next.manifest = g.manifest;
  if (g.all[me].manifestId == man.id)
    for (const auto& [i, bytes] : held.shards)
      if (bit(g.all[me].intact, i)) next.shards[i] = bytes;
  int missing = 0;
  auto place = placements(g, &missing);
  auto src = sources(g);
  if (!place.empty() && src.empty()) {
    install(next);  // keep the manifest; nothing can be rebuilt
    return tooManyLost(g);
  }
  // Each new holder pulls the k source shards; the sources send.
  const size_t S = man.shardBytes;
  std::vector<std::shared_ptr<OpResult>> ops;
  std::vector<std::vector<uint8_t>> incoming;
  int mine = -1;
  for (auto [target, rank] : place) {
    if (rank == me) {
      mine = target;
      incoming.assign(total, {});
    }
    for (auto [i, holder] : src) {
      if (rank == me) {
        incoming[i].resize(S);
        CHORUS_ASSIGN_OR_RETURN(auto op, postTransfer(comm, false, incoming[i].data(), S,
                                                      g.all[holder].peerId, kShardTransferTag));
        ops.push_back(std::move(op));
      } else if (holder == me) {
        CHORUS_ASSIGN_OR_RETURN(
            auto op, postTransfer(comm, true, const_cast<uint8_t*>(held.shards.at(i)->data()), S,
                                  g.all[rank].peerId, kShardTransferTag));
        ops.push_back(std::move(op));
      }
    }
  }
  Status first;
  for (auto& op : ops) {
    OpInfo info;
    Status st = comm.wait(op, &info);
    rep.bytesSent += info.bytesSent;
    rep.bytesReceived += info.bytesReceived;
    if (first.isOk() && !st.isOk()) first = st;
  }
  CHORUS_RETURN_IF_ERROR(first);
  if (mine >= 0) {
    auto ec = ErasureCode::create(k, static_cast<int>(man.m)).value();
    std::vector<uint8_t*> slot(total, nullptr);
    std::vector<bool> present(total, false), rebuild(total, false);
    for (auto [i, holder] : src) {
      if (hash64(incoming[i].data(), S) != man.shardHash[i])
        return dataLoss("snapshot shard " + std::to_string(i) + " from rank " +
                        std::to_string(holder) + " arrived corrupt");
      slot[i] = incoming[i].data();
      present[i] = true;
    }
    std::vector<uint8_t> out(S);
    slot[mine] = out.data();
    rebuild[mine] = true;
    auto t0 = std::chrono::steady_clock::now();
    CHORUS_RETURN_IF_ERROR(ec.decode(slot.data(), present, rebuild, S));
    rep.codecSeconds = secondsSince(t0);
    if (hash64(out.data(), S) != man.shardHash[mine])
      return dataLoss("snapshot shard " + std::to_string(mine) + " rebuilt with another hash");
    next.shards[mine] = std::make_shared<const std::vector<uint8_t>>(std::move(out));
  }
  rep.shardsRebuilt = static_cast<int>(place.size());
  rep.shardsMissing = missing;
  rep.shardsHeld = static_cast<int>(next.shards.size());
  install(next);
  if (!place.empty())
    LOG_INFO("snapshot " << idHex(man.id) << " re-protected: " << place.size()
                         << " shards placed on new holders, " << missing << " still missing");
  return rep;
}

// ---------------------------------------------------------------------------
// Load from a spill directory
// ---------------------------------------------------------------------------

Result<SnapshotReport> SnapshotStore::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return invalidArgument("snapshot directory " + dir + " does not exist");
  std::shared_ptr<const Manifest> best;
  int badManifests = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("snapshot-", 0) != 0 || e.path().extension() != ".manifest") continue;
    auto data = readFile(e.path());
    if (!data.isOk()) continue;
    const auto& d = data.value();
    Reader r{d.data(), d.size()};
    uint64_t magic = r.u64(), len = r.u64(), h = r.u64();
    if (!r.ok || magic != kManifestMagic || len != d.size() - 24 ||
        hash64(d.data() + 24, len) != h) {
      ++badManifests;
      LOG_WARN("snapshot: " << e.path().string() << " is damaged; ignored");
      continue;
    }
    auto m = Manifest::parse(d.data() + 24, len);
    if (!m.isOk()) {
      ++badManifests;
      continue;
    }
    if (!best || m.value().revision > best->revision)
      best = std::make_shared<const Manifest>(std::move(m).value());
  }
  if (!best)
    return failedPrecondition(
        "no intact snapshot manifest in " + dir +
        (badManifests ? " (" + std::to_string(badManifests) + " damaged)" : ""));
  Held next;
  next.manifest = best;
  SnapshotReport rep;
  const int total = static_cast<int>(best->k + best->m);
  fs::path base = fs::path(dir) / ("snapshot-" + idHex(best->id));
  for (int i = 0; i < total; ++i) {
    fs::path p = base.string() + ".shard" + std::to_string(i);
    if (!fs::exists(p, ec)) continue;
    auto data = readFile(p);
    if (!data.isOk()) continue;
    auto& d = data.value();
    Reader r{d.data(), d.size()};
    uint64_t magic = r.u64(), id = r.u64(), index = r.u64(), len = r.u64();
    if (!r.ok || magic != kShardMagic || id != best->id || index != static_cast<uint64_t>(i) ||
        len != best->shardBytes || d.size() != 32 + len ||
        hash64(d.data() + 32, len) != best->shardHash[i]) {
      ++rep.shardsCorrupt;
      LOG_WARN("snapshot: shard file " << p.string() << " fails verification; excluded");
      continue;
    }
    next.shards[i] = std::make_shared<const std::vector<uint8_t>>(d.begin() + 32, d.end());
  }
  describeManifest(*best, &rep);
  rep.shardsHeld = static_cast<int>(next.shards.size());
  install(next);
  return rep;
}

}  // namespace chorus::state
