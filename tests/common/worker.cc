// chorus_test_worker: one peer of a multi-process test, written against the
// public C API exactly as an application would use it. The test driver
// (tests/common/harness.h) starts a coordinator, spawns N workers and reads
// the lines they print:
//   READY rank=R size=N epoch=E
//   CASE name=... hash=H wrong=W rc=RC
//   BAD name=... rc=RC
//   DONE rc=RC
// Scenarios (--scenario):
//   sweep     every dtype x op x count x in/out-of-place; exact check + hash
//   async     16 concurrent async all-reduces with different tags
//   big       one large float sum (--count), exact check + hash
//   badinput  invalid calls, each printing its result code
//   mismatch  rank 0 calls with a different count than the others
//   loop      --iters all-reduces (more with --until-contributors); prints each
//             outcome (OP lines)
//   train     training loop with joins/leaves (PeersPending, UpdateMembership)
//   idle      connect, then wait for --iters milliseconds and leave
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <xxhash.h>

#include "chorus.h"
#include "tools/common/collective_case.h"
#include "tools/common/reference.h"

namespace {

struct Opts {
  std::string coordinator;
  std::string secret;
  std::string group = "test";
  std::string scenario = "sweep";
  int expected = 1;
  size_t count = 1024;
  int iters = 10;
  uint64_t seed = 1;
  std::string counts = "0,1,7,1000,65537";
  std::string dtypes = "all";
  std::string ops = "all";
  std::string colls = "all";
  std::string coll = "allreduce";
  // loop: the root of rooted collectives, a rank or "lowest-peer" (the rank
  // whose peer id is lowest: the side that dials its links).
  std::string root = "0";
  int rootRank = 0;  // resolved from `root` at the start of the loop
  int connectTimeoutMs = 30000;
  int opTimeoutMs = 30000;
  std::string streams = "1";  // N, or auto (adaptive pool)
  bool retry = false;
  int sleepMs = 0;
  // loop: past --iters, go on (at most 10x --iters) until an operation
  // succeeds with at most this many contributors. Contributors are part of
  // the agreed outcome, so every survivor stops after the same iteration;
  // a fault test's loop then outlasts its kills on a fast machine.
  int untilContributors = 0;
  int sleepRank = -1;  // >= 0: only that rank sleeps between iterations
  // loop: "R:MS,...": rank R sleeps MS between iterations instead (its rank
  // in the current view)
  std::string rankSleepMs;
  int leaveAt = -1;
  int exitAt = -1;
  int exitRank = -1;  // loop: only the peer of this rank exits at --exit-at
  bool joiner = false;
  // state scenario
  std::string stateRole = "popular";  // popular | receive | send
  int stateVariant = 0;               // 0: the group's content; 1: one element differs; 2: all
  size_t stateBytes = 3 << 20;
  uint64_t stateRevision = 5;
  int stateDelayMs = 0;  // sleep before syncing (lets a test kill a holder first)
  bool stateOtherLayout = false;
  // snapshot scenario
  int snapK = 4, snapM = 2;
  std::string snapSpill, snapLoad;
  int snapWaitSize = 0;   // before recovering (or admitting joiners): wait for this size
  int snapJoiners = 0;    // members: admit this many joiners after the first wait
  int snapWaitSize2 = 0;  // after admitting joiners / being protected: wait for this size
  uint64_t snapAdopt = 0;
  int snapAdoptRank = -1;
  bool snapAsync = false;
  // compress scenario
  std::string codecs = "uint8,int8,int4,e4m3,e5m2,onebit,topk,topkglobal";
  int compressSteps = 3;
};

const char* kTypeNames[] = {"int8", "uint8",    "int32", "uint32", "int64", "uint64",
                            "half", "bfloat16", "float", "double", "int16"};
const char* kOpNames[] = {"sum", "prod", "max", "min", "avg"};

std::vector<size_t> parseList(const std::string& s) {
  std::vector<size_t> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t c = s.find(',', start);
    out.push_back(std::stoull(s.substr(start, c - start)));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

uint64_t hashBuf(const void* p, size_t n) {
  return XXH3_64bits(p, n);
}

int rankOf(chorusComm_t comm) {
  int r = -1;
  chorusCommRank(comm, &r);
  return r;
}
int sizeOf(chorusComm_t comm) {
  int n = 0;
  chorusCommWorldSize(comm, &n);
  return n;
}

bool wanted(const std::string& list, const char* name) {
  if (list == "all") return true;
  std::string needle = std::string(",") + name + ",";
  return (std::string(",") + list + ",").find(needle) != std::string::npos;
}

int runSweep(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm), n = sizeOf(comm);
  int failures = 0;
  for (int t = 0; t < chorusNumDataTypes; ++t) {
    if (!wanted(o.dtypes, kTypeNames[t])) continue;
    auto dt = static_cast<chorusDataType_t>(t);
    size_t es = chorusDataTypeSize(dt);
    for (int op = 0; op < chorusNumRedOps; ++op) {
      if (!wanted(o.ops, kOpNames[op])) continue;
      auto rop = static_cast<chorusRedOp_t>(op);
      for (size_t count : parseList(o.counts)) {
        for (int inplace = 0; inplace < 2; ++inplace) {
          std::vector<uint8_t> in(count * es + 1), out(count * es + 1), want(count * es + 1);
          chorus_test::fillInput(dt, rop, in.data(), count, rank, o.seed);
          chorus_test::fillExpected(dt, rop, want.data(), count, n, o.seed);
          void* recv = inplace ? in.data() : out.data();
          chorusOpInfo_t info;
          info.size = sizeof(info);
          chorusResult_t rc = chorusAllReduce(in.data(), recv, count, dt, rop, comm, &info);
          size_t wrong =
              rc == chorusSuccess ? chorus_test::countWrong(recv, want.data(), count, es) : count;
          if (rc != chorusSuccess || wrong) ++failures;
          std::printf(
              "CASE name=%s/%s/%zu/%s hash=%016llx wrong=%zu rc=%d contributors=%d algo=%s\n",
              kTypeNames[t], kOpNames[op], count, inplace ? "inplace" : "outofplace",
              static_cast<unsigned long long>(hashBuf(recv, count * es)), wrong, rc,
              info.contributors, count ? info.algorithm : "none");
          if (rc != chorusSuccess) std::printf("ERROR %s\n", chorusGetLastError(comm));
        }
      }
    }
  }
  std::fflush(stdout);
  return failures;
}

// Random (non-integer) floats: results are not exact, but every peer must
// hold the same bytes; the driver compares the hashes.
int runParity(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm);
  int failures = 0;
  for (auto dt : {chorusFloat32, chorusFloat16, chorusBfloat16, chorusFloat64}) {
    size_t es = chorusDataTypeSize(dt);
    std::vector<uint8_t> in(o.count * es);
    uint64_t x = 0x1234567ull * (rank + 1) + o.seed;
    for (size_t i = 0; i < o.count; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      double v = (static_cast<double>(x >> 11) / 9007199254740992.0 - 0.5) * 3.0;
      chorus_test::store(dt, in.data(), i, v);
    }
    for (auto op : {chorusSum, chorusAvg}) {
      std::vector<uint8_t> out(o.count * es);
      chorusResult_t rc = chorusAllReduce(in.data(), out.data(), o.count, dt, op, comm, nullptr);
      if (rc != chorusSuccess) ++failures;
      std::printf("CASE name=parity/%s/%s hash=%016llx wrong=0 rc=%d\n", kTypeNames[dt],
                  kOpNames[op], static_cast<unsigned long long>(hashBuf(out.data(), out.size())),
                  rc);
    }
  }
  std::fflush(stdout);
  return failures;
}

