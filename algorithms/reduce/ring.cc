// Pipelined chain reduce along the ring order toward the root: every rank sends the data once.
#include <algorithm>
#include <cmath>

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneReduce(a, ctx, {chainLane(ctx.topology(), a.root, a.count)});
}

// Estimated seconds (algorithms/algorithm.h, CostInputs).
double cost(const CostInputs& in) {
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double n = in.n, depth = std::max(1, ceilLog2(in.n));
  (void)segs;
  (void)depth;
  return (n - 1) * in.alpha + (in.bytes + (n - 2) * in.segmentBytes) * in.beta +
         (segs + n - 2) * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kReduceRing;
const AlgorithmInfo kReduceRing = {
    21,
    Collective::kReduce,
    "ring",
    "Pipelined chain reduce along the ring order toward the root: every rank sends the data once.",
    make,
    cost};

}  // namespace chorus::algo
