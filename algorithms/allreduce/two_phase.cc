// Two-phase all-reduce: reduce-scatter and all-gather by direct exchange.
//
// Rank c owns chunk c. Phase 1: every rank sends each segment of chunk c to
// rank c. The owner reduces a segment once all N contributions are there, in
// rank order 0..N-1, and immediately sends the final segment to every rank
// (phase 2). Each rank moves 2(N-1)/N of the data, like the ring, but in two
// rounds instead of 2(N-1), so it waits for far fewer wake-ups when ranks
// share cores; it needs a network where every pair can talk at full speed
// (one host, one switch), which is why the ring remains for other topologies.
//
// Bit parity: each final segment is computed once, by its owner, in rank
// order, and forwarded verbatim. fp16/bf16 inputs travel as themselves (no
// partial sums on the wire) and are reduced in fp32 and rounded once.
//
// Blocks: phase 1 segment g is block g (the chunk is the receiver's own);
// phase 2 segment g is block nseg + g (the chunk is the sender's).
#include <algorithm>
#include <cmath>
#include <vector>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {
namespace {

class TwoPhaseAllReduce final : public Task {
 public:
  TwoPhaseAllReduce(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    elem_ = dataTypeSize(a.dtype);
    acc_ = accumulatorSize(a.dtype);
    size_t maxChunk = (a.count + n_ - 1) / n_;
    segElems_ = std::max<size_t>(1, ctx.segmentBytes() / elem_);
    nseg_ = static_cast<uint32_t>(std::max<size_t>(1, (maxChunk + segElems_ - 1) / segElems_));
    size_t ownLen = chunkBegin(a.count, n_, r_ + 1) - chunkBegin(a.count, n_, r_);
    // One slot per rank for our chunk (our own slot holds a copy when in
    // place), then an accumulator segment.
    slotBytes_ = ownLen * elem_;
    scratch_ = ctx.scratch(slotBytes_ * n_ + segElems_ * acc_);
    accum_ = scratch_ + slotBytes_ * n_;
    arrived_.assign(nseg_, 0);
    for (int c = 0; c < n_; ++c)
      if (c != r_) agExpected_ += nonEmptySegs(c);
    ownSegs_ = nonEmptySegs(r_);
  }

  Status start() override {
    if (a_.inPlace()) {
      // Our own contribution is read when the owner (us) reduces, after the
      // output may already hold final bytes of other chunks; keep a copy.
      size_t b = chunkBegin(a_.count, n_, r_);
      std::copy(in() + b * elem_, in() + b * elem_ + slotBytes_, scratch_ + slotBytes_ * r_);
    }
    for (int c = 0; c < n_; ++c) {
      if (c == r_) continue;
      for (uint32_t g = 0; g < nseg_; ++g) {
        size_t b, e;
        if (!segRange(c, g, &b, &e)) continue;
        ctx_.send(c, g, in() + b * elem_, (e - b) * elem_);
      }
    }
    // With one rank, or segments no other rank contributes to, reduce now.
    for (uint32_t g = 0; g < nseg_; ++g)
      if (n_ == 1) reduceSegment(g);
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int fromRank, uint32_t block, size_t bytes) override {
    if (fromRank == r_ || block >= 2 * nseg_)
      return protocolError("two-phase: unexpected block " + std::to_string(block) + " from rank " +
                           std::to_string(fromRank));
    bool reduce = block < nseg_;
    uint32_t g = reduce ? block : block - nseg_;
    int c = reduce ? r_ : fromRank;
    size_t b, e;
    if (!segRange(c, g, &b, &e))
      return protocolError("two-phase: block " + std::to_string(block) + " names an empty segment");
    if (bytes != (e - b) * elem_)
      return protocolError("two-phase: block " + std::to_string(block) + " has " +
                           std::to_string(bytes) + " bytes, expected " +
                           std::to_string((e - b) * elem_));
    if (!reduce) return out() + b * elem_;
    size_t ownBegin = chunkBegin(a_.count, n_, r_);
    return scratch_ + slotBytes_ * fromRank + (b - ownBegin) * elem_;
  }

