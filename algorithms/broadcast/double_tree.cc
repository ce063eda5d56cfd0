// Double binary tree broadcast: two trees each carry half the data, so no rank sends much more than
// the data once.

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneBroadcast(a, ctx, doubleTreeLanes(ctx.size(), a.root, a.count));
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
    doubleTreeLanesCost};

}  // namespace chorus::algo