int runAsync(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm), n = sizeOf(comm);
  const int kOps = 16;
  std::vector<std::vector<float>> in(kOps), want(kOps);
  std::vector<chorusRequest_t> reqs(kOps);
  int failures = 0;
  for (int k = 0; k < kOps; ++k) {
    size_t count = 1 + (k * 7919) % 50000 + (k % 4 == 0 ? 300000 : 0);
    in[k].resize(count);
    want[k].resize(count);
    chorus_test::fillInput(chorusFloat32, chorusSum, in[k].data(), count, rank, o.seed + k);
    chorus_test::fillExpected(chorusFloat32, chorusSum, want[k].data(), count, n, o.seed + k);
  }
  // Issue in a rank-dependent order: matching is by tag, not call order.
  for (int j = 0; j < kOps; ++j) {
    int k = (j + rank * 5) % kOps;
    chorusResult_t rc = chorusAllReduceAsync(in[k].data(), in[k].data(), in[k].size(),
                                             chorusFloat32, chorusSum, 100 + k, comm, &reqs[k]);
    if (rc != chorusSuccess) {
      std::printf("ERROR async start %d: %s\n", k, chorusGetLastError(comm));
      ++failures;
    }
  }
  for (int k = kOps - 1; k >= 0; --k) {
    if (!reqs[k]) continue;
    chorusResult_t rc = chorusWait(&reqs[k], nullptr);
    size_t wrong = chorus_test::countWrong(in[k].data(), want[k].data(), in[k].size(), 4);
    if (rc != chorusSuccess || wrong) ++failures;
    std::printf("CASE name=async/%d hash=%016llx wrong=%zu rc=%d\n", k,
                static_cast<unsigned long long>(hashBuf(in[k].data(), in[k].size() * 4)), wrong,
                rc);
  }
  std::fflush(stdout);
  return failures;
}

int runBig(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm), n = sizeOf(comm);
  std::vector<float> in(o.count), out(o.count), want(o.count);
  chorus_test::fillInput(chorusFloat32, chorusSum, in.data(), o.count, rank, o.seed);
  chorus_test::fillExpected(chorusFloat32, chorusSum, want.data(), o.count, n, o.seed);
  int failures = 0;
  for (int inplace = 0; inplace < 2; ++inplace) {
    std::vector<float> buf = in;
    float* recv = inplace ? buf.data() : out.data();
    chorusOpInfo_t info;
    info.size = sizeof(info);
    chorusResult_t rc =
        chorusAllReduce(buf.data(), recv, o.count, chorusFloat32, chorusSum, comm, &info);
    size_t wrong = chorus_test::countWrong(recv, want.data(), o.count, 4);
    if (rc != chorusSuccess || wrong) ++failures;
    std::printf("CASE name=big/%zu/%s hash=%016llx wrong=%zu rc=%d sent=%llu algo=%s\n", o.count,
                inplace ? "inplace" : "outofplace",
                static_cast<unsigned long long>(hashBuf(recv, o.count * 4)), wrong, rc,
                static_cast<unsigned long long>(info.bytesSent), info.algorithm);
  }
  std::fflush(stdout);
  return failures;
}

void bad(const char* name, chorusResult_t rc, chorusComm_t comm) {
  std::printf("BAD name=%s rc=%d msg=%s\n", name, rc, chorusGetLastError(comm));
}

int runBadInput(chorusComm_t comm, const Opts& o) {
  float x[4] = {1, 2, 3, 4};
  chorusRequest_t req = nullptr;
  bad("null-sendbuf", chorusAllReduce(nullptr, x, 4, chorusFloat32, chorusSum, comm, nullptr),
      comm);
  bad("null-recvbuf", chorusAllReduce(x, nullptr, 4, chorusFloat32, chorusSum, comm, nullptr),
      comm);
  bad("null-comm", chorusAllReduce(x, x, 4, chorusFloat32, chorusSum, nullptr, nullptr), nullptr);
  bad("bad-dtype",
      chorusAllReduce(x, x, 4, static_cast<chorusDataType_t>(42), chorusSum, comm, nullptr), comm);
  bad("bad-op",
      chorusAllReduce(x, x, 4, chorusFloat32, static_cast<chorusRedOp_t>(-1), comm, nullptr), comm);
  bad("count-overflow",
      chorusAllReduce(x, x, SIZE_MAX / 2, chorusFloat32, chorusSum, comm, nullptr), comm);
  bad("partial-overlap", chorusAllReduce(x, x + 1, 3, chorusFloat32, chorusSum, comm, nullptr),
      comm);
  bad("reserved-tag",
      chorusAllReduceAsync(x, x, 4, chorusFloat32, chorusSum, 1ull << 63, comm, &req), comm);
  bad("null-request", chorusWait(nullptr, nullptr), nullptr);
  int rank;
  bad("null-rank-out", chorusCommRank(comm, nullptr), comm);
  chorusOpInfo_t info;
  info.size = 3;  // caller forgot to set it
  bad("bad-info-size", chorusAllReduce(x, x, 4, chorusFloat32, chorusSum, comm, &info), comm);
  (void)rank;
  // After all of that, the communicator still works.
  chorusResult_t rc = chorusAllReduce(x, x, 4, chorusFloat32, chorusSum, comm, nullptr);
  bad("still-works", rc, comm);
  std::fflush(stdout);
  return rc == chorusSuccess ? 0 : 1;
}

int runMismatch(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm);
  std::vector<float> buf(1000 + (rank == 0 ? 1 : 0), 1.0f);
  chorusResult_t rc =
      chorusAllReduce(buf.data(), buf.data(), buf.size(), chorusFloat32, chorusSum, comm, nullptr);
  std::printf("BAD name=mismatch rc=%d msg=%s\n", rc, chorusGetLastError(comm));
  // The communicator recovers: the next matched call succeeds.
  std::vector<float> ok(100, 1.0f);
  rc = chorusAllReduce(ok.data(), ok.data(), ok.size(), chorusFloat32, chorusSum, comm, nullptr);
  std::printf("BAD name=after-mismatch rc=%d msg=%s\n", rc, rc ? chorusGetLastError(comm) : "");
  std::fflush(stdout);
  return 0;
}

