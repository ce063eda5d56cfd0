// Ring all-gather along the ring order: N-1 steps; at each step a rank
// passes on the block it received in the previous step, segment by segment.
// Each rank sends (N-1) blocks once.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class RingAllGather final : public Task {
 public:
  RingAllGather(const CollectiveArgs& a, TaskContext& ctx)
      : a_(a), ctx_(ctx), topo_(ctx.topology()) {
    n_ = ctx.size();
    p_ = topo_.position[ctx.rank()];
    bytes_ = a.count * a.elemSize();
    segs_ = Segments(0, bytes_, std::max<size_t>(1, ctx.segmentBytes()));
  }
  Status start() override {
    uint8_t* mine = out() + static_cast<size_t>(ctx_.rank()) * bytes_;
    if (a_.sendbuf != mine && bytes_) std::memcpy(mine, a_.sendbuf, bytes_);
    if (n_ > 1)
      for (uint32_t g = 0; g < segs_.count; ++g) sendBlock(0, g);
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t block, size_t bytes) override {
    uint32_t step = segs_.count ? block / segs_.count : 0,
             g = segs_.count ? block % segs_.count : 0;
    if (from != rankAt(p_ - 1) || step >= static_cast<uint32_t>(n_ - 1) || g >= segs_.count ||
        bytes != segs_.len(g))
      return protocolError("allgather ring: unexpected block " + std::to_string(block));
    return out() + static_cast<size_t>(owner(step + 1)) * bytes_ + segs_.first(g);
  }
  Status onRecv(int, uint32_t block) override {
    uint32_t step = block / segs_.count, g = block % segs_.count;
    ++got_;
    if (step + 1 < static_cast<uint32_t>(n_ - 1)) sendBlock(step + 1, g);
    return Status::ok();
  }
  bool haveAll() const override { return got_ == static_cast<uint32_t>(n_ - 1) * segs_.count; }
  bool inputModified() const override { return false; }

 private:
  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }
  int rankAt(int pos) const { return topo_.ring[((pos % n_) + n_) % n_]; }
  // Rank whose block moves at step s from position p: ring[p - s].
  int owner(uint32_t s) const { return rankAt(p_ - static_cast<int>(s)); }
  void sendBlock(uint32_t step, uint32_t g) {
    ctx_.send(rankAt(p_ + 1), step * segs_.count + g,
              out() + static_cast<size_t>(owner(step)) * bytes_ + segs_.first(g), segs_.len(g));
  }
  CollectiveArgs a_;
  TaskContext& ctx_;
  const TopologyView& topo_;
  int n_, p_;
  size_t bytes_;
  Segments segs_;
  uint32_t got_ = 0;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<RingAllGather>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return (n - 1) * in.alpha + (n - 1) * in.bytes * in.beta + (n - 1) * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kAllGatherRing;
const AlgorithmInfo kAllGatherRing = {
    30,     Collective::kAllGather,
    "ring", "ring along the ring order: N-1 steps, each block sent once",
    make,   cost};

}  // namespace chorus::algo
