// The shared-memory transport (the default between peers of one host):
// every dtype x op x count between two processes through the rings (64 KiB
// rings, so large payloads wrap and fill them many times), the ring
// all-reduce reducing straight out of the rings, a killed peer detected
// through the socket that stays beside the rings, and a stale segment from
// a crashed run swept away.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "tests/common/cases.h"
#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

const std::vector<std::string> kShmEnv = {"CHORUS_SHM=1", "CHORUS_SHM_RING_BYTES=65536",
                                          "CHORUS_LOG_LEVEL=debug"};

TEST(Shm, EveryDtypeOpCountThroughTheRingsN2) {
  TestCoordinator coord;
  auto w = Workers::launch(
      2, coord.address(), "shmsweep",
      {"--scenario", "sweep", "--counts", "0,1,7,1000,65537,300001", "--count", "20001"},
      "test-secret", kShmEnv);
  ASSERT_TRUE(w.waitAll(120000)) << w.dump();
  expectAllCasesAgree(w, 100);
  for (auto& p : w.procs)
    EXPECT_NE(p->output().find("shared memory"), std::string::npos)
        << "the link did not use shared memory";
}

// The ring all-reduce adds its input to the arriving partial sums straight
// out of the shared-memory ring (no landing copy). N=3 has both kinds of
// reduce-scatter step (pass-on and final); every dtype and op, counts that
// make payloads wrap the 64 KiB rings mid-element, and odd-sized uint8/int8
// frames before them that leave later payloads misaligned in the ring. The
// peers must agree on every byte and match the expected results.
TEST(Shm, RingReducesStraightOutOfTheRingsN3) {
  TestCoordinator coord;
  std::vector<std::string> env = kShmEnv;
  env.push_back("CHORUS_ALGO=allreduce:ring");
  auto w = Workers::launch(3, coord.address(), "shmfused",
                           {"--scenario", "sweep", "--counts", "1,7,1001,65537,100003"},
                           "test-secret", env);
  ASSERT_TRUE(w.waitAll(180000)) << w.dump();
  expectAllCasesAgree(w, 100);
  for (auto& p : w.procs)
    EXPECT_NE(p->output().find("straight out of the ring"), std::string::npos)
        << "no payload was reduced on arrival\n"
        << p->output().substr(0, 3000);
}

TEST(Shm, KilledPeerIsDetectedAndLeavesNoSegment) {
  // A segment as a crashed earlier run would leave it (its pid is gone).
  const std::string stale = "/chorus-shm.999999999.0000000000000001.0000000000000002.0";
  int fd = ::shm_open(stale.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  TestCoordinator coord;
  auto w = Workers::launch(
      2, coord.address(), "shmkill",
      {"--scenario", "loop", "--iters", "1000000", "--count", "100000", "--op-timeout-ms", "20000"},
      "test-secret", kShmEnv);
  for (auto& p : w.procs) ASSERT_TRUE(p->waitForLine("OP it=", 30000, 20)) << w.dump();
  w.procs[1]->signal(SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  // The survivor goes on alone: its operations run in a view of one.
  bool alone = false;
  while (!alone && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
    w.procs[0]->pump(50);
    for (const auto& l : w.procs[0]->lines("OP ")) alone |= fields(l)["size"] == "1";
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(alone) << w.dump();
  EXPECT_LT(s, 10.0) << "the loss of a shared-memory peer took too long to detect";
  w.procs[0]->signal(SIGTERM);
  w.procs[0]->wait(5000);
  // The stale segment was swept; the live run's rings were unlinked once
  // mapped, so nothing of ours is left either.
  EXPECT_NE(::shm_unlink(stale.c_str()), 0) << "stale segment still there";
  std::string mine = "chorus-shm." + std::to_string(w.procs[0]->pid()) + ".";
  bool left = false;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) left |= std::string(e->d_name).rfind(mine, 0) == 0;
    ::closedir(d);
  }
  EXPECT_FALSE(left) << "a ring of the surviving peer is still linked";
}

// A /dev/shm too small for the rings (containers often get 64 MiB; here
// 1 MiB against 4 MiB rings): the rings cannot be reserved, so the link stays
// TCP and the job runs. A segment created sparse would instead kill the
// workers with SIGBUS at the first write past the space. Both workers share
// one private mount namespace with the small tmpfs over /dev/shm.
TEST(Shm, TooSmallDevShmFallsBackToTcp) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a private tmpfs";
  auto holder =
      Proc::spawn("/usr/bin/unshare",
                  {"-m", "--propagation", "private", "sh", "-c",
                   "mount -t tmpfs -o size=1m tmpfs /dev/shm && echo READY && exec sleep 300"});
  if (!holder->waitForLine("READY", 10000))
    GTEST_SKIP() << "cannot mount a tmpfs here: " << holder->output();
  const std::string ns = "--mount=/proc/" + std::to_string(holder->pid()) + "/ns/mnt";
  TestCoordinator coord;
  Workers w;
  for (int i = 0; i < 2; ++i)
    w.procs.push_back(
        Proc::spawn("/usr/bin/nsenter",
                    {ns, "--", workerPath(), "--coordinator", coord.address(), "--group",
                     "smallshm", "--expected", "2", "--secret", "test-secret", "--scenario",
                     "sweep", "--counts", "0,1,1000,300001", "--count", "300001"},
                    {"CHORUS_SHM=1", "CHORUS_SHM_RING_BYTES=4194304", "CHORUS_LOG_LEVEL=debug"}));
  bool done = w.waitAll(120000);
  holder->signal(SIGKILL);
  holder->wait(2000);
  ASSERT_TRUE(done) << w.dump();
  for (auto& p : w.procs) {
    EXPECT_EQ(p->exitCode(), 0) << w.dump();
    EXPECT_NE(p->output().find("stream 0: tcp"), std::string::npos)
        << "the link should have stayed TCP\n"
        << w.dump();
  }
  expectAllCasesAgree(w, 40);
}

}  // namespace
