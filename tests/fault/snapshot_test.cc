// Erasure-coded snapshots with real processes: members snapshot their state
// (k data + m parity shards, shard i on rank i), change it, lose peers to
// SIGKILL, and recover the snapshot's exact bytes from the survivors. Also:
// a shard corrupted in memory is detected and excluded, more than m losses
// give the documented chorusDataLoss error, a joiner is given a lost shard by
// the background re-protection (so two further losses are survivable), and a
// whole job restarts from spilled files.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

constexpr size_t kStateBytes = (1 << 20) + 4096;  // not a multiple of k: padding is exercised

std::vector<std::string> snapArgs(const std::string& coord, const std::string& group, int expected,
                                  std::vector<std::string> extra) {
  std::vector<std::string> a = {"--coordinator",   coord,
                                "--group",         group,
                                "--expected",      std::to_string(expected),
                                "--secret",        "test-secret",
                                "--scenario",      "snapshot",
                                "--state-bytes",   std::to_string(kStateBytes),
                                "--op-timeout-ms", "20000"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Worker index by the rank it printed when it snapshotted (= its shard).
std::map<int, int> byRank(Workers& w) {
  std::map<int, int> out;
  for (size_t i = 0; i < w.procs.size(); ++i) {
    auto ls = w.procs[i]->lines("SNAPSHOT ");
    if (!ls.empty()) out[std::stoi(fields(ls[0])["rank"])] = static_cast<int>(i);
  }
  return out;
}

std::map<std::string, std::string> recoverLine(Proc& p) {
  auto ls = p.lines("RECOVER ");
  if (ls.empty()) return {};
  return fields(ls.back());
}

// n members snapshot k+m; the workers holding the shards in `kill` die after
// the snapshot; the survivors recover. Returns false (with a gtest failure)
// if anything is off.
void killAndRecover(int n, int k, int m, const std::vector<int>& kill, const std::string& group) {
  TestCoordinator coord;
  Workers w;
  int survivors = n - static_cast<int>(kill.size());
  for (int i = 0; i < n; ++i)
    w.procs.push_back(Proc::spawn(
        workerPath(), snapArgs(coord.address(), group, n,
                               {"--snap-k", std::to_string(k), "--snap-m", std::to_string(m),
                                "--snap-wait-size", std::to_string(survivors)})));
  for (auto& p : w.procs) ASSERT_TRUE(p->waitForLine("SNAPSHOT_TAKEN", 60000)) << w.dump();
  auto rankOf = byRank(w);
  ASSERT_EQ(rankOf.size(), static_cast<size_t>(n)) << w.dump();
  std::set<int> dead;
  for (int r : kill) {
    w.procs[rankOf[r]]->signal(SIGKILL);
    dead.insert(rankOf[r]);
  }
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 15.0) << "detection + recovery took too long";
  for (int i = 0; i < n; ++i) {
    if (dead.count(i)) continue;
    auto f = recoverLine(*w.procs[i]);
    ASSERT_FALSE(f.empty()) << w.procs[i]->output();
    EXPECT_EQ(f["rc"], "0") << w.procs[i]->output();
    EXPECT_EQ(f["revision"], "5");
    EXPECT_EQ(f["weights_ok"], "1");
    EXPECT_EQ(f["step_ok"], "1");
    EXPECT_EQ(f["rng_ok"], "1") << "a peer's own private buffer was not restored";
    EXPECT_EQ(f["lost"], std::to_string(kill.size()));
    EXPECT_EQ(f["corrupt"], "0");
    EXPECT_EQ(w.procs[i]->exitCode(), 0);
  }
}

class EveryPairOfLosses : public ::testing::TestWithParam<std::pair<int, int>> {};

// 4+2 on 6 members: every one of the 15 pairs of shards lost, byte-exact.
TEST_P(EveryPairOfLosses, FourPlusTwo) {
  auto [a, b] = GetParam();
  killAndRecover(6, 4, 2, {a, b}, "pair" + std::to_string(a) + std::to_string(b));
}

std::vector<std::pair<int, int>> allPairs(int n) {
  std::vector<std::pair<int, int>> out;
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) out.push_back({a, b});
  return out;
}
INSTANTIATE_TEST_SUITE_P(Snapshot, EveryPairOfLosses, ::testing::ValuesIn(allPairs(6)),
                         [](const auto& info) {
                           return "lose" + std::to_string(info.param.first) + "and" +
                                  std::to_string(info.param.second);
                         });

// 8+2 on 10 members: two data shards, a data and a parity shard, both parity
// shards (every pair is covered in-process by the unit test Erasure.*).
TEST(Snapshot, EightPlusTwoSurvivesTwoLosses) {
  killAndRecover(10, 8, 2, {0, 5}, "eight1");
  killAndRecover(10, 8, 2, {3, 9}, "eight2");
  killAndRecover(10, 8, 2, {8, 9}, "eight3");
}

