// chorus-stress: churn and fault soak.
//
//   chorus-stress --peers 5 --duration 60 --seed 7
//   chorus-stress --peers 8 --duration 600 --mean-interval-ms 3000
//   chorus-stress --peers 4 --script "1500:kill,3000:join,4500:coord,6000:stop,8000:leave"
//   chorus-stress --peers 4 --streams 4 --events stream,kill   (as root: stream uses ss -K)
//
// Launches a coordinator and N peers (child processes of this binary). Each
// peer runs a training-style loop: admit pending peers, one blocking and
// several concurrent asynchronous all-reduces per step, every result checked
// for its exact value. The launcher applies churn -- kill -9, SIGSTOP,
// graceful leave, join, coordinator kill and restart, one data connection
// of a peer aborted from outside (`stream`, with `ss -K`: a TCP connection
// is replaced, dialled again, and no operation may fail because of it; a
// shared-memory link's socket only carries wake-ups and its loss removes
// the peer, so run this one with CHORUS_SHM=0) -- and checks across
// peers that every operation had one outcome and, when it succeeded, the
// same bytes everywhere. It reports operations, failures by kind, detection
// and recovery latencies (p50/p99/max) and exits non-zero on any parity
// violation, wrong value, timeout or hang.
#include <CLI/CLI.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <xxhash.h>

#include "chorus.h"
#include "tools/common/launch.h"
#include "tools/common/process.h"

