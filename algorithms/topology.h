// Ring ordering from measured pair bandwidths. A ring all-reduce runs at the
// speed of its slowest link, so the order maximises the minimum directed
// bandwidth bw[ring[i]][ring[i+1]] (a bottleneck travelling-salesman tour):
// exactly (branch and bound) for up to 10 ranks, by greedy tours improved with
// segment reversals (2-opt) above. Pure and deterministic: every member
// computes the same order from the same matrix.
#pragma once

#include <vector>

namespace chorus::algo {

using Matrix = std::vector<std::vector<double>>;

// bw[i][j]: bandwidth from i to j (any unit); the diagonal is ignored.
std::vector<int> bestRing(const Matrix& bw);
// Slowest directed link of a ring (n >= 2), or 0 for n < 2.
double ringBottleneck(const std::vector<int>& ring, const Matrix& bw);

}  // namespace chorus::algo
