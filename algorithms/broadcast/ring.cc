// Pipelined ring (chain) broadcast along the ring order: every rank sends the data once; N-1 hops
// of latency.
#include <algorithm>
#include <cmath>

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneBroadcast(a, ctx, {chainLane(ctx.topology(), a.root, a.count)});
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

extern const AlgorithmInfo kBroadcastRing;
const AlgorithmInfo kBroadcastRing = {11,
                                      Collective::kBroadcast,
                                      "ring",
                                      "Pipelined ring (chain) broadcast along the ring order: "
                                      "every rank sends the data once; N-1 hops of latency.",
                                      make,
                                      cost};

}  // namespace chorus::algo