// Six members snapshot 4+2; worker 1 corrupts its shard in memory (fault
// injection). Returns the rank (= shard) worker 1 holds.
int launchWithCorruptShard(TestCoordinator& coord, Workers& w, const std::string& group,
                           int waitSize) {
  for (int i = 0; i < 6; ++i) {
    std::vector<std::string> env;
    if (i == 1) env.push_back("CHORUS_FAULT_CORRUPT_SHARD=1");
    w.procs.push_back(Proc::spawn(
        workerPath(),
        snapArgs(coord.address(), group, 6, {"--snap-wait-size", std::to_string(waitSize)}), env));
  }
  for (auto& p : w.procs)
    if (!p->waitForLine("SNAPSHOT_TAKEN", 60000)) return -1;
  return std::stoi(fields(w.procs[1]->lines("SNAPSHOT ")[0])["rank"]);
}

TEST(Snapshot, CorruptShardIsDetectedAndExcluded) {
  TestCoordinator coord;
  Workers w;
  int corruptRank = launchWithCorruptShard(coord, w, "corrupt", 5);
  ASSERT_GE(corruptRank, 0) << w.dump();
  // Kill a worker holding another shard.
  auto rankOf = byRank(w);
  int victim = rankOf[corruptRank == 4 ? 3 : 4];
  w.procs[victim]->signal(SIGKILL);
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (int i = 0; i < 6; ++i) {
    if (i == victim) continue;
    auto f = recoverLine(*w.procs[i]);
    ASSERT_FALSE(f.empty()) << w.procs[i]->output();
    EXPECT_EQ(f["rc"], "0") << w.procs[i]->output();
    EXPECT_EQ(f["corrupt"], "1");
    EXPECT_EQ(f["lost"], "2") << "lost counts the dead holder's and the corrupt shard";
    EXPECT_EQ(f["weights_ok"], "1");
    EXPECT_EQ(f["rng_ok"], "1");
  }
}

TEST(Snapshot, MoreThanMLostIsAClearDataLossError) {
  TestCoordinator coord;
  Workers w;
  int corruptRank = launchWithCorruptShard(coord, w, "toomany", 4);
  ASSERT_GE(corruptRank, 0) << w.dump();
  // Two other holders die: 3 of the 4 shards needed are left.
  std::vector<int> killRanks;
  for (int r = 5; r >= 0 && killRanks.size() < 2; --r)
    if (r != corruptRank) killRanks.insert(killRanks.begin(), r);
  auto rankOf = byRank(w);
  std::set<int> dead = {rankOf[killRanks[0]], rankOf[killRanks[1]]};
  for (int i : dead) w.procs[i]->signal(SIGKILL);
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (int i = 0; i < 6; ++i) {
    if (dead.count(i)) continue;
    auto f = recoverLine(*w.procs[i]);
    ASSERT_FALSE(f.empty()) << w.procs[i]->output();
    EXPECT_EQ(f["rc"], std::to_string(chorusDataLoss)) << w.procs[i]->output();
    EXPECT_NE(f["err"].find("cannot_be_rebuilt"), std::string::npos) << f["err"];
    std::string want = "lost_with_their_holders:_" + std::to_string(killRanks[0]) + "," +
                       std::to_string(killRanks[1]) + ";_corrupt:_" + std::to_string(corruptRank);
    EXPECT_NE(f["err"].find(want), std::string::npos) << f["err"];
    EXPECT_EQ(f["weights_ok"], "0") << "a failed recovery must not touch the buffers";
  }
}

// One holder dies; a joiner arrives; the background protection after the
// membership update rebuilds the lost shard on the joiner. Two more holders
// die: 4 shards remain (3 without the re-protection), so recovery works. The
// joiner adopts the first victim's private buffer.
TEST(Snapshot, ReprotectedOntoJoinerSoTheNextLossesAreSurvivable) {
  TestCoordinator coord;
  Workers w;
  for (int i = 0; i < 6; ++i)
    w.procs.push_back(Proc::spawn(workerPath(), snapArgs(coord.address(), "reprotect", 6,
                                                         {"--snap-wait-size", "5", "--snap-joiners",
                                                          "1", "--snap-wait-size2", "4"})));
  for (auto& p : w.procs) ASSERT_TRUE(p->waitForLine("SNAPSHOT_TAKEN", 60000)) << w.dump();
  auto rankOf = byRank(w);
  int first = rankOf[2];
  std::string firstPeer = fields(w.procs[first]->lines("SNAPSHOT ")[0])["peer"];
  w.procs[first]->signal(SIGKILL);
  auto ja = snapArgs(
      coord.address(), "reprotect", 1,
      {"--joiner", "--snap-wait-size2", "4", "--snap-adopt", firstPeer, "--snap-adopt-rank", "2"});
  w.procs.push_back(Proc::spawn(workerPath(), ja));
  Proc& joiner = *w.procs.back();
  ASSERT_TRUE(joiner.waitForLine("PROTECTED", 60000)) << w.dump();
  ASSERT_EQ(fields(joiner.lines("PROTECTED")[0])["held"], "1") << w.dump();
  std::set<int> dead = {first, rankOf[0], rankOf[5]};
  w.procs[rankOf[0]]->signal(SIGKILL);
  w.procs[rankOf[5]]->signal(SIGKILL);
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (size_t i = 0; i < w.procs.size(); ++i) {
    if (dead.count(static_cast<int>(i))) continue;
    auto f = recoverLine(*w.procs[i]);
    ASSERT_FALSE(f.empty()) << w.procs[i]->output();
    EXPECT_EQ(f["rc"], "0") << w.procs[i]->output();
    EXPECT_EQ(f["weights_ok"], "1");
    EXPECT_EQ(f["step_ok"], "1");
    EXPECT_EQ(f["rng_ok"], "1") << w.procs[i]->output();
    EXPECT_EQ(f["revision"], "5");
  }
}

