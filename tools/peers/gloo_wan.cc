// Gloo all-reduce beside chorus-bench on the emulated WAN (tools/chorus-wan).
// One rank per process; rendezvous through a directory every namespace sees;
// Gloo's TCP device bound to the given address (a datacenter's interface).
//
//   gloo_wan RANK SIZE STORE_DIR HOST SIZES_CSV [TARGET_SEC]
//
// Rank 0 prints one JSON object per size with chorus-bench's fields (bytes,
// time_us, busbw_GBps = algbw * 2(N-1)/N, wrong). Each size is checked once
// (small integers: every float sum is exact), then timed: iterations run
// back to back between two barriers until TARGET_SEC is filled (at least 2).
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sumFloats(void* c, const void* a, const void* b, size_t n) {
  auto* o = static_cast<float*>(c);
  auto* x = static_cast<const float*>(a);
  auto* y = static_cast<const float*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s RANK SIZE STORE_DIR HOST SIZES_CSV [TARGET_SEC]\n", argv[0]);
    return 2;
  }
  const int rank = std::atoi(argv[1]), size = std::atoi(argv[2]);
  const std::string storeDir = argv[3], host = argv[4];
  std::vector<size_t> sizes;
  std::stringstream ss(argv[5]);
  for (std::string t; std::getline(ss, t, ',');)
    sizes.push_back(std::strtoull(t.c_str(), nullptr, 10));
  const double targetSec = argc > 6 ? std::atof(argv[6]) : 5.0;

  gloo::transport::tcp::attr attr;
  attr.hostname = host;
  attr.ai_family = AF_INET;
  auto dev = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(storeDir);
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
  ctx->setTimeout(std::chrono::seconds(600));
  ctx->connectFullMesh(store, dev);
  std::shared_ptr<gloo::Context> context = ctx;
  uint32_t tag = 100;
  auto barrier = [&] {
    gloo::BarrierOptions o(context);
    o.setTag(tag++);
    gloo::barrier(o);
  };

  for (size_t bytes : sizes) {
    const size_t count = bytes / sizeof(float);
    std::vector<float> buf(count);
    auto fill = [&] {
      for (size_t i = 0; i < count; ++i) buf[i] = static_cast<float>((rank * 7 + i) % 13);
    };
    auto run = [&] {
      gloo::AllreduceOptions o(context);
      o.setOutput(buf.data(), count);
      o.setReduceFunction(sumFloats);
      o.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
      o.setTag(tag++);
      gloo::allreduce(o);
    };
    fill();
    run();
    long long wrong = 0;
    for (size_t i = 0; i < count; ++i) {
      float want = 0;
      for (int r = 0; r < size; ++r) want += static_cast<float>((r * 7 + i) % 13);
      wrong += buf[i] != want;
    }
    // Rank 0 decides the iteration count from one timed op, so every rank
    // runs the same number.
    barrier();
    double t0 = now();
    run();
    int iters = static_cast<int>(targetSec / std::max(now() - t0, 1e-6));
    iters = std::max(2, std::min(iters, 1000));
    {
      gloo::BroadcastOptions o(context);
      o.setOutput(&iters, 1);
      o.setRoot(0);
      o.setTag(tag++);
      gloo::broadcast(o);
    }
    barrier();
    t0 = now();
    for (int i = 0; i < iters; ++i) run();
    barrier();
    double t = (now() - t0) / iters;
    if (rank == 0) {
      double algbw = static_cast<double>(bytes) / t / 1e9;
      std::printf(
          "{\"system\":\"gloo\",\"peers\":%d,\"bytes\":%zu,\"iters\":%d,\"time_us\":%.3f,"
          "\"algbw_GBps\":%.4f,\"busbw_GBps\":%.4f,\"wrong\":%lld}\n",
          size, bytes, iters, t * 1e6, algbw, algbw * 2.0 * (size - 1) / size, wrong);
      std::fflush(stdout);
    }
  }
  return 0;
}
