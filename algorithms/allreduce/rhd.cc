// Recursive halving-doubling all-reduce (Rabenseifner): a reduce-scatter by
// recursive halving, then an all-gather by recursive doubling, among the
// largest power of two p <= N ranks: 2 log2(p) rounds, 2(p-1)/p of the data
// per rank. Non-power-of-two worlds fold first: of the first 2(N-p) ranks,
// each even one hands its input to the next odd one and gets the result back
// at the end (two extra rounds for those pairs).
//
// Bit parity: every element is combined at exactly one rank per level and the
// final value of a block is computed once, by its owner, then copied; partial
// sums travel in the accumulator type (fp32 for fp16/bf16), rounded once.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "algorithms/algorithm.h"
#include "kernels/cpu/reduce.h"

namespace chorus::algo {
namespace {

class RhdAllReduce final : public Task {
 public:
  RhdAllReduce(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    elem_ = a.elemSize();
    acc_ = accumulatorSize(a.dtype);
    p_ = 1;
    while (p_ * 2 <= n_) p_ *= 2;
    rem_ = n_ - p_;
    levels_ = ceilLog2(p_);
    folded_ = r_ < 2 * rem_ && r_ % 2 == 0;  // hands its input away
    nr_ = r_ < 2 * rem_ ? r_ / 2 : r_ - rem_;
    per_ = std::max<size_t>(1, ctx.segmentBytes() / acc_);
    stride_ = static_cast<uint32_t>(std::max<size_t>(1, (a.count + per_ - 1) / per_));
    // Accumulator (whole vector), one receive area per halving level, and the
    // fold-in area: at most 3 * count accumulator elements plus slack.
    levelBase_.push_back(a.count);
    for (int k = 0; k < levels_; ++k) {
      size_t lo, hi;
      keptRange(k, &lo, &hi);
      levelBase_.push_back(levelBase_.back() + (hi - lo));
    }
    scratch_ = ctx.scratch((levelBase_.back() + a.count) * acc_ + 1);
    accBuf_ = scratch_;
    foldBuf_ = scratch_ + levelBase_.back() * acc_;
    arrived_.assign(2 * levels_ + 2, 0);
  }

  Status start() override {
    if (folded_) {  // even rank of a folded pair: give the input to r+1
      sendRange(0, r_ + 1, a_.sendbuf, 0, a_.count, elem_);
      cur_ = foldOut();
    } else {
      // Level 0 reads the input where it is when the accumulator type is
      // the dtype (no whole-buffer copy into accBuf_); an odd rank of a
      // folded pair starts from the pair's combined input in accBuf_.
      inputIsLevel0_ = !isHalfType(a_.dtype) && r_ >= 2 * rem_;
      if (isHalfType(a_.dtype)) kernels::toAccumulator(a_.dtype, accBuf_, a_.sendbuf, a_.count);
      if (r_ < 2 * rem_)
        cur_ = 0;  // odd rank of a folded pair: wait for the partner's input
      else
        enterHalving(0);
    }
    pump();
    return Status::ok();
  }

  Result<uint8_t*> recvTarget(int from, uint32_t block, size_t bytes) override {
    uint32_t step = block / stride_, g = block % stride_;
    Expect e;
    if (!expectation(step, &e) || from != e.from)
      return protocolError("rhd: unexpected block " + std::to_string(block) + " from rank " +
                           std::to_string(from));
    Segments s(e.lo, e.hi, per_);
    if (g >= s.count || bytes != s.len(g) * e.unit)
      return protocolError("rhd: block " + std::to_string(block) + " has a bad length");
    return e.base + (s.first(g) - e.lo) * e.unit;
  }

  Status onRecv(int, uint32_t block) override {
    ++arrived_[block / stride_];
    pump();
    return Status::ok();
  }

  bool haveAll() const override { return done_; }
  bool inputModified() const override { return modified_; }

