// All-reduce across real processes on loopback: exact results, bit parity
// between peers, concurrency, bad input.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/common/cases.h"
#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

void sweep(int n) {
  TestCoordinator coord;
  ASSERT_TRUE(coord.ok());
  auto w =
      Workers::launch(n, coord.address(), "sweep" + std::to_string(n),
                      {"--scenario", "sweep", "--counts", "0,1,7,1000,65537", "--count", "20001"});
  ASSERT_TRUE(w.waitAll(240000)) << "workers did not finish\n" << w.dump();
  // 10 dtypes x 5 ops x 5 counts x 2 placements + 8 parity cases
  expectAllCasesAgree(w, 508);
  for (auto& p : w.procs) {
    auto ready = p->lines("READY ");
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(fields(ready[0])["size"], std::to_string(n));
  }
}

}  // namespace

TEST(AllReduce, EveryDtypeOpCountN1) {
  sweep(1);
}
TEST(AllReduce, EveryDtypeOpCountN2) {
  sweep(2);
}
TEST(AllReduce, EveryDtypeOpCountN3) {
  sweep(3);
}
TEST(AllReduce, EveryDtypeOpCountN5) {
  sweep(5);
}
TEST(AllReduce, EveryDtypeOpCountN8) {
  sweep(8);
}

TEST(AllReduce, EachAlgorithmForcedOnItsOwn) {
  TestCoordinator coord;
  for (const char* algo : {"ring", "direct", "twophase"}) {
    for (int n : {3, 5}) {
      SCOPED_TRACE(std::string(algo) + " N=" + std::to_string(n));
      auto w = Workers::launch(n, coord.address(), std::string("algo_") + algo + std::to_string(n),
                               {"--scenario", "sweep", "--counts", "1,7,1000,65537,300001",
                                "--dtypes", "int8,int64,half,bfloat16,float,double"},
                               "test-secret", {std::string("CHORUS_ALGO=") + algo});
      ASSERT_TRUE(w.waitAll(180000)) << w.dump();
      expectAllCasesAgree(w, 60);
      for (auto& p : w.procs)
        for (const auto& l : p->lines("CASE "))
          if (l.find("parity") == std::string::npos) {
            EXPECT_NE(l.find(std::string("algo=") + algo), std::string::npos) << l;
          }
    }
  }
}

TEST(AllReduce, SixtyFourMiBInAndOutOfPlace) {
  TestCoordinator coord;
  for (int n : {2, 3}) {
    auto w = Workers::launch(n, coord.address(), "big" + std::to_string(n),
                             {"--scenario", "big", "--count", std::to_string(16 << 20)});
    ASSERT_TRUE(w.waitAll(180000)) << w.dump();
    expectAllCasesAgree(w, 2);
  }
}

TEST(AllReduce, SixteenConcurrentAsyncWithTags) {
  TestCoordinator coord;
  for (int n : {3, 5}) {
    auto w =
        Workers::launch(n, coord.address(), "async" + std::to_string(n), {"--scenario", "async"});
    ASSERT_TRUE(w.waitAll(120000)) << w.dump();
    expectAllCasesAgree(w, 16);
  }
}

TEST(AllReduce, MultipleStreamsPerPeer) {
  TestCoordinator coord;
  auto w = Workers::launch(3, coord.address(), "streams",
                           {"--scenario", "sweep", "--streams", "4", "--dtypes", "float,half",
                            "--counts", "1,1000,300001"});
  ASSERT_TRUE(w.waitAll(120000)) << w.dump();
  expectAllCasesAgree(w, 20);
}

TEST(BadInput, EachCallGetsItsErrorAndTheCommunicatorStillWorks) {
  TestCoordinator coord;
  auto w = Workers::launch(2, coord.address(), "bad", {"--scenario", "badinput"});
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  std::map<std::string, std::string> want = {
      {"null-sendbuf", "1"},    {"null-recvbuf", "1"},  {"null-comm", "1"},
      {"bad-dtype", "1"},       {"bad-op", "1"},        {"count-overflow", "1"},
      {"partial-overlap", "1"}, {"reserved-tag", "1"},  {"null-request", "1"},
      {"null-rank-out", "1"},   {"bad-info-size", "1"}, {"still-works", "0"}};
  for (auto& p : w.procs) {
    EXPECT_EQ(p->exitCode(), 0) << w.dump();
    std::map<std::string, std::string> got;
    for (const auto& l : p->lines("BAD ")) got[fields(l)["name"]] = fields(l)["rc"];
    EXPECT_EQ(got, want) << p->output();
  }
}

TEST(BadInput, MismatchedCountFailsOnEveryPeerThenRecovers) {
  TestCoordinator coord;
  auto w = Workers::launch(3, coord.address(), "mismatch",
                           {"--scenario", "mismatch", "--op-timeout-ms", "10000"});
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (auto& p : w.procs) {
    auto lines = p->lines("BAD ");
    ASSERT_EQ(lines.size(), 2u) << p->output();
    EXPECT_EQ(fields(lines[0])["rc"], "2") << lines[0];  // chorusInvalidUsage
    EXPECT_NE(lines[0].find("count=1001"), std::string::npos) << lines[0];
    EXPECT_EQ(fields(lines[1])["rc"], "0") << lines[1];
  }
}

TEST(Auth, WrongSecretIsRefusedAndOthersAreUnaffected) {
  TestCoordinator coord("right-secret");
  auto bad = Workers::launch(1, coord.address(), "auth", {"--scenario", "idle"}, "wrong-secret");
  ASSERT_TRUE(bad.waitAll(30000)) << bad.dump();
  auto done = bad.procs[0]->lines("DONE ");
  ASSERT_EQ(done.size(), 1u) << bad.dump();
  EXPECT_EQ(fields(done[0])["rc"], "7") << done[0];  // chorusAuthFailed
  EXPECT_NE(done[0].find("secret"), std::string::npos) << done[0];

  auto good = Workers::launch(2, coord.address(), "auth",
                              {"--scenario", "sweep", "--dtypes", "float", "--counts", "5"},
                              "right-secret");
  ASSERT_TRUE(good.waitAll(60000)) << good.dump();
  expectAllCasesAgree(good, 10);
}

TEST(Connect, TimesOutClearlyWhenTooFewPeersArrive) {
  TestCoordinator coord;
  // Expects 3 peers, only 2 come.
  Workers w;
  for (int i = 0; i < 2; ++i)
    w.procs.push_back(Proc::spawn(
        workerPath(), {"--coordinator", coord.address(), "--group", "few", "--expected", "3",
                       "--secret", "test-secret", "--connect-timeout-ms", "1500"}));
  ASSERT_TRUE(w.waitAll(20000)) << w.dump();
  for (auto& p : w.procs) {
    auto done = p->lines("DONE ");
    ASSERT_EQ(done.size(), 1u) << p->output();
    EXPECT_EQ(fields(done[0])["rc"], "8") << done[0];  // chorusTimeout
    EXPECT_NE(done[0].find("not admitted"), std::string::npos) << done[0];
  }
}
