// Direct all-reduce for small messages: every rank sends its whole input to
// every other rank, and each rank reduces all N inputs itself, in rank order.
// One network hop instead of 2(N-1), at the price of (N-1) times the data;
// the selector uses it for small buffers only.
//
// Bit parity: every rank evaluates the same expression, ((x0 op x1) op x2)...,
// with the same kernels, so the bytes match without an all-gather.
#include <cmath>
#include <cstring>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {
namespace {

class DirectAllReduce final : public Task {
 public:
  DirectAllReduce(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    bytes_ = a.count * dataTypeSize(a.dtype);
    // Slots for the other ranks' inputs, then the accumulator, then one
    // flag per rank (in scratch: a vector here was an allocation per call).
    const size_t accBytes = a.count * accumulatorSize(a.dtype);
    slots_ = ctx.scratch(bytes_ * n_ + accBytes + static_cast<size_t>(n_));
    acc_ = slots_ + bytes_ * n_;
    got_ = acc_ + accBytes;
    std::memset(got_, 0, static_cast<size_t>(n_));
    got_[r_] = 1;
    remaining_ = n_ - 1;
  }

  Status start() override {
    // In place, the result overwrites the input, possibly before our sends
    // of that input have left: send (and reduce) from a private copy.
    const void* mine = a_.sendbuf;
    if (a_.inPlace()) {
      std::memcpy(slots_ + bytes_ * r_, a_.sendbuf, bytes_);
      mine = slots_ + bytes_ * r_;
      ownCopy_ = true;
    }
    for (int p = 0; p < n_; ++p)
      if (p != r_) ctx_.send(p, 0, mine, bytes_);
    if (remaining_ == 0) reduceAll();
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int fromRank, uint32_t block, size_t bytes) override {
    if (block != 0 || fromRank == r_ || got_[fromRank] || bytes != bytes_)
      return protocolError("direct: unexpected block " + std::to_string(block) + " (" +
                           std::to_string(bytes) + " bytes) from rank " + std::to_string(fromRank));
    return slots_ + bytes_ * fromRank;
  }

  Status onRecv(int fromRank, uint32_t) override {
    got_[fromRank] = 1;
    if (--remaining_ == 0) reduceAll();
    return Status::ok();
  }

  // On shared memory at N=2 the one input that arrives and ours are the
  // whole expression: reduce it straight out of the ring into the result
  // (one copy less), with the very kernel call reduceInOrder makes for N=2,
  // (x0 op x1), so a rank that got the input this way and one that got it
  // through the landing slot (it arrived before the call) agree bit for bit.
  // Not in place (the result would overwrite the input a re-run needs
  // before the operation is confirmed), and not for fp16/bf16, whose
  // expression starts from a float accumulator.
  bool arrivalReduction(int fromRank, uint32_t block, kernels::ArrivalReduction* r) override {
    if (n_ != 2 || block != 0 || fromRank == r_ || a_.inPlace() || isHalfType(a_.dtype))
      return false;
    r->dtype = a_.dtype;
    r->op = a_.op;
    r->final = true;
    r->contributors = 2;
    r->dst = static_cast<uint8_t*>(a_.recvbuf);
    r->other = static_cast<const uint8_t*>(input(r_));
    r->otherFirst = r_ < fromRank;
    return true;
  }
  Status onReducedRecv(int fromRank, uint32_t) override {
    got_[fromRank] = 1;
    --remaining_;
    done_ = true;
    return Status::ok();
  }

  bool haveAll() const override { return done_; }
  bool inputModified() const override { return done_ && a_.inPlace(); }

 private:
  const void* input(int p) const {
    return (p == r_ && !ownCopy_) ? a_.sendbuf : slots_ + bytes_ * p;
  }

  void reduceAll() {
    kernels::reduceInOrder(a_.dtype, a_.op, a_.recvbuf, acc_, n_, a_.count,
                           [this](int p) { return input(p); });
    done_ = true;
  }

  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, r_;
  size_t bytes_;
  uint8_t* slots_;
  uint8_t* acc_;
  uint8_t* got_;  // in scratch
  int remaining_;
  bool done_ = false;
  bool ownCopy_ = false;
};

std::unique_ptr<Task> makeDirect(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<DirectAllReduce>(a, ctx);
}

// One round, but every rank sends (and reduces) N-1 copies of the data.
double cost(const CostInputs& in) {
  if (in.bytes > (64u << 20)) return -1;  // one frame per peer: keep it small
  double n = in.n;
  return in.alpha + (n - 1) * in.bytes * in.beta + 2 * (n - 1) * in.gamma +
         (n - 1) * in.bytes * 0.1e-9;
}

}  // namespace

extern const AlgorithmInfo kAllReduceDirect;
const AlgorithmInfo kAllReduceDirect = {
    2,
    Collective::kAllReduce,
    "direct",
    "one hop: every rank sends its input to all and reduces in rank order (small messages)",
    makeDirect,
    cost};

}  // namespace chorus::algo
