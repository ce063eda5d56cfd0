// Every collective across real processes: exact results against the
// reference, identical bytes on every peer where the result is shared, each
// algorithm forced on its own, point-to-point rings in groups.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/common/cases.h"
#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

void everyCollective(int n) {
  TestCoordinator coord;
  auto w = Workers::launch(n, coord.address(), "colls" + std::to_string(n),
                           {"--scenario", "colls", "--counts", "0,1,7,1000,65537", "--dtypes",
                            "int8,uint8,int32,int64,half,bfloat16,float,double"});
  ASSERT_TRUE(w.waitAll(300000)) << w.dump();
  expectAllCasesAgree(w, 1000);
}

}  // namespace

TEST(Collectives, EveryCollectiveDtypeOpCountN1) {
  everyCollective(1);
}
TEST(Collectives, EveryCollectiveDtypeOpCountN2) {
  everyCollective(2);
}
TEST(Collectives, EveryCollectiveDtypeOpCountN3) {
  everyCollective(3);
}
TEST(Collectives, EveryCollectiveDtypeOpCountN5) {
  everyCollective(5);
}
TEST(Collectives, EveryCollectiveDtypeOpCountN8) {
  everyCollective(8);
}

TEST(Collectives, EachAlgorithmForcedOnItsOwn) {
  TestCoordinator coord;
  // Three settings cover every algorithm of every collective; the hierarchical
  // one runs with host labels putting the peers on two "hosts".
  struct Setting {
    std::string algo;
    bool twoHosts;
  };
  std::vector<Setting> settings = {
      {"allreduce:ring,broadcast:binomial,reduce:binomial,allgather:ring,reducescatter:ring,"
       "alltoall:pairwise,gather:linear,scatter:linear",
       false},
      {"allreduce:rhd,broadcast:ring,reduce:ring,allgather:direct,reducescatter:direct,"
       "alltoall:bruck,gather:binomial,scatter:binomial",
       false},
      {"allreduce:twophase,broadcast:double_tree,reduce:double_tree", false},
      {"allreduce:hierarchical", true},
      {"allreduce:direct", false}};
  int group = 0;
  for (const Setting& s : settings)
    for (int n : {3, 5}) {
      SCOPED_TRACE(s.algo + " N=" + std::to_string(n));
      Workers w;
      for (int i = 0; i < n; ++i) {
        std::vector<std::string> env = {"CHORUS_ALGO=" + s.algo};
        if (s.twoHosts) env.push_back(std::string("CHORUS_LOCALITY=host=") + (i % 2 ? "B" : "A"));
        w.procs.push_back(Proc::spawn(
            workerPath(),
            {"--coordinator", coord.address(), "--group", "forced" + std::to_string(group),
             "--expected", std::to_string(n), "--secret", "test-secret", "--scenario", "colls",
             "--counts", "1,7,1000,65537", "--dtypes", "int32,half,float", "--ops", "sum,avg,max",
             "--colls", s.twoHosts ? "allreduce" : "all"},
            env));
      }
      ++group;
      ASSERT_TRUE(w.waitAll(300000)) << w.dump();
      expectAllCasesAgree(w, 20);
      // The forced algorithm really ran.
      for (auto& p : w.procs)
        for (const auto& l : p->lines("CASE allreduce/")) {
          auto f = fields(l);
          if (f["algo"] == "none") continue;
          std::string want = s.algo.substr(s.algo.find(':') + 1);
          want = want.substr(0, want.find(','));
          EXPECT_EQ(f["algo"], want) << l;
        }
    }
}

TEST(Collectives, PointToPointRingInGroupsAndBadPeers) {
  TestCoordinator coord;
  for (int n : {2, 3, 5}) {
    auto w = Workers::launch(n, coord.address(), "p2p" + std::to_string(n),
                             {"--scenario", "p2p", "--counts", "0,1,1000,300001"});
    ASSERT_TRUE(w.waitAll(120000)) << w.dump();
    expectAllCasesAgree(w, 4);
    for (auto& p : w.procs)
      for (const auto& l : p->lines("BAD ")) EXPECT_EQ(fields(l)["rc"], "1") << l;
  }
}