namespace {

using chorus_tools::Process;

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------
// Peer role
// ---------------------------------------------------------------------------

std::atomic<bool> gStop{false}, gLeave{false};
void onTerm(int) {
  gStop = true;
}
void onUsr1(int) {
  gLeave = true;
}

struct PeerArgs {
  std::string coordinator;
  int expected = 1;
  bool joiner = false;
  size_t count = 20000;
  int asyncOps = 4;
  int opTimeoutMs = 30000;
};

int runPeer(const PeerArgs& a) {
  std::signal(SIGTERM, onTerm);
  std::signal(SIGUSR1, onUsr1);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  chorusInit();
  chorusCommParams_t p;
  chorusCommParamsInit(&p);
  p.coordinator = a.coordinator.c_str();
  p.group = "stress";
  p.expectedPeers = a.expected;
  p.opTimeoutMs = a.opTimeoutMs;
  chorusComm_t comm = nullptr;
  if (chorusCommCreate(&p, &comm) != chorusSuccess || chorusCommConnect(comm) != chorusSuccess) {
    std::printf("FAILED connect %s\n", chorusGetLastError(comm));
    return 2;
  }
  int rank = 0, n = 0;
  chorusCommRank(comm, &rank);
  chorusCommWorldSize(comm, &n);
  std::printf("READY rank=%d size=%d t=%lld\n", rank, n, static_cast<long long>(wallMs()));

  auto syncStep = [&](int64_t* step) {
    int64_t mine = *step, agreed = 0;
    chorusResult_t rc =
        chorusAllReduceWithRetry(&mine, &agreed, 1, chorusInt64, chorusMax, 0, comm, nullptr);
    if (rc == chorusSuccess) *step = agreed;
    return rc;
  };
  int64_t step = 0;
  if (a.joiner && syncStep(&step) != chorusSuccess) return 2;

  const int k = 1 + a.asyncOps;
  std::vector<std::vector<float>> bufs(k);
  for (int i = 0; i < k; ++i) bufs[i].resize(a.count / (i + 1) + i * 37 + 1);
  std::vector<chorusRequest_t> reqs(k);
  bool announced = false;
  bool firstStep = true;
  int exitCode = 0;
  for (;; ++step) {
    if (gLeave && !announced) {
      chorusAnnounceLeave(comm);
      announced = true;
    }
    int pending = 0;
    chorusResult_t rc = chorusSuccess;
    // A joiner was admitted by the members' update of this step and has
    // synced the step with them: it resumes where they return from it.
    if (!(a.joiner && firstStep)) rc = chorusPeersPending(comm, &pending);
    firstStep = false;
    if (rc == chorusSuccess && pending > 0) {
      rc = chorusUpdateMembership(comm);
      if (rc == chorusSuccess && announced) {
        std::printf("LEFT step=%lld t=%lld\n", static_cast<long long>(step),
                    static_cast<long long>(wallMs()));
        break;
      }
      if (rc == chorusSuccess) rc = syncStep(&step);
    }
    if (rc == chorusRemoved) {
      std::printf("REMOVED t=%lld %s\n", static_cast<long long>(wallMs()),
                  chorusGetLastError(comm));
      exitCode = 3;
      break;
    }
    if (rc != chorusSuccess && rc != chorusPeerLost) {
      std::printf("ERROR membership rc=%d %s\n", rc, chorusGetLastError(comm));
      exitCode = 1;
      break;
    }
    float value = static_cast<float>(step % 7 + 1);
    for (int i = 0; i < k; ++i) std::fill(bufs[i].begin(), bufs[i].end(), value + i);
    // Op 0 blocking; ops 1..k-1 asynchronous with their own tags, issued in a
    // rank-dependent order.
    std::vector<chorusResult_t> rcs(k, chorusSuccess);
    std::vector<chorusOpInfo_t> infos(k);
    for (auto& in : infos) in.size = sizeof(in);
    chorusCommRank(comm, &rank);
    for (int j = 1; j < k; ++j) {
      int i = 1 + (j - 1 + rank) % (k - 1);
      rcs[i] = chorusAllReduceAsync(bufs[i].data(), bufs[i].data(), bufs[i].size(), chorusFloat32,
                                    chorusSum, static_cast<uint64_t>(i), comm, &reqs[i]);
      if (rcs[i] != chorusSuccess) reqs[i] = nullptr;
    }
    rcs[0] = chorusAllReduce(bufs[0].data(), bufs[0].data(), bufs[0].size(), chorusFloat32,
                             chorusSum, comm, &infos[0]);
    for (int i = 1; i < k; ++i)
      if (reqs[i]) rcs[i] = chorusWait(&reqs[i], &infos[i]);
    int64_t t = wallMs();
    bool removed = false;
    for (int i = 0; i < k; ++i) {
      bool wrong = false;
      uint64_t h = 0;
      if (rcs[i] == chorusSuccess) {
        float want = static_cast<float>(infos[i].contributors) * (value + i);
        for (float x : bufs[i])
          if (x != want) {
            wrong = true;
            break;
          }
        h = XXH3_64bits(bufs[i].data(), bufs[i].size() * sizeof(float));
      }
      if (rcs[i] == chorusRemoved) removed = true;
      std::printf(
          "OP step=%lld k=%d rc=%d hash=%016llx contributors=%d epoch=%llu wrong=%d t=%lld\n",
          static_cast<long long>(step), i, rcs[i], static_cast<unsigned long long>(h),
          infos[i].contributors, static_cast<unsigned long long>(infos[i].epoch), wrong ? 1 : 0,
          static_cast<long long>(t));
      if (rcs[i] != chorusSuccess && rcs[i] != chorusPeerLost && rcs[i] != chorusRemoved)
        std::printf("ERROR op rc=%d %s\n", rcs[i], chorusGetLastError(comm));
    }
    if (removed) {
      std::printf("REMOVED t=%lld\n", static_cast<long long>(wallMs()));
      exitCode = 3;
      break;
    }
    int32_t stop = gStop ? 1 : 0, anyStop = 0;
    rc = chorusAllReduceWithRetry(&stop, &anyStop, 1, chorusInt32, chorusMax, 0, comm, nullptr);
    if (rc == chorusRemoved) {
      exitCode = 3;
      break;
    }
    if (rc == chorusSuccess && anyStop) break;
  }
  chorusCommDestroy(comm);
  chorusFinalize();
  return exitCode;
}

// ---------------------------------------------------------------------------
// Coordinator role (a separate process, so it can be killed)
// ---------------------------------------------------------------------------

int runCoordinator(const std::string& bind, int failureTimeoutMs) {
  std::signal(SIGTERM, onTerm);
  chorusInit();
  chorusCoordinatorParams_t p;
  chorusCoordinatorParamsInit(&p);
  p.bindAddress = bind.c_str();
  p.failureTimeoutMs = failureTimeoutMs;
  chorusCoordinator_t c = nullptr;
  if (chorusCoordinatorStart(&p, &c) != chorusSuccess) {
    std::fprintf(stderr, "coordinator: %s\n", chorusGetLastError(nullptr));
    return 1;
  }
  std::printf("COORDINATOR up\n");
  std::fflush(stdout);
  while (!gStop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  chorusCoordinatorStop(c);
  return 0;
}

// ---------------------------------------------------------------------------
// Launcher
// ---------------------------------------------------------------------------

struct Options {
  int peers = 5, minPeers = 3, maxPeers = 8;
  double duration = 60;
  long long maxOps = 0;
  unsigned seed = 1;
  std::string churn = "random";
  std::string events = "kill,stop,leave,join,coord";
  std::string script;
  int meanIntervalMs = 3000;
  int stopMs = 2500;
  int coordDownMs = 500;
  size_t count = 20000;
  int asyncOps = 4;
  int failureTimeoutMs = 1000;
  int hangMs = 30000;
  std::string logDir;   // write every child's output here at the end
  std::string streams;  // data streams per peer pair (CHORUS_CONNECTIONS_PER_PEER), "" = default
};

struct Peer {
  std::unique_ptr<Process> proc;
  int64_t spawnedAt = 0;
  int64_t lastProgress = 0;
  bool ready = false;
  bool killed = false, stopped = false, leaving = false, done = false;
  int64_t contAt = 0;
};

struct Outcome {
  std::map<int, int> rcByPeer;
  std::map<int, std::string> hashByPeer;
  std::map<int, int> contributorsByPeer;
  int64_t firstT = 0;
};

struct Event {
  std::string kind;
  int64_t t;
  int viewSize;  // contributors of the last successful operation before the event
  int64_t detected = -1, recovered = -1;
};

int freePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(s);
  return port;
}

// Abort one established data connection of process pid (not its coordinator
// link) from outside: the kernel fails the socket and resets the other end.
// Returns false if there was none or ss could not (not root, old kernel).
bool abortDataConnection(pid_t pid, int coordinatorPort, std::mt19937& rng) {
  FILE* f = ::popen("ss -tnpH state established 2>/dev/null", "r");
  if (!f) return false;
  std::vector<std::pair<std::string, std::string>> socks;  // local port, peer port
  char buf[1024];
  const std::string owner = "pid=" + std::to_string(pid) + ",";
  const std::string coordPort = std::to_string(coordinatorPort);
  while (std::fgets(buf, sizeof(buf), f)) {
    std::string line = buf;
    if (line.find(owner) == std::string::npos) continue;
    std::istringstream is(line);
    std::string recvq, sendq, local, peer;
    if (!(is >> recvq >> sendq >> local >> peer)) continue;
    std::string lport = local.substr(local.rfind(':') + 1),
                pport = peer.substr(peer.rfind(':') + 1);
    if (lport == coordPort || pport == coordPort) continue;
    socks.emplace_back(lport, pport);
  }
  ::pclose(f);
  if (socks.empty()) return false;
  auto [lport, pport] = socks[rng() % socks.size()];
  std::string cmd =
      "ss -K -tnH '( sport = :" + lport + " and dport = :" + pport + " )' 2>/dev/null | grep -q .";
  return std::system(cmd.c_str()) == 0;
}

std::string pct(std::vector<int64_t> v) {
  if (v.empty()) return "n/a";
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * v.size())) - 1;
    return v[std::min(i, v.size() - 1)];
  };
  std::ostringstream os;
  os << "p50 " << at(0.5) << " ms, p99 " << at(0.99) << " ms, max " << v.back()
     << " ms (n=" << v.size() << ")";
  return os.str();
}

