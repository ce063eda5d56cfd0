// Double binary tree reduce: two trees each reduce half the data toward the root.
#include <algorithm>
#include <cmath>

#include "algorithms/lanes.h"

namespace chorus::algo {
namespace {

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return makeLaneReduce(a, ctx, doubleTreeLanes(ctx.size(), a.root, a.count));
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

extern const AlgorithmInfo kReduceDoubleTree;
const AlgorithmInfo kReduceDoubleTree = {
    22,
    Collective::kReduce,
    "double_tree",
    "Double binary tree reduce: two trees each reduce half the data toward the root.",
    make,
    cost};

}  // namespace chorus::algo
