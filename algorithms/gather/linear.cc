// Linear gather: every rank sends its block straight to the root. One round;
// the root receives N-1 blocks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class LinearGather final : public Task {
 public:
  LinearGather(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    bytes_ = a.count * a.elemSize();
    segs_ = Segments(0, bytes_, std::max<size_t>(1, ctx.segmentBytes()));
  }
  Status start() override {
    const uint8_t* in = static_cast<const uint8_t*>(a_.sendbuf);
    if (ctx_.rank() == a_.root) {
      uint8_t* mine = out() + static_cast<size_t>(a_.root) * bytes_;
      if (mine != in && bytes_) std::memcpy(mine, in, bytes_);
    } else {
      for (uint32_t g = 0; g < segs_.count; ++g)
        ctx_.send(a_.root, g, in + segs_.first(g), segs_.len(g));
    }
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    if (ctx_.rank() != a_.root || from == a_.root || g >= segs_.count || bytes != segs_.len(g))
      return protocolError("gather: unexpected block " + std::to_string(g));
    return out() + static_cast<size_t>(from) * bytes_ + segs_.first(g);
  }
  Status onRecv(int, uint32_t) override {
    ++got_;
    return Status::ok();
  }
  bool haveAll() const override {
    return ctx_.rank() != a_.root || got_ == static_cast<uint32_t>(ctx_.size() - 1) * segs_.count;
  }
  bool inputModified() const override { return false; }

 private:
  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }
  CollectiveArgs a_;
  TaskContext& ctx_;
  size_t bytes_;
  Segments segs_;
  uint32_t got_ = 0;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<LinearGather>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return in.alpha + (n - 1) * in.bytes * in.beta + (n - 1) * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kGatherLinear;
const AlgorithmInfo kGatherLinear = {60,       Collective::kGather,
                                     "linear", "one round: every rank sends its block to the root",
                                     make,     cost};

}  // namespace chorus::algo
