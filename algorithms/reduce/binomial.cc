// Binomial-tree reduce toward the root, pipelined by segments; partial results in fp32 for
// fp16/bf16.
#include <algorithm>
#include <cmath>

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneReduce(a, ctx, {binomialLane(ctx.size(), a.root, a.count)});
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

extern const AlgorithmInfo kReduceBinomial;
const AlgorithmInfo kReduceBinomial = {20,
                                       Collective::kReduce,
                                       "binomial",
                                       "Binomial-tree reduce toward the root, pipelined by "
                                       "segments; partial results in fp32 for fp16/bf16.",
                                       make,
                                       cost};

}  // namespace chorus::algo