 private:
  // Steps: 0 fold-in, 1..L halving levels, L+1..2L doubling levels,
  // 2L+1 fold-out.
  struct Expect {
    int from = -1;
    size_t lo = 0, hi = 0, unit = 1;
    uint8_t* base = nullptr;
  };
  uint32_t foldOut() const { return static_cast<uint32_t>(2 * levels_ + 1); }
  int rankOfNew(int nr) const { return nr < rem_ ? 2 * nr + 1 : nr + rem_; }
  size_t blockBegin(int b) const { return chunkBegin(a_.count, p_, b); }
  bool lowerAt(int k) const { return (nr_ & (p_ >> (k + 1))) == 0; }
  // Element ranges kept and given away at halving level k.
  void keptRange(int k, size_t* lo, size_t* hi) const {
    int size = p_ >> k, blo = (nr_ / size) * size, mid = blo + size / 2;
    *lo = blockBegin(lowerAt(k) ? blo : mid);
    *hi = blockBegin(lowerAt(k) ? mid : blo + size);
  }
  void givenRange(int k, size_t* lo, size_t* hi) const {
    int size = p_ >> k, blo = (nr_ / size) * size, mid = blo + size / 2;
    *lo = blockBegin(lowerAt(k) ? mid : blo);
    *hi = blockBegin(lowerAt(k) ? blo + size : mid);
  }
  // Blocks held at doubling level k (before the exchange) by new rank nr.
  void heldRange(int k, int nr, size_t* lo, size_t* hi) const {
    int size = 1 << k, blo = (nr / size) * size;
    *lo = blockBegin(blo);
    *hi = blockBegin(blo + size);
  }

  bool expectation(uint32_t step, Expect* e) {
    int L = levels_;
    if (step == 0) {
      if (folded_ || r_ >= 2 * rem_) return false;
      *e = {r_ - 1, 0, a_.count, elem_, foldBuf_};
    } else if (step <= static_cast<uint32_t>(L)) {
      if (folded_) return false;
      int k = static_cast<int>(step) - 1;
      e->from = rankOfNew(nr_ ^ (p_ >> (k + 1)));
      keptRange(k, &e->lo, &e->hi);
      e->unit = acc_;
      e->base = scratch_ + levelBase_[k] * acc_;
    } else if (step <= static_cast<uint32_t>(2 * L)) {
      if (folded_) return false;
      int k = static_cast<int>(step) - L - 1, partner = nr_ ^ (1 << k);
      e->from = rankOfNew(partner);
      heldRange(k, partner, &e->lo, &e->hi);
      e->unit = elem_;
      e->base = out() + e->lo * elem_;
    } else if (step == foldOut()) {
      if (!folded_) return false;
      *e = {r_ + 1, 0, a_.count, elem_, out()};
    } else {
      return false;
    }
    return true;
  }

  void sendRange(uint32_t step, int to, const void* src, size_t lo, size_t hi, size_t unit) {
    Segments s(lo, hi, per_);
    auto* p = static_cast<const uint8_t*>(src);
    for (uint32_t g = 0; g < s.count; ++g)
      ctx_.send(to, step * stride_ + g, p + (s.first(g) - lo) * unit, s.len(g) * unit);
  }

  void enterHalving(int k) {
    if (k == levels_) {  // our block is complete: finish it, start doubling
      size_t lo = blockBegin(nr_), hi = blockBegin(nr_ + 1);
      kernels::finalize(a_.dtype, a_.op, out() + lo * elem_, partial(k) + lo * acc_, hi - lo, n_);
      if (a_.sendbuf == a_.recvbuf && hi > lo) modified_ = true;
      enterDoubling(0);
      return;
    }
    size_t lo, hi;
    givenRange(k, &lo, &hi);
    sendRange(static_cast<uint32_t>(k + 1), rankOfNew(nr_ ^ (p_ >> (k + 1))),
              partial(k) + lo * acc_, lo, hi, acc_);
    cur_ = static_cast<uint32_t>(k + 1);
  }

  void enterDoubling(int k) {
    if (k == levels_) {
      if (r_ < 2 * rem_) sendRange(foldOut(), r_ - 1, out(), 0, a_.count, elem_);
      done_ = true;
      return;
    }
    size_t lo, hi;
    heldRange(k, nr_, &lo, &hi);
    sendRange(static_cast<uint32_t>(levels_ + 1 + k), rankOfNew(nr_ ^ (1 << k)), out() + lo * elem_,
              lo, hi, elem_);
    cur_ = static_cast<uint32_t>(levels_ + 1 + k);
  }

