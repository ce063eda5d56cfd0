// chorus-bench: collective benchmark with nccl-tests' columns.
//
//   chorus-bench --peers 4 --min-bytes 4 --max-bytes 256M     # launches 4 local peers
//   chorus-bench --peers 4 --coll alltoall                     # any collective
//   chorus-bench --coordinator host:port --expected 8 ...     # one peer of a larger run
//
// Each size: one checked operation (#wrong counts elements that differ from
// an independently computed result, summed over all peers), a warm-up, then
// enough timed iterations to fill --target-sec. time is the mean per op on
// rank 0 between barriers; algbw = size / time; busbw = algbw * factor, with
// nccl-tests' size and factor per collective (see sizeAndFactor).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "chorus.h"
#include "tools/common/collective_case.h"
#include "tools/common/launch.h"
#include "tools/common/reference.h"

namespace {

struct Args {
  int peers = 0;
  std::string coordinator;
  int expected = 1;
  std::string secret;
  std::string group = "bench";
  std::string minBytes = "4", maxBytes = "256M";
  double factor = 2;
  std::string sizes;
  std::string coll = "allreduce";
  int root = 0;
  bool printSelection = false;
  std::string dtype = "float", op = "sum";
  double targetSec = 1.0;
  int minIters = 5, maxIters = 2000;
  bool inplace = false;
  bool json = false;
  std::string csv;
  std::string algo;
  bool noUniform = false;
  std::string streams = "1";  // N, or "auto" (adaptive pool)
  bool worker = false;
  int timeoutSec = 3600;
};

const char* kTypeNames[] = {"int8", "uint8",    "int32", "uint32", "int64", "uint64",
                            "half", "bfloat16", "float", "double", "int16"};
const char* kOpNames[] = {"sum", "prod", "max", "min", "avg"};

bool parseSize(const std::string& s, size_t* out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return false;
  std::string suf(end);
  double mul = 1;
  if (suf == "" || suf == "B")
    mul = 1;
  else if (suf == "K" || suf == "k" || suf == "KiB")
    mul = 1024.0;
  else if (suf == "M" || suf == "m" || suf == "MiB")
    mul = 1024.0 * 1024;
  else if (suf == "G" || suf == "g" || suf == "GiB")
    mul = 1024.0 * 1024 * 1024;
  else
    return false;
  *out = static_cast<size_t>(v * mul);
  return true;
}

std::string human(size_t b) {
  char buf[32];
  if (b >= (1u << 30) && b % (1u << 30) == 0)
    std::snprintf(buf, sizeof(buf), "%zuG", b >> 30);
  else if (b >= (1u << 20) && b % (1u << 20) == 0)
    std::snprintf(buf, sizeof(buf), "%zuM", b >> 20);
  else if (b >= 1024 && b % 1024 == 0)
    std::snprintf(buf, sizeof(buf), "%zuK", b >> 10);
  else
    std::snprintf(buf, sizeof(buf), "%zu", b);
  return buf;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#define CHECK_RC(expr)                                                                             \
  do {                                                                                             \
    chorusResult_t rc_ = (expr);                                                                   \
    if (rc_ != chorusSuccess) {                                                                    \
      std::fprintf(stderr, "chorus-bench: %s failed: %s (%s)\n", #expr, chorusGetErrorString(rc_), \
                   chorusGetLastError(comm));                                                      \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

// Elements per block, bytes moved per rank (the row's size), and the busbw
// factor, as nccl-tests defines them, so the tables compare directly.
void sizeAndFactor(chorus_test::Coll c, size_t bytes, size_t es, int n, size_t* count,
                   size_t* realBytes, double* factor) {
  using chorus_test::Coll;
  const double nd = n;
  switch (c) {
    case Coll::kAllReduce:
      *count = std::max<size_t>(1, bytes / es);
      *realBytes = *count * es;
      *factor = n > 1 ? 2 * (nd - 1) / nd : 1;
      return;
    case Coll::kBroadcast:
    case Coll::kReduce:
      *count = std::max<size_t>(1, bytes / es);
      *realBytes = *count * es;
      *factor = 1;
      return;
    case Coll::kBarrier:
      *count = 0;
      *realBytes = 0;
      *factor = 0;
      return;
    default:  // all-gather, reduce-scatter, all-to-all, gather, scatter
      *count = std::max<size_t>(1, bytes / es / n);
      *realBytes = *count * es * n;
      *factor = (nd - 1) / nd;
      return;
  }
}

int runWorker(const Args& a) {
  bool anyWrong = false;
  chorusInit();
  chorusCommParams_t p;
  chorusCommParamsInit(&p);
  p.coordinator = a.coordinator.c_str();
  p.secret = a.secret.c_str();
  p.group = a.group.c_str();
  p.expectedPeers = a.expected;
  p.connectionsPerPeer =
      a.streams == "auto" ? CHORUS_CONNECTIONS_ADAPTIVE : std::atoi(a.streams.c_str());
  chorusComm_t comm = nullptr;
  CHECK_RC(chorusCommCreate(&p, &comm));
  CHECK_RC(chorusCommConnect(comm));
  int rank = 0, n = 1;
  chorusCommRank(comm, &rank);
  chorusCommWorldSize(comm, &n);

  int dtIdx = -1, opIdx = -1;
  for (int i = 0; i < chorusNumDataTypes; ++i)
    if (a.dtype == kTypeNames[i]) dtIdx = i;
  for (int i = 0; i < chorusNumRedOps; ++i)
    if (a.op == kOpNames[i]) opIdx = i;
  if (dtIdx < 0 || opIdx < 0) {
    std::fprintf(stderr, "chorus-bench: unknown dtype or op\n");
    return 2;
  }
  auto dt = static_cast<chorusDataType_t>(dtIdx);
  auto op = static_cast<chorusRedOp_t>(opIdx);
  size_t es = chorusDataTypeSize(dt);

  std::vector<size_t> sizes;
  if (!a.sizes.empty()) {
    size_t start = 0;
    while (start < a.sizes.size()) {
      size_t c = a.sizes.find(',', start);
      size_t v;
      if (!parseSize(a.sizes.substr(start, c - start), &v)) return 2;
      sizes.push_back(v);
      if (c == std::string::npos) break;
      start = c + 1;
    }
  } else {
    size_t lo, hi;
    if (!parseSize(a.minBytes, &lo) || !parseSize(a.maxBytes, &hi)) return 2;
    for (double s = static_cast<double>(std::max<size_t>(lo, 1)); s <= hi * 1.0000001;
         s *= std::max(1.01, a.factor))
      sizes.push_back(static_cast<size_t>(s));
  }

  chorus_test::Coll coll;
  if (!chorus_test::parseColl(a.coll, &coll) || coll == chorus_test::Coll::kAllToAllv) {
    std::fprintf(stderr, "chorus-bench: unknown collective '%s'\n", a.coll.c_str());
    return 2;
  }
  if (a.root < 0 || a.root >= n) {
    std::fprintf(stderr, "chorus-bench: --root %d is not a rank of %d peers\n", a.root, n);
    return 2;
  }
  if (coll == chorus_test::Coll::kBarrier) sizes.assign(1, 0);

  int32_t one = 1, sink = 0;
  auto barrier = [&] {
    return chorusAllReduce(&one, &sink, 1, chorusInt32, chorusSum, comm, nullptr);
  };

  if (rank == 0 && a.printSelection) {
    std::vector<char> text(1 << 16);
    CHECK_RC(chorusDescribeSelection(comm, text.data(), text.size()));
    std::printf("%s\n", text.data());
  }
  if (rank == 0 && !a.json && a.csv.empty()) {
    const char* algo = std::getenv("CHORUS_ALGO");
    const char* shm = std::getenv("CHORUS_SHM");
    // One-stream links between peers of this host use shared memory unless
    // CHORUS_SHM=0; pools are TCP.
    std::string links = a.streams == "1" && !(shm && std::string(shm) == "0")
                            ? "shared memory (same host) or tcp"
                            : "tcp x" + a.streams;
    std::printf("# chorus-bench: %s, %d peers, %s %s, %s, root %d, links %s, uniform %s%s%s\n",
                a.coll.c_str(), n, a.dtype.c_str(), a.op.c_str(),
                a.inplace ? "in place" : "out of place", a.root, links.c_str(),
                a.noUniform ? "off" : "on", algo ? ", CHORUS_ALGO=" : "", algo ? algo : "");
    std::printf("#%11s %12s %8s %6s %10s %10s %8s %8s %7s\n", "size", "count", "type", "redop",
                "algo", "time", "algbw", "busbw", "#wrong");
    std::printf("#%11s %12s %8s %6s %10s %10s %8s %8s %7s\n", "(B)", "(elements)", "", "", "",
                "(us)", "(GB/s)", "(GB/s)", "");
  }
  for (size_t bytes : sizes) {
    // nccl-tests' conventions: size is the whole buffer (all blocks) for the
    // collectives that move one block per rank; count is per block.
    size_t count = 0, realBytes = 0;
    double factor = 1;
    sizeAndFactor(coll, bytes, es, n, &count, &realBytes, &factor);
    chorus_test::RankCase rc =
        chorus_test::buildCase(coll, dt, op, count, n, rank, a.root, a.inplace, 7);
    chorusOpInfo_t info;
    std::memset(&info, 0, sizeof(info));
    info.size = sizeof(info);
    CHECK_RC(chorus_test::runCase(rc, comm, &info));
    int64_t wrong = static_cast<int64_t>(chorus_test::checkCase(rc));
    int64_t totalWrong = 0;
    CHECK_RC(chorusAllReduce(&wrong, &totalWrong, 1, chorusInt64, chorusSum, comm, nullptr));

    int warm = realBytes >= (64u << 20) ? 1 : realBytes >= (1u << 20) ? 3 : 20;
    CHECK_RC(barrier());
    double t0 = now();
    for (int i = 0; i < warm; ++i) CHECK_RC(chorus_test::runCase(rc, comm, nullptr));
    double per = (now() - t0) / warm, perMax = 0;
    CHECK_RC(chorusAllReduce(&per, &perMax, 1, chorusFloat64, chorusMax, comm, nullptr));
    int iters = static_cast<int>(a.targetSec / std::max(perMax, 1e-7));
    iters = std::clamp(iters, a.minIters, a.maxIters);

    std::vector<double> laps(iters);
    CHECK_RC(barrier());
    // One clock read per call, as the peers' benchmarks do (mpi_bench and
    // gloo_bench: a lap ends where the next begins): two cost a small
    // call ~25 ns more here than there.
    double start = now(), prev = start;
    for (int i = 0; i < iters; ++i) {
      CHECK_RC(chorus_test::runCase(rc, comm, nullptr));
      double t = now();
      laps[i] = t - prev;
      prev = t;
    }
    double total = prev - start;
    CHECK_RC(barrier());
    if (rank != 0) continue;
    double mean = total / iters;
    std::sort(laps.begin(), laps.end());
    double algbw = realBytes / mean / 1e9;
    double busbw = algbw * factor;
    const char* algoName = info.algorithm[0] ? info.algorithm : "-";
    if (a.json) {
      std::printf(
          "{\"system\":\"chorus\",\"collective\":\"%s\",\"peers\":%d,\"bytes\":%zu,\"count\":%zu,"
          "\"type\":\"%s\",\"redop\":\"%s\",\"algo\":\"%s\",\"iters\":%d,\"time_us\":%.3f,"
          "\"algbw_GBps\":%.4f,\"busbw_GBps\":%.4f,\"min_us\":%.3f,\"median_us\":%.3f,"
          "\"p99_us\":%.3f,\"max_us\":%.3f,\"wrong\":%lld,\"uniform\":%s}\n",
          a.coll.c_str(), n, realBytes, count, a.dtype.c_str(), a.op.c_str(), algoName, iters,
          mean * 1e6, algbw, busbw, laps.front() * 1e6, laps[laps.size() / 2] * 1e6,
          laps[laps.size() * 99 / 100] * 1e6, laps.back() * 1e6, static_cast<long long>(totalWrong),
          a.noUniform ? "false" : "true");
    } else if (!a.csv.empty()) {
      std::printf("chorus,%s,%d,%zu,%d,%.3f,%.4f,%.4f,%.3f,%.3f,%.3f\n", a.csv.c_str(), n,
                  realBytes, iters, mean * 1e6, algbw, busbw, laps.front() * 1e6,
                  laps[laps.size() / 2] * 1e6, laps.back() * 1e6);
    } else {
      std::printf("%12s %12zu %8s %6s %10s %10.2f %8.3f %8.3f %7lld\n", human(realBytes).c_str(),
                  count, a.dtype.c_str(), chorus_test::collReduces(coll) ? a.op.c_str() : "none",
                  algoName, mean * 1e6, algbw, busbw, static_cast<long long>(totalWrong));
    }
    if (totalWrong != 0) anyWrong = true;
    std::fflush(stdout);
  }
  CHECK_RC(chorusCommDestroy(comm));
  chorusFinalize();
  return anyWrong ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"chorus-bench - collective benchmark (nccl-tests columns)"};
  app.add_option("--coll,-c", a.coll,
                 "allreduce broadcast reduce allgather reducescatter alltoall gather scatter "
                 "barrier");
  app.add_option("--root,-r", a.root, "root rank of rooted collectives");
  app.add_flag("--print-selection", a.printSelection,
               "print the algorithm the selector picks per collective and size");
  app.add_option("--peers,-n", a.peers, "launch this many local peers (embedded coordinator)");
  app.add_option("--coordinator", a.coordinator, "join this coordinator instead of launching");
  app.add_option("--expected", a.expected, "peers in the job (with --coordinator)");
  app.add_option("--secret", a.secret,
                 "run secret (default: CHORUS_SECRET, or random when launching)");
  app.add_option("--group", a.group, "peer group");
  app.add_option("--min-bytes,-b", a.minBytes, "smallest size (K/M/G suffixes)");
  app.add_option("--max-bytes,-e", a.maxBytes, "largest size");
  app.add_option("--step-factor,-f", a.factor, "size multiplier between rows");
  app.add_option("--sizes", a.sizes, "comma-separated sizes instead of a sweep");
  app.add_option("--dtype,-d", a.dtype,
                 "int8 uint8 int32 uint32 int64 uint64 half bfloat16 float double");
  app.add_option("--op,-o", a.op, "sum prod max min avg");
  app.add_option("--target-sec", a.targetSec, "timed seconds per size");
  app.add_option("--min-iters", a.minIters);
  app.add_option("--max-iters", a.maxIters);
  app.add_flag("--inplace", a.inplace, "in-place all-reduce");
  app.add_flag("--json", a.json, "one JSON object per size");
  app.add_option("--csv", a.csv, "CSV rows in ../shared/bench format, with this label");
  app.add_option("--algo", a.algo, "force an algorithm (sets CHORUS_ALGO)");
  app.add_flag("--no-uniform", a.noUniform, "turn the completion agreement off (shows its cost)");
  app.add_option("--streams", a.streams,
                 "TCP connections per peer pair, or auto (pool adapted to the link)");
  app.add_option("--timeout-sec", a.timeoutSec, "kill the run after this long");
  app.add_flag("--worker", a.worker)->group("");
  CLI11_PARSE(app, argc, argv);
  if (a.streams != "auto") {
    char* end = nullptr;
    long v = std::strtol(a.streams.c_str(), &end, 10);
    if (a.streams.empty() || *end != '\0' || v < 1 || v > 64) {
      std::fprintf(stderr, "chorus-bench: --streams must be 1..64 or auto, not '%s'\n",
                   a.streams.c_str());
      return 2;
    }
  }

  chorus_test::Coll coll;
  if (!chorus_test::parseColl(a.coll, &coll) || coll == chorus_test::Coll::kAllToAllv) {
    std::fprintf(stderr,
                 "chorus-bench: unknown collective '%s' (allreduce broadcast reduce allgather "
                 "reducescatter alltoall gather scatter barrier)\n",
                 a.coll.c_str());
    return 2;
  }
  if (!a.algo.empty()) setenv("CHORUS_ALGO", a.algo.c_str(), 1);
  if (a.noUniform) setenv("CHORUS_UNIFORM", "0", 1);
  if (a.secret.empty() && std::getenv("CHORUS_SECRET")) a.secret = std::getenv("CHORUS_SECRET");

  if (a.worker || !a.coordinator.empty()) {
    if (a.coordinator.empty()) {
      std::fprintf(stderr, "chorus-bench: --worker needs --coordinator\n");
      return 2;
    }
    return runWorker(a);
  }
  if (a.peers <= 0) {
    std::fprintf(stderr, "chorus-bench: give --peers N (launch) or --coordinator (join)\n");
    return 2;
  }
  if (a.secret.empty()) a.secret = chorus_tools::randomSecret();
  chorusInit();
  chorus_tools::EmbeddedCoordinator coord;
  if (!coord.start(a.secret)) return 1;
  // Children read the secret from the environment, not from argv (visible in ps).
  setenv("CHORUS_SECRET", a.secret.c_str(), 1);
  std::vector<std::string> args = {"--worker",
                                   "--coordinator",
                                   coord.address(),
                                   "--expected",
                                   std::to_string(a.peers),
                                   "--group",
                                   a.group,
                                   "--coll",
                                   a.coll,
                                   "--root",
                                   std::to_string(a.root),
                                   "--dtype",
                                   a.dtype,
                                   "--op",
                                   a.op,
                                   "--target-sec",
                                   std::to_string(a.targetSec),
                                   "--min-iters",
                                   std::to_string(a.minIters),
                                   "--max-iters",
                                   std::to_string(a.maxIters),
                                   "--streams",
                                   a.streams,
                                   "--step-factor",
                                   std::to_string(a.factor)};
  if (!a.sizes.empty())
    args.insert(args.end(), {"--sizes", a.sizes});
  else
    args.insert(args.end(), {"--min-bytes", a.minBytes, "--max-bytes", a.maxBytes});
  if (a.inplace) args.push_back("--inplace");
  if (a.printSelection) args.push_back("--print-selection");
  if (a.json) args.push_back("--json");
  if (!a.csv.empty()) args.insert(args.end(), {"--csv", a.csv});
  std::vector<pid_t> pids;
  std::string self = chorus_tools::selfPath();
  for (int i = 0; i < a.peers; ++i) {
    pid_t pid = chorus_tools::spawnSelf(self, args);
    if (pid < 0) {
      std::fprintf(stderr, "chorus-bench: cannot spawn a peer\n");
      return 1;
    }
    pids.push_back(pid);
  }
  int rc = chorus_tools::waitChildren(pids, a.timeoutSec);
  chorusFinalize();
  return rc;
}
