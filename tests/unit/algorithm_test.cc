// Algorithms run in one process for N simulated ranks, with messages
// delivered in random order and their payloads read only at delivery (the
// latest moment a real transport may read a send buffer). Checks exact
// results against the reference and bit parity across ranks.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "algorithms/algorithm.h"
#include "tools/common/reference.h"

using namespace chorus;

namespace {

struct Msg {
  int from, to;
  uint32_t block;
  const void* data;
  size_t bytes;
};

class SimWorld;

class SimCtx : public algo::TaskContext {
 public:
  SimCtx(SimWorld* w, int r, int n, size_t seg) : w_(w), r_(r), n_(n), seg_(seg) {}
  int rank() const override { return r_; }
  int size() const override { return n_; }
  void send(int to, uint32_t block, const void* data, size_t bytes) override;
  uint8_t* scratch(size_t bytes) override {
    bufs_.emplace_back(new uint8_t[bytes + 1]);
    std::memset(bufs_.back().get(), 0xA5,
                bytes + 1);  // poison: tasks must not read it uninitialised
    return bufs_.back().get();
  }
  size_t segmentBytes() const override { return seg_; }

 private:
  SimWorld* w_;
  int r_, n_;
  size_t seg_;
  std::vector<std::unique_ptr<uint8_t[]>> bufs_;
};

class SimWorld {
 public:
  std::vector<Msg> queue;
  void post(const Msg& m) { queue.push_back(m); }
};

void SimCtx::send(int to, uint32_t block, const void* data, size_t bytes) {
  ASSERT_NE(to, r_);
  ASSERT_GE(to, 0);
  ASSERT_LT(to, n_);
  w_->post({r_, to, block, data, bytes});
}

struct Case {
  const char* algo;
  int n;
  size_t count;
  chorusDataType_t dt;
  chorusRedOp_t op;
  bool inPlace;
  size_t seg;
};

void runCase(const Case& c, unsigned seed) {
  size_t es = chorusDataTypeSize(c.dt);
  std::vector<std::vector<uint8_t>> in(c.n, std::vector<uint8_t>(c.count * es + 1));
  std::vector<std::vector<uint8_t>> out(c.n, std::vector<uint8_t>(c.count * es + 1));
  for (int r = 0; r < c.n; ++r) chorus_test::fillInput(c.dt, c.op, in[r].data(), c.count, r, seed);
  std::vector<uint8_t> want(c.count * es + 1);
  chorus_test::fillExpected(c.dt, c.op, want.data(), c.count, c.n, seed);

  const algo::AlgorithmInfo* info = algo::findAlgorithm(algo::Collective::kAllReduce, c.algo);
  ASSERT_NE(info, nullptr);
  SimWorld world;
  std::vector<std::unique_ptr<SimCtx>> ctx;
  std::vector<std::unique_ptr<algo::Task>> tasks;
  for (int r = 0; r < c.n; ++r) {
    ctx.push_back(std::make_unique<SimCtx>(&world, r, c.n, c.seg));
    algo::CollectiveArgs a;
    a.sendbuf = in[r].data();
    a.recvbuf = c.inPlace ? in[r].data() : out[r].data();
    a.count = c.count;
    a.dtype = static_cast<DataType>(c.dt);
    a.op = static_cast<RedOp>(c.op);
    tasks.push_back(info->factory(a, *ctx[r]));
  }
  std::mt19937 rng(seed);
  for (int r = 0; r < c.n; ++r) ASSERT_TRUE(tasks[r]->start().isOk());
  size_t delivered = 0;
  while (!world.queue.empty()) {
    size_t pick = rng() % world.queue.size();
    Msg m = world.queue[pick];
    world.queue.erase(world.queue.begin() + pick);
    auto target = tasks[m.to]->recvTarget(m.from, m.block, m.bytes);
    ASSERT_TRUE(target.isOk()) << target.status().toString();
    std::memcpy(target.value(), m.data, m.bytes);
    ASSERT_TRUE(tasks[m.to]->onRecv(m.from, m.block).isOk());
    ++delivered;
  }
  for (int r = 0; r < c.n; ++r) {
    ASSERT_TRUE(tasks[r]->haveAll()) << "rank " << r << " incomplete";
    const uint8_t* res = c.inPlace ? in[r].data() : out[r].data();
    EXPECT_EQ(chorus_test::countWrong(res, want.data(), c.count, es), 0u)
        << c.algo << " n=" << c.n << " count=" << c.count << " rank " << r;
  }
}

}  // namespace

TEST(Algorithm, RingAndDirectExactUnderRandomDelivery) {
  unsigned seed = 1;
  for (const char* algo : {"ring", "direct", "twophase"})
    for (int n : {1, 2, 3, 5, 8})
      for (size_t count : {size_t{1}, size_t{7}, size_t{100}, size_t{1031}})
        for (auto dt : {chorusFloat32, chorusFloat16, chorusBfloat16, chorusInt32, chorusUint8})
          for (auto op : {chorusSum, chorusAvg, chorusMax, chorusProd})
            for (bool inPlace : {false, true})
              for (size_t seg : {size_t{16}, size_t{512 << 10}}) {
                SCOPED_TRACE(std::string(algo) + " n=" + std::to_string(n) +
                             " count=" + std::to_string(count) +
                             " inplace=" + std::to_string(inPlace) + " seg=" + std::to_string(seg));
                runCase({algo, n, count, dt, op, inPlace, seg}, seed++);
                if (HasFatalFailure()) return;
              }
}

TEST(Algorithm, RingRejectsUnexpectedBlocks) {
  const algo::AlgorithmInfo* info = algo::findAlgorithm(algo::Collective::kAllReduce, "ring");
  SimWorld world;
  SimCtx ctx(&world, 1, 3, 1024);
  std::vector<float> buf(100);
  algo::CollectiveArgs a;
  a.sendbuf = a.recvbuf = buf.data();
  a.count = 100;
  auto task = info->factory(a, ctx);
  ASSERT_TRUE(task->start().isOk());
  EXPECT_FALSE(task->recvTarget(2, 0, 132).isOk());    // wrong neighbour
  EXPECT_FALSE(task->recvTarget(0, 999, 4).isOk());    // no such block
  EXPECT_FALSE(task->recvTarget(0, 0, 7).isOk());      // wrong length
  EXPECT_TRUE(task->recvTarget(0, 0, 34 * 4).isOk());  // chunk 0 from the left: 34 of 100 floats
}
