// chorus-state-bench: throughput of the shared-state machinery.
//
//   chorus-state-bench codec --state 256M            # ISA-L raw vs Chorus codec, one core
//   chorus-state-bench snapshot --peers 6 --k 4 --m 2 --state 256M
//   chorus-state-bench transfer --senders 4 --state 1G   # a joiner pulls the state
//
// codec: raw ec_encode_data (all m rows, and one row: what one parity holder
// computes) beside Chorus' ErasureCode encode/decode, GB/s of data input per
// core. snapshot: chorusSnapshot across local peers; the parity holders'
// encode time (from registered buffers to the finished shard) as GB/s of
// input. transfer: senders hold the state, one receive-only joiner syncs;
// GB/s = state bytes / sync time. Every figure is the best of --reps runs and
// the median is printed beside it.
#include <isa-l/erasure_code.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "chorus.h"
#include "src/state/erasure.h"
#include "src/state/snapshot.h"
#include "tools/common/launch.h"

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

size_t parseBytes(const std::string& s) {
  size_t mult = 1;
  std::string num = s;
  char last = s.empty() ? 0 : s.back();
  if (last == 'K' || last == 'k') mult = 1 << 10;
  if (last == 'M' || last == 'm') mult = 1 << 20;
  if (last == 'G' || last == 'g') mult = size_t{1} << 30;
  if (mult > 1) num.pop_back();
  return static_cast<size_t>(std::stoull(num)) * mult;
}

struct Stats {
  std::vector<double> v;
  double best() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
  double median() const {
    if (v.empty()) return 0;
    auto c = v;
    std::sort(c.begin(), c.end());
    return c[c.size() / 2];
  }
};

// ---- codec (one process, one core) -------------------------------------------

int runCodec(size_t state, int reps) {
  std::printf("# Reed-Solomon over GF(2^8), Cauchy matrix; state %zu MiB; GB/s of data input\n",
              state >> 20);
  std::printf("# %-5s %-34s %10s %10s\n", "k+m", "what", "best", "median");
  for (auto [k, m] : std::vector<std::pair<int, int>>{{4, 2}, {8, 2}, {8, 4}}) {
    size_t len = (state / k + 63) / 64 * 64;
    std::vector<std::vector<uint8_t>> shards(k + m, std::vector<uint8_t>(len));
    std::mt19937_64 rng(42);
    for (int i = 0; i < k; ++i)
      for (size_t j = 0; j < len; j += 8) {
        uint64_t x = rng();
        std::memcpy(shards[i].data() + j, &x, std::min<size_t>(8, len - j));
      }
    std::vector<uint8_t*> ptr;
    for (auto& s : shards) ptr.push_back(s.data());
    const double input = static_cast<double>(len) * k;

    // Raw ISA-L, exactly as its documentation uses it.
    std::vector<uint8_t> matrix(static_cast<size_t>(k + m) * k), tables(32 * k * m);
    gf_gen_cauchy1_matrix(matrix.data(), k + m, k);
    ec_init_tables(k, m, matrix.data() + k * k, tables.data());
    Stats raw, rawOne, ours, ourOne, dec;
    for (int r = 0; r < reps; ++r) {
      auto t0 = Clock::now();
      ec_encode_data(static_cast<int>(len), k, m, tables.data(), ptr.data(), ptr.data() + k);
      raw.v.push_back(input / secondsSince(t0) / 1e9);
      t0 = Clock::now();
      ec_encode_data(static_cast<int>(len), k, 1, tables.data(), ptr.data(), ptr.data() + k);
      rawOne.v.push_back(input / secondsSince(t0) / 1e9);
    }
    auto ec = chorus::state::ErasureCode::create(k, m).value();
    std::vector<uint8_t> ref = shards[k];
    for (int r = 0; r < reps; ++r) {
      auto t0 = Clock::now();
      ec.encode(ptr.data(), ptr.data() + k, len);
      ours.v.push_back(input / secondsSince(t0) / 1e9);
      t0 = Clock::now();
      ec.encodeOne(0, ptr.data(), ptr[k], len);
      ourOne.v.push_back(input / secondsSince(t0) / 1e9);
      // Lose m data shards, rebuild them from the rest.
      std::vector<bool> present(k + m, true), rebuild(k + m, false);
      for (int i = 0; i < m; ++i) present[i] = false, rebuild[i] = true;
      t0 = Clock::now();
      if (!ec.decode(ptr.data(), present, rebuild, len).isOk()) return 1;
      dec.v.push_back(input / secondsSince(t0) / 1e9);
    }
    // The snapshot's encode stage: a parity holder's shard computed from the
    // registered buffer (here one section holding the k data shards' bytes).
    Stats stage;
    {
      std::vector<uint8_t> buffer(len * k);
      for (int i = 0; i < k; ++i) std::memcpy(buffer.data() + len * i, shards[i].data(), len);
      chorus::state::Manifest man;
      man.k = k;
      man.m = m;
      man.stateBytes = buffer.size();
      man.shardBytes = len;
      chorus::state::Section sec;
      sec.name = "state";
      sec.bytes = buffer.size();
      man.sections = {sec};
      chorus::state::Image img;
      img.m = &man;
      img.src = {buffer.data()};
      std::vector<uint8_t> out(len);
      for (int r = 0; r < reps; ++r) {
        auto t0 = Clock::now();
        chorus::state::computeShard(ec, img, k, out.data());
        stage.v.push_back(input / secondsSince(t0) / 1e9);
      }
      if (out != ref) {
        std::fprintf(stderr, "snapshot encode stage mismatch\n");
        return 1;
      }
    }
    if (shards[k] != ref) {
      std::fprintf(stderr, "encode mismatch\n");
      return 1;
    }
    std::string km = std::to_string(k) + "+" + std::to_string(m);
    auto row = [&](const char* what, const Stats& s) {
      std::printf("  %-5s %-34s %10.2f %10.2f\n", km.c_str(), what, s.best(), s.median());
    };
    row("raw ISA-L encode (m rows)", raw);
    row("raw ISA-L encode (1 row)", rawOne);
    row("chorus encode (m rows)", ours);
    row("chorus encodeOne (1 row)", ourOne);
    row("chorus decode (m data shards lost)", dec);
    row("chorus snapshot encode stage (1 row)", stage);
  }
  return 0;
}

