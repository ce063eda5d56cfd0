// Every algorithm runs in one process for N simulated ranks, with messages
// delivered in random order and their payloads read only at delivery (the
// latest moment a real transport may read a send buffer). Results are
// checked exactly against independently computed references, including the
// in-place forms, with a shuffled ring order so ring code paths are tested
// with ranks != positions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "algorithms/algorithm.h"
#include "tools/common/reference.h"

using namespace chorus;
using algo::Collective;

namespace {

struct Msg {
  int from, to;
  uint32_t block;
  const void* data;
  size_t bytes;
};

class SimCtx : public algo::TaskContext {
 public:
  SimCtx(std::vector<Msg>* q, int r, int n, size_t seg, const algo::TopologyView* topo)
      : q_(q), r_(r), n_(n), seg_(seg), topo_(topo) {}
  int rank() const override { return r_; }
  int size() const override { return n_; }
  void send(int to, uint32_t block, const void* data, size_t bytes) override {
    ASSERT_NE(to, r_);
    ASSERT_GE(to, 0);
    ASSERT_LT(to, n_);
    q_->push_back({r_, to, block, data, bytes});
  }
  uint8_t* scratch(size_t bytes) override {
    bufs_.emplace_back(new uint8_t[bytes + 1]);
    std::memset(bufs_.back().get(), 0xA5, bytes + 1);  // poison
    return bufs_.back().get();
  }
  size_t segmentBytes() const override { return seg_; }
  const algo::TopologyView& topology() const override { return *topo_; }

