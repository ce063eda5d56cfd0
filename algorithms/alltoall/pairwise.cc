// Pairwise-exchange all-to-all (and all-to-all-v): in round k = 1..N-1 a rank
// sends its block for rank r+k and receives the block from rank r-k. Round
// k+1 starts when round k's block has arrived, so at most a couple of blocks
// per rank are in flight (no incast of N-1 senders at once). Blocks of any
// size, including zero, so the same file serves all-to-all-v.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class PairwiseAllToAll final : public Task {
 public:
  PairwiseAllToAll(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    n_ = ctx.size();
    r_ = ctx.rank();
    elem_ = a.elemSize();
    per_ = std::max<size_t>(1, ctx.segmentBytes());
    got_.assign(n_, 0);
  }
  Status start() override {
    // Our own block: a local copy.
    if (size_t b = sendCount(r_) * elem_; b)
      std::memmove(recvPtr(r_), sendPtr(r_), std::min(b, recvCount(r_) * elem_));
    round_ = 0;
    advance();
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    Segments s(0, recvCount(from) * elem_, per_);
    if (from == r_ || g >= s.count || bytes != s.len(g))
      return protocolError("alltoall: unexpected block " + std::to_string(g) + " (" +
                           std::to_string(bytes) + " bytes) from rank " + std::to_string(from) +
                           ": do the counts agree?");
    return recvPtr(from) + s.first(g);
  }
  Status onRecv(int from, uint32_t) override {
    ++got_[from];
    advance();
    return Status::ok();
  }
  bool haveAll() const override {
    for (int p = 0; p < n_; ++p)
      if (p != r_ && got_[p] < segsFrom(p)) return false;
    return true;
  }
  bool inputModified() const override { return false; }

 private:
  size_t sendCount(int p) const { return a_.sendCounts.empty() ? a_.count : a_.sendCounts[p]; }
  size_t recvCount(int p) const { return a_.recvCounts.empty() ? a_.count : a_.recvCounts[p]; }
  const uint8_t* sendPtr(int p) const {
    size_t d = a_.sendDispls.empty() ? static_cast<size_t>(p) * a_.count : a_.sendDispls[p];
    return static_cast<const uint8_t*>(a_.sendbuf) + d * elem_;
  }
  uint8_t* recvPtr(int p) const {
    size_t d = a_.recvDispls.empty() ? static_cast<size_t>(p) * a_.count : a_.recvDispls[p];
    return static_cast<uint8_t*>(a_.recvbuf) + d * elem_;
  }
  uint32_t segsFrom(int p) const { return Segments(0, recvCount(p) * elem_, per_).count; }
  // Start rounds while the previous round's block has fully arrived.
  void advance() {
    while (round_ < n_ - 1) {
      if (round_ > 0) {
        int prevFrom = (r_ - round_ + n_) % n_;
        if (got_[prevFrom] < segsFrom(prevFrom)) return;
      }
      ++round_;
      int to = (r_ + round_) % n_;
      Segments s(0, sendCount(to) * elem_, per_);
      for (uint32_t g = 0; g < s.count; ++g) ctx_.send(to, g, sendPtr(to) + s.first(g), s.len(g));
    }
  }
  CollectiveArgs a_;
  TaskContext& ctx_;
  int n_, r_;
  size_t elem_, per_;
  int round_ = 0;
  std::vector<uint32_t> got_;
};

std::unique_ptr<Task> make(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<PairwiseAllToAll>(a, ctx);
}
double cost(const CostInputs& in) {
  double n = in.n, segs = std::ceil(static_cast<double>(in.bytes) / n / in.segmentBytes);
  return (n - 1) * in.alpha + (n - 1) / n * in.bytes * in.beta + (n - 1) * (segs + 1) * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kAllToAllPairwise;
const AlgorithmInfo kAllToAllPairwise = {
    50,         Collective::kAllToAll,
    "pairwise", "N-1 rounds of pairwise exchange (rank r+k / r-k); few blocks in flight",
    make,       cost};
extern const AlgorithmInfo kAllToAllvPairwise;
const AlgorithmInfo kAllToAllvPairwise = {
    55,         Collective::kAllToAllv,
    "pairwise", "N-1 rounds of pairwise exchange with per-rank counts (zero allowed)",
    make,       cost};

}  // namespace chorus::algo
