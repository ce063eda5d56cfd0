// Shared engines for rooted collectives: data flows along one or more trees
// ("lanes"), each carrying a contiguous part of the buffer, cut into
// segments that move as soon as they arrive (pipelining). Binomial trees,
// chains along the ring order and double binary trees are lane setups; the
// per-algorithm files build them (algorithms/broadcast/*.cc, reduce/*.cc).
#pragma once

#include <vector>

#include "algorithms/algorithm.h"
#include "algorithms/tree.h"

namespace chorus::algo {

struct Lane {
  std::vector<int> parent;                 // by rank; -1 at the root
  std::vector<std::vector<int>> children;  // by rank, in combine/send order
  size_t begin = 0, end = 0;               // element range carried
};

// One lane: a binomial tree rooted at `root` over the whole buffer.
Lane binomialLane(int n, int root, size_t count);
// One lane: a chain root -> next on the ring -> ... (pipelined ring).
Lane chainLane(const TopologyView& topo, int root, size_t count);
// Two lanes: the double binary tree, each tree carrying half the buffer.
std::vector<Lane> doubleTreeLanes(int n, int root, size_t count);

// Estimated seconds of each lane setup (CostInputs in algorithm.h). A reduce
// is the broadcast's pattern run backwards, so both share these.
double binomialLaneCost(const CostInputs& in);
double chainLaneCost(const CostInputs& in);
double doubleTreeLanesCost(const CostInputs& in);

// Broadcast down the lanes into recvbuf.
std::unique_ptr<Task> makeLaneBroadcast(const CollectiveArgs& a, TaskContext& ctx,
                                        std::vector<Lane> lanes);
// Reduce up the lanes into root's recvbuf; partial results travel in the
// accumulator type (fp32 for fp16/bf16) and the root rounds once.
std::unique_ptr<Task> makeLaneReduce(const CollectiveArgs& a, TaskContext& ctx,
                                     std::vector<Lane> lanes);

}  // namespace chorus::algo