 private:
  std::vector<Msg>* q_;
  int r_, n_;
  size_t seg_;
  const algo::TopologyView* topo_;
  std::vector<std::unique_ptr<uint8_t[]>> bufs_;
};

struct Case {
  const algo::AlgorithmInfo* algo;
  int n;
  size_t count;
  chorusDataType_t dt;
  chorusRedOp_t op;
  bool inPlace;
  size_t seg;
  int root;
};

// A shuffled ring order, and ranks grouped into "hosts" of 1-3 ranks (not
// contiguous), so ring positions and host groups differ from rank order.
algo::TopologyView shuffledTopology(int n, std::mt19937& rng) {
  algo::TopologyView t = algo::TopologyView::identity(n);
  std::shuffle(t.ring.begin(), t.ring.end(), rng);
  for (int p = 0; p < n; ++p) t.position[t.ring[p]] = p;
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  t.hosts.clear();
  for (int i = 0; i < n;) {
    int size = 1 + static_cast<int>(rng() % 3);
    std::vector<int> host;
    for (int k = 0; k < size && i < n; ++k, ++i) host.push_back(order[i]);
    std::sort(host.begin(), host.end());
    for (int r : host) t.hostOf[r] = static_cast<int>(t.hosts.size());
    t.hosts.push_back(host);
  }
  return t;
}

// Builds every rank's buffers and arguments, runs the simulation, checks.
void runCase(const Case& c, unsigned seed) {
  const Collective coll = c.algo->collective;
  const int n = c.n;
  const size_t es = chorusDataTypeSize(c.dt), cnt = c.count, blk = cnt * es;
  std::mt19937 rng(seed);
  algo::TopologyView topo = shuffledTopology(n, rng);

  // Per-rank buffers; sizes follow chorus.h.
  std::vector<std::vector<uint8_t>> send(n), recv(n), want(n);
  std::vector<algo::CollectiveArgs> args(n);
  // all-to-all-v counts: c[i][j] elements from i to j (some zero).
  std::vector<std::vector<size_t>> vc(n, std::vector<size_t>(n));
  for (auto& row : vc)
    for (auto& x : row) x = (rng() % 3 == 0) ? 0 : rng() % (cnt + 1);

  auto fill = [&](std::vector<uint8_t>& b, size_t elems, int rank, uint64_t s) {
    b.assign(elems * es + 1, 0);
    chorus_test::fillInput(c.dt, c.op, b.data(), elems, rank, s);
  };
  for (int r = 0; r < n; ++r) {
    algo::CollectiveArgs& a = args[r];
    a.collective = coll;
    a.count = cnt;
    a.dtype = static_cast<DataType>(c.dt);
    a.op = static_cast<RedOp>(c.op);
    a.root = c.root;
    switch (coll) {
      case Collective::kAllReduce:
      case Collective::kReduce:
      case Collective::kBroadcast:
        fill(send[r], cnt, r, seed);
        recv[r].assign(blk + 1, 0);
        a.sendbuf = send[r].data();
        a.recvbuf = (c.inPlace && (coll == Collective::kAllReduce || r == c.root)) ? send[r].data()
                                                                                   : recv[r].data();
        break;
      case Collective::kAllGather:
      case Collective::kGather:
        fill(send[r], cnt, r, seed);
        recv[r].assign(blk * n + 1, 0);
        a.sendbuf = send[r].data();
        a.recvbuf = recv[r].data();
        if (c.inPlace && (coll == Collective::kAllGather || r == c.root)) {
          std::memcpy(recv[r].data() + r * blk, send[r].data(), blk);
          a.sendbuf = recv[r].data() + r * blk;
        }
        break;
      case Collective::kReduceScatter:
      case Collective::kScatter:
      case Collective::kAllToAll:
        fill(send[r], cnt * n, r, seed);
        recv[r].assign((coll == Collective::kAllToAll ? blk * n : blk) + 1, 0);
        a.sendbuf = send[r].data();
        a.recvbuf = recv[r].data();
        if (c.inPlace &&
            (coll == Collective::kReduceScatter || (coll == Collective::kScatter && r == c.root)))
          a.recvbuf = send[r].data() + r * blk;
        break;
      case Collective::kAllToAllv: {
        size_t so = 0, ro = 0;
        for (int j = 0; j < n; ++j) {
          a.sendCounts.push_back(vc[r][j]);
          a.sendDispls.push_back(so);
          so += vc[r][j] + 1;  // gaps between blocks
          a.recvCounts.push_back(vc[j][r]);
          a.recvDispls.push_back(ro);
          ro += vc[j][r] + 2;
        }
        fill(send[r], so, r, seed);
        recv[r].assign(ro * es + 1, 0);
        a.sendbuf = send[r].data();
        a.recvbuf = recv[r].data();
        break;
      }
      default:
        a.sendbuf = a.recvbuf = nullptr;
        break;
    }
  }
  // Expected results (computed from copies of the inputs: in-place runs
  // overwrite them).
  auto inputOf = [&](int r) { return send[r]; };
  std::vector<std::vector<uint8_t>> in0(n);
  for (int r = 0; r < n; ++r) in0[r] = inputOf(r);
  if (c.inPlace)
    for (int r = 0; r < n; ++r)
      if (coll == Collective::kAllGather || (coll == Collective::kGather && r == c.root))
        in0[r].assign(recv[r].begin() + r * blk, recv[r].begin() + (r + 1) * blk);
  for (int r = 0; r < n; ++r) {
    std::vector<uint8_t>& w = want[r];
    switch (coll) {
      case Collective::kAllReduce:
        w.assign(blk + 1, 0);
        chorus_test::fillExpected(c.dt, c.op, w.data(), cnt, n, seed);
        break;
      case Collective::kReduce:
        if (r == c.root) {
          w.assign(blk + 1, 0);
          chorus_test::fillExpected(c.dt, c.op, w.data(), cnt, n, seed);
        }
        break;
      case Collective::kBroadcast:
        w.assign(in0[c.root].begin(), in0[c.root].begin() + blk);
        break;
      case Collective::kAllGather:
        for (int j = 0; j < n; ++j) w.insert(w.end(), in0[j].begin(), in0[j].begin() + blk);
        break;
      case Collective::kGather:
        if (r == c.root)
          for (int j = 0; j < n; ++j) w.insert(w.end(), in0[j].begin(), in0[j].begin() + blk);
        break;
      case Collective::kReduceScatter: {
        std::vector<uint8_t> full(blk * n + 1);
        chorus_test::fillExpected(c.dt, c.op, full.data(), cnt * n, n, seed);
        w.assign(full.begin() + r * blk, full.begin() + (r + 1) * blk);
        break;
      }
      case Collective::kScatter:
        w.assign(in0[c.root].begin() + r * blk, in0[c.root].begin() + (r + 1) * blk);
        break;
      case Collective::kAllToAll:
        for (int j = 0; j < n; ++j)
          w.insert(w.end(), in0[j].begin() + r * blk, in0[j].begin() + (r + 1) * blk);
        break;
      default:
        break;
    }
  }

  std::vector<Msg> queue;
  std::vector<std::unique_ptr<SimCtx>> ctx;
  std::vector<std::unique_ptr<algo::Task>> tasks;
  for (int r = 0; r < n; ++r) {
    ctx.push_back(std::make_unique<SimCtx>(&queue, r, n, c.seg, &topo));
    tasks.push_back(c.algo->factory(args[r], *ctx[r]));
  }
  for (int r = 0; r < n; ++r) ASSERT_TRUE(tasks[r]->start().isOk());
  while (!queue.empty()) {
    size_t pick = rng() % queue.size();
    Msg m = queue[pick];
    queue.erase(queue.begin() + pick);
    ASSERT_TRUE(tasks[m.to]->involves(m.from));
    auto target = tasks[m.to]->recvTarget(m.from, m.block, m.bytes);
    ASSERT_TRUE(target.isOk()) << target.status().toString();
    if (m.bytes) std::memcpy(target.value(), m.data, m.bytes);
    ASSERT_TRUE(tasks[m.to]->onRecv(m.from, m.block).isOk());
  }
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(tasks[r]->haveAll()) << "rank " << r << " incomplete";
    const uint8_t* res = static_cast<const uint8_t*>(args[r].recvbuf);
    if (coll == Collective::kAllToAllv) {
      for (int j = 0; j < n; ++j) {
        size_t k = vc[j][r];
        std::vector<uint8_t> exp(in0[j].begin() + args[j].sendDispls[r] * es,
                                 in0[j].begin() + (args[j].sendDispls[r] + k) * es);
        EXPECT_EQ(std::memcmp(res + args[r].recvDispls[j] * es, exp.data(), k * es), 0)
            << "alltoallv block from " << j << " at rank " << r;
      }
      continue;
    }
    if (want[r].empty()) continue;
    EXPECT_EQ(chorus_test::countWrong(res, want[r].data(), want[r].size() / es, es), 0u)
        << c.algo->name << " " << algo::collectiveName(coll) << " n=" << n << " count=" << cnt
        << " rank " << r;
  }
}

}  // namespace

