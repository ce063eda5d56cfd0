// Trees over ranks for rooted collectives. Virtual rank v = (rank - root)
// mod n puts the root at v = 0.
#pragma once

#include <vector>

namespace chorus::algo {

inline int toVirtual(int rank, int root, int n) {
  return (rank - root + n) % n;
}
inline int toRank(int v, int root, int n) {
  return (v + root) % n;
}

// Binomial tree: the parent of v clears v's lowest set bit; the children of
// v are v + 2^k for every 2^k below v's lowest set bit (all k for the root),
// largest subtree first.
inline int binomialParent(int v) {
  return v == 0 ? -1 : v & (v - 1);
}
inline std::vector<int> binomialChildren(int v, int n) {
  std::vector<int> kids;
  int low = v == 0 ? 1 << 30 : (v & -v);
  for (int bit = 1; bit < low && v + bit < n; bit <<= 1) kids.push_back(v + bit);
  // Largest subtree first: send there first.
  return std::vector<int>(kids.rbegin(), kids.rend());
}

// A balanced binary tree over the positions 0..m-1 laid out in order (the
// subtree of a node covers a contiguous range); node ids are positions.
struct BinaryTree {
  std::vector<int> parent;  // -1 for the top
  std::vector<std::vector<int>> children;
  int top = -1;
  explicit BinaryTree(int m) : parent(m, -1), children(m) { top = build(0, m - 1, -1); }

 private:
  int build(int lo, int hi, int par) {
    if (lo > hi) return -1;
    int mid = (lo + hi) / 2;
    parent[mid] = par;
    int l = build(lo, mid - 1, mid), r = build(mid + 1, hi, mid);
    if (l >= 0) children[mid].push_back(l);
    if (r >= 0) children[mid].push_back(r);
    return mid;
  }
};

// The double binary tree (as in NCCL): two binary trees over the non-root
// virtual ranks 1..n-1, the second shifted by one position, so that a rank
// that is a leaf in one tree is usually interior in the other and the two
// halves of the data use different links. The root sends/receives half 0 via
// tree 0's top and half 1 via tree 1's top.
struct DoubleTree {
  struct Node {
    int parent = -1;  // virtual rank; 0 = the root
    std::vector<int> children;
  };
  std::vector<Node> tree[2];  // indexed by virtual rank
  explicit DoubleTree(int n) {
    for (int t = 0; t < 2; ++t) {
      tree[t].assign(n, Node());
      int m = n - 1;
      if (m <= 0) continue;
      BinaryTree b(m);
      // position i -> virtual rank: tree 0: i + 1; tree 1: shifted by one.
      auto vr = [&](int i) { return t == 0 ? i + 1 : (i + 1) % m + 1; };
      for (int i = 0; i < m; ++i) {
        Node& nd = tree[t][vr(i)];
        nd.parent = b.parent[i] < 0 ? 0 : vr(b.parent[i]);
        for (int c : b.children[i]) nd.children.push_back(vr(c));
      }
      tree[t][0].children.push_back(vr(b.top));
    }
  }
};

}  // namespace chorus::algo
