// Binomial-tree scatter: the reverse of the binomial gather. The root sends
// each child the contiguous range of blocks of its subtree (virtual order);
// every rank keeps its own block and forwards its children's ranges.
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

class BinomialScatter final : public Task {
 public:
  BinomialScatter(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    v_ = toVirtual(ctx.rank(), a.root, n_);
    blk_ = a.count * a.elemSize();
    per_ = std::max<size_t>(1, ctx.segmentBytes());
    kids_ = binomialChildren(v_, n_);
    range_ = Segments(0, subtreeSize(v_, n_) * blk_, per_);
    scratch_ = ctx.scratch(subtreeSize(v_, n_) * blk_ + 1);
  }
  Status start() override {
    if (v_ != 0) return Status::ok();
    const uint8_t* in = static_cast<const uint8_t*>(a_.sendbuf);
    for (int i = 0; i < n_; ++i)
      std::memcpy(scratch_ + i * blk_, in + toRank(i, a_.root, n_) * blk_, blk_);
    got_ = range_.count;
    maybeForward();
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    if (v_ == 0 || from != toRank(binomialParent(v_), a_.root, n_) || g >= range_.count ||
        bytes != range_.len(g))
      return protocolError("scatter binomial: unexpected block " + std::to_string(g));
    return scratch_ + range_.first(g);
  }
  Status onRecv(int, uint32_t) override {
    ++got_;
    maybeForward();
    return Status::ok();
  }
  bool haveAll() const override { return forwarded_; }
  bool inputModified() const override { return false; }

 private:
  void maybeForward() {
    if (forwarded_ || got_ < range_.count) return;
    forwarded_ = true;
    if (blk_ && a_.recvbuf != scratch_) std::memmove(a_.recvbuf, scratch_, blk_);
    for (int c : kids_) {
      Segments s(0, subtreeSize(c, n_) * blk_, per_);
      uint8_t* base = scratch_ + static_cast<size_t>(c - v_) * blk_;
      for (uint32_t g = 0; g < s.count; ++g)
        ctx_.send(toRank(c, a_.root, n_), g, base + s.first(g), s.len(g));
    }
  }
  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, v_;
  size_t blk_, per_;
  std::vector<int> kids_;
  Segments range_;
  uint8_t* scratch_;
  uint32_t got_ = 0;
  bool forwarded_ = false;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<BinomialScatter>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, depth = std::max(1, ceilLog2(in.n));
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return depth * in.alpha + (n - 1) * in.bytes * in.beta + depth * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kScatterBinomial;
const AlgorithmInfo kScatterBinomial = {
    71,         Collective::kScatter,
    "binomial", "binomial tree: each rank keeps its block and forwards its children's ranges",
    make,       cost};

}  // namespace chorus::algo