TEST(Algorithm, EveryAlgorithmExactUnderRandomDelivery) {
  unsigned seed = 1;
  for (const algo::AlgorithmInfo* info : algo::allAlgorithms()) {
    Collective coll = info->collective;
    if (coll == Collective::kSend || coll == Collective::kRecv || coll == Collective::kBarrier)
      continue;  // covered below
    bool reduces = coll == Collective::kAllReduce || coll == Collective::kReduce ||
                   coll == Collective::kReduceScatter;
    for (int n : {1, 2, 3, 5, 8})
      for (size_t count : {size_t{1}, size_t{7}, size_t{100}, size_t{1031}})
        for (auto dt : {chorusFloat32, chorusFloat16, chorusInt32, chorusUint8})
          for (auto op : reduces ? std::vector<chorusRedOp_t>{chorusSum, chorusAvg, chorusMax}
                                 : std::vector<chorusRedOp_t>{chorusSum})
            for (bool inPlace : {false, true})
              for (size_t seg : {size_t{16}, size_t{512 << 10}}) {
                if (inPlace && (coll == Collective::kAllToAll || coll == Collective::kAllToAllv))
                  continue;
                int root = static_cast<int>(seed % n);
                SCOPED_TRACE(std::string(algo::collectiveName(coll)) + "/" + info->name +
                             " n=" + std::to_string(n) + " count=" + std::to_string(count) +
                             " inplace=" + std::to_string(inPlace) + " seg=" + std::to_string(seg) +
                             " root=" + std::to_string(root));
                runCase({info, n, count, dt, op, inPlace, seg, root}, seed++);
                if (HasFatalFailure()) return;
              }
  }
}

