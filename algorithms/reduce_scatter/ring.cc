// Ring reduce-scatter along the ring order: N-1 steps. The partial sum of
// rank b's block travels from the position after b's around the ring and is
// finished by b itself, so every block is computed once, in ring order.
// Partial sums travel in the accumulator type (fp32 for fp16/bf16).
#include <algorithm>
#include <cmath>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {
namespace {

class RingReduceScatter final : public Task {
 public:
  RingReduceScatter(const CollectiveArgs& a, TaskContext& ctx)
      : a_(a), ctx_(ctx), topo_(ctx.topology()) {
    n_ = ctx.size();
    p_ = topo_.position[ctx.rank()];
    elem_ = a.elemSize();
    acc_ = accumulatorSize(a.dtype);
    segs_ = Segments(0, a.count, std::max<size_t>(1, ctx.segmentBytes() / acc_));
    // One accumulator block per rank (each block passes through once).
    scratch_ = ctx.scratch(std::max<size_t>(1, a.count * acc_ * n_));
  }
  Status start() override {
    if (n_ == 1) {
      kernels::toAccumulator(a_.dtype, scratch_, in(ctx_.rank()), a_.count);
      kernels::finalize(a_.dtype, a_.op, a_.recvbuf, scratch_, a_.count, 1);
      done_ = segs_.count;
      return Status::ok();
    }
    // Step 0: our contribution to the block of the rank before us.
    int b = rankAt(p_ - 1);
    for (uint32_t g = 0; g < segs_.count; ++g) {
      uint8_t* acc = part(b) + segs_.first(g) * acc_;
      kernels::toAccumulator(a_.dtype, acc, in(b) + segs_.first(g) * elem_, segs_.len(g));
      ctx_.send(rankAt(p_ + 1), g, acc, segs_.len(g) * acc_);
    }
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t block, size_t bytes) override {
    uint32_t step = segs_.count ? block / segs_.count : 0,
             g = segs_.count ? block % segs_.count : 0;
    if (from != rankAt(p_ - 1) || step >= static_cast<uint32_t>(n_ - 1) || g >= segs_.count ||
        bytes != segs_.len(g) * acc_)
      return protocolError("reduce-scatter ring: unexpected block " + std::to_string(block));
    return part(blockAt(step)) + segs_.first(g) * acc_;
  }
  Status onRecv(int, uint32_t block) override {
    uint32_t step = block / segs_.count, g = block % segs_.count;
    int b = blockAt(step);
    uint8_t* acc = part(b) + segs_.first(g) * acc_;
    const uint8_t* mine = in(b) + segs_.first(g) * elem_;
    if (step + 1 < static_cast<uint32_t>(n_ - 1)) {
      kernels::combine(a_.dtype, a_.op, acc, acc, mine, segs_.len(g));
      ctx_.send(rankAt(p_ + 1), (step + 1) * segs_.count + g, acc, segs_.len(g) * acc_);
    } else {  // our own block: finish it
      uint8_t* dst = static_cast<uint8_t*>(a_.recvbuf) + segs_.first(g) * elem_;
      kernels::combineFinal(a_.dtype, a_.op, dst, acc, mine, segs_.len(g), n_);
      if (dst == mine) modified_ = true;
      ++done_;
    }
    return Status::ok();
  }
  bool haveAll() const override { return done_ == segs_.count; }
  bool inputModified() const override { return modified_; }

 private:
  int rankAt(int pos) const { return topo_.ring[((pos % n_) + n_) % n_]; }
  // Block received at step s: rank ring[p - s - 2]; the last step brings ours.
  int blockAt(uint32_t s) const { return rankAt(p_ - static_cast<int>(s) - 2); }
  const uint8_t* in(int block) const {
    return static_cast<const uint8_t*>(a_.sendbuf) + static_cast<size_t>(block) * a_.count * elem_;
  }
  uint8_t* part(int block) { return scratch_ + static_cast<size_t>(block) * a_.count * acc_; }
  CollectiveArgs a_;
  TaskContext& ctx_;
  const TopologyView& topo_;
  int n_, p_;
  size_t elem_, acc_;
  Segments segs_;
  uint8_t* scratch_;
  uint32_t done_ = 0;
  bool modified_ = false;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<RingReduceScatter>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / n / in.segmentBytes);
  return (n - 1) * in.alpha + (n - 1) / n * in.bytes * in.beta + (n - 1) * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kReduceScatterRing;
const AlgorithmInfo kReduceScatterRing = {
    40,     Collective::kReduceScatter,
    "ring", "ring along the ring order: N-1 steps, each block finished by its owner",
    make,   cost};

}  // namespace chorus::algo
