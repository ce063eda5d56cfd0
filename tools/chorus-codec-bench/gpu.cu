// chorus-codec-bench-gpu: CUDA codec throughput beside a device-to-device
// copy on the same GPU, with a CPU-vs-GPU bit check of every encoding and
// decoding it times (built only with the CUDA toolkit).
//
//   chorus-codec-bench-gpu --mib 1024 --block 256 --reps 20
//
// Times are CUDA events around `reps` back-to-back launches (after one
// warm-up), median of 5 such rounds. "mem GB/s" counts the bytes a kernel
// must move: input read plus output written, the same way the copy's rate
// counts its read and its write; "of copy" compares the two.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/codec.h"
#include "kernels/cuda/codec.h"

namespace {

#define CHECK_CUDA(call)                                                                   \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s: %s (line %d)\n", #call, cudaGetErrorString(e_), __LINE__); \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

// Median seconds per launch of f over 5 rounds of `reps` launches.
double timeIt(int reps, const std::function<std::string()>& f) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  std::string e = f();  // warm-up
  if (!e.empty()) {
    std::fprintf(stderr, "%s\n", e.c_str());
    std::exit(2);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    CHECK_CUDA(cudaEventRecord(a));
    for (int i = 0; i < reps; ++i) f();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    rounds.push_back(ms / 1e3 / reps);
  }
  CHECK_CUDA(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  uint32_t block = 256;
  int reps = 20;
  bool check = true;
  CLI::App app{"chorus-codec-bench-gpu: CUDA codec throughput beside a device copy"};
  app.add_option("--mib", mib, "input size in MiB of fp32")->check(CLI::Range(1, 16384));
  app.add_option("--block", block, "values per block")->check(CLI::Range(1, 65536));
  app.add_option("--reps", reps, "launches per timed round")->check(CLI::Range(1, 100000));
  app.add_flag("!--no-check", check, "skip the CPU-vs-GPU bit check");
  CLI11_PARSE(app, argc, argv);

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const size_t count = mib << 18;
  const double bytes = count * 4.0;
  std::vector<float> x(count);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1e-3f);
  for (size_t i = 0; i < count; ++i) x[i] = d(rng) * (i % 1000 == 0 ? 30.0f : 1.0f);

  float *dx = nullptr, *dy = nullptr;
  uint8_t* denc = nullptr;
  CHECK_CUDA(cudaMalloc(&dx, count * 4));
  CHECK_CUDA(cudaMalloc(&dy, count * 4));
  CHECK_CUDA(cudaMalloc(&denc, count * 8));
  CHECK_CUDA(cudaMemcpy(dx, x.data(), count * 4, cudaMemcpyHostToDevice));

  const double copyS = timeIt(reps, [&] {
    cudaError_t e = cudaMemcpyAsync(dy, dx, count * 4, cudaMemcpyDeviceToDevice);
    return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
  });
  const double copyRate = 2 * bytes / copyS / 1e9;
  std::printf("# %s (%d SMs, %.0f MiB L2), %zu MiB fp32, block %u, median of 5 x %d launches\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1048576.0, mib, block, reps);
  std::printf("# device-to-device copy: %.0f GB/s (read + write)\n", copyRate);
  std::printf("# %-7s %12s %12s %8s %12s %12s %8s %6s %s\n", "codec", "enc in GB/s", "enc mem GB/s",
              "of copy", "dec out GB/s", "dec mem GB/s", "of copy", "ratio", "CPU bits");

  const char* names[] = {"uint8", "int8", "int4", "e4m3", "e5m2", "onebit", "topk"};
  bool allSame = true;
  for (int k = 0; k < static_cast<int>(chorus::codec::kTopKGlobal); ++k) {  // global: host only
    chorus::codec::Params p;
    p.kind = static_cast<chorus::codec::Kind>(k);
    p.blockSize = block;
    p.topk = std::max<uint32_t>(1, block / 32);
    const size_t enc = chorus::codec::encodedBytes(p, count);
    const double e = timeIt(reps, [&] { return chorus::cuda::encodeAsync(p, dx, count, 0, denc); });
    const double dd = timeIt(reps, [&] { return chorus::cuda::decodeAsync(p, denc, count, dy); });
    std::string same = "not checked";
    if (check) {
      std::vector<uint8_t> cpu(enc), gpu(enc);
      chorus::kernels::encode(p, x.data(), count, 0, cpu.data());
      CHECK_CUDA(cudaMemcpy(gpu.data(), denc, enc, cudaMemcpyDeviceToHost));
      std::vector<float> cdec(count), gdec(count);
      if (!chorus::kernels::decode(p, cpu.data(), enc, count, cdec.data()).isOk()) return 2;
      CHECK_CUDA(cudaMemcpy(gdec.data(), dy, count * 4, cudaMemcpyDeviceToHost));
      const bool encSame = cpu == gpu;
      const bool decSame = std::memcmp(cdec.data(), gdec.data(), count * 4) == 0;
      same = encSame && decSame ? "identical" : (!encSame ? "ENCODE DIFFERS" : "DECODE DIFFERS");
      allSame = allSame && encSame && decSame;
    }
    std::printf("  %-7s %12.0f %12.0f %7.0f%% %12.0f %12.0f %7.0f%% %5.1fx %s\n", names[k],
                bytes / e / 1e9, (bytes + enc) / e / 1e9, 100 * (bytes + enc) / e / 1e9 / copyRate,
                bytes / dd / 1e9, (bytes + enc) / dd / 1e9,
                100 * (bytes + enc) / dd / 1e9 / copyRate, bytes / enc, same.c_str());
  }
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(denc);
  return allSame ? 0 : 1;
}
