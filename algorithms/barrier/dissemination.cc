// Dissemination barrier: in round k a rank signals rank r + 2^k and waits
// for rank r - 2^k; after ceil(log2 N) rounds every rank has heard, directly
// or not, from every other. Signals are empty frames.
#include <algorithm>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class DisseminationBarrier final : public Task {
 public:
  DisseminationBarrier(const CollectiveArgs&, TaskContext& ctx) : ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    rounds_ = ceilLog2(n_);
    arrived_.assign(rounds_, false);
  }
  Status start() override {
    step();
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t k, size_t bytes) override {
    if (static_cast<int>(k) >= rounds_ || bytes != 0 || arrived_[k] ||
        from != ((r_ - (1 << k)) % n_ + n_) % n_)
      return protocolError("barrier: unexpected signal " + std::to_string(k));
    return reinterpret_cast<uint8_t*>(&token_);
  }
  Status onRecv(int, uint32_t k) override {
    arrived_[k] = true;
    step();
    return Status::ok();
  }
  bool haveAll() const override { return round_ == rounds_; }
  bool inputModified() const override { return false; }

 private:
  void step() {
    while (round_ < rounds_) {
      if (!sent_) {
        ctx_.send((r_ + (1 << round_)) % n_, static_cast<uint32_t>(round_), &token_, 0);
        sent_ = true;
      }
      if (!arrived_[round_]) return;
      ++round_;
      sent_ = false;
    }
  }
  TaskContext& ctx_;
  int n_, r_, rounds_, round_ = 0;
  bool sent_ = false;
  std::vector<bool> arrived_;
  uint8_t token_ = 0;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<DisseminationBarrier>(a, ctx);
}
double cost(const CostInputs& in) {
  return std::max(1, ceilLog2(in.n)) * (in.alpha + in.gamma);
}

}  // namespace

extern const AlgorithmInfo kBarrierDissemination;
const AlgorithmInfo kBarrierDissemination = {
    80,
    Collective::kBarrier,
    "dissemination",
    "ceil(log2 N) rounds: signal rank r+2^k, wait for rank r-2^k",
    make,
    cost};

}  // namespace chorus::algo
