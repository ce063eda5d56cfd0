// Ring all-reduce: reduce-scatter then all-gather, chunked and pipelined.
//
// The buffer is cut into one chunk per rank and each chunk into segments.
// Reduce-scatter step s (0..N-2): send chunk (r-s) mod N to the right, receive
// chunk (r-s-1) mod N from the left and combine it with the local input. After
// N-1 steps rank r owns the final value of chunk (r+1) mod N. All-gather step
// t (0..N-2): send chunk (r+1-t) mod N, receive chunk (r-t) mod N and forward
// it verbatim. Each segment moves as soon as its predecessor arrived, so
// segments of different steps are in flight at once.
//
// Bit parity: every final chunk is computed once, by its owner, in ring order,
// and everyone else copies the owner's bytes. fp16/bf16 partial sums travel
// as fp32 and are rounded once, by the owner.
//
// Input preservation: partial sums live in scratch; an in-place input is only
// overwritten by final values (which exist only once every rank contributed).
#include <algorithm>
#include <cmath>
#include <vector>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {
namespace {

class RingAllReduce final : public Task {
 public:
  RingAllReduce(const CollectiveArgs& a, TaskContext& ctx)
      : a_(a), ctx_(ctx), topo_(ctx.topology()) {
    n_ = ctx.size();
    r_ = topo_.position[ctx.rank()];  // we work in ring positions
    elem_ = dataTypeSize(a.dtype);
    acc_ = accumulatorSize(a.dtype);
    size_t maxChunk = (a.count + n_ - 1) / n_;
    segElems_ = std::max<size_t>(1, ctx.segmentBytes() / acc_);
    nseg_ = static_cast<uint32_t>((maxChunk + segElems_ - 1) / segElems_);
    if (nseg_ == 0) nseg_ = 1;
    scratch_ = ctx.scratch(a.count * acc_);
    // Expected all-gather receipts and own final segments, for haveAll().
    for (int t = 0; t < n_ - 1; ++t) agExpected_ += nonEmptySegs(mod(r_ - t));
    ownSegs_ = nonEmptySegs(mod(r_ + 1));
  }

  Status start() override {
    if (n_ == 1) {  // nothing to exchange: the result is the input
      std::vector<uint8_t> acc(a_.count * acc_);
      kernels::toAccumulator(a_.dtype, acc.data(), in(), a_.count);
      kernels::finalize(a_.dtype, a_.op, out(), acc.data(), a_.count, 1);
      ownDone_ = ownSegs_;
      return Status::ok();
    }
    // Reduce-scatter step 0: our own chunk r goes right.
    int c = r_;
    for (uint32_t g = 0; g < nseg_; ++g) {
      size_t b = 0, e = 0;
      if (!segRange(c, g, &b, &e)) continue;
      const void* src;
      if (isHalfType(a_.dtype)) {
        kernels::toAccumulator(a_.dtype, scratch_ + b * acc_, in() + b * elem_, e - b);
        src = scratch_ + b * acc_;
      } else {
        src = in() + b * elem_;
      }
      ctx_.send(right(), blockId(0, g), src, (e - b) * acc_);
    }
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int fromRank, uint32_t block, size_t bytes) override {
    uint32_t step = block / nseg_, g = block % nseg_;
    if (fromRank != left() || step >= static_cast<uint32_t>(2 * (n_ - 1)))
      return protocolError("ring: unexpected block " + std::to_string(block) + " from rank " +
                           std::to_string(fromRank));
    int c = recvChunk(step);
    size_t b = 0, e = 0;
    if (!segRange(c, g, &b, &e))
      return protocolError("ring: block " + std::to_string(block) + " names an empty segment");
    bool rs = step < static_cast<uint32_t>(n_ - 1);
    size_t want = (e - b) * (rs ? acc_ : elem_);
    if (bytes != want)
      return protocolError("ring: block " + std::to_string(block) + " has " +
                           std::to_string(bytes) + " bytes, expected " + std::to_string(want));
    return rs ? scratch_ + b * acc_ : out() + b * elem_;
  }

  // Reduce-scatter steps add our input to the arriving partial sum: on
  // shared memory straight out of the ring (the same kernel and operands).
  bool arrivalReduction(int, uint32_t block, kernels::ArrivalReduction* r) override {
    uint32_t step = block / nseg_, g = block % nseg_;
    if (step > static_cast<uint32_t>(n_ - 2)) return false;  // all-gather: lands
    size_t b = 0, e = 0;
    segRange(recvChunk(step), g, &b, &e);
    r->dtype = a_.dtype;
    r->op = a_.op;
    r->final = step == static_cast<uint32_t>(n_ - 2);
    r->contributors = n_;
    r->dst = r->final ? out() + b * elem_ : scratch_ + b * acc_;
    r->other = in() + b * elem_;
    return true;
  }
  Status onReducedRecv(int fromRank, uint32_t block) override {
    return received(fromRank, block, /*reduced=*/true);
  }
  Status onRecv(int fromRank, uint32_t block) override {
    return received(fromRank, block, /*reduced=*/false);
  }

  bool haveAll() const override { return ownDone_ == ownSegs_ && agDone_ == agExpected_; }
  bool inputModified() const override { return modified_; }

