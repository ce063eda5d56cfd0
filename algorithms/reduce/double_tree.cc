// Double binary tree reduce: two trees each reduce half the data toward the root.

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneReduce(a, ctx, doubleTreeLanes(ctx.size(), a.root, a.count));
}

}  // namespace

extern const AlgorithmInfo kReduceDoubleTree;
const AlgorithmInfo kReduceDoubleTree = {
    22,
    Collective::kReduce,
    "double_tree",
    "Double binary tree reduce: two trees each reduce half the data toward the root.",
    make,
    doubleTreeLanesCost};

}  // namespace chorus::algo
