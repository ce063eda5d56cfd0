// The striping scheduler on real TCP connections (socketpairs): which stream
// gets the next frame, round-robin between operations, closed streams, and
// the adaptive pool's decisions.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "src/core/stripe.h"
#include "transports/tcp/connection.h"

namespace chorus {
namespace {

struct Owner : transport::SendOwner {
  int sent = 0;
  void onSent(uint64_t) override { ++sent; }
};

// Collects the frames that arrive on the far ends.
struct Sink : transport::FrameSink {
  std::vector<uint64_t> tags;
  std::vector<uint32_t> blocks;
  transport::RecvTarget onHeader(transport::Connection&, const frame::Header&) override {
    return {};
  }
  void onFrame(transport::Connection&, const frame::Header& h,
               const transport::RecvTarget&) override {
    tags.push_back(h.tag);
    blocks.push_back(h.block);
  }
};

class StripeTest : public ::testing::Test {
 protected:
  void open(int n) {
    for (int i = 0; i < n; ++i) {
      int sv[2];
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
      near.push_back(std::make_unique<tcp_t>(sv[0], 7, i));
      far.push_back(std::make_unique<tcp_t>(sv[1], 8, i));
    }
  }
  using tcp_t = transport::tcp::TcpConnection;
  // Flush the near ends and read everything on the far ends.
  void drain(Sink& sink) {
    for (int round = 0; round < 50; ++round) {
      for (auto& c : near) ASSERT_TRUE(c->progress(sink).isOk());
      for (auto& c : far) ASSERT_TRUE(c->progress(sink).isOk());
    }
  }
  static StripeScheduler::Item item(Owner* o, uint64_t tag, uint32_t block, const void* data,
                                    uint32_t len) {
    StripeScheduler::Item it;
    it.h.type = frame::Type::kData;
    it.h.tag = tag;
    it.h.block = block;
    it.h.length = len;
    it.data = data;
    it.owner = o;
    return it;
  }
  std::vector<std::unique_ptr<transport::Connection>> near, far;
  std::vector<transport::Connection*> posted;
  std::function<void(transport::Connection*)> record = [this](transport::Connection* c) {
    posted.push_back(c);
  };
};

TEST_F(StripeTest, EmptiestStreamGetsTheNextFrame) {
  open(3);
  std::vector<uint8_t> payload(1000, 0xab);
  Owner op;
  // Room for one frame per stream (low water just above one frame).
  StripeScheduler s(3, /*adaptive=*/false, frame::kHeaderSize + 1000);
  for (uint32_t b = 0; b < 7; ++b) s.push(item(&op, 1, b, payload.data(), 1000));
  s.pump(near, record);
  ASSERT_EQ(posted.size(), 3u);  // one frame each, the rest waits
  EXPECT_NE(posted[0], posted[1]);
  EXPECT_NE(posted[1], posted[2]);
  EXPECT_EQ(s.waiting(), 4u);
  // Only stream 1 drains: it alone gets the next frame.
  Sink sink;
  ASSERT_TRUE(near[1]->progress(sink).isOk());
  EXPECT_EQ(near[1]->queuedSendBytes(), 0u);
  posted.clear();
  s.pump(near, record);
  ASSERT_EQ(posted.size(), 1u);
  EXPECT_EQ(posted[0], near[1].get());
  // Everything arrives once, whichever stream carried it.
  while (!s.empty()) {
    drain(sink);
    s.pump(near, record);
  }
  drain(sink);
  std::vector<uint32_t> blocks = sink.blocks;
  std::sort(blocks.begin(), blocks.end());
  EXPECT_EQ(blocks, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(op.sent, 7);
}

// A socket the peer does not read fills up: the connection says it is
// write-blocked (the engine then waits for EPOLLOUT instead of retrying on
// every pass), stays so while nothing can leave, and clears once the far end
// reads and a send goes through.
TEST_F(StripeTest, FullSocketIsWriteBlockedUntilTheFarEndReads) {
  open(1);
  std::vector<uint8_t> payload(4 << 20, 0x5a);  // far more than a socketpair buffers
  Owner op;
  Sink sink;
  frame::Header h;
  h.type = frame::Type::kData;
  h.tag = 9;
  h.length = static_cast<uint32_t>(payload.size());
  EXPECT_FALSE(near[0]->writeBlocked());
  near[0]->postSend(h, payload.data(), &op, 0);
  ASSERT_TRUE(near[0]->progress(sink).isOk());
  EXPECT_TRUE(near[0]->hasPendingSends());
  EXPECT_TRUE(near[0]->writeBlocked());
  ASSERT_TRUE(near[0]->progress(sink).isOk());  // still nothing can leave
  EXPECT_TRUE(near[0]->writeBlocked());
  // The far end reads; the next progress moves bytes and clears the state.
  bool cleared = false;
  for (int round = 0; round < 10000 && near[0]->hasPendingSends(); ++round) {
    ASSERT_TRUE(far[0]->progress(sink).isOk());
    ASSERT_TRUE(near[0]->progress(sink).isOk());
    cleared |= !near[0]->writeBlocked();
  }
  EXPECT_TRUE(cleared);
  EXPECT_FALSE(near[0]->hasPendingSends());
  EXPECT_FALSE(near[0]->writeBlocked());
  for (int round = 0; round < 100 && sink.tags.empty(); ++round)
    ASSERT_TRUE(far[0]->progress(sink).isOk());
  EXPECT_EQ(sink.tags, (std::vector<uint64_t>{9}));
  EXPECT_EQ(op.sent, 1);
}

TEST_F(StripeTest, ConcurrentOperationsTakeTurns) {
  open(1);
  uint8_t byte = 1;
  Owner a, b;
  StripeScheduler s(1, false, 1 << 20);
  for (uint32_t i = 0; i < 4; ++i) s.push(item(&a, 100, i, &byte, 1));
  for (uint32_t i = 0; i < 2; ++i) s.push(item(&b, 200, i, &byte, 1));
  s.pump(near, record);
  Sink sink;
  drain(sink);
  // b's frames are not held behind a's whole backlog.
  EXPECT_EQ(sink.tags, (std::vector<uint64_t>{100, 200, 100, 200, 100, 100}));
}

TEST_F(StripeTest, ClosedStreamsAreSkippedAndCancelDropsAnOperation) {
  open(2);
  uint8_t byte = 1;
  Owner a, b;
  StripeScheduler s(2, false, 1 << 20);
  near[0]->close();
  for (uint32_t i = 0; i < 3; ++i) s.push(item(&a, 1, i, &byte, 1));
  for (uint32_t i = 0; i < 3; ++i) s.push(item(&b, 2, i, &byte, 1));
  s.cancel(&b);
  EXPECT_EQ(s.waiting(), 3u);
  s.pump(near, record);
  ASSERT_EQ(posted.size(), 3u);
  for (auto* c : posted) EXPECT_EQ(c, near[1].get());
  // With every stream closed, frames wait (the link's loss is handled by
  // the membership layer, which fails or re-runs the operation).
  near[1]->close();
  s.push(item(&a, 1, 9, &byte, 1));
  posted.clear();
  s.pump(near, record);
  EXPECT_TRUE(posted.empty());
  EXPECT_EQ(s.waiting(), 1u);
}

// A replaceable stream breaks with frames in every state: received whole,
// in the socket, partly written, still queued. takeUnreceived(count the
// peer received) must hand back exactly the rest, in order: operations'
// frames (saying which already reported onSent; nothing of an operation
// that was cancelled) and control frames (DONE, ABORT) with their payload.
TEST_F(StripeTest, BrokenStreamHandsBackWhatThePeerDidNotReceive) {
  open(1);
  ASSERT_TRUE(near[0]->retainSent());
  int small = 64 << 10;  // a backlog at every step, whatever the system default
  ASSERT_EQ(::setsockopt(near[0]->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  std::vector<uint8_t> payload(40000, 7);
  Owner a, b;
  auto isControl = [](uint32_t i) { return i % 5 == 4; };
  auto isB = [&](uint32_t i) { return !isControl(i) && i % 4 == 3; };  // b finishes early
  auto abortText = [](uint32_t i) { return "abort " + std::to_string(i); };
  for (uint32_t i = 0; i < 40; ++i) {
    if (isControl(i) && i % 2 == 0) {  // a DONE: no payload
      frame::Header h;
      h.type = frame::Type::kDone;
      h.block = i;
      near[0]->postSend(h, nullptr, nullptr, 0);
    } else if (isControl(i)) {  // an ABORT: payload copied at posting
      std::string text = abortText(i);
      frame::Header h;
      h.type = frame::Type::kAbort;
      h.block = i;
      h.length = static_cast<uint32_t>(text.size());
      near[0]->postSendCopy(h, text.data());
    } else {
      Owner* o = isB(i) ? &b : &a;
      auto it = item(o, o == &a ? 1 : 2, i, payload.data() + i, 30000);
      near[0]->postSend(it.h, it.data, it.owner, 0);
    }
  }
  Sink sink;
  // A few rounds: some frames reach the far end whole, more sit in the
  // socket, one is partly written, the rest wait in the queue.
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(near[0]->progress(sink).isOk());
    ASSERT_TRUE(far[0]->progress(sink).isOk());
  }
  ASSERT_TRUE(near[0]->progress(sink).isOk());
  const uint64_t received = far[0]->framesReceived();
  ASSERT_EQ(received, sink.blocks.size());
  ASSERT_GT(received, 0u);
  ASSERT_LT(received, 30u) << "the socket took almost everything; the test needs a backlog";
  const int reportedA = a.sent;
  near[0]->cancelSends(&b);  // b finished: its frames are no longer needed
  EXPECT_FALSE(near[0]->takeUnreceived(received).isOk()) << "the connection is still open";
  near[0]->close();
  far[0]->close();
  EXPECT_FALSE(near[0]->takeUnreceived(40 + 1).isOk()) << "more frames received than were written";
  auto back = near[0]->takeUnreceived(received);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  std::vector<uint32_t> want;
  for (uint32_t i = static_cast<uint32_t>(received); i < 40; ++i)
    if (!isB(i)) want.push_back(i);
  std::vector<uint32_t> got;
  int alreadyReported = 0, controls = 0;
  for (const auto& u : *back) {
    uint32_t i = u.h.block;
    got.push_back(i);
    if (isControl(i)) {
      ++controls;
      EXPECT_EQ(u.owner, nullptr);
      EXPECT_FALSE(u.sentReported);
      EXPECT_EQ(u.h.type, i % 2 == 0 ? frame::Type::kDone : frame::Type::kAbort);
      std::string text(u.copy.begin(), u.copy.end());
      EXPECT_EQ(text, i % 2 == 0 ? "" : abortText(i));
      EXPECT_EQ(u.h.length, text.size());
      continue;
    }
    EXPECT_EQ(u.owner, &a);
    EXPECT_EQ(u.payload, payload.data() + i);
    EXPECT_EQ(u.h.length, 30000u);
    EXPECT_EQ(u.h.tag, 1u);
    alreadyReported += u.sentReported;
  }
  EXPECT_EQ(got, want);
  EXPECT_GT(controls, 1);
  // Frames of a written whole and not received are exactly those already
  // reported sent minus those received.
  int receivedOfA = 0;
  for (uint32_t i = 0; i < received; ++i) receivedOfA += !isControl(i) && !isB(i);
  EXPECT_EQ(alreadyReported, reportedA - receivedOfA);
  EXPECT_GT(alreadyReported, 0) << "no frame was lost inside the socket";
  EXPECT_LT(alreadyReported, static_cast<int>(got.size()) - controls)
      << "no frame was still queued";
  // Handed back once: nothing remains.
  auto again = near[0]->takeUnreceived(received);
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(again->empty());
}

TEST_F(StripeTest, StreamsKeepNoRecordUnlessAsked) {
  open(1);
  uint8_t byte = 1;
  Owner a;
  auto it = item(&a, 1, 0, &byte, 1);
  near[0]->postSend(it.h, it.data, it.owner, 0);
  Sink sink;
  drain(sink);
  near[0]->close();
  EXPECT_FALSE(near[0]->takeUnreceived(0).isOk());
  EXPECT_FALSE(near[0]->retainsSent());
}

TEST_F(StripeTest, AdaptivePoolGrowsWhileThroughputRisesThenHolds) {
  open(16);
  uint8_t byte = 1;
  Owner a;
  StripeScheduler s(16, /*adaptive=*/true, 1 << 20);
  EXPECT_EQ(s.active(), 2);
  s.push(item(&a, 1, 0, &byte, 1));  // backlog: the link is the limit
  TimePoint t{};
  uint64_t sent = 0;
  auto rttUs = [] { return uint32_t{50000}; };  // window = 10 RTT = 0.5 s
  auto window = [&](double mbps) {
    t += std::chrono::milliseconds(500);
    sent += static_cast<uint64_t>(mbps * 1e6 * 0.5);
    return s.observe(t, sent, rttUs);
  };
  EXPECT_FALSE(s.observe(t, sent, rttUs));  // starts the first window
  EXPECT_TRUE(window(20));                  // first measurement: grow
  EXPECT_EQ(s.active(), 4);
  EXPECT_TRUE(window(40));  // +100%: grow
  EXPECT_EQ(s.active(), 8);
  EXPECT_FALSE(window(42));  // +5%: no better, hold at 8
  EXPECT_EQ(s.active(), 8);
  EXPECT_FALSE(window(41));
  EXPECT_EQ(s.active(), 8);
  // Throughput collapses (competing traffic): probe again from here.
  EXPECT_FALSE(window(20));
  EXPECT_TRUE(window(30));
  EXPECT_EQ(s.active(), 16);
  // An idle link (nothing waiting) does not count as a slow one.
  s.cancel(&a);
  t += std::chrono::seconds(10);
  EXPECT_FALSE(s.observe(t, sent, rttUs));
  EXPECT_EQ(s.active(), 16);
}

TEST_F(StripeTest, FixedPoolUsesEveryStream) {
  open(4);
  StripeScheduler s(4, /*adaptive=*/false, 1);
  EXPECT_EQ(s.active(), 4);
  uint8_t byte = 1;
  Owner a;
  for (uint32_t i = 0; i < 4; ++i) s.push(item(&a, 1, i, &byte, 1));
  s.pump(near, record);
  std::sort(posted.begin(), posted.end());
  EXPECT_EQ(std::unique(posted.begin(), posted.end()) - posted.begin(), 4);
}

}  // namespace
}  // namespace chorus