 private:
  Status received(int, uint32_t block, bool reduced) {
    uint32_t step = block / nseg_, g = block % nseg_;
    int c = recvChunk(step);
    size_t b = 0, e = 0;
    segRange(c, g, &b, &e);
    size_t len = e - b;
    if (step < static_cast<uint32_t>(n_ - 2)) {
      // Partial sum: add our input and pass it on.
      uint8_t* acc = scratch_ + b * acc_;
      if (!reduced) kernels::combine(a_.dtype, a_.op, acc, acc, in() + b * elem_, len);
      ctx_.send(right(), blockId(step + 1, g), acc, len * acc_);
    } else if (step == static_cast<uint32_t>(n_ - 2)) {
      // Last reduce-scatter step: we own chunk c; finalise into the output
      // and start its all-gather.
      uint8_t* dst = out() + b * elem_;
      if (!reduced)
        kernels::combineFinal(a_.dtype, a_.op, dst, scratch_ + b * acc_, in() + b * elem_, len, n_);
      if (a_.inPlace()) modified_ = true;
      ++ownDone_;
      if (n_ > 1) ctx_.send(right(), blockId(step + 1, g), dst, len * elem_);
    } else {
      // All-gather: final bytes landed in the output; forward unless the
      // right neighbour is the chunk's owner.
      if (a_.inPlace()) modified_ = true;
      ++agDone_;
      uint32_t t = step - (n_ - 1);
      if (t < static_cast<uint32_t>(n_ - 2))
        ctx_.send(right(), blockId(step + 1, g), out() + b * elem_, len * elem_);
    }
    return Status::ok();
  }

  int mod(int x) const { return ((x % n_) + n_) % n_; }
  // Neighbours on the ring (ranks).
  int right() const { return topo_.ring[mod(r_ + 1)]; }
  int left() const { return topo_.ring[mod(r_ - 1)]; }
  const uint8_t* in() const { return static_cast<const uint8_t*>(a_.sendbuf); }
  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }
  uint32_t blockId(uint32_t step, uint32_t g) const { return step * nseg_ + g; }
  // Chunk received at a global step (reduce-scatter steps first).
  int recvChunk(uint32_t step) const {
    int s = static_cast<int>(step);
    if (s < n_ - 1) return mod(r_ - s - 1);
    return mod(r_ - (s - (n_ - 1)));
  }
  // Element range of segment g of chunk c; false if empty.
  bool segRange(int c, uint32_t g, size_t* b, size_t* e) const {
    size_t cb = chunkBegin(a_.count, n_, c), ce = chunkBegin(a_.count, n_, c + 1);
    size_t sb = cb + static_cast<size_t>(g) * segElems_;
    if (sb >= ce) return false;
    *b = sb;
    *e = std::min(ce, sb + segElems_);
    return true;
  }
  uint32_t nonEmptySegs(int c) const {
    uint32_t k = 0;
    size_t b = 0, e = 0;
    for (uint32_t g = 0; g < nseg_; ++g)
      if (segRange(c, g, &b, &e)) ++k;
    return k;
  }

  CollectiveArgs a_;
  TaskContext& ctx_;
  const TopologyView& topo_;
  int n_, r_;  // r_: our ring position
  size_t elem_, acc_, segElems_;
  uint32_t nseg_;
  uint8_t* scratch_;
  uint32_t agExpected_ = 0, agDone_ = 0, ownSegs_ = 0, ownDone_ = 0;
  bool modified_ = false;
};

std::unique_ptr<Task> makeRing(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<RingAllReduce>(a, ctx);
}

// Where the ring's dependent steps stop counting on shared memory.
constexpr size_t kSharedMemoryPipelinedFrom = 512 << 10;

// 2(N-1) dependent steps; every byte crosses the slowest ring link
// 2(N-1)/N times; segments pipeline.
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / n / in.segmentBytes);
  double beta = in.beta;
  if (in.topo && in.topo->minRingBandwidthGBps > 0)
    beta = 1.0 / (in.topo->minRingBandwidthGBps * 1e9);
  // On shared memory a step hands a chunk to a neighbour already polling
  // for it, and from 512 KiB the steps are long enough to hide each
  // other's latency: charge two rounds, as two-phase pays, not 2(N-1).
  // Measured on one host (N=3, 4 and 8, 2 cores), the ring beat two-phase
  // there by 1.2-3x (1 MiB at N=4: ~250 against 490-900 us), while the
  // loopback-calibrated alpha kept two-phase up to 2-4 MiB
  // (docs/PERFORMANCE.md). Over TCP on one host two-phase stays ahead.
  double rounds = 2 * (n - 1);
  if (in.sharedMemory && in.bytes >= kSharedMemoryPipelinedFrom) rounds = 2;
  return rounds * in.alpha + 2 * (n - 1) / n * in.bytes * beta +
         2 * (n - 1) * std::max(1.0, segs) * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kAllReduceRing;
const AlgorithmInfo kAllReduceRing = {
    1,        Collective::kAllReduce,
    "ring",   "pipelined ring: reduce-scatter then all-gather, 2(N-1)/N of the data per rank",
    makeRing, cost};

}  // namespace chorus::algo
