// Bruck all-to-all for small blocks: ceil(log2 N) rounds instead of N-1.
// Blocks are rotated so that index i is destined to rank r+i; in round k
// every block whose index has bit k set moves 2^k ranks on (packed into one
// message); a final rotation puts block i at its sender's position. Each
// round's outgoing blocks are packed into their own buffer before anything
// arrives for that round can overwrite them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class BruckAllToAll final : public Task {
 public:
  BruckAllToAll(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    blk_ = a.count * a.elemSize();
    rounds_ = ceilLog2(n_);
    for (int k = 0; k < rounds_; ++k) {
      std::vector<int> idx;
      for (int i = 1; i < n_; ++i)
        if (i & (1 << k)) idx.push_back(i);
      moved_.push_back(idx);
    }
    // tmp (N blocks) + per round: outgoing pack + incoming pack.
    size_t perRound = 0;
    for (auto& m : moved_) perRound = std::max(perRound, m.size() * blk_);
    scratch_ = ctx.scratch(blk_ * n_ + 2 * perRound * std::max(rounds_, 1) + 1);
    tmp_ = scratch_;
    packs_ = scratch_ + blk_ * n_;
    perRound_ = perRound;
    arrived_.assign(rounds_, false);
  }
  Status start() override {
    // Rotate: tmp[i] = block destined to rank (r + i).
    for (int i = 0; i < n_; ++i) std::memcpy(tmp_ + i * blk_, in() + ((r_ + i) % n_) * blk_, blk_);
    round_ = 0;
    step();
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t k, size_t bytes) override {
    if (static_cast<int>(k) >= rounds_ || from != (r_ - (1 << k) % n_ + n_) % n_ ||
        bytes != moved_[k].size() * blk_ || arrived_[k])
      return protocolError("alltoall bruck: unexpected block " + std::to_string(k));
    return inPack(k);
  }
  Status onRecv(int, uint32_t k) override {
    arrived_[k] = true;
    step();
    return Status::ok();
  }
  bool haveAll() const override { return finished_; }
  bool inputModified() const override { return false; }

 private:
  const uint8_t* in() const { return static_cast<const uint8_t*>(a_.sendbuf); }
  uint8_t* outPack(int k) { return packs_ + (2 * k) * perRound_; }
  uint8_t* inPack(int k) { return packs_ + (2 * k + 1) * perRound_; }
  // Send round k once round k-1's blocks are in; unpack as they arrive.
  void step() {
    while (round_ < rounds_) {
      if (!sent_) {
        uint8_t* p = outPack(round_);
        for (size_t j = 0; j < moved_[round_].size(); ++j)
          std::memcpy(p + j * blk_, tmp_ + moved_[round_][j] * blk_, blk_);
        ctx_.send((r_ + (1 << round_)) % n_, static_cast<uint32_t>(round_), p,
                  moved_[round_].size() * blk_);
        sent_ = true;
      }
      if (!arrived_[round_]) return;
      uint8_t* q = inPack(round_);
      for (size_t j = 0; j < moved_[round_].size(); ++j)
        std::memcpy(tmp_ + moved_[round_][j] * blk_, q + j * blk_, blk_);
      ++round_;
      sent_ = false;
    }
    if (finished_) return;
    // Block i came from rank r - i.
    uint8_t* out = static_cast<uint8_t*>(a_.recvbuf);
    for (int i = 0; i < n_; ++i)
      std::memcpy(out + ((r_ - i + n_) % n_) * blk_, tmp_ + i * blk_, blk_);
    finished_ = true;
  }
  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, r_, rounds_;
  size_t blk_, perRound_ = 0;
  std::vector<std::vector<int>> moved_;
  uint8_t* scratch_;
  uint8_t* tmp_;
  uint8_t* packs_;
  std::vector<bool> arrived_;
  int round_ = 0;
  bool sent_ = false, finished_ = false;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<BruckAllToAll>(a, ctx);
}
double cost(const CostInputs& in) {
  double rounds = std::max(1, ceilLog2(in.n));
  // Each round moves about half the data, in one message.
  return rounds * in.alpha + rounds * in.bytes / 2 * in.beta + rounds * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kAllToAllBruck;
const AlgorithmInfo kAllToAllBruck = {
    51,      Collective::kAllToAll,
    "bruck", "ceil(log2 N) rounds, each moving about half the blocks (small messages)",
    make,    cost};

}  // namespace chorus::algo
