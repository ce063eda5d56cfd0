// Binomial-tree broadcast, pipelined by segments: log2(N) rounds; the root sends log2(N) copies.
#include <algorithm>
#include <cmath>

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneBroadcast(a, ctx, {binomialLane(ctx.size(), a.root, a.count)});
}

// Estimated seconds (algorithms/algorithm.h, CostInputs).
double cost(const CostInputs& in) {
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double n = in.n, depth = std::max(1, ceilLog2(in.n));
  (void)segs;
  (void)depth;
  return depth * in.alpha + depth * in.bytes * in.beta + depth * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kBroadcastBinomial;
const AlgorithmInfo kBroadcastBinomial = {10,
                                          Collective::kBroadcast,
                                          "binomial",
                                          "Binomial-tree broadcast, pipelined by segments: log2(N) "
                                          "rounds; the root sends log2(N) copies.",
                                          make,
                                          cost};

}  // namespace chorus::algo