TEST(Algorithm, BarrierCompletesOnlyWhenEveryoneArrived) {
  const algo::AlgorithmInfo* info = algo::findAlgorithm(Collective::kBarrier, "dissemination");
  ASSERT_NE(info, nullptr);
  for (int n : {1, 2, 3, 5, 8}) {
    std::vector<Msg> queue;
    algo::TopologyView topo = algo::TopologyView::identity(n);
    std::vector<std::unique_ptr<SimCtx>> ctx;
    std::vector<std::unique_ptr<algo::Task>> tasks;
    algo::CollectiveArgs a;
    a.collective = Collective::kBarrier;
    for (int r = 0; r < n; ++r) {
      ctx.push_back(std::make_unique<SimCtx>(&queue, r, n, 1024, &topo));
      tasks.push_back(info->factory(a, *ctx[r]));
    }
    // Everyone but the last rank enters; nobody may complete. (Frames for a
    // rank that has not entered wait, as the communicator holds them.)
    for (int r = 0; r < n - 1; ++r) ASSERT_TRUE(tasks[r]->start().isOk());
    std::vector<Msg> held;
    for (size_t i = 0; i < queue.size(); ++i) {
      Msg m = queue[i];
      if (m.to == n - 1) {
        held.push_back(m);
        continue;
      }
      auto t = tasks[m.to]->recvTarget(m.from, m.block, m.bytes);
      ASSERT_TRUE(t.isOk());
      ASSERT_TRUE(tasks[m.to]->onRecv(m.from, m.block).isOk());
    }
    queue = held;
    if (n > 1) {
      for (int r = 0; r < n; ++r) EXPECT_FALSE(tasks[r]->haveAll()) << "n=" << n << " rank " << r;
    }
    ASSERT_TRUE(tasks[n - 1]->start().isOk());
    while (!queue.empty()) {
      Msg m = queue.front();
      queue.erase(queue.begin());
      auto t = tasks[m.to]->recvTarget(m.from, m.block, m.bytes);
      ASSERT_TRUE(t.isOk());
      ASSERT_TRUE(tasks[m.to]->onRecv(m.from, m.block).isOk());
    }
    for (int r = 0; r < n; ++r) EXPECT_TRUE(tasks[r]->haveAll());
  }
}

TEST(Algorithm, SendAndReceiveInvolveOnlyTheirPeer) {
  std::vector<Msg> queue;
  algo::TopologyView topo = algo::TopologyView::identity(4);
  SimCtx s(&queue, 1, 4, 16, &topo), r(&queue, 3, 4, 16, &topo);
  std::vector<float> src(100), dst(100, 0);
  std::iota(src.begin(), src.end(), 1.0f);
  algo::CollectiveArgs a;
  a.collective = Collective::kSend;
  a.sendbuf = src.data();
  a.count = src.size();
  a.root = 3;
  auto send = algo::findAlgorithm(Collective::kSend, "send")->factory(a, s);
  a.collective = Collective::kRecv;
  a.recvbuf = dst.data();
  a.root = 1;
  auto recv = algo::findAlgorithm(Collective::kRecv, "recv")->factory(a, r);
  EXPECT_TRUE(send->involves(3));
  EXPECT_FALSE(send->involves(0));
  EXPECT_TRUE(recv->involves(1));
  EXPECT_FALSE(recv->involves(2));
  ASSERT_TRUE(send->start().isOk());
  ASSERT_TRUE(recv->start().isOk());
  std::reverse(queue.begin(), queue.end());  // out of order
  for (const Msg& m : queue) {
    auto t = recv->recvTarget(m.from, m.block, m.bytes);
    ASSERT_TRUE(t.isOk());
    std::memcpy(t.value(), m.data, m.bytes);
    ASSERT_TRUE(recv->onRecv(m.from, m.block).isOk());
  }
  EXPECT_TRUE(recv->haveAll());
  EXPECT_EQ(src, dst);
  EXPECT_FALSE(recv->recvTarget(2, 0, 16).isOk());  // wrong peer
}

TEST(Algorithm, RingRejectsUnexpectedBlocks) {
  const algo::AlgorithmInfo* info = algo::findAlgorithm(Collective::kAllReduce, "ring");
  std::vector<Msg> queue;
  algo::TopologyView topo = algo::TopologyView::identity(3);
  SimCtx ctx(&queue, 1, 3, 1024, &topo);
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
