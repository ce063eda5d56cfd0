// Double binary tree broadcast: two trees each carry half the data, so no rank sends much more than
// the data once.
#include <algorithm>
#include <cmath>

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneBroadcast(a, ctx, doubleTreeLanes(ctx.size(), a.root, a.count));
}

// Estimated seconds (algorithms/algorithm.h, CostInputs).
double cost(const CostInputs& in) {
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double n = in.n, depth = std::max(1, ceilLog2(in.n));
  (void)segs;
  (void)depth;
  // Interior ranks send each half to two children: at least one message per
  // child and tree even for tiny data.
  return depth * in.alpha + in.bytes * in.beta + 4 * std::max(1.0, segs / 2) * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kBroadcastDoubleTree;
const AlgorithmInfo kBroadcastDoubleTree = {
    12,
    Collective::kBroadcast,
    "double_tree",
    "Double binary tree broadcast: two trees each carry half the data, so no rank sends much more "
    "than the data once.",
    make,
    cost};

}  // namespace chorus::algo
