#include "algorithms/topology.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace chorus::algo {

double ringBottleneck(const std::vector<int>& ring, const Matrix& bw) {
  int n = static_cast<int>(ring.size());
  if (n < 2) return 0;
  double m = std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) m = std::min(m, bw[ring[i]][ring[(i + 1) % n]]);
  return m;
}

namespace {

// Sum of link bandwidths: the tie-breaker between equal bottlenecks.
double ringSum(const std::vector<int>& ring, const Matrix& bw) {
  double s = 0;
  int n = static_cast<int>(ring.size());
  for (int i = 0; i < n; ++i) s += bw[ring[i]][ring[(i + 1) % n]];
  return s;
}

bool better(double b1, double s1, double b2, double s2) {
  const double eps = 1e-12;
  if (b1 > b2 * (1 + eps)) return true;
  if (b1 < b2 * (1 - eps)) return false;
  return s1 > s2 * (1 + eps);
}

struct Exact {
  const Matrix& bw;
  int n;
  std::vector<int> path, best;
  std::vector<bool> used;
  double bestB = -1, bestS = -1;

  void search(double curMin, double curSum) {
    if (curMin < bestB * (1 - 1e-12)) return;  // cannot beat the best bottleneck
    if (static_cast<int>(path.size()) == n) {
      double b = std::min(curMin, bw[path.back()][path[0]]);
      double s = curSum + bw[path.back()][path[0]];
      if (better(b, s, bestB, bestS)) {
        bestB = b;
        bestS = s;
        best = path;
      }
      return;
    }
    for (int v = 1; v < n; ++v) {
      if (used[v]) continue;
      double e = bw[path.back()][v];
      used[v] = true;
      path.push_back(v);
      search(std::min(curMin, e), curSum + e);
      path.pop_back();
      used[v] = false;
    }
  }
};

void twoOpt(std::vector<int>& ring, const Matrix& bw) {
  int n = static_cast<int>(ring.size());
  double b = ringBottleneck(ring, bw), s = ringSum(ring, bw);
  for (bool improved = true; improved;) {
    improved = false;
    for (int i = 1; i < n && !improved; ++i)
      for (int j = i + 1; j < n && !improved; ++j) {
        std::vector<int> cand = ring;
        std::reverse(cand.begin() + i, cand.begin() + j + 1);
        double cb = ringBottleneck(cand, bw), cs = ringSum(cand, bw);
        if (better(cb, cs, b, s)) {
          ring = cand;
          b = cb;
          s = cs;
          improved = true;
        }
      }
  }
}

}  // namespace

std::vector<int> bestRing(const Matrix& bw) {
  int n = static_cast<int>(bw.size());
  std::vector<int> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  if (n <= 3) return identity;  // every ring of 3 is the same cycle (or its reverse)
  if (n <= 10) {
    Exact e{bw, n, {0}, {}, std::vector<bool>(n, false)};
    e.used[0] = true;
    e.search(std::numeric_limits<double>::infinity(), 0);
    return e.best.empty() ? identity : e.best;
  }
  // Greedy tours from every start (widest next link), each improved by 2-opt;
  // rotate so rank 0 comes first for a canonical answer.
  std::vector<int> best = identity;
  twoOpt(best, bw);
  double bb = ringBottleneck(best, bw), bs = ringSum(best, bw);
  for (int start = 0; start < n; ++start) {
    std::vector<int> tour{start};
    std::vector<bool> used(n, false);
    used[start] = true;
    while (static_cast<int>(tour.size()) < n) {
      int cur = tour.back(), next = -1;
      for (int v = 0; v < n; ++v)
        if (!used[v] && (next < 0 || bw[cur][v] > bw[cur][next])) next = v;
      used[next] = true;
      tour.push_back(next);
    }
    twoOpt(tour, bw);
    double b = ringBottleneck(tour, bw), s = ringSum(tour, bw);
    if (better(b, s, bb, bs)) {
      best = tour;
      bb = b;
      bs = s;
    }
  }
  std::rotate(best.begin(), std::find(best.begin(), best.end(), 0), best.end());
  return best;
}

}  // namespace chorus::algo
