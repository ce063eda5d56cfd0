// Direct all-gather: every rank sends its block to every other rank at once.
// One round; each rank sends N-1 copies of its block.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class DirectAllGather final : public Task {
 public:
  DirectAllGather(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    bytes_ = a.count * a.elemSize();
    segs_ = Segments(0, bytes_, std::max<size_t>(1, ctx.segmentBytes()));
  }
  Status start() override {
    uint8_t* mine = out() + static_cast<size_t>(ctx_.rank()) * bytes_;
    if (a_.sendbuf != mine && bytes_) std::memcpy(mine, a_.sendbuf, bytes_);
    for (int p = 0; p < n_; ++p)
      if (p != ctx_.rank())
        for (uint32_t g = 0; g < segs_.count; ++g)
          ctx_.send(p, g, mine + segs_.first(g), segs_.len(g));
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    if (from == ctx_.rank() || g >= segs_.count || bytes != segs_.len(g))
      return protocolError("allgather direct: unexpected block " + std::to_string(g));
    return out() + static_cast<size_t>(from) * bytes_ + segs_.first(g);
  }
  Status onRecv(int, uint32_t) override {
    ++got_;
    return Status::ok();
  }
  bool haveAll() const override { return got_ == static_cast<uint32_t>(n_ - 1) * segs_.count; }
  bool inputModified() const override { return false; }

 private:
  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }
  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_;
  size_t bytes_;
  Segments segs_;
  uint32_t got_ = 0;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<DirectAllGather>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return in.alpha + (n - 1) * in.bytes * in.beta * 1.05 + 2 * (n - 1) * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kAllGatherDirect;
const AlgorithmInfo kAllGatherDirect = {
    31,       Collective::kAllGather,
    "direct", "one round: every rank sends its block to all others",
    make,     cost};

}  // namespace chorus::algo