  // Process steps in order, each once all its data arrived.
  void pump() {
    while (!done_) {
      Expect e;
      if (!expectation(cur_, &e)) return;
      if (arrived_[cur_] < Segments(e.lo, e.hi, per_).count) return;
      process(cur_);
    }
  }

  void process(uint32_t step) {
    int L = levels_;
    if (step == 0) {  // the even partner's input comes first (lower rank)
      if (isHalfType(a_.dtype)) {
        std::vector<uint8_t> mine(accBuf_, accBuf_ + a_.count * acc_);
        kernels::toAccumulator(a_.dtype, accBuf_, foldBuf_, a_.count);
        kernels::combineAcc(a_.dtype, a_.op, accBuf_, accBuf_, mine.data(), a_.count);
      } else {  // accumulator type == dtype: one pass, no copies
        kernels::combine(a_.dtype, a_.op, accBuf_, foldBuf_, a_.sendbuf, a_.count);
      }
      enterHalving(0);
    } else if (step <= static_cast<uint32_t>(L)) {
      int k = static_cast<int>(step) - 1;
      size_t lo, hi;
      keptRange(k, &lo, &hi);
      uint8_t* got = scratch_ + levelBase_[k] * acc_;
      const uint8_t* mine = partial(k) + lo * acc_;
      uint8_t* dst = accBuf_ + lo * acc_;
      // The lower new rank's partial first, whoever computes it.
      if (lowerAt(k))
        kernels::combineAcc(a_.dtype, a_.op, dst, mine, got, hi - lo);
      else
        kernels::combineAcc(a_.dtype, a_.op, dst, got, mine, hi - lo);
      enterHalving(k + 1);
    } else if (step <= static_cast<uint32_t>(2 * L)) {
      enterDoubling(static_cast<int>(step) - L);
    } else {
      if (a_.sendbuf == a_.recvbuf) modified_ = true;
      done_ = true;
    }
  }

  uint8_t* out() const { return static_cast<uint8_t*>(a_.recvbuf); }
  // This rank's partial sums entering halving level k.
  const uint8_t* partial(int k) const {
    return k == 0 && inputIsLevel0_ ? static_cast<const uint8_t*>(a_.sendbuf) : accBuf_;
  }

  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, r_, p_, rem_, levels_, nr_;
  bool folded_;
  size_t elem_, acc_, per_;
  uint32_t stride_;
  std::vector<size_t> levelBase_;
  uint8_t* scratch_;
  uint8_t* accBuf_;
  uint8_t* foldBuf_;
  std::vector<uint32_t> arrived_;
  uint32_t cur_ = 0;
  bool done_ = false, modified_ = false;
  bool inputIsLevel0_ = false;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<RhdAllReduce>(a, ctx);
}
// The last term: each level's reduction of the half it received waits for
// that half and holds up the next level, while the ring and two-phase reduce
// one segment as the next arrives (the ring on shared memory even straight
// out of the ring). Paired runs (docs/PERFORMANCE.md): shared memory, N=2
// 128 KiB-4 MiB the ring 15-25% faster, N=4 from 2 MiB 20-35%; TCP N=4 1-2
// MiB two-phase 20-40% faster.
double cost(const CostInputs& in) {
  int p = 1;
  while (p * 2 <= in.n) p *= 2;
  double levels = std::max(1, ceilLog2(p)), fold = in.n == p ? 0 : 2;
  double segs = std::ceil(static_cast<double>(in.bytes) / in.segmentBytes);
  return (2 * levels + fold) * in.alpha + (2.0 * (p - 1) / p + fold) * in.bytes * in.beta +
         (2 * levels + fold) * segs / 2 * in.gamma + 0.5 * (p - 1) / p * in.bytes * in.beta;
}

}  // namespace

extern const AlgorithmInfo kAllReduceRhd;
const AlgorithmInfo kAllReduceRhd = {
    4,
    Collective::kAllReduce,
    "rhd",
    "recursive halving-doubling (Rabenseifner), folding non-power-of-two worlds: 2 log2 N rounds",
    make,
    cost};

}  // namespace chorus::algo