  Status onRecv(int fromRank, uint32_t block) override {
    if (block < nseg_) {
      if (++arrived_[block] == static_cast<uint32_t>(n_ - 1)) reduceSegment(block);
    } else {
      if (a_.inPlace()) modified_ = true;
      ++agDone_;
    }
    return Status::ok();
  }

  bool haveAll() const override { return ownDone_ == ownSegs_ && agDone_ == agExpected_; }
  bool inputModified() const override { return modified_; }

 private:
  const uint8_t* in() const { return static_cast<const uint8_t*>(a_.sendbuf); }
  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }

  // Contribution of rank p to segment [b, e) of our chunk.
  const void* contribution(int p, size_t b) const {
    size_t ownBegin = chunkBegin(a_.count, n_, r_);
    if (p == r_ && !a_.inPlace()) return in() + b * elem_;
    return scratch_ + slotBytes_ * p + (b - ownBegin) * elem_;
  }

  void reduceSegment(uint32_t g) {
    size_t b, e;
    if (!segRange(r_, g, &b, &e)) return;
    size_t len = e - b;
    uint8_t* dst = out() + b * elem_;
    kernels::reduceInOrder(a_.dtype, a_.op, dst, accum_, n_, len,
                           [&](int p) { return contribution(p, b); });
    if (a_.inPlace()) modified_ = true;
    ++ownDone_;
    for (int p = 0; p < n_; ++p)
      if (p != r_) ctx_.send(p, nseg_ + g, dst, len * elem_);
  }

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
    size_t b, e;
    for (uint32_t g = 0; g < nseg_; ++g)
      if (segRange(c, g, &b, &e)) ++k;
    return k;
  }

  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, r_;
  size_t elem_, acc_, segElems_, slotBytes_;
  uint32_t nseg_;
  uint8_t* scratch_;
  uint8_t* accum_;
  std::vector<uint32_t> arrived_;
  uint32_t agExpected_ = 0, agDone_ = 0, ownSegs_ = 0, ownDone_ = 0;
  bool modified_ = false;
};

std::unique_ptr<Task> makeTwoPhase(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<TwoPhaseAllReduce>(a, ctx);
}

// Two rounds; the same bytes as the ring but over every pair at once (a
// little incast), and 2(N-1) messages per segment of each chunk.
double cost(const CostInputs& in) {
  if (in.n < 3) return -1;  // identical to the ring at N = 2
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / n / in.segmentBytes);
  // Every rank has N-1 links in flight at once where the ring has one, and
  // on one host all of them move through the same caches: once the bytes in
  // flight on the host ((N-1) x the message) pass ~16 MiB, each byte costs
  // more the more links there are. At N=8 on a 2-core VM two-phase took 2x
  // the ring's time at 8 MiB and 1.7x at 4 MiB, even at 2 MiB, where the
  // flat 10% kept it up to 8 MiB (docs/PERFORMANCE.md). Up to N=4 the flat
  // 10% matched the measurements.
  const bool oneHost = in.topo && in.topo->hosts.size() == 1;
  const bool spills = (n - 1) * static_cast<double>(in.bytes) > 16.0 * (1 << 20);
  const double spread = oneHost && spills && in.n > 4 ? (n - 1) / 3 : 1.0;
  return 2 * in.alpha + 2 * (n - 1) / n * in.bytes * in.beta * (1 + 0.1 * spread * spread) +
         2 * (n - 1) * std::max(1.0, segs) * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kAllReduceTwoPhase;
const AlgorithmInfo kAllReduceTwoPhase = {
    3,
    Collective::kAllReduce,
    "twophase",
    "reduce-scatter and all-gather by direct exchange: 2 rounds, 2(N-1)/N of the data per rank",
    makeTwoPhase,
    cost};

}  // namespace chorus::algo