// Every collective x dtype x op x count x placement, checked exactly; ranks
// compare hashes for results that must be the same everywhere.
int runColls(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm), n = sizeOf(comm);
  int failures = 0, index = 0;
  std::string list = o.colls;
  for (int ci = 0; ci <= static_cast<int>(chorus_test::Coll::kBarrier); ++ci) {
    auto coll = static_cast<chorus_test::Coll>(ci);
    if (!wanted(list, chorus_test::collName(coll))) continue;
    for (int t = 0; t < chorusNumDataTypes; ++t) {
      if (!wanted(o.dtypes, kTypeNames[t])) continue;
      auto dt = static_cast<chorusDataType_t>(t);
      for (int op = 0; op < chorusNumRedOps; ++op) {
        if (!wanted(o.ops, kOpNames[op])) continue;
        if (!chorus_test::collReduces(coll) && op > 0) continue;
        for (size_t count : parseList(o.counts)) {
          for (int inplace = 0; inplace < 2; ++inplace) {
            if (inplace && !chorus_test::collHasInPlace(coll)) continue;
            int root = index++ % n;
            auto rc = chorus_test::buildCase(coll, dt, static_cast<chorusRedOp_t>(op), count, n,
                                             rank, root, inplace, o.seed + index);
            chorusOpInfo_t info;
            info.size = sizeof(info);
            chorusResult_t r = chorus_test::runCase(rc, comm, &info);
            size_t wrong = r == chorusSuccess ? chorus_test::checkCase(rc) : 1;
            if (r != chorusSuccess || wrong) ++failures;
            std::string hash = "-";
            if (chorus_test::collSameResultEverywhere(coll) && r == chorusSuccess && rc.recvbuf) {
              char buf[20];
              std::snprintf(buf, sizeof(buf), "%016llx",
                            static_cast<unsigned long long>(hashBuf(rc.recvbuf, rc.resultBytes)));
              hash = buf;
            }
            std::printf("CASE name=%s/%s/%s/%zu/%s/root%d hash=%s wrong=%zu rc=%d algo=%s\n",
                        chorus_test::collName(coll), kTypeNames[t], kOpNames[op], count,
                        inplace ? "inplace" : "outofplace", root, hash.c_str(), wrong, r,
                        count || coll == chorus_test::Coll::kBarrier ||
                                coll == chorus_test::Coll::kAllToAllv
                            ? info.algorithm
                            : "none");
            if (r != chorusSuccess) std::printf("ERROR %s\n", chorusGetLastError(comm));
          }
        }
      }
    }
  }
  std::fflush(stdout);
  return failures;
}

// Point to point: a ring exchange (send right, receive left) inside a group,
// which would deadlock with blocking calls outside one.
int runP2P(chorusComm_t comm, const Opts& o) {
  int rank = rankOf(comm), n = sizeOf(comm), failures = 0;
  for (size_t count : parseList(o.counts)) {
    std::vector<int32_t> out(count), in(count, -1);
    for (size_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(rank * 1000003 + i);
    int right = (rank + 1) % n, left = (rank + n - 1) % n;
    chorusGroupStart();
    chorusSend(out.data(), count, chorusInt32, right, 7, comm);
    chorusRecv(in.data(), count, chorusInt32, left, 7, comm);
    chorusResult_t r = chorusGroupEnd();
    size_t wrong = 0;
    for (size_t i = 0; i < count && r == chorusSuccess; ++i)
      if (in[i] != static_cast<int32_t>(left * 1000003 + i)) ++wrong;
    if (r != chorusSuccess || wrong) ++failures;
    std::printf("CASE name=p2p/ring/%zu hash=- wrong=%zu rc=%d\n", count, wrong, r);
    if (r != chorusSuccess) std::printf("ERROR %s\n", chorusGetLastError(comm));
  }
  // Bad peers are refused clearly. The barriers keep ranks still meanwhile: a
  // member that finished early and left would shift them.
  chorusBarrier(comm);
  int32_t x = 0;
  chorusResult_t r1 = chorusSend(&x, 1, chorusInt32, rank, 1, comm);
  std::string e1 = chorusGetLastError(comm);
  chorusResult_t r2 = chorusSend(&x, 1, chorusInt32, n + 5, 1, comm);
  chorusResult_t r3 = chorusSend(&x, 1, chorusInt32, (rank + 1) % n, 0x80000000u, comm);
  std::printf("BAD name=p2p-self rc=%d rank=%d n=%d err=%s\n", n > 1 ? r1 : 1, rank, n, e1.c_str());
  std::printf("BAD name=p2p-out-of-range rc=%d\nBAD name=p2p-tag rc=%d\n", r2, r3);
  chorusBarrier(comm);
  std::fflush(stdout);
  return failures;
}

// Topology: time the ring all-reduce in rank order, measure the topology,
// time it again on the optimised ring; print the ring and the selection.
// Shared state: "weights" (float), "step" (uint64) compared; "rng" per peer.
// Variant 0 is the group's content; variant 1 differs in one element of the
// third chunk; variant 2 everywhere; receive-only peers start from zeros.
void fillState(std::vector<float>& w, uint64_t& step, int variant) {
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 2654435761u) % 1000) / 8;
  step = 1234;
  if (variant == 1 && w.size() > (2 << 20) / 4) w[(2 << 20) / 4 + 17] += 1;
  if (variant == 2)
    for (auto& x : w) x = -x;
  if (variant == 2) step = 99;
}

