// Pipelined ring (chain) broadcast along the ring order: every rank sends the data once; N-1 hops
// of latency.

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneBroadcast(a, ctx, {chainLane(ctx.topology(), a.root, a.count)});
}

}  // namespace

extern const AlgorithmInfo kBroadcastRing;
const AlgorithmInfo kBroadcastRing = {11,
                                      Collective::kBroadcast,
                                      "ring",
                                      "Pipelined ring (chain) broadcast along the ring order: "
                                      "every rank sends the data once; N-1 hops of latency.",
                                      make,
                                      chainLaneCost};

}  // namespace chorus::algo