// ---- multi-process modes ------------------------------------------------------

struct Args {
  std::string mode, coordinator, secret, group = "state-bench", role;
  int peers = 6, k = 4, m = 2, senders = 1, reps = 3, expected = 0, timeoutSec = 600;
  std::string state = "256M";
  bool worker = false;
};

chorusComm_t connect(const Args& a) {
  chorusInit();
  chorusCommParams_t p;
  chorusCommParamsInit(&p);
  p.coordinator = a.coordinator.c_str();
  p.secret = a.secret.c_str();
  p.group = a.group.c_str();
  p.expectedPeers = a.expected;
  chorusComm_t comm = nullptr;
  if (chorusCommCreate(&p, &comm) != chorusSuccess || chorusCommConnect(comm) != chorusSuccess) {
    std::fprintf(stderr, "connect failed: %s\n", chorusGetLastError(comm));
    return nullptr;
  }
  return comm;
}

void fill(std::vector<uint8_t>& buf) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(buf.data() + i, &x, 8);
  }
}

int workerSnapshot(const Args& a) {
  chorusComm_t comm = connect(a);
  if (!comm) return 1;
  int rank = 0;
  chorusCommRank(comm, &rank);
  std::vector<uint8_t> state(parseBytes(a.state));
  fill(state);
  chorusStateRegister(comm, "state", state.data(), state.size(), chorusUint8, 0);
  chorusStateSetRevision(comm, 1);
  Stats codec, wall;
  uint64_t shardBytes = 0;
  for (int r = 0; r < a.reps; ++r) {
    chorusSnapshotInfo_t info;
    std::memset(&info, 0, sizeof(info));
    info.size = sizeof(info);
    auto t0 = Clock::now();
    if (chorusSnapshot(comm, a.k, a.m, nullptr, &info) != chorusSuccess) {
      std::fprintf(stderr, "snapshot failed: %s\n", chorusGetLastError(comm));
      return 1;
    }
    double s = secondsSince(t0);
    shardBytes = info.shardBytes;
    wall.v.push_back(static_cast<double>(state.size()) / s / 1e9);
    if (info.codecSeconds > 0)
      codec.v.push_back(static_cast<double>(info.shardBytes) * a.k / info.codecSeconds / 1e9);
  }
  // Rank k holds the first parity shard: its encode is the snapshot's cost.
  if (rank == a.k)
    std::printf(
        "snapshot %d+%d peers=%d state=%zu MiB shard=%llu KiB: parity-holder encode %.2f GB/s "
        "(median %.2f); chorusSnapshot wall %.2f GB/s of state (median %.2f)\n",
        a.k, a.m, a.expected, state.size() >> 20, static_cast<unsigned long long>(shardBytes >> 10),
        codec.best(), codec.median(), wall.best(), wall.median());
  std::fflush(stdout);
  chorusCommDestroy(comm);
  chorusFinalize();
  return 0;
}