int runState(chorusComm_t comm, const Opts& o) {
  std::vector<float> w(o.stateBytes / 4 + (o.stateOtherLayout ? 1 : 0));
  uint64_t step = 0;
  uint8_t rng[64];
  for (int i = 0; i < 64; ++i) rng[i] = static_cast<uint8_t>(getpid() * 31 + i);
  uint8_t rngBefore[64];
  std::memcpy(rngBefore, rng, 64);
  chorusStateStrategy_t strategy = chorusStateEnforcePopular;
  if (o.stateRole == "receive") {
    strategy = chorusStateReceiveOnly;
  } else {
    fillState(w, step, o.stateVariant);
    chorusStateSetRevision(comm, o.stateRevision);
  }
  if (o.stateRole == "send") strategy = chorusStateSendOnly;
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::printf("FAIL %s\n", what);
      ++failures;
    }
  };
  expect(
      chorusStateRegister(comm, "weights", w.data(), w.size(), chorusFloat32, 0) == chorusSuccess,
      "register weights");
  expect(chorusStateRegister(comm, "step", &step, 1, chorusUint64, 0) == chorusSuccess,
         "register step");
  expect(chorusStateRegister(comm, "rng", rng, 64, chorusUint8, CHORUS_STATE_NO_EQUALITY) ==
             chorusSuccess,
         "register rng");
  // Bad input: clear errors, nothing registered.
  expect(
      chorusStateRegister(comm, "weights", w.data(), 1, chorusFloat32, 0) == chorusInvalidArgument,
      "duplicate name refused");
  expect(chorusStateRegister(comm, nullptr, w.data(), 1, chorusFloat32, 0) == chorusInvalidArgument,
         "NULL name refused");
  expect(chorusStateRegister(comm, "x", w.data(), 1, chorusFloat32, 8) == chorusInvalidArgument,
         "bad flags refused");
  expect(chorusSyncSharedState(comm, static_cast<chorusStateStrategy_t>(9), nullptr) ==
             chorusInvalidArgument,
         "bad strategy refused");
  if (o.stateDelayMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.stateDelayMs));

  chorusStateSyncInfo_t info;
  std::memset(&info, 0, sizeof(info));
  info.size = sizeof(info);
  std::printf("SYNC_START rank=%d\n", rankOf(comm));
  std::fflush(stdout);
  auto t0 = std::chrono::steady_clock::now();
  chorusResult_t rc = chorusSyncSharedState(comm, strategy, &info);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::string err = rc == chorusSuccess ? "" : chorusGetLastError(comm);
  std::vector<float> want(w.size());
  uint64_t wantStep = 0;
  fillState(want, wantStep, 0);
  bool same = std::memcmp(want.data(), w.data(), w.size() * 4) == 0 && step == wantStep;
  uint64_t rev = 0;
  chorusStateGetRevision(comm, &rev);
  for (char& c : err)
    if (c == ' ') c = '_';
  std::printf(
      "STATE rc=%d rank=%d revision=%llu rounds=%d updated=%d sent=%llu received=%llu "
      "hash=%016llx group_content=%d rng_kept=%d ms=%.1f err=%s\n",
      rc, rankOf(comm), static_cast<unsigned long long>(rev), info.rounds, info.peersUpdated,
      static_cast<unsigned long long>(info.bytesSent),
      static_cast<unsigned long long>(info.bytesReceived),
      static_cast<unsigned long long>(info.stateHash), same ? 1 : 0,
      std::memcmp(rng, rngBefore, 64) == 0 ? 1 : 0, ms, err.c_str());
  std::fflush(stdout);
  return failures;
}

// Erasure-coded snapshots. Members fill the state (revision 5; private "rng"
// from their rank), snapshot it, then change it all (revision 6), so only a
// real recovery brings the snapshot's bytes back. The test kills peers in
// between; --snap-wait-size makes survivors wait for the view that lost
// them. Joiners (re-protection test) wait until the background protection
// gave them a shard. Loaders restart from spilled files.
bool waitForSize(chorusComm_t comm, int size, int timeoutMs) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  // Only local reads: the library's progress thread applies view changes.
  // (chorusPeersPending here was a bug: it is a joint call, and a loop whose
  // exit depends on when each peer sees the new view calls it a different
  // number of times on different peers; those that called it once more
  // waited 20 s for partners that had moved on to chorusRecover.)
  while (sizeOf(comm) != size) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void fillRng(uint8_t* rng, int rank) {
  for (int i = 0; i < 64; ++i) rng[i] = static_cast<uint8_t>(rank * 37 + i * 11 + 1);
}

