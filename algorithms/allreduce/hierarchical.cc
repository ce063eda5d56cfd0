// Hierarchical (two-level) all-reduce for peers spread over several hosts:
//   1. inside each host, every rank sends its input to the host's leader (its
//      lowest rank), which reduces them in rank order;
//   2. the leaders all-reduce the host partials with a ring among themselves
//      (the ring task run through a sub-context);
//   3. each leader finishes the result and sends it to its host's ranks.
// Only step 2 crosses hosts, carrying 2(H-1)/H of the data per leader for H
// hosts instead of the flat ring's 2(N-1)/N on every link of a ring that
// crosses hosts twice or more.
//
// Bit parity: host partials are computed once by their leader in rank order;
// the leaders' ring computes each final chunk once and copies it; leaders
// broadcast verbatim. Partial sums stay in the accumulator type (fp32 for
// fp16/bf16) through steps 1 and 2, and avg divides by all N ranks once, so
// results round once.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {

extern const AlgorithmInfo kAllReduceRing;

namespace {

// A TaskContext over a subset of ranks (the leaders), with its block ids
// shifted so they do not collide with the other steps'.
class SubContext final : public TaskContext {
 public:
  SubContext(TaskContext& parent, std::vector<int> members, uint32_t blockBase)
      : parent_(parent), members_(std::move(members)), base_(blockBase) {
    for (size_t i = 0; i < members_.size(); ++i)
      if (members_[i] == parent.rank()) me_ = static_cast<int>(i);
    topo_ = TopologyView::identity(static_cast<int>(members_.size()));
  }
  int rank() const override { return me_; }
  int size() const override { return static_cast<int>(members_.size()); }
  void send(int toRank, uint32_t block, const void* data, size_t bytes) override {
    parent_.send(members_[toRank], base_ + block, data, bytes);
  }
  uint8_t* scratch(size_t bytes) override {
    own_.assign(bytes + 1, 0);  // the parent's single scratch belongs to the outer task
    return own_.data();
  }
  size_t segmentBytes() const override { return parent_.segmentBytes(); }
  const TopologyView& topology() const override { return topo_; }
  int subRankOf(int rank) const {
    for (size_t i = 0; i < members_.size(); ++i)
      if (members_[i] == rank) return static_cast<int>(i);
    return -1;
  }

 private:
  TaskContext& parent_;
  std::vector<int> members_;
  uint32_t base_;
  int me_ = -1;
  TopologyView topo_;
  std::vector<uint8_t> own_;
};

class HierarchicalAllReduce final : public Task {
 public:
  HierarchicalAllReduce(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    const TopologyView& t = ctx.topology();
    r_ = ctx.rank();
    n_ = ctx.size();
    host_ = t.hosts[t.hostOf[r_]];
    leader_ = host_[0];
    for (const auto& h : t.hosts) leaders_.push_back(h[0]);
    elem_ = a.elemSize();
    acc_ = accumulatorSize(a.dtype);
    seg1_ = Segments(0, a.count, std::max<size_t>(1, ctx.segmentBytes() / elem_));
    base2_ = static_cast<uint32_t>(seg1_.count);
    // The ring's block ids are below 2(H-1) * segments-per-chunk <= 2H * count.
    size_t ringBlocks =
        2 * leaders_.size() *
        std::max<size_t>(1, (a.count + std::max<size_t>(1, ctx.segmentBytes() / acc_) - 1) /
                                std::max<size_t>(1, ctx.segmentBytes() / acc_));
    base3_ = base2_ + static_cast<uint32_t>(ringBlocks);
    if (r_ == leader_) {
      // Partial (accumulator type) + one slot per other host member.
      size_t bytes = a.count * acc_ + (host_.size() - 1) * a.count * elem_ + 1;
      scratch_ = ctx.scratch(bytes);
      partial_ = scratch_;
      arrived_.assign(seg1_.count, 0);
      // The leaders' ring reduces the partials: in the accumulator type, with
      // sum for avg (divided by N at the end).
      CollectiveArgs ra;
      ra.collective = Collective::kAllReduce;
      ra.sendbuf = ra.recvbuf = partial_;
      ra.count = a.count;
      ra.dtype = isHalfType(a.dtype) ? DataType::kFloat32 : a.dtype;
      ra.op = a.op == RedOp::kAvg ? RedOp::kSum : a.op;
      sub_ = std::make_unique<SubContext>(ctx, leaders_, base2_);
      ring_ = kAllReduceRing.factory(ra, *sub_);
    }
  }

  Status start() override {
    if (r_ != leader_) {  // step 1: hand our input to the leader
      auto* in = static_cast<const uint8_t*>(a_.sendbuf);
      for (uint32_t g = 0; g < seg1_.count; ++g)
        ctx_.send(leader_, g, in + seg1_.first(g) * elem_, seg1_.len(g) * elem_);
      return Status::ok();
    }
    if (host_.size() == 1)
      for (uint32_t g = 0; g < seg1_.count; ++g) reduceSegment(g);
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int from, uint32_t block, size_t bytes) override {
    if (block < base2_) {  // step 1 at the leader
      int slot = memberSlot(from);
      if (r_ != leader_ || slot < 0 || bytes != seg1_.len(block) * elem_) return bad(block, from);
      return slot_(slot) + seg1_.first(block) * elem_;
    }
    if (block < base3_) {  // step 2 among leaders
      if (!ring_) return bad(block, from);
      int sub = sub_->subRankOf(from);
      if (sub < 0) return bad(block, from);
      return ring_->recvTarget(sub, block - base2_, bytes);
    }
    uint32_t g = block - base3_;  // step 3 at a host member
    if (r_ == leader_ || from != leader_ || g >= seg1_.count || bytes != seg1_.len(g) * elem_)
      return bad(block, from);
    return static_cast<uint8_t*>(a_.recvbuf) + seg1_.first(g) * elem_;
  }

