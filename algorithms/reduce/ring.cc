// Pipelined chain reduce along the ring order toward the root: every rank sends the data once.

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneReduce(a, ctx, {chainLane(ctx.topology(), a.root, a.count)});
}

}  // namespace

extern const AlgorithmInfo kReduceRing;
const AlgorithmInfo kReduceRing = {
    21,
    Collective::kReduce,
    "ring",
    "Pipelined chain reduce along the ring order toward the root: every rank sends the data once.",
    make,
    chainLaneCost};

}  // namespace chorus::algo