int runSnapshot(chorusComm_t comm, const Opts& o) {
  const int rank0 = rankOf(comm);
  std::vector<float> w(o.stateBytes / 4);
  uint64_t step = 0;
  uint8_t rng[64];
  fillRng(rng, o.joiner || !o.snapLoad.empty() ? 200 + rank0 : rank0);
  uint8_t rngWant[64];
  fillRng(rngWant, o.snapAdoptRank >= 0 ? o.snapAdoptRank : rank0);
  if ((o.joiner || !o.snapLoad.empty()) && o.snapAdoptRank < 0)
    std::memcpy(rngWant, rng, 64);  // nothing of theirs was saved: left as it is
  int failures = 0;
  chorusStateRegister(comm, "weights", w.data(), w.size(), chorusFloat32, 0);
  chorusStateRegister(comm, "step", &step, 1, chorusUint64, 0);
  chorusStateRegister(comm, "rng", rng, 64, chorusUint8, CHORUS_STATE_NO_EQUALITY);
  uint64_t me = 0;
  chorusCommPeerId(comm, &me);
  chorusSnapshotInfo_t info;
  auto fresh = [&] {
    std::memset(&info, 0, sizeof(info));
    info.size = sizeof(info);
  };
  auto errText = [&](chorusResult_t rc) {
    std::string e = rc == chorusSuccess ? "" : chorusGetLastError(comm);
    for (char& c : e)
      if (c == ' ') c = '_';
    return e;
  };

  if (!o.snapLoad.empty()) {
    fresh();
    chorusResult_t rc = chorusSnapshotLoad(comm, o.snapLoad.c_str(), &info);
    std::printf("LOAD rc=%d rank=%d held=%d corrupt=%d revision=%llu err=%s\n", rc, rank0,
                info.shardsHeld, info.shardsCorrupt, static_cast<unsigned long long>(info.revision),
                errText(rc).c_str());
  } else if (o.joiner) {
    // Joined through the members' chorusUpdateMembership: the background
    // protection that follows should place a lost shard here.
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    do {
      fresh();
      chorusSnapshotGetInfo(comm, &info);
      if (info.shardsHeld > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < end);
    std::printf("PROTECTED rank=%d held=%d\n", rank0, info.shardsHeld);
    std::fflush(stdout);
  } else {
    fillState(w, step, 0);
    chorusStateSetRevision(comm, 5);
    fresh();
    auto t0 = std::chrono::steady_clock::now();
    chorusResult_t rc;
    if (o.snapAsync) {
      chorusRequest_t req = nullptr;
      rc = chorusSnapshotAsync(comm, o.snapK, o.snapM,
                               o.snapSpill.empty() ? nullptr : o.snapSpill.c_str(), &req);
      if (rc == chorusSuccess) {
        // Overlap: keep computing on a copy while the snapshot encodes.
        int polls = 0, done = 0;
        double sink = 0;
        while (!done && chorusTest(&req, &done, nullptr) == chorusSuccess && !done) {
          for (int i = 0; i < 1000; ++i) sink += std::sqrt(static_cast<double>(i + polls));
          ++polls;
        }
        if (req) rc = chorusWait(&req, nullptr);
        std::printf("ASYNC polls=%d sink=%.0f\n", polls, sink);
      }
      chorusSnapshotGetInfo(comm, &info);
    } else {
      rc = chorusSnapshot(comm, o.snapK, o.snapM,
                          o.snapSpill.empty() ? nullptr : o.snapSpill.c_str(), &info);
    }
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "SNAPSHOT rc=%d rank=%d peer=%llu held=%d id=%016llx state_bytes=%llu shard_bytes=%llu "
        "codec_ms=%.2f ms=%.1f err=%s\n",
        rc, rank0, static_cast<unsigned long long>(me), info.shardsHeld,
        static_cast<unsigned long long>(info.snapshotId),
        static_cast<unsigned long long>(info.stateBytes),
        static_cast<unsigned long long>(info.shardBytes), info.codecSeconds * 1e3, ms,
        errText(rc).c_str());
    if (rc != chorusSuccess) ++failures;
    // Training moves on: everything differs from the snapshot now.
    fillState(w, step, 2);
    std::memset(rng, 0, 64);
    chorusStateSetRevision(comm, 6);
    std::printf("SNAPSHOT_TAKEN rank=%d\n", rank0);
    std::fflush(stdout);
    if (o.snapWaitSize > 0 && !waitForSize(comm, o.snapWaitSize, 20000)) {
      std::printf("FAIL size never reached %d (is %d)\n", o.snapWaitSize, sizeOf(comm));
      return failures + 1;
    }
    if (o.snapJoiners > 0) {
      int pending = 0;
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (pending < o.snapJoiners && std::chrono::steady_clock::now() < end) {
        chorusPeersPending(comm, &pending);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      rc = chorusUpdateMembership(comm);
      std::printf("REJOINED rc=%d size=%d\n", rc, sizeOf(comm));
      std::fflush(stdout);
    }
  }
  if (o.snapWaitSize2 > 0 && !waitForSize(comm, o.snapWaitSize2, 30000)) {
    std::printf("FAIL size never reached %d (is %d)\n", o.snapWaitSize2, sizeOf(comm));
    return failures + 1;
  }

  fresh();
  auto t0 = std::chrono::steady_clock::now();
  chorusResult_t rc = chorusRecover(comm, o.snapAdopt, &info);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<float> want(w.size());
  uint64_t wantStep = 0;
  fillState(want, wantStep, 0);
  uint64_t rev = 0;
  chorusStateGetRevision(comm, &rev);
  std::printf(
      "RECOVER rc=%d rank=%d size=%d revision=%llu lost=%d corrupt=%d rebuilt=%d missing=%d "
      "held=%d weights_ok=%d step_ok=%d rng_ok=%d received=%llu ms=%.1f err=%s\n",
      rc, rankOf(comm), sizeOf(comm), static_cast<unsigned long long>(rev), info.shardsLost,
      info.shardsCorrupt, info.shardsRebuilt, info.shardsMissing, info.shardsHeld,
      std::memcmp(want.data(), w.data(), w.size() * 4) == 0 ? 1 : 0, step == wantStep ? 1 : 0,
      std::memcmp(rng, rngWant, 64) == 0 ? 1 : 0,
      static_cast<unsigned long long>(info.bytesReceived), ms, errText(rc).c_str());
  std::fflush(stdout);
  return failures;
}

// Compressed all-reduce: every codec, several steps (error feedback on for
// one-bit and top-k), fp32 and bf16. Prints the result hash (must match on
// every peer), the wire bytes, and the relative error of the running sum
// against the exact fp32 sum.
int runCompress(chorusComm_t comm, const Opts& o) {
  const int rank = rankOf(comm), n = sizeOf(comm);
  const char* names[] = {"uint8", "int8", "int4", "e4m3", "e5m2", "onebit", "topk", "topkglobal"};
  static_assert(sizeof(names) / sizeof(names[0]) == chorusNumCodecs);
  const size_t count = o.count;
  int failures = 0;
  for (int k = 0; k < chorusNumCodecs; ++k) {
    if (!wanted(o.codecs, names[k])) continue;
    for (chorusDataType_t dt : {chorusFloat32, chorusBfloat16}) {
      chorusCodecParams_t cp;
      chorusCodecParamsInit(&cp, static_cast<chorusCodecKind_t>(k));
      cp.seed = 7;
      cp.stochasticRounding = k == chorusCodecInt8;  // one codec exercises stochastic rounding
      chorusCodec_t codec = nullptr;
      if (chorusCodecCreate(&cp, &codec) != chorusSuccess) {
        std::printf("FAIL codec create %s\n", names[k]);
        ++failures;
        continue;
      }
      std::vector<double> truth(count, 0.0), got(count, 0.0);
      for (int step = 0; step < o.compressSteps; ++step) {
        std::vector<float> x(count);
        std::vector<double> sum(count, 0.0);
        for (int r = 0; r < n; ++r)
          for (size_t i = 0; i < count; ++i) {
            // gradient-like: smooth signal plus per-rank noise, an occasional outlier
            double v = std::sin(0.001 * i + step) * 1e-2 +
                       ((i * 7919 + r * 104729 + step * 31) % 1000 - 500) * 1e-5;
            if (i % 997 == 0) v *= 30;
            float f = static_cast<float>(v);
            if (dt == chorusBfloat16) f = chorus_test::fromBf16(chorus_test::toBf16(f));
            if (r == rank) x[i] = f;
            sum[i] += f;
          }
        std::vector<uint16_t> xin(count), xout(count);
        std::vector<float> out(count);
        const void* in = x.data();
        void* res = out.data();
        if (dt == chorusBfloat16) {
          for (size_t i = 0; i < count; ++i) xin[i] = chorus_test::toBf16(x[i]);
          in = xin.data();
          res = xout.data();
        }
        chorusOpInfo_t info;
        std::memset(&info, 0, sizeof(info));
        info.size = sizeof(info);
        chorusResult_t rc =
            chorusAllReduceCompressed(in, res, count, dt, chorusSum, codec, comm, &info);
        if (dt == chorusBfloat16)
          for (size_t i = 0; i < count; ++i) out[i] = chorus_test::fromBf16(xout[i]);
        double num = 0, den = 0;
        for (size_t i = 0; i < count; ++i) {
          truth[i] += sum[i];
          got[i] += out[i];
          num += (got[i] - truth[i]) * (got[i] - truth[i]);
          den += truth[i] * truth[i];
        }
        std::printf(
            "COMPRESS codec=%s dtype=%s step=%d rc=%d hash=%016llx wire=%llu raw=%llu "
            "relerr=%.6f\n",
            names[k], dt == chorusFloat32 ? "float" : "bfloat16", step, rc,
            static_cast<unsigned long long>(hashBuf(res, count * (dt == chorusFloat32 ? 4 : 2))),
            static_cast<unsigned long long>(info.bytesSent),
            static_cast<unsigned long long>(2.0 * (n - 1) / n * count * 4),
            std::sqrt(num / (den > 0 ? den : 1)));
        if (rc != chorusSuccess) {
          std::printf("ERROR %s\n", chorusGetLastError(comm));
          ++failures;
        }
      }
      chorusCodecDestroy(codec);
    }
  }
  std::fflush(stdout);
  return failures;
}

// Compressed all-reduce in a loop (1-bit, error feedback), retried after a
// peer loss: survivors must print the same result hash for every iteration.
int runCompressLoop(chorusComm_t comm, const Opts& o) {
  chorusCodecParams_t cp;
  chorusCodecParamsInit(&cp, chorusCodecOneBit);
  chorusCodec_t codec = nullptr;
  if (chorusCodecCreate(&cp, &codec) != chorusSuccess) return 1;
  const int rank0 = rankOf(comm);
  std::vector<float> x(o.count), y(o.count);
  int failures = 0;
  for (int it = 0; it < o.iters; ++it) {
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = std::sin(0.01 * i + it) * 1e-2f + static_cast<float>((i + rank0 * 31) % 17) * 1e-4f;
    chorusResult_t rc = chorusPeerLost;
    int attempts = 0;
    chorusOpInfo_t info;
    std::memset(&info, 0, sizeof(info));
    info.size = sizeof(info);
    while (rc == chorusPeerLost && attempts < 5) {
      ++attempts;
      rc = chorusAllReduceCompressed(x.data(), y.data(), x.size(), chorusFloat32, chorusSum, codec,
                                     comm, &info);
    }
    std::printf("CLOOP it=%d rc=%d attempts=%d hash=%016llx size=%d\n", it, rc, attempts,
                static_cast<unsigned long long>(hashBuf(y.data(), y.size() * 4)), sizeOf(comm));
    if (rc == chorusRemoved) return 3;
    if (rc != chorusSuccess) ++failures;
    if (o.sleepMs) std::this_thread::sleep_for(std::chrono::milliseconds(o.sleepMs));
  }
  std::fflush(stdout);
  chorusCodecDestroy(codec);
  return failures;
}

int runTopo(chorusComm_t comm, const Opts& o) {
  std::vector<float> buf(o.count, 1.0f);
  auto timeRing = [&]() {
    chorusAllReduce(buf.data(), buf.data(), buf.size(), chorusFloat32, chorusSum, comm, nullptr);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.iters; ++i)
      if (chorusAllReduce(buf.data(), buf.data(), buf.size(), chorusFloat32, chorusSum, comm,
                          nullptr) != chorusSuccess)
        return -1.0;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.iters;
  };
  double before = timeRing();
  auto t0 = std::chrono::steady_clock::now();
  chorusResult_t rc = chorusOptimizeTopology(comm);
  double measureSec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rc != chorusSuccess) {
    std::printf("ERROR optimize %s\n", chorusGetLastError(comm));
    return 1;
  }
  double after = timeRing();
  std::vector<char> text(1 << 16);
  chorusDescribeSelection(comm, text.data(), text.size());
  std::string d(text.data());
  std::string ring = d.substr(d.find("ring order:") + 11);
  ring = ring.substr(0, ring.find('(') == std::string::npos ? ring.find('\n') : ring.find('('));
  std::string sel = d.substr(0, d.find('\n', d.find("allreduce:")));
  sel = sel.substr(sel.find("allreduce:"));
  chorusOpInfo_t info;
  info.size = sizeof(info);
  std::vector<float> big(16 << 20 >> 2, 1.0f);
  rc = chorusAllReduce(big.data(), big.data(), big.size(), chorusFloat32, chorusSum, comm, &info);
  for (char& c : ring)
    if (c == ' ') c = '_';
  std::printf("TOPO ring=%s before_ms=%.2f after_ms=%.2f measure_s=%.2f algo16M=%s rc=%d\n",
              ring.c_str(), before * 1e3, after * 1e3, measureSec, info.algorithm, rc);
  std::printf("SELECTION %s\n", sel.c_str());
  if (size_t at = d.find("measured:"); at != std::string::npos)
    std::printf("MEASURED %s\n", d.substr(at, d.find('\n', at) - at).c_str());
  std::fflush(stdout);
  return rc == chorusSuccess ? 0 : 1;
}

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One collective (--coll, default all-reduce) over `count` floats per block
// with the same values on every peer, so the exact result depends only on
// the number of contributors, whatever the ranks are after a view change.
// Prints an OP line.
chorusResult_t loopOp(chorusComm_t comm, const Opts& o, int it, std::vector<float>& in,
                      std::vector<float>& out, bool* wrongOut, int valueSeed,
                      int* contributorsOut = nullptr) {
  float v = static_cast<float>(valueSeed % 5 + 1);
  int n = std::max(1, sizeOf(comm));
  size_t count = in.size();
  chorus_test::Coll coll = chorus_test::Coll::kAllReduce;
  chorus_test::parseColl(o.coll, &coll);
  bool blocks = coll == chorus_test::Coll::kAllGather || coll == chorus_test::Coll::kGather ||
                coll == chorus_test::Coll::kReduceScatter || coll == chorus_test::Coll::kScatter ||
                coll == chorus_test::Coll::kAllToAll;
  // Size for the largest world this op may run in (the view can shrink, not
  // grow, during a call).
  std::vector<float> src(blocks ? count * n : count), dst(blocks ? count * n : count, -1.0f);
  for (size_t i = 0; i < src.size(); ++i) src[i] = v + static_cast<float>(i % count % 3);
  chorusOpInfo_t info;
  info.size = sizeof(info);
  auto t0 = std::chrono::steady_clock::now();
  chorusResult_t rc;
  switch (coll) {
    case chorus_test::Coll::kBroadcast:
      rc = chorusBroadcast(src.data(), dst.data(), count, chorusFloat32, o.rootRank, comm, &info);
      break;
    case chorus_test::Coll::kReduce:
      rc = chorusReduce(src.data(), dst.data(), count, chorusFloat32, chorusSum, o.rootRank, comm,
                        &info);
      break;
    case chorus_test::Coll::kAllGather:
      rc = chorusAllGather(src.data(), dst.data(), count, chorusFloat32, comm, &info);
      break;
    case chorus_test::Coll::kReduceScatter:
      rc =
          chorusReduceScatter(src.data(), dst.data(), count, chorusFloat32, chorusSum, comm, &info);
      break;
    case chorus_test::Coll::kAllToAll:
      rc = chorusAllToAll(src.data(), dst.data(), count, chorusFloat32, comm, &info);
      break;
    case chorus_test::Coll::kGather:
      rc = chorusGather(src.data(), dst.data(), count, chorusFloat32, o.rootRank, comm, &info);
      break;
    case chorus_test::Coll::kScatter:
      rc = chorusScatter(src.data(), dst.data(), count, chorusFloat32, o.rootRank, comm, &info);
      break;
    case chorus_test::Coll::kBarrier: {
      // Through the request to learn who took part: a barrier re-run after a
      // view change has fewer contributors than the size seen before it.
      chorusRequest_t req = nullptr;
      rc = chorusBarrierAsync(0, comm, &req);
      if (rc == chorusSuccess) rc = chorusWait(&req, &info);
      break;
    }
    default:
      std::copy(src.begin(), src.begin() + count, in.begin());
      if (o.retry)
        rc = chorusAllReduceWithRetry(in.data(), out.data(), count, chorusFloat32, chorusSum, 0,
                                      comm, &info);
      else
        rc = chorusAllReduce(in.data(), out.data(), count, chorusFloat32, chorusSum, comm, &info);
      std::copy(out.begin(), out.end(), dst.begin());
      break;
  }
  auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  // Expected: sums hold contributors * v; copies hold v. Only the root holds
  // reduce/gather results; all-gather/gather/all-to-all fill `contributors`
  // blocks.
  bool wrong = false;
  int k = info.contributors;
  bool sums = coll == chorus_test::Coll::kAllReduce || coll == chorus_test::Coll::kReduce ||
              coll == chorus_test::Coll::kReduceScatter;
  bool rootOnly = coll == chorus_test::Coll::kReduce || coll == chorus_test::Coll::kGather;
  size_t checked = coll == chorus_test::Coll::kBarrier ? 0
                   : (coll == chorus_test::Coll::kAllGather || coll == chorus_test::Coll::kGather ||
                      coll == chorus_test::Coll::kAllToAll)
                       ? count * k
                       : count;
  if (rc == chorusSuccess)
    for (size_t i = 0; i < checked; ++i) {
      if (rootOnly && dst[0] == -1.0f) break;  // not the root
      float want = (sums ? static_cast<float>(k) : 1.0f) * (v + static_cast<float>(i % count % 3));
      if (dst[i] != want) {
        wrong = true;
        break;
      }
    }
  if (wrongOut) *wrongOut = wrong;
  if (contributorsOut) *contributorsOut = rc == chorusSuccess ? info.contributors : 0;
  bool shared = chorus_test::collSameResultEverywhere(coll);
  std::printf(
      "OP it=%d rc=%d hash=%016llx contributors=%d epoch=%llu wrong=%d size=%d attempts=%d "
      "us=%lld t=%lld\n",
      it, rc,
      static_cast<unsigned long long>(
          rc == chorusSuccess && shared ? hashBuf(dst.data(), checked * sizeof(float)) : 0),
      info.contributors, static_cast<unsigned long long>(info.epoch), wrong ? 1 : 0, sizeOf(comm),
      info.attempts, static_cast<long long>(us), static_cast<long long>(wallMs()));
  if (rc != chorusSuccess && rc != chorusPeerLost)
    std::printf("ERROR it=%d %s\n", it, chorusGetLastError(comm));
  std::fflush(stdout);
  return rc;
}

