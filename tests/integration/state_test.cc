// Shared state across real processes: peers that differ take the group's
// state, only differing chunks move, joiners receive from every holder, and
// refusals (send-only mismatch, layout mismatch) are uniform.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

// One STATE line per worker, keyed by its launch index.
std::vector<std::map<std::string, std::string>> stateLines(Workers& w) {
  std::vector<std::map<std::string, std::string>> out;
  for (auto& p : w.procs) {
    auto ls = p->lines("STATE ");
    out.push_back(ls.empty() ? std::map<std::string, std::string>{} : fields(ls.back()));
  }
  return out;
}

Workers launchMixed(const std::string& addr, const std::string& group,
                    const std::vector<std::vector<std::string>>& perWorker) {
  Workers all;
  const std::string n = std::to_string(perWorker.size());
  for (const auto& extra : perWorker) {
    std::vector<std::string> args = {"--coordinator", addr,   "--group",  group,
                                     "--expected",    n,      "--secret", "test-secret",
                                     "--scenario",    "state"};
    args.insert(args.end(), extra.begin(), extra.end());
    all.procs.push_back(Proc::spawn(workerPath(), args, {}));
  }
  return all;
}

}  // namespace

TEST(SharedState, DifferentAndEmptyPeersTakeTheGroupsState) {
  TestCoordinator coord;
  const size_t bytes = 3 << 20;  // three 1 MiB chunks of weights + the step counter
  auto w = launchMixed(coord.address(), "state1",
                       {{},
                        {},
                        {},                             // holders, revision 5
                        {"--state-variant", "1"},       // one chunk differs
                        {"--state-role", "receive"}});  // empty, receive-only
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  auto s = stateLines(w);
  std::set<std::string> hashes;
  uint64_t sent = 0, received = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    ASSERT_EQ(s[i]["rc"], "0") << w.dump();
    EXPECT_EQ(s[i]["group_content"], "1") << i;
    EXPECT_EQ(s[i]["rng_kept"], "1") << "a NO_EQUALITY buffer was overwritten";
    EXPECT_EQ(s[i]["revision"], "5");
    EXPECT_EQ(s[i]["updated"], "2");
    EXPECT_EQ(s[i]["rounds"], "1");
    hashes.insert(s[i]["hash"]);
    sent += std::stoull(s[i]["sent"]);
    received += std::stoull(s[i]["received"]);
  }
  EXPECT_EQ(hashes.size(), 1u);
  // The peer that differed in one element received exactly one chunk; the
  // empty one everything; each holder served part of it.
  EXPECT_EQ(std::stoull(s[3]["received"]), 1u << 20);
  EXPECT_EQ(std::stoull(s[4]["received"]), bytes + 8);
  EXPECT_EQ(sent, received);
  for (int i = 0; i < 3; ++i) EXPECT_GT(std::stoull(s[i]["sent"]), 0u) << "holder " << i << " idle";
  for (auto& p : w.procs) EXPECT_TRUE(p->lines("FAIL").empty()) << p->output();
}

TEST(SharedState, NothingMovesWhenAllAgree) {
  TestCoordinator coord;
  auto w = launchMixed(coord.address(), "state2", {{}, {}, {}});
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (auto& s : stateLines(w)) {
    EXPECT_EQ(s["rc"], "0");
    EXPECT_EQ(s["updated"], "0");
    EXPECT_EQ(s["rounds"], "0");
    EXPECT_EQ(s["sent"], "0");
    EXPECT_EQ(s["received"], "0");
  }
}

TEST(SharedState, MajorityWinsAndHigherRevisionBreaksTies) {
  TestCoordinator coord;
  // Two peers hold variant 2 at revision 9, two hold variant 0 at revision 5:
  // a tie in votes, so the higher revision (variant 2) wins.
  auto w = launchMixed(coord.address(), "state3",
                       {{"--state-variant", "2", "--state-revision", "9"},
                        {"--state-variant", "2", "--state-revision", "9"},
                        {},
                        {}});
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  std::set<std::string> hashes;
  for (auto& s : stateLines(w)) {
    EXPECT_EQ(s["rc"], "0") << w.dump();
    EXPECT_EQ(s["revision"], "9");
    EXPECT_EQ(s["group_content"], "0");  // variant 2 everywhere now
    hashes.insert(s["hash"]);
  }
  EXPECT_EQ(hashes.size(), 1u);
}

TEST(SharedState, SendOnlyMismatchAndLayoutMismatchAreRefusedEverywhere) {
  TestCoordinator coord;
  auto w = launchMixed(coord.address(), "state4",
                       {{}, {}, {"--state-role", "send", "--state-variant", "2"}});
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  auto s = stateLines(w);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i]["rc"], "2") << w.dump();  // chorusInvalidUsage
    EXPECT_NE(s[i]["err"].find("send-only"), std::string::npos) << s[i]["err"];
    // Nobody was overwritten: the holders keep variant 0, the send-only peer 2.
    EXPECT_EQ(s[i]["group_content"], i < 2 ? "1" : "0") << i;
  }
  auto v = launchMixed(coord.address(), "state5", {{}, {}, {"--state-other-layout"}});
  ASSERT_TRUE(v.waitAll(60000)) << v.dump();
  for (auto& s : stateLines(v)) {
    EXPECT_EQ(s["rc"], "2") << v.dump();
    EXPECT_NE(s["err"].find("layout"), std::string::npos) << s["err"];
  }
}

TEST(SharedState, EveryoneReceiveOnlyIsAClearError) {
  TestCoordinator coord;
  auto w = launchMixed(coord.address(), "state6",
                       {{"--state-role", "receive"}, {"--state-role", "receive"}});
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (auto& s : stateLines(w)) {
    EXPECT_EQ(s["rc"], "2") << w.dump();
    EXPECT_NE(s["err"].find("receive-only"), std::string::npos) << s["err"];
  }
}
