// Linear scatter: the root sends block j straight to rank j. One round.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class LinearScatter final : public Task {
 public:
  LinearScatter(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    bytes_ = a.count * a.elemSize();
    segs_ = Segments(0, bytes_, std::max<size_t>(1, ctx.segmentBytes()));
  }
  Status start() override {
    if (ctx_.rank() != a_.root) return Status::ok();
    const uint8_t* in = static_cast<const uint8_t*>(a_.sendbuf);
    const uint8_t* mine = in + static_cast<size_t>(a_.root) * bytes_;
    if (mine != a_.recvbuf && bytes_) std::memcpy(a_.recvbuf, mine, bytes_);
    for (int p = 0; p < ctx_.size(); ++p)
      if (p != a_.root)
        for (uint32_t g = 0; g < segs_.count; ++g)
          ctx_.send(p, g, in + static_cast<size_t>(p) * bytes_ + segs_.first(g), segs_.len(g));
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    if (from != a_.root || ctx_.rank() == a_.root || g >= segs_.count || bytes != segs_.len(g))
      return protocolError("scatter: unexpected block " + std::to_string(g));
    return static_cast<uint8_t*>(a_.recvbuf) + segs_.first(g);
  }
  Status onRecv(int, uint32_t) override {
    ++got_;
    return Status::ok();
  }
  bool haveAll() const override { return ctx_.rank() == a_.root || got_ == segs_.count; }
  bool inputModified() const override { return false; }

 private:
  CollectiveArgs a_;
  TaskContext& ctx_;
  size_t bytes_;
  Segments segs_;
  uint32_t got_ = 0;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<LinearScatter>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return in.alpha + (n - 1) * in.bytes * in.beta + (n - 1) * segs * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kScatterLinear;
const AlgorithmInfo kScatterLinear = {
    70, Collective::kScatter, "linear", "one round: the root sends block j to rank j", make, cost};

}  // namespace chorus::algo
