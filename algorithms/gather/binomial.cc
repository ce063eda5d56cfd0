// Binomial-tree gather: with virtual ranks v = rank - root, the subtree of v
// covers the contiguous range [v, v + size(v)); each rank gathers its
// subtree's blocks and sends them to its parent as one range. log2(N)
// rounds; the root receives from log2(N) children instead of N-1 ranks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "algorithms/algorithm.h"
#include "algorithms/tree.h"

namespace chorus::algo {
namespace {

inline int subtreeSize(int v, int n) {
  return v == 0 ? n : std::min(v & -v, n - v);
}

class BinomialGather final : public Task {
 public:
  BinomialGather(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    v_ = toVirtual(ctx.rank(), a.root, n_);
    blk_ = a.count * a.elemSize();
    per_ = std::max<size_t>(1, ctx.segmentBytes());
    kids_ = binomialChildren(v_, n_);
    for (int c : kids_) expected_ += Segments(0, subtreeSize(c, n_) * blk_, per_).count;
    scratch_ = ctx.scratch(subtreeSize(v_, n_) * blk_ + 1);
  }
  Status start() override {
    if (blk_) std::memcpy(scratch_, a_.sendbuf, blk_);
    maybeFinish();
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    int c = toVirtual(from, a_.root, n_);
    Segments s(0, subtreeSize(c, n_) * blk_, per_);
    if (std::find(kids_.begin(), kids_.end(), c) == kids_.end() || g >= s.count ||
        bytes != s.len(g))
      return protocolError("gather binomial: unexpected block " + std::to_string(g));
    return scratch_ + static_cast<size_t>(c - v_) * blk_ + s.first(g);
  }
  Status onRecv(int, uint32_t) override {
    ++got_;
    maybeFinish();
    return Status::ok();
  }
  bool haveAll() const override { return finished_; }
  bool inputModified() const override { return false; }

 private:
  void maybeFinish() {
    if (finished_ || got_ < expected_) return;
    finished_ = true;
    if (v_ == 0) {  // reorder virtual -> real ranks
      uint8_t* out = static_cast<uint8_t*>(a_.recvbuf);
      for (int i = 0; i < n_; ++i)
        std::memmove(out + toRank(i, a_.root, n_) * blk_, scratch_ + i * blk_, blk_);
      return;
    }
    Segments s(0, subtreeSize(v_, n_) * blk_, per_);
    int parent = toRank(binomialParent(v_), a_.root, n_);
    for (uint32_t g = 0; g < s.count; ++g) ctx_.send(parent, g, scratch_ + s.first(g), s.len(g));
  }
  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, v_;
  size_t blk_, per_;
  std::vector<int> kids_;
  uint8_t* scratch_;
  uint32_t expected_ = 0, got_ = 0;
  bool finished_ = false;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<BinomialGather>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, depth = std::max(1, ceilLog2(in.n));
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return depth * in.alpha + (n - 1) * in.bytes * in.beta + depth * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kGatherBinomial;
const AlgorithmInfo kGatherBinomial = {
    61,         Collective::kGather,
    "binomial", "binomial tree: each rank forwards its subtree's blocks as one range",
    make,       cost};

}  // namespace chorus::algo