int workerTransfer(const Args& a) {
  chorusComm_t comm = connect(a);
  if (!comm) return 1;
  int rank = 0, n = 0;
  chorusCommRank(comm, &rank);
  chorusCommWorldSize(comm, &n);
  const bool joiner = rank == n - 1;
  std::vector<uint8_t> state(parseBytes(a.state));
  if (!joiner) fill(state);
  chorusStateRegister(comm, "state", state.data(), state.size(), chorusUint8, 0);
  chorusStateSetRevision(comm, joiner ? 0 : 1);
  Stats rate;
  for (int r = 0; r < a.reps; ++r) {
    if (joiner) std::memset(state.data(), 0, state.size());
    chorusStateSyncInfo_t info;
    std::memset(&info, 0, sizeof(info));
    info.size = sizeof(info);
    // Line everyone up so the joiner's clock measures the transfer only.
    chorusBarrier(comm);
    auto t0 = Clock::now();
    if (chorusSyncSharedState(comm, joiner ? chorusStateReceiveOnly : chorusStateEnforcePopular,
                              &info) != chorusSuccess) {
      std::fprintf(stderr, "sync failed: %s\n", chorusGetLastError(comm));
      return 1;
    }
    double s = secondsSince(t0);
    if (joiner) {
      if (info.bytesReceived < state.size()) {
        std::fprintf(stderr, "joiner received only %llu bytes\n",
                     static_cast<unsigned long long>(info.bytesReceived));
        return 1;
      }
      rate.v.push_back(static_cast<double>(state.size()) / s / 1e9);
    }
  }
  if (joiner)
    std::printf("transfer senders=%d state=%zu MiB: joiner %.3f GB/s = %.2f s (median %.3f GB/s)\n",
                n - 1, state.size() >> 20, rate.best(), state.size() / rate.best() / 1e9,
                rate.median());
  std::fflush(stdout);
  chorusCommDestroy(comm);
  chorusFinalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"chorus-state-bench: snapshot codec, snapshot and state-transfer throughput"};
  app.add_option("mode", a.mode, "codec | snapshot | transfer")->required();
  app.add_option("--state", a.state, "state size (K/M/G suffixes)");
  app.add_option("--peers", a.peers, "snapshot: local peers");
  app.add_option("--k", a.k);
  app.add_option("--m", a.m);
  app.add_option("--senders", a.senders, "transfer: peers holding the state");
  app.add_option("--reps", a.reps);
  app.add_option("--coordinator", a.coordinator);
  app.add_option("--expected", a.expected);
  app.add_option("--group", a.group);
  app.add_flag("--worker", a.worker);
  CLI11_PARSE(app, argc, argv);
  if (a.mode == "codec") return runCodec(parseBytes(a.state), a.reps);
  if (a.mode != "snapshot" && a.mode != "transfer") {
    std::fprintf(stderr, "unknown mode %s\n", a.mode.c_str());
    return 2;
  }
  if (a.worker) {
    const char* s = std::getenv("CHORUS_SECRET");
    a.secret = s ? s : "";
    return a.mode == "snapshot" ? workerSnapshot(a) : workerTransfer(a);
  }
  int n = a.mode == "snapshot" ? a.peers : a.senders + 1;
  std::string secret = chorus_tools::randomSecret();
  chorusInit();
  chorus_tools::EmbeddedCoordinator coord;
  if (!coord.start(secret)) return 1;
  setenv("CHORUS_SECRET", secret.c_str(), 1);
  std::vector<std::string> args = {a.mode,          "--worker",
                                   "--coordinator", coord.address(),
                                   "--expected",    std::to_string(n),
                                   "--state",       a.state,
                                   "--k",           std::to_string(a.k),
                                   "--m",           std::to_string(a.m),
                                   "--reps",        std::to_string(a.reps)};
  std::vector<pid_t> pids;
  std::string self = chorus_tools::selfPath();
  for (int i = 0; i < n; ++i) pids.push_back(chorus_tools::spawnSelf(self, args));
  int rc = chorus_tools::waitChildren(pids, a.timeoutSec);
  chorusFinalize();
  return rc;
}
