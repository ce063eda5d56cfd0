// Point-to-point send and receive: the data goes to one peer, segment by
// segment, and lands in the receiver's buffer. Only the two ranks take part,
// so the completion agreement waits for the partner alone.
#include <algorithm>
#include <cmath>

#include "algorithms/algorithm.h"

namespace chorus::algo {
namespace {

class SendTask final : public Task {
 public:
  SendTask(const CollectiveArgs& a, TaskContext& ctx) : a_(a), ctx_(ctx) {
    segs_ = Segments(0, a.count * a.elemSize(), std::max<size_t>(1, ctx.segmentBytes()));
  }
  Status start() override {
    auto* in = static_cast<const uint8_t*>(a_.sendbuf);
    for (uint32_t g = 0; g < segs_.count; ++g)
      ctx_.send(a_.root, g, in + segs_.first(g), segs_.len(g));
    return Status::ok();
  }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t) override {
    return protocolError("send: unexpected block " + std::to_string(g) + " from rank " +
                         std::to_string(from));
  }
  Status onRecv(int, uint32_t) override { return Status::ok(); }
  bool haveAll() const override { return true; }
  bool inputModified() const override { return false; }
  bool involves(int rank) const override { return rank == a_.root; }

 private:
  CollectiveArgs a_;
  TaskContext& ctx_;
  Segments segs_;
};

class RecvTask final : public Task {
 public:
  RecvTask(const CollectiveArgs& a, TaskContext& ctx) : a_(a) {
    segs_ = Segments(0, a.count * a.elemSize(), std::max<size_t>(1, ctx.segmentBytes()));
  }
  Status start() override { return Status::ok(); }
  Result<uint8_t*> recvTarget(int from, uint32_t g, size_t bytes) override {
    if (from != a_.root || g >= segs_.count || bytes != segs_.len(g))
      return protocolError("recv: unexpected block " + std::to_string(g) + " (" +
                           std::to_string(bytes) + " bytes) from rank " + std::to_string(from) +
                           ": do the send and receive counts agree?");
    return static_cast<uint8_t*>(a_.recvbuf) + segs_.first(g);
  }
  Status onRecv(int, uint32_t) override {
    ++got_;
    return Status::ok();
  }
  bool haveAll() const override { return got_ == segs_.count; }
  bool inputModified() const override { return false; }
  bool involves(int rank) const override { return rank == a_.root; }

 private:
  CollectiveArgs a_;
  Segments segs_;
  uint32_t got_ = 0;
};

std::unique_ptr<Task> makeSend(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<SendTask>(a, ctx);
}
std::unique_ptr<Task> makeRecv(const CollectiveArgs& a, TaskContext& ctx) {
  return std::make_unique<RecvTask>(a, ctx);
}
double cost(const CostInputs& in) {
  return in.alpha + in.bytes * in.beta +
         std::ceil(static_cast<double>(in.bytes) / in.segmentBytes) * in.gamma;
}

}  // namespace

extern const AlgorithmInfo kSend;
const AlgorithmInfo kSend = {90, Collective::kSend, "send", "point-to-point send", makeSend, cost};
extern const AlgorithmInfo kRecv;
const AlgorithmInfo kRecv = {91,  Collective::kRecv, "recv", "point-to-point receive", makeRecv,
                             cost};

}  // namespace chorus::algo
