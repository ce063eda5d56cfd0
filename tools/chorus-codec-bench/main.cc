// chorus-codec-bench: CPU codec throughput beside memcpy on one core,
// top-k selection beside a full sort, and compression ratio / relative error
// on a gradient-like input.
//
//   chorus-codec-bench --mib 64 --block 256 --reps 5
//
// Throughput is GB/s of fp32 input per core (best of reps, median beside).
// The gradient-like input: normal values with a heavy tail (1 in 1000 is 30x
// larger), as layer gradients tend to be.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/codec.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  std::vector<double> v;
  double best() const { return *std::max_element(v.begin(), v.end()); }
  double median() const {
    auto c = v;
    std::sort(c.begin(), c.end());
    return c[c.size() / 2];
  }
};

template <typename F>
Stats measure(int reps, double bytes, F&& f) {
  Stats s;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    f();
    s.v.push_back(bytes / std::chrono::duration<double>(Clock::now() - t0).count() / 1e9);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 64;
  uint32_t block = 256;
  int reps = 5;
  CLI::App app{"chorus-codec-bench: codec throughput, top-k vs sort, ratio and error"};
  app.add_option("--mib", mib, "input size in MiB of fp32");
  app.add_option("--block", block, "values per block");
  app.add_option("--reps", reps);
  CLI11_PARSE(app, argc, argv);
  const size_t count = mib << 18;
  std::vector<float> x(count), y(count), copy(count);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1e-3f);
  for (size_t i = 0; i < count; ++i) x[i] = d(rng) * (i % 1000 == 0 ? 30.0f : 1.0f);
  const double bytes = count * 4.0;
  Stats mc = measure(reps, bytes, [&] { std::memcpy(copy.data(), x.data(), count * 4); });
  std::printf("# %zu MiB fp32, block %u, one core; memcpy %.2f GB/s (median %.2f)\n", mib, block,
              mc.best(), mc.median());
  std::printf("# %-7s %10s %10s %10s %10s %8s %10s %12s\n", "codec", "enc GB/s", "(median)",
              "dec GB/s", "(median)", "enc/cpy", "ratio", "rel. error");
  const char* names[] = {"uint8", "int8", "int4", "e4m3", "e5m2", "onebit", "topk", "topk-g"};
  static_assert(sizeof(names) / sizeof(names[0]) == chorus::codec::kNumKinds);
  double normX = 0;
  for (float v : x) normX += static_cast<double>(v) * v;
  for (int k = 0; k < static_cast<int>(chorus::codec::kNumKinds); ++k) {
    chorus::codec::Params p;
    p.kind = static_cast<chorus::codec::Kind>(k);
    p.blockSize = block;
    p.topk = std::max<uint32_t>(1, block / 32);
    std::vector<uint8_t> enc(chorus::codec::encodedBytes(p, count));
    Stats e =
        measure(reps, bytes, [&] { chorus::kernels::encode(p, x.data(), count, 0, enc.data()); });
    Stats dd = measure(reps, bytes, [&] {
      if (!chorus::kernels::decode(p, enc.data(), enc.size(), count, y.data()).isOk()) std::abort();
    });
    double err = 0;
    for (size_t i = 0; i < count; ++i) err += static_cast<double>(y[i] - x[i]) * (y[i] - x[i]);
    std::printf("  %-7s %10.2f %10.2f %10.2f %10.2f %7.0f%% %9.1fx %12.4f\n", names[k], e.best(),
                e.median(), dd.best(), dd.median(), 100 * e.best() / mc.best(), bytes / enc.size(),
                std::sqrt(err / normX));
  }
  // Top-k selection beside sorting each block by magnitude (ties by index).
  chorus::codec::Params p;
  p.kind = chorus::codec::kTopK;
  p.blockSize = block;
  p.topk = std::max<uint32_t>(1, block / 32);
  std::vector<uint8_t> enc(chorus::codec::encodedBytes(p, count));
  Stats sel =
      measure(reps, bytes, [&] { chorus::kernels::encode(p, x.data(), count, 0, enc.data()); });
  std::vector<uint32_t> idx(block);
  Stats sorted = measure(reps, bytes, [&] {
    for (size_t b = 0; b < count; b += block) {
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t c) {
        float fa = std::fabs(x[b + a]), fc = std::fabs(x[b + c]);
        return fa != fc ? fa > fc : a < c;
      });
      for (uint32_t j = 0; j < p.topk; ++j) copy[b + j] = x[b + idx[j]];
    }
  });
  std::printf(
      "# top-%u of %u per block: radix select + compaction %.2f GB/s, std::sort %.2f GB/s "
      "(%.1fx)\n",
      p.topk, block, sel.best(), sorted.best(), sel.best() / sorted.best());
  // Global top-k (the same share, chosen across the whole buffer) beside
  // sorting the whole buffer by magnitude.
  chorus::codec::Params g = p;
  g.kind = chorus::codec::kTopKGlobal;
  std::vector<uint8_t> genc(chorus::codec::encodedBytes(g, count));
  Stats gsel =
      measure(reps, bytes, [&] { chorus::kernels::encode(g, x.data(), count, 0, genc.data()); });
  std::vector<uint32_t> all(count);
  Stats gsorted = measure(reps, bytes, [&] {
    std::iota(all.begin(), all.end(), 0);
    std::sort(all.begin(), all.end(), [&](uint32_t a, uint32_t c) {
      float fa = std::fabs(x[a]), fc = std::fabs(x[c]);
      return fa != fc ? fa > fc : a < c;
    });
  });
  std::printf(
      "# global top-%u per %u (%zu of %zu): radix select + compaction %.2f GB/s, std::sort %.2f "
      "GB/s (%.1fx)\n",
      g.topk, block, genc.size() / 8, count, gsel.best(), gsorted.best(),
      gsel.best() / gsorted.best());
  return 0;
}
