#include "algorithms/lanes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/reduce.h"

namespace chorus::algo {

Lane binomialLane(int n, int root, size_t count) {
  Lane l;
  l.parent.assign(n, -1);
  l.children.assign(n, {});
  for (int r = 0; r < n; ++r) {
    int v = toVirtual(r, root, n);
    int p = binomialParent(v);
    l.parent[r] = p < 0 ? -1 : toRank(p, root, n);
    for (int c : binomialChildren(v, n)) l.children[r].push_back(toRank(c, root, n));
  }
  l.begin = 0;
  l.end = count;
  return l;
}

Lane chainLane(const TopologyView& topo, int root, size_t count) {
  int n = static_cast<int>(topo.ring.size());
  Lane l;
  l.parent.assign(n, -1);
  l.children.assign(n, {});
  int p0 = topo.position[root];
  for (int k = 0; k < n; ++k) {
    int r = topo.ring[(p0 + k) % n];
    if (k > 0) l.parent[r] = topo.ring[(p0 + k - 1) % n];
    if (k + 1 < n) l.children[r].push_back(topo.ring[(p0 + k + 1) % n]);
  }
  l.begin = 0;
  l.end = count;
  return l;
}

std::vector<Lane> doubleTreeLanes(int n, int root, size_t count) {
  if (n <= 2) return {binomialLane(n, root, count)};
  DoubleTree dt(n);
  std::vector<Lane> lanes(2);
  for (int t = 0; t < 2; ++t) {
    Lane& l = lanes[t];
    l.parent.assign(n, -1);
    l.children.assign(n, {});
    for (int v = 0; v < n; ++v) {
      int r = toRank(v, root, n);
      const DoubleTree::Node& nd = dt.tree[t][v];
      l.parent[r] = v == 0 ? -1 : toRank(nd.parent, root, n);
      for (int c : nd.children) l.children[r].push_back(toRank(c, root, n));
    }
    l.begin = t == 0 ? 0 : count / 2;
    l.end = t == 0 ? count / 2 : count;
  }
  return lanes;
}

namespace {

// Block id of segment g of lane l: l * stride + g.
class LaneTask : public Task {
 protected:
  LaneTask(const CollectiveArgs& a, TaskContext& ctx, std::vector<Lane> lanes, size_t unitBytes)
      : a_(a), ctx_(ctx), lanes_(std::move(lanes)) {
    n_ = ctx.size();
    r_ = ctx.rank();
    elem_ = dataTypeSize(a.dtype);
    size_t per = std::max<size_t>(1, ctx.segmentBytes() / unitBytes);
    for (const Lane& l : lanes_) {
      segs_.emplace_back(l.begin, l.end, per);
      stride_ = std::max(stride_, segs_.back().count);
    }
    if (stride_ == 0) stride_ = 1;
  }
  bool decode(uint32_t block, int* lane, uint32_t* g) const {
    *lane = static_cast<int>(block / stride_);
    *g = block % stride_;
    return *lane < static_cast<int>(lanes_.size()) && *g < segs_[*lane].count;
  }
  uint32_t blockOf(int lane, uint32_t g) const { return static_cast<uint32_t>(lane) * stride_ + g; }
  Status unexpected(uint32_t block, int from, size_t bytes) const {
    return protocolError(std::string(collectiveName(a_.collective)) + ": unexpected block " +
                         std::to_string(block) + " (" + std::to_string(bytes) +
                         " bytes) from rank " + std::to_string(from));
  }

  CollectiveArgs a_;
  TaskContext& ctx_;
  std::vector<Lane> lanes_;
  std::vector<Segments> segs_;
  uint32_t stride_ = 0;
  int n_, r_;
  size_t elem_;
};

class LaneBroadcast final : public LaneTask {
 public:
  LaneBroadcast(const CollectiveArgs& a, TaskContext& ctx, std::vector<Lane> lanes)
      : LaneTask(a, ctx, std::move(lanes), dataTypeSize(a.dtype)) {
    for (size_t l = 0; l < lanes_.size(); ++l)
      if (lanes_[l].parent[r_] >= 0) expected_ += segs_[l].count;
  }

  Status start() override {
    if (r_ != a_.root) return Status::ok();
    if (a_.sendbuf != a_.recvbuf && a_.count) std::memcpy(a_.recvbuf, a_.sendbuf, a_.count * elem_);
    for (size_t l = 0; l < lanes_.size(); ++l)
      for (uint32_t g = 0; g < segs_[l].count; ++g) forward(static_cast<int>(l), g);
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int from, uint32_t block, size_t bytes) override {
    int l;
    uint32_t g;
    if (!decode(block, &l, &g) || lanes_[l].parent[r_] != from || bytes != segs_[l].len(g) * elem_)
      return unexpected(block, from, bytes);
    return out() + segs_[l].first(g) * elem_;
  }

  Status onRecv(int from, uint32_t block) override {
    int l;
    uint32_t g;
    decode(block, &l, &g);
    ++got_;
    forward(l, g);
    return Status::ok();
  }

  bool haveAll() const override { return got_ == expected_; }
  bool inputModified() const override { return false; }