// A job snapshots with spill (asynchronously, computing meanwhile), ends;
// one shard file is damaged; a new job (new processes, new peer ids) loads
// the directory and recovers the exact state.
TEST(Snapshot, WholeJobRestartsFromSpilledFiles) {
  auto dir = std::filesystem::temp_directory_path() / ("chorus-snap-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    TestCoordinator coord;
    Workers w;
    for (int i = 0; i < 4; ++i)
      w.procs.push_back(
          Proc::spawn(workerPath(), snapArgs(coord.address(), "spill", 4,
                                             {"--snap-k", "2", "--snap-m", "2", "--snap-spill",
                                              dir.string(), "--snap-async"})));
    ASSERT_TRUE(w.waitAll(60000)) << w.dump();
    for (auto& p : w.procs) {
      EXPECT_EQ(p->exitCode(), 0) << p->output();
      EXPECT_EQ(recoverLine(*p)["rc"], "0") << p->output();
    }
  }
  int shardFiles = 0;
  std::filesystem::path victim;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << "temporary file left behind: " << name;
    if (name.find(".shard") != std::string::npos) {
      ++shardFiles;
      if (name.find(".shard1") != std::string::npos) victim = e.path();
    }
  }
  ASSERT_EQ(shardFiles, 4);
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  TestCoordinator coord;
  Workers w;
  for (int i = 0; i < 4; ++i)
    w.procs.push_back(Proc::spawn(
        workerPath(), snapArgs(coord.address(), "reload", 4, {"--snap-load", dir.string()})));
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  for (auto& p : w.procs) {
    auto load = p->lines("LOAD ");
    ASSERT_FALSE(load.empty()) << p->output();
    EXPECT_EQ(fields(load[0])["rc"], "0") << p->output();
    EXPECT_EQ(fields(load[0])["held"], "3");
    EXPECT_EQ(fields(load[0])["corrupt"], "1");
    auto f = recoverLine(*p);
    EXPECT_EQ(f["rc"], "0") << p->output();
    EXPECT_EQ(f["weights_ok"], "1");
    EXPECT_EQ(f["step_ok"], "1");
    EXPECT_EQ(f["revision"], "5");
  }
  std::filesystem::remove_all(dir);
}

// Compressed all-reduce (1-bit, error feedback) while a peer is killed:
// every iteration completes on the survivors (retried after the loss) and
// they hold identical bytes for every iteration.
TEST(CompressedFault, PeerKilledDuringCompressedAllReduces) {
  TestCoordinator coord;
  auto w = Workers::launch(4, coord.address(), "ckill",
                           {"--scenario", "compressloop", "--iters", "150", "--count", "262144",
                            "--op-timeout-ms", "20000"});
  for (auto& p : w.procs) ASSERT_TRUE(p->waitForLine("CLOOP it=40", 60000)) << w.dump();
  w.procs[2]->signal(SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  for (int i : {0, 1, 3}) ASSERT_TRUE(w.procs[i]->wait(60000)) << w.dump();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
  std::map<std::string, std::set<std::string>> byIt;
  int retried = 0;
  for (int i : {0, 1, 3}) {
    bool sawThree = false;  // (peers that finish first leave: the last lines may show fewer)
    for (const auto& l : w.procs[i]->lines("CLOOP ")) sawThree |= fields(l)["size"] == "3";
    EXPECT_TRUE(sawThree) << "the kill was not seen";
    EXPECT_EQ(w.procs[i]->exitCode(), 0) << w.procs[i]->output().substr(0, 3000);
    auto lines = w.procs[i]->lines("CLOOP ");
    ASSERT_EQ(lines.size(), 150u);
    for (const auto& l : lines) {
      auto f = fields(l);
      EXPECT_EQ(f["rc"], "0") << l;
      byIt[f["it"]].insert(f["hash"]);
      retried += f["attempts"] != "1";
    }
  }
  for (const auto& [it, hashes] : byIt)
    EXPECT_EQ(hashes.size(), 1u) << "survivors disagree at iteration " << it;
  std::printf("iterations retried after the kill (summed over survivors): %d\n", retried);
}

}  // namespace
