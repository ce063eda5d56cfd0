#include "tools/common/collective_case.h"

#include <cstring>

#include "tools/common/reference.h"

namespace chorus_test {

const char* collName(Coll c) {
  switch (c) {
    case Coll::kAllReduce:
      return "allreduce";
    case Coll::kBroadcast:
      return "broadcast";
    case Coll::kReduce:
      return "reduce";
    case Coll::kAllGather:
      return "allgather";
    case Coll::kReduceScatter:
      return "reducescatter";
    case Coll::kAllToAll:
      return "alltoall";
    case Coll::kAllToAllv:
      return "alltoallv";
    case Coll::kGather:
      return "gather";
    case Coll::kScatter:
      return "scatter";
    case Coll::kBarrier:
      return "barrier";
  }
  return "?";
}

bool parseColl(const std::string& s, Coll* out) {
  for (int i = 0; i <= static_cast<int>(Coll::kBarrier); ++i)
    if (s == collName(static_cast<Coll>(i))) {
      *out = static_cast<Coll>(i);
      return true;
    }
  return false;
}

bool collReduces(Coll c) {
  return c == Coll::kAllReduce || c == Coll::kReduce || c == Coll::kReduceScatter;
}
bool collHasInPlace(Coll c) {
  return c != Coll::kAllToAll && c != Coll::kAllToAllv && c != Coll::kBarrier;
}
bool collSameResultEverywhere(Coll c) {
  return c == Coll::kAllReduce || c == Coll::kBroadcast || c == Coll::kAllGather;
}

namespace {
// Elements sent from rank i to rank j in the all-to-all-v cases (some zero).
size_t vcount(int i, int j, size_t count, uint64_t seed) {
  uint64_t h = (static_cast<uint64_t>(i) * 131 + j + 7) * 0x9E3779B97F4A7C15ull ^ seed;
  h ^= h >> 31;
  if (h % 3 == 0) return 0;
  return count ? h % (count + 1) : 0;
}
}  // namespace

RankCase buildCase(Coll c, chorusDataType_t dt, chorusRedOp_t op, size_t count, int n, int rank,
                   int root, bool inPlace, uint64_t seed) {
  RankCase rc;
  rc.coll = c;
  rc.dtype = dt;
  rc.op = op;
  rc.count = count;
  rc.n = n;
  rc.rank = rank;
  rc.root = root;
  rc.inPlace = inPlace && collHasInPlace(c);
  const size_t es = chorusDataTypeSize(dt), blk = count * es;
  auto input = [&](int r, size_t elems) {
    std::vector<uint8_t> b(elems * es + 1, 0);
    fillInput(dt, op, b.data(), elems, r, seed);
    return b;
  };
  bool isRoot = rank == root;
  switch (c) {
    case Coll::kAllReduce:
    case Coll::kReduce:
      rc.send = input(rank, count);
      rc.recv.assign(blk + 1, 0);
      rc.sendbuf = rc.send.data();
      rc.recvbuf =
          (rc.inPlace && (c == Coll::kAllReduce || isRoot)) ? rc.send.data() : rc.recv.data();
      if (c == Coll::kAllReduce || isRoot) {
        rc.want.assign(blk + 1, 0);
        fillExpected(dt, op, rc.want.data(), count, n, seed);
        rc.want.resize(blk);
      }
      rc.resultBytes = blk;
      break;
    case Coll::kBroadcast:
      rc.send = input(isRoot ? rank : root, count);  // root's data, for the expectation
      rc.want.assign(rc.send.begin(), rc.send.begin() + blk);
      if (!isRoot) std::fill(rc.send.begin(), rc.send.end(), 0);
      rc.recv.assign(blk + 1, 0);
      rc.sendbuf = rc.send.data();
      rc.recvbuf = (rc.inPlace && isRoot) ? rc.send.data() : rc.recv.data();
      rc.resultBytes = blk;
      break;
    case Coll::kAllGather:
    case Coll::kGather:
      rc.send = input(rank, count);
      rc.recv.assign(blk * n + 1, 0);
      rc.sendbuf = rc.send.data();
      rc.recvbuf = rc.recv.data();
      if (rc.inPlace && (c == Coll::kAllGather || isRoot)) {
        std::memcpy(rc.recv.data() + rank * blk, rc.send.data(), blk);
        rc.sendbuf = rc.recv.data() + rank * blk;
      }
      if (c == Coll::kAllGather || isRoot)
        for (int j = 0; j < n; ++j) {
          auto b = input(j, count);
          rc.want.insert(rc.want.end(), b.begin(), b.begin() + blk);
        }
      rc.resultBytes = blk * n;
      break;
    case Coll::kReduceScatter: {
      rc.send = input(rank, count * n);
      rc.recv.assign(blk + 1, 0);
      rc.sendbuf = rc.send.data();
      rc.recvbuf = rc.inPlace ? rc.send.data() + rank * blk : rc.recv.data();
      std::vector<uint8_t> full(blk * n + 1);
      fillExpected(dt, op, full.data(), count * n, n, seed);
      rc.want.assign(full.begin() + rank * blk, full.begin() + (rank + 1) * blk);
      rc.resultBytes = blk;
      break;
    }
    case Coll::kScatter: {
      auto rootData = input(root, count * n);
      rc.send = isRoot ? rootData : std::vector<uint8_t>(1, 0);
      rc.recv.assign(blk + 1, 0);
      rc.sendbuf = rc.send.data();
      rc.recvbuf = (rc.inPlace && isRoot) ? rc.send.data() + rank * blk : rc.recv.data();
      rc.want.assign(rootData.begin() + rank * blk, rootData.begin() + (rank + 1) * blk);
      rc.resultBytes = blk;
      break;
    }
    case Coll::kAllToAll:
      rc.send = input(rank, count * n);
      rc.recv.assign(blk * n + 1, 0);
      rc.sendbuf = rc.send.data();
      rc.recvbuf = rc.recv.data();
      for (int j = 0; j < n; ++j) {
        auto b = input(j, count * n);
        rc.want.insert(rc.want.end(), b.begin() + rank * blk, b.begin() + (rank + 1) * blk);
      }
      rc.resultBytes = blk * n;
      break;
    case Coll::kAllToAllv: {
      size_t so = 0, ro = 0;
      for (int j = 0; j < n; ++j) {
        rc.sendCounts.push_back(vcount(rank, j, count, seed));
        rc.sendDispls.push_back(so);
        so += rc.sendCounts.back() + 1;  // gaps between blocks
        rc.recvCounts.push_back(vcount(j, rank, count, seed));
        rc.recvDispls.push_back(ro);
        ro += rc.recvCounts.back() + 2;
      }
      rc.send = input(rank, so);
      rc.recv.assign(ro * es + 1, 0);
      rc.want = rc.recv;
      for (int j = 0; j < n; ++j) {
        // Rank j's send displacement towards us, from j's own layout.
        size_t jso = 0;
        for (int k = 0; k < rank; ++k) jso += vcount(j, k, count, seed) + 1;
        auto b = input(j, jso + rc.recvCounts[j] + 1);
        std::memcpy(rc.want.data() + rc.recvDispls[j] * es, b.data() + jso * es,
                    rc.recvCounts[j] * es);
      }
      rc.want.resize(ro * es);
      rc.sendbuf = rc.send.data();
      rc.recvbuf = rc.recv.data();
      rc.resultBytes = ro * es;
      break;
    }
    case Coll::kBarrier:
      break;
  }
  return rc;
}

size_t checkCase(const RankCase& rc) {
  if (rc.want.empty()) return 0;
  size_t es = chorusDataTypeSize(rc.dtype);
  return countWrong(rc.recvbuf, rc.want.data(), rc.want.size() / es, es);
}

chorusResult_t runCase(RankCase& rc, chorusComm_t comm, chorusOpInfo_t* info) {
  switch (rc.coll) {
    case Coll::kAllReduce:
      return chorusAllReduce(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, rc.op, comm, info);
    case Coll::kBroadcast:
      return chorusBroadcast(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, rc.root, comm, info);
    case Coll::kReduce:
      return chorusReduce(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, rc.op, rc.root, comm, info);
    case Coll::kAllGather:
      return chorusAllGather(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, comm, info);
    case Coll::kReduceScatter:
      return chorusReduceScatter(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, rc.op, comm, info);
    case Coll::kAllToAll:
      return chorusAllToAll(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, comm, info);
    case Coll::kAllToAllv:
      return chorusAllToAllv(rc.sendbuf, rc.sendCounts.data(), rc.sendDispls.data(), rc.recvbuf,
                             rc.recvCounts.data(), rc.recvDispls.data(), rc.dtype, comm, info);
    case Coll::kGather:
      return chorusGather(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, rc.root, comm, info);
    case Coll::kScatter:
      return chorusScatter(rc.sendbuf, rc.recvbuf, rc.count, rc.dtype, rc.root, comm, info);
    case Coll::kBarrier:
      return chorusBarrier(comm);
  }
  return chorusInvalidArgument;
}

}  // namespace chorus_test