 private:
  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }
  void forward(int l, uint32_t g) {
    for (int c : lanes_[l].children[r_])
      ctx_.send(c, blockOf(l, g), out() + segs_[l].first(g) * elem_, segs_[l].len(g) * elem_);
  }
  uint32_t expected_ = 0, got_ = 0;
};

class LaneReduce final : public LaneTask {
 public:
  LaneReduce(const CollectiveArgs& a, TaskContext& ctx, std::vector<Lane> lanes)
      : LaneTask(a, ctx, std::move(lanes), accumulatorSize(a.dtype)) {
    acc_ = accumulatorSize(a_.dtype);
    // Scratch per lane: one slot per child for its partial, and our own.
    size_t total = 0;
    for (size_t l = 0; l < lanes_.size(); ++l) {
      size_t len = lanes_[l].end - lanes_[l].begin;
      laneOffset_.push_back(total);
      total += len * acc_ * (lanes_[l].children[r_].size() + 1);
      arrived_.emplace_back(segs_[l].count, 0);
      total_ += segs_[l].count;
    }
    scratch_ = ctx.scratch(total);
  }

  Status start() override {
    for (size_t l = 0; l < lanes_.size(); ++l)
      if (lanes_[l].children[r_].empty())
        for (uint32_t g = 0; g < segs_[l].count; ++g) combineAndPass(static_cast<int>(l), g);
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int from, uint32_t block, size_t bytes) override {
    int l;
    uint32_t g;
    if (!decode(block, &l, &g) || bytes != segs_[l].len(g) * acc_)
      return unexpected(block, from, bytes);
    const auto& kids = lanes_[l].children[r_];
    auto it = std::find(kids.begin(), kids.end(), from);
    if (it == kids.end()) return unexpected(block, from, bytes);
    return slot(l, static_cast<int>(it - kids.begin()) + 1) +
           (segs_[l].first(g) - lanes_[l].begin) * acc_;
  }

  Status onRecv(int from, uint32_t block) override {
    int l;
    uint32_t g;
    decode(block, &l, &g);
    if (++arrived_[l][g] == lanes_[l].children[r_].size()) combineAndPass(l, g);
    return Status::ok();
  }

  bool haveAll() const override { return done_ == total_; }
  bool inputModified() const override { return modified_; }

 private:
  // Slot 0 holds our own partial; slot k the partial of child k-1.
  uint8_t* slot(int l, int k) {
    size_t len = lanes_[l].end - lanes_[l].begin;
    return scratch_ + laneOffset_[l] + static_cast<size_t>(k) * len * acc_;
  }

  void combineAndPass(int l, uint32_t g) {
    const Segments& s = segs_[l];
    size_t off = s.first(g) - lanes_[l].begin, len = s.len(g);
    const uint8_t* in = static_cast<const uint8_t*>(a_.sendbuf) + s.first(g) * elem_;
    uint8_t* mine = slot(l, 0) + off * acc_;
    const auto& kids = lanes_[l].children[r_];
    bool root = lanes_[l].parent[r_] < 0;
    // Own input first, then children in order: a fixed shape, fixed bits.
    if (kids.empty()) {
      kernels::toAccumulator(a_.dtype, mine, in, len);  // a leaf: the partial is the input
    } else {
      const void* first = kernels::firstOperand(a_.dtype, mine, in, len);
      for (size_t k = 0; k < kids.size(); ++k) {
        kernels::combineAcc(a_.dtype, a_.op, mine, first,
                            slot(l, static_cast<int>(k) + 1) + off * acc_, len);
        first = mine;
      }
    }
    if (root) {
      uint8_t* dst = static_cast<uint8_t*>(a_.recvbuf) + s.first(g) * elem_;
      kernels::finalize(a_.dtype, a_.op, dst, mine, len, n_);
      if (a_.sendbuf == a_.recvbuf) modified_ = true;
    } else {
      ctx_.send(lanes_[l].parent[r_], blockOf(l, g), mine, len * acc_);
    }
    ++done_;
  }

  size_t acc_;
  uint8_t* scratch_ = nullptr;
  std::vector<size_t> laneOffset_;
  std::vector<std::vector<uint32_t>> arrived_;
  uint32_t total_ = 0, done_ = 0;
  bool modified_ = false;
};

}  // namespace

std::unique_ptr<Task> makeLaneBroadcast(const CollectiveArgs& a, TaskContext& ctx,
                                        std::vector<Lane> lanes) {
  return std::make_unique<LaneBroadcast>(a, ctx, std::move(lanes));
}

std::unique_ptr<Task> makeLaneReduce(const CollectiveArgs& a, TaskContext& ctx,
                                     std::vector<Lane> lanes) {
  return std::make_unique<LaneReduce>(a, ctx, std::move(lanes));
}

double binomialLaneCost(const CostInputs& in) {
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double depth = std::max(1, ceilLog2(in.n));
  return depth * in.alpha + depth * in.bytes * in.beta + depth * segs * in.gamma;
}

double chainLaneCost(const CostInputs& in) {
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double n = in.n;
  return (n - 1) * in.alpha + (in.bytes + (n - 2) * in.segmentBytes) * in.beta +
         (segs + n - 2) * in.gamma;
}

double doubleTreeLanesCost(const CostInputs& in) {
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double depth = std::max(1, ceilLog2(in.n));
  // Interior ranks send each half to two children: at least one message per
  // child and tree even for tiny data.
  return depth * in.alpha + in.bytes * in.beta + 4 * std::max(1.0, segs / 2) * in.gamma;
}

}  // namespace chorus::algo
