// Direct reduce-scatter: every rank sends block j straight to rank j, which
// reduces the N contributions in rank order once they are all there. One
// round; inputs travel as themselves (fp16/bf16 reduced in fp32, rounded once).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {
namespace {

class DirectReduceScatter final : public Task {
 public:
  DirectReduceScatter(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    elem_ = a.elemSize();
    acc_ = accumulatorSize(a.dtype);
    segs_ = Segments(0, a.count, std::max<size_t>(1, ctx.segmentBytes() / elem_));
    slot_ = a.count * elem_;
    // A slot per rank for its contribution to our block, then an accumulator.
    scratch_ = ctx.scratch(slot_ * n_ + std::max<size_t>(segs_.per, 1) * acc_ + 1);
    accum_ = scratch_ + slot_ * n_;
    arrived_.assign(segs_.count, 0);
  }
  Status start() override {
    // Our own contribution is copied: in place, the output overwrites it.
    if (slot_) std::memcpy(scratch_ + slot_ * r_, in(r_), slot_);
    for (int p = 0; p < n_; ++p)
      if (p != r_)
        for (uint32_t g = 0; g < segs_.count; ++g)
          ctx_.send(p, g, in(p) + segs_.first(g) * elem_, segs_.len(g) * elem_);
    if (n_ == 1)
      for (uint32_t g = 0; g < segs_.count; ++g) reduce(g);
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    if (from == r_ || g >= segs_.count || bytes != segs_.len(g) * elem_)
      return protocolError("reduce-scatter direct: unexpected block " + std::to_string(g));
    return scratch_ + slot_ * from + segs_.first(g) * elem_;
  }
  Status onRecv(int, uint32_t g) override {
    if (++arrived_[g] == static_cast<uint32_t>(n_ - 1)) reduce(g);
    return Status::ok();
  }
  bool haveAll() const override { return done_ == segs_.count; }
  bool inputModified() const override { return modified_; }

 private:
  const uint8_t* in(int block) const {
    return static_cast<const uint8_t*>(a_.sendbuf) + static_cast<size_t>(block) * slot_;
  }
  void reduce(uint32_t g) {
    size_t off = segs_.first(g) * elem_, len = segs_.len(g);
    uint8_t* dst = static_cast<uint8_t*>(a_.recvbuf) + off;
    kernels::reduceInOrder(a_.dtype, a_.op, dst, accum_, n_, len,
                           [&](int p) { return scratch_ + slot_ * p + off; });
    if (dst == in(r_) + off) modified_ = true;
    ++done_;
  }
  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, r_;
  size_t elem_, acc_, slot_;
  Segments segs_;
  uint8_t* scratch_;
  uint8_t* accum_;
  std::vector<uint32_t> arrived_;
  uint32_t done_ = 0;
  bool modified_ = false;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<DirectReduceScatter>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / n / in.segmentBytes);
  return in.alpha + (n - 1) / n * in.bytes * in.beta * 1.05 + 2 * (n - 1) * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kReduceScatterDirect;
const AlgorithmInfo kReduceScatterDirect = {
    41,       Collective::kReduceScatter,
    "direct", "one round: block j goes to rank j, which reduces in rank order",
    make,     cost};

}  // namespace chorus::algo
