// chorus-demo: the main job. A local data-parallel training loop on several
// peers: peer 0 runs the coordinator inside its own process and launches the
// other peers; every step each peer computes a synthetic gradient, the
// gradients are averaged with an all-reduce (retried if a peer is lost),
// each peer applies the same SGD update, and the peers check that their
// parameters are still bit-identical. Pending joiners are admitted between
// steps (chorusPeersPending / chorusUpdateMembership).
//
//   chorus-demo --peers 4 --size 16M --steps 50
//   chorus-demo --join host:port --secret-env   (add a peer to a running demo)
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <xxhash.h>

#include "chorus.h"
#include "tools/common/launch.h"

namespace {

struct Args {
  int peers = 4;
  std::string size = "16M";
  int steps = 50;
  std::string join;
  std::string group = "demo";
  int rankHint = 0;
  int streams = 1;
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t parseBytes(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string suf(end ? end : "");
  if (suf == "K" || suf == "k") v *= 1024;
  if (suf == "M" || suf == "m") v *= 1024 * 1024;
  if (suf == "G" || suf == "g") v *= 1024.0 * 1024 * 1024;
  return static_cast<size_t>(v);
}

#define CHECK(expr)                                                                           \
  do {                                                                                        \
    chorusResult_t rc_ = (expr);                                                              \
    if (rc_ != chorusSuccess) {                                                               \
      std::fprintf(stderr, "[peer %d] %s: %s (%s)\n", rank, #expr, chorusGetErrorString(rc_), \
                   chorusGetLastError(comm));                                                 \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

int runPeer(const std::string& coordinator, const std::string& secret, const Args& a, bool lead) {
  int rank = -1;
  chorusComm_t comm = nullptr;
  chorusCommParams_t p;
  chorusCommParamsInit(&p);
  p.coordinator = coordinator.c_str();
  p.secret = secret.c_str();
  p.group = a.group.c_str();
  p.expectedPeers = a.join.empty() ? a.peers : 1;
  p.connectionsPerPeer = a.streams;
  CHECK(chorusCommCreate(&p, &comm));
  CHECK(chorusCommConnect(comm));
  int n = 0;
  uint64_t epoch = 0;
  chorusCommRank(comm, &rank);
  chorusCommWorldSize(comm, &n);
  chorusCommEpoch(comm, &epoch);
  if (lead || !a.join.empty())
    std::printf("[peer %d] joined: %d peers, epoch %llu\n", rank, n,
                static_cast<unsigned long long>(epoch));

  size_t count = parseBytes(a.size) / sizeof(float);
  if (count == 0) count = 1;
  std::vector<float> params(count, 0.0f), grad(count);
  // A joiner starts from the same parameters: here every step's update is a
  // pure function of the step, so it replays them (shared-state transfer
  // arrives with the shared-state feature).
  double totalBytes = 0, totalTime = 0;
  for (int step = 0; step < a.steps; ++step) {
    int pending = 0;
    // A joiner returns from connect where the members return from the
    // update that admitted it, so it skips the membership step once.
    if (a.join.empty() || step > 0) CHECK(chorusPeersPending(comm, &pending));
    if (pending > 0) {
      CHECK(chorusUpdateMembership(comm));
      chorusCommRank(comm, &rank);
      chorusCommWorldSize(comm, &n);
      chorusCommEpoch(comm, &epoch);
      if (rank == 0)
        std::printf("[peer 0] membership updated: %d peers, epoch %llu\n", n,
                    static_cast<unsigned long long>(epoch));
    }
    // Synthetic gradient: depends on the rank and the step.
    for (size_t i = 0; i < count; ++i)
      grad[i] = std::sin(0.001f * static_cast<float>(i) + static_cast<float>(step)) *
                static_cast<float>(rank + 1);
    chorusOpInfo_t info;
    info.size = sizeof(info);
    double t0 = now();
    CHECK(chorusAllReduceWithRetry(grad.data(), grad.data(), count, chorusFloat32, chorusAvg, 0,
                                   comm, &info));
    double dt = now() - t0;
    for (size_t i = 0; i < count; ++i) params[i] -= 0.01f * grad[i];
    // Parameters must be identical everywhere: compare hashes by min/max.
    uint64_t h = XXH3_64bits(params.data(), count * sizeof(float));
    uint64_t hmin = 0, hmax = 0;
    CHECK(chorusAllReduce(&h, &hmin, 1, chorusUint64, chorusMin, comm, nullptr));
    CHECK(chorusAllReduce(&h, &hmax, 1, chorusUint64, chorusMax, comm, nullptr));
    if (hmin != hmax) {
      std::fprintf(stderr, "[peer %d] step %d: parameters diverged across peers!\n", rank, step);
      return 3;
    }
    chorusCommRank(comm, &rank);
    chorusCommWorldSize(comm, &n);
    double bytes = static_cast<double>(count) * sizeof(float);
    double busbw = bytes / dt * (n > 1 ? 2.0 * (n - 1) / n : 1.0) / 1e9;
    if (step > 0) {  // the first step includes warm-up
      totalBytes += bytes;
      totalTime += dt;
    }
    if (rank == 0 && (step % 10 == 0 || step == a.steps - 1))
      std::printf(
          "[peer 0] step %3d  %d peers  all-reduce %8.2f ms  busbw %6.3f GB/s  "
          "(%s, %d contributor(s), attempt %d)  params in sync\n",
          step, n, dt * 1e3, busbw, info.algorithm, info.contributors, info.attempts);
    std::fflush(stdout);
  }
  if (rank == 0 && totalTime > 0) {
    double algbw = totalBytes / totalTime / 1e9;
    std::printf(
        "[peer 0] done: %d steps of %s on %d peers, mean all-reduce %.2f ms, algbw %.3f GB/s, "
        "busbw %.3f GB/s\n",
        a.steps, a.size.c_str(), n, totalTime / (a.steps - 1) * 1e3, algbw,
        algbw * (n > 1 ? 2.0 * (n - 1) / n : 1.0));
  }
  CHECK(chorusCommDestroy(comm));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  bool child = false;
  std::string coordinator;
  CLI::App app{"chorus-demo - a local data-parallel training loop on Chorus"};
  app.add_option("--peers,-n", a.peers, "peers to run (peer 0 embeds the coordinator)");
  app.add_option("--size", a.size, "gradient size per step (K/M/G)");
  app.add_option("--steps", a.steps, "training steps");
  app.add_option("--streams", a.streams, "TCP connections per peer pair");
  app.add_option("--join", a.join, "join a running demo at this coordinator address");
  app.add_option("--group", a.group, "peer group");
  app.add_flag("--child", child)->group("");
  app.add_option("--coordinator", coordinator)->group("");
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  chorusInit();

  const char* env = std::getenv("CHORUS_SECRET");
  std::string secret = env ? env : "";
  if (child) return runPeer(coordinator, secret, a, false);
  if (!a.join.empty()) return runPeer(a.join, secret, a, false);

  if (secret.empty()) secret = chorus_tools::randomSecret();
  setenv("CHORUS_SECRET", secret.c_str(), 1);
  chorus_tools::EmbeddedCoordinator coord;
  if (!coord.start(secret)) return 1;
  std::printf("chorus-demo: coordinator %s, %d peers, %s per step, %d steps\n",
              coord.address().c_str(), a.peers, a.size.c_str(), a.steps);
  std::printf(
      "chorus-demo: add a peer from another shell with\n"
      "  CHORUS_SECRET=%s %s --join %s --size %s --steps %d\n",
      secret.c_str(), chorus_tools::selfPath().c_str(), coord.address().c_str(), a.size.c_str(),
      a.steps);
  std::vector<pid_t> pids;
  for (int i = 1; i < a.peers; ++i) {
    pid_t pid = chorus_tools::spawnSelf(
        chorus_tools::selfPath(),
        {"--child", "--coordinator", coord.address(), "--peers", std::to_string(a.peers), "--size",
         a.size, "--steps", std::to_string(a.steps), "--group", a.group, "--streams",
         std::to_string(a.streams)});
    if (pid < 0) return 1;
    pids.push_back(pid);
  }
  int rc = runPeer(coord.address(), secret, a, true);
  int crc = chorus_tools::waitChildren(pids, 3600);
  chorusFinalize();
  return rc ? rc : crc;
}
