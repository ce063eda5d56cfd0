// One rank's buffers and expected result for a collective, following the
// semantics in chorus.h (in-place forms included). Shared by the test worker
// (multi-process tests) and chorus-bench (#wrong); the unit simulator uses
// the same builders through the public names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "chorus.h"

namespace chorus_test {

enum class Coll {
  kAllReduce,
  kBroadcast,
  kReduce,
  kAllGather,
  kReduceScatter,
  kAllToAll,
  kAllToAllv,
  kGather,
  kScatter,
  kBarrier,
};
const char* collName(Coll c);
bool parseColl(const std::string& s, Coll* out);
bool collReduces(Coll c);  // takes an op
bool collHasInPlace(Coll c);
// Result identical on every rank (so hashes can be compared across peers).
bool collSameResultEverywhere(Coll c);

struct RankCase {
  Coll coll = Coll::kAllReduce;
  chorusDataType_t dtype = chorusFloat32;
  chorusRedOp_t op = chorusSum;
  size_t count = 0;
  int n = 1, rank = 0, root = 0;
  bool inPlace = false;
  std::vector<uint8_t> send, recv, want;  // want empty: nothing to check here
  const void* sendbuf = nullptr;
  void* recvbuf = nullptr;
  std::vector<size_t> sendCounts, sendDispls, recvCounts, recvDispls;  // all-to-all-v
  size_t resultBytes = 0;  // bytes of recvbuf holding the result
};

// Inputs are small integers from fillInput, so every expected value is exact.
RankCase buildCase(Coll c, chorusDataType_t dt, chorusRedOp_t op, size_t count, int n, int rank,
                   int root, bool inPlace, uint64_t seed);
// Elements of the result that differ from the expectation.
size_t checkCase(const RankCase& rc);
// Run it through the C API (blocking).
chorusResult_t runCase(RankCase& rc, chorusComm_t comm, chorusOpInfo_t* info);

}  // namespace chorus_test