  Status onRecv(int from, uint32_t block) override {
    if (block < base2_) {
      if (++arrived_[block] == host_.size() - 1) reduceSegment(block);
      return Status::ok();
    }
    if (block < base3_) {
      int sub = sub_->subRankOf(from);
      if (!ringStarted_) {
        deferred_.emplace_back(sub, block - base2_);  // our partial is not ready yet
        return Status::ok();
      }
      CHORUS_RETURN_IF_ERROR(ring_->onRecv(sub, block - base2_));
      maybeFinish();
      return Status::ok();
    }
    ++got3_;
    if (a_.sendbuf == a_.recvbuf) modified_ = true;
    return Status::ok();
  }

  bool haveAll() const override { return r_ == leader_ ? finished_ : got3_ == seg1_.count; }
  bool inputModified() const override { return modified_; }

 private:
  Status bad(uint32_t block, int from) const {
    return protocolError("hierarchical: unexpected block " + std::to_string(block) + " from rank " +
                         std::to_string(from));
  }
  int memberSlot(int rank) const {
    for (size_t i = 1; i < host_.size(); ++i)
      if (host_[i] == rank) return static_cast<int>(i) - 1;
    return -1;
  }
  uint8_t* slot_(int k) {
    return scratch_ + a_.count * acc_ + static_cast<size_t>(k) * a_.count * elem_;
  }

  // Step 1: partial = own input, then the host members' in rank order.
  void reduceSegment(uint32_t g) {
    size_t off = seg1_.first(g), len = seg1_.len(g);
    uint8_t* acc = partial_ + off * acc_;
    const void* in = static_cast<const uint8_t*>(a_.sendbuf) + off * elem_;
    if (host_.size() == 1) {
      kernels::toAccumulator(a_.dtype, acc, in, len);  // alone on its host
    } else {
      const void* first = kernels::firstOperand(a_.dtype, acc, in, len);
      for (size_t k = 0; k + 1 < host_.size(); ++k) {
        kernels::combine(a_.dtype, a_.op == RedOp::kAvg ? RedOp::kSum : a_.op, acc, first,
                         slot_(static_cast<int>(k)) + off * elem_, len);
        first = acc;
      }
    }
    if (++reduced_ < seg1_.count) return;
    // All of the partial is ready: step 2.
    ringStarted_ = true;
    Status st = ring_->start();
    (void)st;
    for (auto [sub, block] : deferred_) (void)ring_->onRecv(sub, block);
    deferred_.clear();
    maybeFinish();
  }

  // Step 3: finish (round once, divide avg by N) and send to the host.
  void maybeFinish() {
    if (finished_ || !ring_->haveAll()) return;
    finished_ = true;
    uint8_t* out = static_cast<uint8_t*>(a_.recvbuf);
    kernels::finalize(a_.dtype, a_.op, out, partial_, a_.count, n_);
    if (a_.sendbuf == a_.recvbuf) modified_ = true;
    for (size_t k = 1; k < host_.size(); ++k)
      for (uint32_t g = 0; g < seg1_.count; ++g)
        ctx_.send(host_[k], base3_ + g, out + seg1_.first(g) * elem_, seg1_.len(g) * elem_);
  }

  CollectiveArgs a_;
  TaskContext& ctx_;
  int r_, n_, leader_;
  std::vector<int> host_, leaders_;
  size_t elem_, acc_;
  Segments seg1_;
  uint32_t base2_, base3_;
  uint8_t* scratch_ = nullptr;
  uint8_t* partial_ = nullptr;
  std::vector<uint32_t> arrived_;
  uint32_t reduced_ = 0, got3_ = 0;
  std::unique_ptr<SubContext> sub_;
  std::unique_ptr<Task> ring_;
  bool ringStarted_ = false, finished_ = false, modified_ = false;
  std::vector<std::pair<int, uint32_t>> deferred_;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<HierarchicalAllReduce>(a, ctx);
}

// Applicable when ranks share hosts across several hosts. Inside a host the
// transfers use the host's links (assumed 4x faster than between hosts
// unless measured); between hosts only the leaders' ring.
double cost(const CostInputs& in) {
  const TopologyView* t = in.topo;
  if (!t || !t->multiHost()) return -1;
  size_t h = 0;
  for (const auto& host : t->hosts) h = std::max(h, host.size());
  if (h < 2) return -1;
  double H = static_cast<double>(t->hosts.size()), hs = static_cast<double>(h);
  double betaInter =
      t->interHostBandwidthGBps > 0 ? 1.0 / (t->interHostBandwidthGBps * 1e9) : in.beta;
  double betaIntra =
      t->intraHostBandwidthGBps > 0 ? 1.0 / (t->intraHostBandwidthGBps * 1e9) : in.beta / 4;
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  double intra = 2 * (in.alpha + (hs - 1) * in.bytes * betaIntra + (hs - 1) * segs * in.gamma);
  double inter = 2 * (H - 1) * in.alpha + 2 * (H - 1) / H * in.bytes * betaInter +
                 2 * (H - 1) * std::max(1.0, segs / H) * in.gamma;
  return intra + inter;
}

}  // namespace

extern const AlgorithmInfo kAllReduceHierarchical;
const AlgorithmInfo kAllReduceHierarchical = {
    5,
    Collective::kAllReduce,
    "hierarchical",
    "reduce inside each host, ring across host leaders, broadcast inside each host",
    make,
    cost};

}  // namespace chorus::algo
