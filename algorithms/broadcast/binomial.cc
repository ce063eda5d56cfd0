// Binomial-tree broadcast, pipelined by segments: log2(N) rounds; the root sends log2(N) copies.

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneBroadcast(a, ctx, {binomialLane(ctx.size(), a.root, a.count)});
}

}  // namespace

extern const AlgorithmInfo kBroadcastBinomial;
const AlgorithmInfo kBroadcastBinomial = {10,
                                          Collective::kBroadcast,
                                          "binomial",
                                          "Binomial-tree broadcast, pipelined by segments: log2(N) "
                                          "rounds; the root sends log2(N) copies.",
                                          make,
                                          binomialLaneCost};

}  // namespace chorus::algo
