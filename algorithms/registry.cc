// The table of algorithms. Adding one: write algorithms/<collective>/<name>.cc
// defining an AlgorithmInfo, declare it here and list it once below.
#include "algorithms/algorithm.h"

namespace chorus::algo {

// clang-format off
#define CHORUS_ALGORITHMS(X)                                                                   \
  X(kAllReduceRing) X(kAllReduceDirect) X(kAllReduceTwoPhase) X(kAllReduceRhd)                 \
  X(kAllReduceHierarchical)                                                                    \
  X(kBroadcastBinomial) X(kBroadcastRing) X(kBroadcastDoubleTree)                              \
  X(kReduceBinomial) X(kReduceRing) X(kReduceDoubleTree)                                       \
  X(kAllGatherRing) X(kAllGatherDirect)                                                        \
  X(kReduceScatterRing) X(kReduceScatterDirect)                                                \
  X(kAllToAllPairwise) X(kAllToAllBruck) X(kAllToAllvPairwise)                                 \
  X(kGatherLinear) X(kGatherBinomial) X(kScatterLinear) X(kScatterBinomial)                    \
  X(kBarrierDissemination) X(kSend) X(kRecv)
// clang-format on

#define CHORUS_DECLARE(name) extern const AlgorithmInfo name;
CHORUS_ALGORITHMS(CHORUS_DECLARE)
#undef CHORUS_DECLARE

const char* collectiveName(Collective c) {
  switch (c) {
    case Collective::kAllReduce:
      return "allreduce";
    case Collective::kBroadcast:
      return "broadcast";
    case Collective::kReduce:
      return "reduce";
    case Collective::kAllGather:
      return "allgather";
    case Collective::kReduceScatter:
      return "reducescatter";
    case Collective::kAllToAll:
      return "alltoall";
    case Collective::kAllToAllv:
      return "alltoallv";
    case Collective::kGather:
      return "gather";
    case Collective::kScatter:
      return "scatter";
    case Collective::kBarrier:
      return "barrier";
    case Collective::kSend:
      return "send";
    case Collective::kRecv:
      return "recv";
  }
  return "?";
}

bool parseCollective(const std::string& s, Collective* out) {
  for (int i = 1; i <= kNumCollectives; ++i)
    if (s == collectiveName(static_cast<Collective>(i))) {
      *out = static_cast<Collective>(i);
      return true;
    }
  return false;
}

size_t CollectiveArgs::messageBytes(int worldSize) const {
  size_t n = static_cast<size_t>(worldSize > 0 ? worldSize : 1);
  switch (collective) {
    case Collective::kAllGather:
    case Collective::kReduceScatter:
    case Collective::kGather:
    case Collective::kScatter:
    case Collective::kAllToAll:
      return count * elemSize() * n;
    case Collective::kAllToAllv: {
      size_t total = 0;
      for (size_t c : sendCounts) total += c;
      return total * elemSize();
    }
    case Collective::kBarrier:
      return 0;
    default:
      return count * elemSize();
  }
}

TopologyView TopologyView::identity(int n) {
  TopologyView t;
  for (int i = 0; i < n; ++i) {
    t.ring.push_back(i);
    t.position.push_back(i);
    t.hostOf.push_back(i);
    t.hosts.push_back({i});
  }
  return t;
}

const std::vector<const AlgorithmInfo*>& allAlgorithms() {
#define CHORUS_ADDRESS(name) &name,
  static const std::vector<const AlgorithmInfo*> kAll = {CHORUS_ALGORITHMS(CHORUS_ADDRESS)};
#undef CHORUS_ADDRESS
  return kAll;
}

const AlgorithmInfo* findAlgorithm(Collective c, const std::string& name) {
  for (const AlgorithmInfo* a : allAlgorithms())
    if (a->collective == c && name == a->name) return a;
  return nullptr;
}

const AlgorithmInfo* findAlgorithm(uint8_t id) {
  for (const AlgorithmInfo* a : allAlgorithms())
    if (a->id == id) return a;
  return nullptr;
}

}  // namespace chorus::algo