// The rank --root names: a number, or lowest-peer (every member learns the
// others' peer ids through an all-gather).
int resolveRoot(chorusComm_t comm, const std::string& root) {
  if (root != "lowest-peer") return std::atoi(root.c_str());
  int n = std::max(1, sizeOf(comm));
  uint64_t mine = 0;
  chorusCommPeerId(comm, &mine);
  std::vector<uint64_t> all(n);
  if (chorusAllGather(&mine, all.data(), 1, chorusUint64, comm, nullptr) != chorusSuccess) return 0;
  int r = static_cast<int>(std::min_element(all.begin(), all.end()) - all.begin());
  std::printf("ROOT rank=%d peer=%llu (lowest peer id)\n", r,
              static_cast<unsigned long long>(all[r]));
  return r;
}

int runLoop(chorusComm_t comm, const Opts& given) {
  Opts o = given;
  o.rootRank = resolveRoot(comm, o.root);
  std::map<int, int> rankSleep;
  for (size_t start = 0; start < o.rankSleepMs.size();) {
    size_t comma = o.rankSleepMs.find(',', start);
    std::string item = o.rankSleepMs.substr(start, comma - start);
    size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
      std::fprintf(stderr, "--rank-sleep-ms: '%s' is not RANK:MS\n", item.c_str());
      return 2;
    }
    rankSleep[std::stoi(item.substr(0, colon))] = std::stoi(item.substr(colon + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  int failures = 0;
  std::vector<float> in(o.count), out(o.count);
  const bool exits = o.exitAt >= 0 && (o.exitRank < 0 || rankOf(comm) == o.exitRank);
  int contributors = 0;
  auto more = [&](int it) {
    if (it < o.iters) return true;
    if (o.untilContributors <= 0 || it >= 10 * o.iters) return false;
    return contributors <= 0 || contributors > o.untilContributors;
  };
  for (int it = 0; more(it); ++it) {
    if (exits && it == o.exitAt) {
      // main destroys the communicator: a leave while the others run `it`.
      std::printf("EXIT it=%d t=%lld\n", it, static_cast<long long>(wallMs()));
      std::fflush(stdout);
      return 0;
    }
    bool wrong = false;
    int k = 0;
    chorusResult_t rc = loopOp(comm, o, it, in, out, &wrong, it, &k);
    if (k > 0) contributors = k;
    if (rc == chorusRemoved) return 3;
    if (wrong) return 4;
    if (rc != chorusSuccess && rc != chorusPeerLost) ++failures;
    int sleepMs = o.sleepRank < 0 || rankOf(comm) == o.sleepRank ? o.sleepMs : 0;
    auto own = rankSleep.find(rankOf(comm));
    if (own != rankSleep.end()) sleepMs = own->second;
    if (sleepMs) std::this_thread::sleep_for(std::chrono::milliseconds(sleepMs));
  }
  return failures ? 1 : 0;
}

// A training loop with dynamic membership: each step admits pending peers,
// all-reduces, and agrees on whether to stop (rank 0 decides after --iters
// steps, so peers that join late follow the same schedule). --leave-at K
// announces a leave at step K (done at the next update); --exit-at K returns
// at step K so main destroys the communicator: a leave outside a joint call.
int runTrain(chorusComm_t comm, const Opts& o) {
  std::vector<float> in(o.count), out(o.count);
  int failures = 0;
  for (int it = 0;; ++it) {
    if (o.leaveAt >= 0 && it == o.leaveAt) {
      chorusAnnounceLeave(comm);
      std::printf("LEAVE it=%d announced\n", it);
    }
    if (o.exitAt >= 0 && it == o.exitAt) {
      std::printf("EXIT it=%d t=%lld\n", it, static_cast<long long>(wallMs()));
      std::fflush(stdout);
      return 0;
    }
    int pending = 0;
    chorusResult_t rc = chorusSuccess;
    // A joiner returns from connect where the members return from the update
    // that admitted it: it skips that step once.
    if (!(o.joiner && it == 0)) rc = chorusPeersPending(comm, &pending);
    if (rc == chorusSuccess && pending > 0) {
      rc = chorusUpdateMembership(comm);
      uint64_t epoch = 0;
      chorusCommEpoch(comm, &epoch);
      std::printf("UPDATE it=%d rc=%d size=%d epoch=%llu t=%lld\n", it, rc, sizeOf(comm),
                  static_cast<unsigned long long>(epoch), static_cast<long long>(wallMs()));
      if (rc == chorusSuccess && o.leaveAt >= 0 && it >= o.leaveAt) {
        std::printf("LEFT it=%d\n", it);
        std::fflush(stdout);
        return failures ? 1 : 0;
      }
    }
    if (rc == chorusRemoved) return 3;
    if (rc != chorusSuccess) {
      std::printf("ERROR it=%d membership rc=%d %s\n", it, rc, chorusGetLastError(comm));
      if (rc != chorusPeerLost) ++failures;
      continue;
    }
    bool wrong = false;
    // Joiners count steps from their arrival: keep values step-independent.
    rc = loopOp(comm, o, it, in, out, &wrong, 0);
    if (rc == chorusRemoved) return 3;
    if (wrong) return 4;
    if (rc != chorusSuccess && rc != chorusPeerLost) ++failures;
    int32_t stop = (rankOf(comm) == 0 && it + 1 >= o.iters) ? 1 : 0, anyStop = 0;
    rc = chorusAllReduceWithRetry(&stop, &anyStop, 1, chorusInt32, chorusMax, 0, comm, nullptr);
    if (rc == chorusRemoved) return 3;
    if (rc == chorusSuccess && anyStop) break;
    if (o.sleepMs) std::this_thread::sleep_for(std::chrono::milliseconds(o.sleepMs));
  }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  CLI::App app{"chorus_test_worker"};
  app.add_option("--coordinator", o.coordinator)->required();
  app.add_option("--secret", o.secret);
  app.add_option("--group", o.group);
  app.add_option("--scenario", o.scenario);
  app.add_option("--expected", o.expected);
  app.add_option("--count", o.count);
  app.add_option("--iters", o.iters);
  app.add_option("--seed", o.seed);
  app.add_option("--counts", o.counts);
  app.add_option("--dtypes", o.dtypes);
  app.add_option("--ops", o.ops);
  app.add_option("--colls", o.colls);
  app.add_option("--coll", o.coll);
  app.add_option("--root", o.root);
  app.add_option("--connect-timeout-ms", o.connectTimeoutMs);
  app.add_option("--op-timeout-ms", o.opTimeoutMs);
  app.add_option("--streams", o.streams, "TCP streams per peer pair, or auto");
  app.add_option("--sleep-ms", o.sleepMs);
  app.add_option("--until-contributors", o.untilContributors,
                 "loop: past --iters, go on until an operation has at most this many "
                 "contributors");
  app.add_option("--sleep-rank", o.sleepRank,
                 "only this rank sleeps (the others wait in the call)");
  app.add_option("--rank-sleep-ms", o.rankSleepMs,
                 "loop: RANK:MS,... those ranks sleep MS between iterations instead");
  app.add_flag("--retry", o.retry);
  app.add_option("--leave-at", o.leaveAt);
  app.add_option("--exit-at", o.exitAt);
  app.add_option("--exit-rank", o.exitRank);
  app.add_flag("--joiner", o.joiner);
  app.add_option("--state-role", o.stateRole);
  app.add_option("--state-variant", o.stateVariant);
  app.add_option("--state-bytes", o.stateBytes);
  app.add_option("--state-revision", o.stateRevision);
  app.add_option("--state-delay-ms", o.stateDelayMs);
  app.add_flag("--state-other-layout", o.stateOtherLayout);
  app.add_option("--snap-k", o.snapK);
  app.add_option("--snap-m", o.snapM);
  app.add_option("--snap-spill", o.snapSpill);
  app.add_option("--snap-load", o.snapLoad);
  app.add_option("--snap-wait-size", o.snapWaitSize);
  app.add_option("--snap-joiners", o.snapJoiners);
  app.add_option("--snap-wait-size2", o.snapWaitSize2);
  app.add_option("--snap-adopt", o.snapAdopt);
  app.add_option("--snap-adopt-rank", o.snapAdoptRank);
  app.add_flag("--snap-async", o.snapAsync);
  app.add_option("--codecs", o.codecs);
  app.add_option("--compress-steps", o.compressSteps);
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);

  chorusInit();
  chorusCommParams_t p;
  chorusCommParamsInit(&p);
  p.coordinator = o.coordinator.c_str();
  p.secret = o.secret.c_str();
  p.group = o.group.c_str();
  p.expectedPeers = o.expected;
  p.connectTimeoutMs = o.connectTimeoutMs;
  p.opTimeoutMs = o.opTimeoutMs;
  p.connectionsPerPeer =
      o.streams == "auto" ? CHORUS_CONNECTIONS_ADAPTIVE : std::atoi(o.streams.c_str());
  chorusComm_t comm = nullptr;
  chorusResult_t rc = chorusCommCreate(&p, &comm);
  if (rc != chorusSuccess) {
    std::printf("DONE rc=%d stage=create msg=%s\n", rc, chorusGetLastError(nullptr));
    return 2;
  }
  rc = chorusCommConnect(comm);
  if (rc != chorusSuccess) {
    std::printf("DONE rc=%d stage=connect msg=%s\n", rc, chorusGetLastError(comm));
    chorusCommDestroy(comm);
    return 2;
  }
  uint64_t epoch = 0;
  chorusCommEpoch(comm, &epoch);
  std::printf("READY rank=%d size=%d epoch=%llu pid=%d\n", rankOf(comm), sizeOf(comm),
              static_cast<unsigned long long>(epoch), static_cast<int>(getpid()));
  std::fflush(stdout);

  int failures = 0;
  if (o.scenario == "sweep")
    failures = runSweep(comm, o) + runParity(comm, o);
  else if (o.scenario == "async")
    failures = runAsync(comm, o);
  else if (o.scenario == "big")
    failures = runBig(comm, o);
  else if (o.scenario == "badinput")
    failures = runBadInput(comm, o);
  else if (o.scenario == "mismatch")
    failures = runMismatch(comm, o);
  else if (o.scenario == "loop")
    failures = runLoop(comm, o);
  else if (o.scenario == "colls")
    failures = runColls(comm, o);
  else if (o.scenario == "p2p")
    failures = runP2P(comm, o);
  else if (o.scenario == "state")
    failures = runState(comm, o);
  else if (o.scenario == "snapshot")
    failures = runSnapshot(comm, o);
  else if (o.scenario == "compressloop")
    failures = runCompressLoop(comm, o);
  else if (o.scenario == "compress")
    failures = runCompress(comm, o);
  else if (o.scenario == "topo")
    failures = runTopo(comm, o);
  else if (o.scenario == "train")
    failures = runTrain(comm, o);
  else if (o.scenario == "idle")
    std::this_thread::sleep_for(std::chrono::milliseconds(o.iters));
  else {
    std::printf("DONE rc=-1 msg=unknown scenario\n");
    return 2;
  }
  rc = chorusCommDestroy(comm);
  chorusFinalize();
  std::printf("DONE rc=%d failures=%d\n", rc, failures);
  // loop/train return specific codes: 3 = removed, 4 = wrong result.
  if (o.scenario == "loop" || o.scenario == "train") return failures;
  return failures ? 1 : 0;
}