int runLauncher(const Options& o) {
  std::string self = chorus_tools::selfPath();
  std::mt19937 rng(o.seed);
  std::string secret = chorus_tools::randomSecret();
  setenv("CHORUS_SECRET", secret.c_str(), 1);
  if (!o.streams.empty()) setenv("CHORUS_CONNECTIONS_PER_PEER", o.streams.c_str(), 1);
  int port = freePort();
  std::string addr = "127.0.0.1:" + std::to_string(port);
  auto startCoordinator = [&] {
    auto c = Process::spawn(self, {"--role", "coordinator", "--bind", addr, "--failure-timeout-ms",
                                   std::to_string(o.failureTimeoutMs)});
    if (!c->waitForLine("COORDINATOR up", 10000)) {
      std::fprintf(stderr, "chorus-stress: coordinator did not start:\n%s\n", c->output().c_str());
      return std::unique_ptr<Process>();
    }
    return c;
  };
  std::vector<std::unique_ptr<Process>> coordinators;  // finished ones, for --log-dir
  auto coord = startCoordinator();
  if (!coord) return 1;
  int64_t coordRestartAt = 0;

  std::vector<Peer> peers;
  auto spawnPeer = [&](bool joiner, int expected) {
    Peer p;
    std::vector<std::string> args = {"--role",        "peer",
                                     "--coordinator", addr,
                                     "--expected",    std::to_string(expected),
                                     "--count",       std::to_string(o.count),
                                     "--async",       std::to_string(o.asyncOps)};
    if (joiner) args.push_back("--joiner");
    p.proc = Process::spawn(self, args);
    p.spawnedAt = p.lastProgress = wallMs();
    peers.push_back(std::move(p));
  };
  for (int i = 0; i < o.peers; ++i) spawnPeer(false, o.peers);

  std::map<std::pair<long long, int>, Outcome> ops;
  std::vector<Event> events;
  std::map<int, long long> failuresByRc;
  long long wrongValues = 0, hangs = 0, errors = 0;
  std::vector<std::string> problems;

  // Scripted or random churn.
  std::vector<std::pair<int64_t, std::string>> script;
  if (!o.script.empty()) {
    std::stringstream ss(o.script);
    std::string item;
    while (std::getline(ss, item, ',')) {
      auto colon = item.find(':');
      if (colon == std::string::npos) continue;
      script.emplace_back(std::stoll(item.substr(0, colon)), item.substr(colon + 1));
    }
  }
  std::vector<std::string> kinds;
  {
    std::stringstream ss(o.events);
    std::string item;
    while (std::getline(ss, item, ',')) kinds.push_back(item);
  }
  std::exponential_distribution<double> gap(1.0 / std::max(1, o.meanIntervalMs));
  int64_t start = wallMs();
  int64_t nextEvent = start + 2000 + static_cast<int64_t>(gap(rng));
  size_t scriptIdx = 0;
  bool stopping = false;
  int64_t stopAt = 0;

  auto alive = [&]() {
    std::vector<int> a;
    for (size_t i = 0; i < peers.size(); ++i)
      if (!peers[i].killed && !peers[i].stopped && !peers[i].leaving && !peers[i].done &&
          peers[i].ready)
        a.push_back(static_cast<int>(i));
    return a;
  };
  int lastViewSize = 0;  // contributors of the latest successful operation
  auto countOps = [&] {
    long long n = 0;
    for (auto& [key, out] : ops) n += out.rcByPeer.empty() ? 0 : 1;
    return n;
  };

  auto apply = [&](const std::string& kind) {
    auto a = alive();
    int64_t now = wallMs();
    if (kind == "join") {
      if (static_cast<int>(a.size()) >= o.maxPeers) return;
      spawnPeer(true, 1);
      events.push_back({"join", now, lastViewSize});
      return;
    }
    if (kind == "coord") {
      if (!coord || coordRestartAt) return;
      coord->signal(SIGKILL);
      coord->wait(5000);
      coordinators.push_back(std::move(coord));
      coordRestartAt = now + o.coordDownMs;
      events.push_back({"coord", now, lastViewSize});
      return;
    }
    if (kind == "stream") {
      if (a.empty()) return;
      if (abortDataConnection(peers[a[rng() % a.size()]].proc->pid(), port, rng)) {
        events.push_back({"stream", now, lastViewSize});
      }
      return;
    }
    if (static_cast<int>(a.size()) <= o.minPeers || !coord) return;
    int victim = a[rng() % a.size()];
    Peer& p = peers[victim];
    if (kind == "kill") {
      p.proc->signal(SIGKILL);
      p.killed = true;
    } else if (kind == "stop") {
      p.proc->signal(SIGSTOP);
      p.stopped = true;
      p.contAt = now + o.stopMs;
    } else if (kind == "leave") {
      p.proc->signal(SIGUSR1);
      p.leaving = true;
    } else {
      return;
    }
    // An earlier event that has shown no effect yet never will be told
    // apart from this one: close its window (a stall that ended before the
    // coordinator noticed, e.g. while the coordinator itself was down).
    for (Event& e : events)
      if (e.detected == -1) e.detected = e.recovered = -2;
    events.push_back({kind, now, lastViewSize});
  };

  for (;;) {
    int64_t now = wallMs();
    // Read every child's new lines.
    for (size_t i = 0; i < peers.size(); ++i) {
      Peer& p = peers[i];
      if (p.done) continue;
      p.proc->pump(0);
      for (const std::string& line : p.proc->newLines()) {
        auto f = chorus_tools::fields(line);
        if (line.rfind("READY", 0) == 0) {
          p.ready = true;
          p.lastProgress = now;
        } else if (line.rfind("OP ", 0) == 0) {
          p.lastProgress = now;
          int rc = std::stoi(f["rc"]);
          if (rc == 10) continue;  // a removed peer is not a survivor
          Outcome& out = ops[{std::stoll(f["step"]), std::stoi(f["k"])}];
          out.rcByPeer[static_cast<int>(i)] = rc;
          out.hashByPeer[static_cast<int>(i)] = f["hash"];
          out.contributorsByPeer[static_cast<int>(i)] = std::stoi(f["contributors"]);
          int64_t t = std::stoll(f["t"]);
          if (!out.firstT || t < out.firstT) out.firstT = t;
          if (f["wrong"] == "1") {
            ++wrongValues;
            problems.push_back("wrong value: " + line);
          }
          // Detection / recovery of churn events.
          int contributors = std::stoi(f["contributors"]);
          for (Event& e : events) {
            if (e.kind == "join" || e.kind == "coord" || e.kind == "stream" || t < e.t) continue;
            bool fewer = rc == 0 && contributors < e.viewSize;
            if ((rc == 9 || fewer) && e.detected < 0) e.detected = t - e.t;
            if (fewer && e.recovered < 0) e.recovered = t - e.t;
          }
          if (rc == 0) lastViewSize = contributors;
        } else if (line.rfind("ERROR", 0) == 0) {
          ++errors;
          problems.push_back("peer " + std::to_string(i) + ": " + line);
        }
      }
      if (p.proc->wait(0)) {
        p.done = true;
        int code = p.proc->exitCode();
        bool expected = p.killed || (p.stopped && code == 3) || (stopping && code == 0) ||
                        (p.leaving && code == 0);
        if (!expected && !(code == 3 && p.contAt)) {
          ++errors;
          problems.push_back(
              "peer " + std::to_string(i) + " exited with " + std::to_string(code) + ": " +
              p.proc->output().substr(
                  p.proc->output().size() > 1500 ? p.proc->output().size() - 1500 : 0));
        }
      }
      // A stalled peer resumes (and learns it was removed).
      if (p.stopped && p.contAt && now >= p.contAt) {
        p.proc->signal(SIGCONT);
        p.contAt = 0;
      }
      // Hang: alive, not stalled on purpose, and no progress for too long.
      if (!p.done && !p.killed && !p.stopped && !stopping && now - p.lastProgress > o.hangMs) {
        ++hangs;
        problems.push_back("peer " + std::to_string(i) + " made no progress for " +
                           std::to_string(now - p.lastProgress) + " ms");
        p.lastProgress = now;
      }
    }
    if (coordRestartAt && now >= coordRestartAt) {
      coord = startCoordinator();
      if (!coord) return 1;
      coordRestartAt = 0;
    }
    // Churn.
    if (!stopping) {
      if (!script.empty()) {
        while (scriptIdx < script.size() && now - start >= script[scriptIdx].first)
          apply(script[scriptIdx++].second);
      } else if (o.churn == "random" && now >= nextEvent && !kinds.empty()) {
        apply(kinds[rng() % kinds.size()]);
        nextEvent = now + std::max<int64_t>(200, static_cast<int64_t>(gap(rng)));
      }
      // Keep at least minPeers running.
      int live = 0;
      for (auto& p : peers)
        if (!p.done && !p.killed && !p.stopped && !p.leaving) ++live;
      if (live < o.minPeers && now - start > 1000) spawnPeer(true, 1);
    }
    bool timeUp = (now - start) / 1000.0 >= o.duration;
    bool opsUp = o.maxOps > 0 && countOps() >= o.maxOps;
    if (!stopping && (timeUp || opsUp)) {
      stopping = true;
      stopAt = now;
      for (auto& p : peers) {
        if (p.done) continue;
        if (p.stopped) p.proc->signal(SIGCONT);
        p.proc->signal(SIGTERM);
      }
    }
    if (stopping) {
      bool all = true;
      for (auto& p : peers) all = all && p.done;
      if (all) break;
      if (now - stopAt > 60000) {
        for (size_t i = 0; i < peers.size(); ++i)
          if (!peers[i].done) {
            ++hangs;
            problems.push_back("peer " + std::to_string(i) + " did not stop");
            peers[i].proc->signal(SIGKILL);
            peers[i].proc->wait(5000);
            peers[i].done = true;
          }
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (coord) {
    coord->signal(SIGTERM);
    coord->wait(5000);
    coordinators.push_back(std::move(coord));
  }
  if (!o.logDir.empty()) {
    auto dump = [&](const std::string& name, const Process& p) {
      FILE* f = std::fopen((o.logDir + "/" + name).c_str(), "w");
      if (!f) return;
      std::fwrite(p.output().data(), 1, p.output().size(), f);
      std::fclose(f);
    };
    for (size_t i = 0; i < peers.size(); ++i)
      dump("peer" + std::to_string(i) + ".log", *peers[i].proc);
    for (size_t i = 0; i < coordinators.size(); ++i)
      dump("coordinator" + std::to_string(i) + ".log", *coordinators[i]);
  }

  // Parity: one outcome per operation among the peers that reported it, and
  // the same bytes wherever it succeeded.
  long long violations = 0, succeeded = 0;
  for (auto& [key, out] : ops) {
    std::set<int> rcs;
    std::set<std::string> hashes;
    for (auto& [peer, rc] : out.rcByPeer) {
      rcs.insert(rc);
      if (rc == 0) hashes.insert(out.hashByPeer[peer]);
    }
    if (rcs.size() > 1 || hashes.size() > 1) {
      ++violations;
      std::ostringstream os;
      os << "parity violation at step " << key.first << " op " << key.second << ":";
      for (auto& [peer, rc] : out.rcByPeer) os << " peer" << peer << "=rc" << rc;
      problems.push_back(os.str());
    }
    int rc = *rcs.begin();
    if (rc == 0)
      ++succeeded;
    else
      ++failuresByRc[rc];
  }
  std::map<std::string, std::vector<int64_t>> detection, recovery;
  std::map<std::string, int> eventCounts, noEffect;
  for (const Event& e : events) {
    ++eventCounts[e.kind];
    if (e.detected == -2) ++noEffect[e.kind];
    if (e.detected >= 0) detection[e.kind].push_back(e.detected);
    if (e.recovered >= 0) recovery[e.kind].push_back(e.recovered);
  }
  double secs = (wallMs() - start) / 1000.0;
  std::printf("chorus-stress report (seed %u, %.1f s, %zu peers launched)\n", o.seed, secs,
              peers.size());
  std::printf("  operations:        %lld (%lld succeeded)\n", static_cast<long long>(ops.size()),
              succeeded);
  std::printf("  failed operations:");
  if (failuresByRc.empty()) std::printf(" none");
  for (auto& [rc, n] : failuresByRc)
    std::printf(" %s=%lld", chorusGetErrorString(static_cast<chorusResult_t>(rc)), n);
  std::printf("\n  churn events:     ");
  if (eventCounts.empty()) std::printf(" none");
  for (auto& [k, n] : eventCounts) std::printf(" %s=%d", k.c_str(), n);
  std::printf("\n");
  for (const char* k : {"kill", "stop", "leave"}) {
    if (!eventCounts.count(k)) continue;
    std::printf("  %-5s detection (event -> survivors see it):          %s\n", k,
                pct(detection[k]).c_str());
    std::printf("  %-5s recovery  (event -> first success in new view): %s\n", k,
                pct(recovery[k]).c_str());
    if (noEffect[k])
      std::printf("  %-5s events with no view change before the next event: %d\n", k, noEffect[k]);
  }
  std::printf("  parity violations: %lld   wrong values: %lld   hangs: %lld   errors: %lld\n",
              violations, wrongValues, hangs, errors);
  for (size_t i = 0; i < problems.size() && i < 20; ++i)
    std::printf("  ! %s\n", problems[i].c_str());
  bool ok = violations == 0 && wrongValues == 0 && hangs == 0 && errors == 0 &&
            failuresByRc.count(chorusTimeout) == 0 && succeeded > 0;
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  PeerArgs pa;
  std::string role = "launcher", bind;
  CLI::App app{"chorus-stress - churn and fault soak for Chorus"};
  app.add_option("--peers,-n", o.peers, "peers at the start");
  app.add_option("--min-peers", o.minPeers, "never churn below this many live peers");
  app.add_option("--max-peers", o.maxPeers, "never join above this many");
  app.add_option("--duration", o.duration, "seconds to run");
  app.add_option("--ops", o.maxOps, "stop after this many operations (0 = by duration)");
  app.add_option("--seed", o.seed, "random seed for the churn schedule");
  app.add_option("--churn", o.churn, "random or none");
  app.add_option("--events", o.events, "random event kinds: kill,stop,leave,join,coord,stream");
  app.add_option("--streams", o.streams, "data streams per peer pair (a number or auto)");
  app.add_option("--script", o.script, "scripted churn: ms:kind,... (overrides --churn)");
  app.add_option("--mean-interval-ms", o.meanIntervalMs, "mean time between random events");
  app.add_option("--stop-ms", o.stopMs, "how long a SIGSTOPped peer stays stopped");
  app.add_option("--count", o.count, "floats in the blocking all-reduce");
  app.add_option("--async", o.asyncOps, "concurrent asynchronous all-reduces per step");
  app.add_option("--failure-timeout-ms", o.failureTimeoutMs, "coordinator failure timeout");
  app.add_option("--hang-ms", o.hangMs, "no progress for this long counts as a hang");
  app.add_option("--log-dir", o.logDir, "write each child's output to this directory");
  app.add_option("--role", role)->group("");
  app.add_option("--coordinator", pa.coordinator)->group("");
  app.add_option("--expected", pa.expected)->group("");
  app.add_flag("--joiner", pa.joiner)->group("");
  app.add_option("--bind", bind)->group("");
  CLI11_PARSE(app, argc, argv);
  pa.count = o.count;
  pa.asyncOps = o.asyncOps;
  if (role == "peer") return runPeer(pa);
  if (role == "coordinator") return runCoordinator(bind, o.failureTimeoutMs);
  if (o.minPeers < 1 || o.peers < o.minPeers) {
    std::fprintf(stderr, "chorus-stress: need 1 <= --min-peers <= --peers\n");
    return 2;
  }
  return runLauncher(o);
}
