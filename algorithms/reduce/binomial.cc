// Binomial-tree reduce toward the root, pipelined by segments; partial results in fp32 for
// fp16/bf16.

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneReduce(a, ctx, {binomialLane(ctx.size(), a.root, a.count)});
}

}  // namespace

extern const AlgorithmInfo kReduceBinomial;
const AlgorithmInfo kReduceBinomial = {20,
                                       Collective::kReduce,
                                       "binomial",
                                       "Binomial-tree reduce toward the root, pipelined by "
                                       "segments; partial results in fp32 for fp16/bf16.",
                                       make,
                                       binomialLaneCost};

}  // namespace chorus::algo
