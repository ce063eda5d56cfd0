// CUDA paths: the GPU chunk hash equals the CPU hash (every length class,
// unaligned starts), and a peer whose shared state lives in device memory
// syncs, snapshots and recovers with peers whose state is in host memory.
// Skipped where no GPU is present (except the refusal check, which runs
// everywhere).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "chorus.h"
#include "kernels/cpu/codec.h"
#include "kernels/cuda/codec.h"
#include "kernels/cuda/device.h"
#include "src/core/hash.h"

namespace {

#define SKIP_WITHOUT_GPU() \
  if (!chorus::cuda::available()) GTEST_SKIP() << "no CUDA device on this machine"

std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return v;
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t n) { EXPECT_EQ(cudaMalloc(&p, n), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
};

TEST(CudaHash, MatchesCpuForEveryLengthClassAndAlignment) {
  SKIP_WITHOUT_GPU();
  const size_t total = (5 << 20) + 1234;
  auto host = randomBytes(total + 8, 7);
  DeviceBuffer dev(total + 8);
  ASSERT_EQ(cudaMemcpy(dev.p, host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
  for (size_t offset : {size_t{0}, size_t{1}, size_t{3}, size_t{8}})
    for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{1025}, size_t{241}, size_t{240},
                         size_t{129}, size_t{128}, size_t{17}, size_t{16}, size_t{9}, size_t{8},
                         size_t{4}, size_t{3}, size_t{1}}) {
      size_t bytes = chunk < 64 ? 4096 + 5 : total;  // tiny chunks: fewer launches' worth
      size_t n = (bytes + chunk - 1) / chunk;
      std::vector<uint64_t> got(n);
      ASSERT_EQ(
          chorus::cuda::hashChunks(static_cast<uint8_t*>(dev.p) + offset, bytes, chunk, got.data()),
          "");
      for (size_t c = 0; c < n; ++c) {
        size_t len = std::min(chunk, bytes - c * chunk);
        ASSERT_EQ(got[c], chorus::hash64(host.data() + offset + c * chunk, len))
            << "chunk " << c << " of " << chunk << " bytes at offset " << offset;
      }
    }
}

TEST(CudaHash, ThroughputIsReported) {
  SKIP_WITHOUT_GPU();
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer dev(bytes);
  ASSERT_EQ(cudaMemset(dev.p, 0x5a, bytes), cudaSuccess);
  std::vector<uint64_t> out(bytes >> 20);
  ASSERT_EQ(chorus::cuda::hashChunks(dev.p, bytes, 1 << 20, out.data()), "");  // warm-up
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(chorus::cuda::hashChunks(dev.p, bytes, 1 << 20, out.data()), "");
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, bytes / s / 1e9);
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("CUDA_HASH device=\"%s\" bytes=%zu chunk=1MiB best_GBps=%.1f\n", prop.name, bytes,
              best);
  std::vector<uint8_t> probe(1 << 20, 0x5a);
  EXPECT_EQ(out[0], chorus::hash64(probe.data(), probe.size()));
}

// CPU and CUDA codecs give the same bytes (encode) and the same floats
// (decode), every kind, rounding mode and a block with NaN; throughput
// beside a device-to-device copy is printed for docs/PERFORMANCE.md.
TEST(CudaCodec, BitIdenticalToCpuAndThroughputIsReported) {
  SKIP_WITHOUT_GPU();
  const size_t count = (1 << 22) + 77;
  std::vector<float> x(count);
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1e-3f);
  for (auto& v : x) v = d(rng);
  x[1000] = std::nanf("");
  float* dx = nullptr;
  float* dy = nullptr;
  uint8_t* denc = nullptr;
  ASSERT_EQ(cudaMalloc(&dx, count * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dy, count * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&denc, count * 8), cudaSuccess);
  cudaMemcpy(dx, x.data(), count * 4, cudaMemcpyHostToDevice);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < 10; ++r) cudaMemcpy(dy, dx, count * 4, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  double copy = 10.0 * count * 4 * 2 /
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9;
  for (int k = 0; k < static_cast<int>(chorus::codec::kTopKGlobal); ++k)  // global: host only
    for (bool stochastic : {false, true}) {
      chorus::codec::Params p;
      p.kind = static_cast<chorus::codec::Kind>(k);
      p.stochastic = stochastic;
      p.seed = 11;
      size_t bytes = chorus::codec::encodedBytes(p, count);
      std::vector<uint8_t> cpu(bytes), gpu(bytes);
      chorus::kernels::encode(p, x.data(), count, 5, cpu.data());
      ASSERT_EQ(chorus::cuda::encode(p, dx, count, 5, denc), "");
      cudaMemcpy(gpu.data(), denc, bytes, cudaMemcpyDeviceToHost);
      ASSERT_TRUE(cpu == gpu) << "encode differs, kind " << k << " stochastic " << stochastic;
      std::vector<float> cdec(count), gdec(count);
      ASSERT_TRUE(chorus::kernels::decode(p, cpu.data(), bytes, count, cdec.data()).isOk());
      ASSERT_EQ(chorus::cuda::decode(p, denc, count, dy), "");
      cudaMemcpy(gdec.data(), dy, count * 4, cudaMemcpyDeviceToHost);
      ASSERT_EQ(std::memcmp(cdec.data(), gdec.data(), count * 4), 0)
          << "decode differs, kind " << k;
      if (stochastic) continue;
      auto t1 = std::chrono::steady_clock::now();
      for (int r = 0; r < 5; ++r) chorus::cuda::encode(p, dx, count, 0, denc);
      double enc = 5.0 * count * 4 /
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() /
                   1e9;
      std::printf("CUDA_CODEC device=\"%s\" kind=%d encode_GBps=%.1f d2d_copy_GBps=%.1f\n",
                  prop.name, k, enc, copy);
    }
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(denc);
}

// Inputs that reach every path of the warp kernels: gradient-like values,
// all negative, constant, zeros, many exact ties (a coarse grid), magnitudes
// whose range overflows (uint8's hi - lo is infinite), and scattered NaN
// and infinity.
std::vector<float> pattern(int which, size_t count, uint32_t seed) {
  std::vector<float> v(count);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (size_t i = 0; i < count; ++i) {
    float g = d(rng);
    switch (which) {
      case 0:
        v[i] = g * (i % 997 == 0 ? 30.0f : 1.0f);
        break;
      case 1:
        v[i] = -std::fabs(g) - 1e-3f;
        break;
      case 2:
        v[i] = 0.375f;
        break;
      case 3:
        v[i] = 0.0f;
        break;
      case 4:
        v[i] = std::round(g * 4.0f) / 4.0f;
        break;
      case 5:
        v[i] = (i & 1 ? 3e38f : -3e38f) * std::fabs(g) / 4.0f;
        break;
      default:
        v[i] = g;
        if (i % 5003 == 17) v[i] = std::nanf("");
        if (i % 7919 == 3) v[i] = -INFINITY;
    }
  }
  return v;
}

// Every kind, rounding mode and top-k share, at block sizes that hit the
// aligned and unaligned load/store paths and partial blocks, from aligned
// and misaligned device pointers: the GPU's bytes equal the CPU's.
TEST(CudaCodec, BitIdenticalToCpuOnEveryPathAndPattern) {
  SKIP_WITHOUT_GPU();
  const size_t maxCount = 65536 * 3 + 11;
  DeviceBuffer dx((maxCount + 4) * 4), dy((maxCount + 4) * 4), denc(maxCount * 8 + 64);
  int cases = 0;
  for (uint32_t block : {1u, 3u, 7u, 32u, 33u, 100u, 256u, 1000u, 4096u, 65536u}) {
    const size_t count = block == 65536 ? maxCount : std::min<size_t>(maxCount, block * 37 + 5);
    for (size_t offset : {size_t{0}, size_t{1}})
      for (int pat = 0; pat < 7; ++pat) {
        auto x = pattern(pat, count, block * 31 + pat);
        float* xd = static_cast<float*>(dx.p) + offset;
        float* yd = static_cast<float*>(dy.p) + offset;
        uint8_t* ed = static_cast<uint8_t*>(denc.p) + offset;
        ASSERT_EQ(cudaMemcpy(xd, x.data(), count * 4, cudaMemcpyHostToDevice), cudaSuccess);
        for (int k = 0; k < static_cast<int>(chorus::codec::kTopKGlobal); ++k)  // global: host only
          for (int variant = 0; variant < 3; ++variant) {
            chorus::codec::Params p;
            p.kind = static_cast<chorus::codec::Kind>(k);
            p.blockSize = block;
            p.seed = 99;
            if (p.kind == chorus::codec::kTopK)
              p.topk = variant == 0 ? 1 : (variant == 1 ? std::max(1u, block / 32) : block);
            else if (variant == 2)
              continue;
            else
              p.stochastic = variant == 1;
            const uint64_t first = 1000003;
            const size_t bytes = chorus::codec::encodedBytes(p, count);
            std::vector<uint8_t> cpu(bytes), gpu(bytes);
            chorus::kernels::encode(p, x.data(), count, first, cpu.data());
            ASSERT_EQ(chorus::cuda::encode(p, xd, count, first, ed), "");
            ASSERT_EQ(cudaMemcpy(gpu.data(), ed, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
            const std::string where = "kind " + std::to_string(k) + " variant " +
                                      std::to_string(variant) + " block " + std::to_string(block) +
                                      " pattern " + std::to_string(pat) + " offset " +
                                      std::to_string(offset);
            if (cpu != gpu) {
              size_t at = std::mismatch(cpu.begin(), cpu.end(), gpu.begin()).first - cpu.begin();
              FAIL() << "encode differs at byte " << at << " of " << bytes << ": " << where;
            }
            std::vector<float> cdec(count), gdec(count);
            ASSERT_TRUE(chorus::kernels::decode(p, cpu.data(), bytes, count, cdec.data()).isOk());
            ASSERT_EQ(cudaMemset(yd, 0x7f, count * 4), cudaSuccess);  // poison
            ASSERT_EQ(chorus::cuda::decode(p, ed, count, yd), "");
            ASSERT_EQ(cudaMemcpy(gdec.data(), yd, count * 4, cudaMemcpyDeviceToHost), cudaSuccess);
            if (std::memcmp(cdec.data(), gdec.data(), count * 4) != 0) {
              size_t i = 0;
              while (std::memcmp(&cdec[i], &gdec[i], 4) == 0) ++i;
              FAIL() << "decode differs at value " << i << " (" << cdec[i] << " vs " << gdec[i]
                     << "): " << where;
            }
            ++cases;
          }
      }
  }
  std::printf("CUDA_CODEC_PARITY cases=%d\n", cases);
}

// A corrupt top-k block that repeats an index or names one past the block:
// the GPU decodes it as the CPU does (last entry wins, out-of-block ignored).
TEST(CudaCodec, CorruptTopKDecodesLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  chorus::codec::Params p;
  p.kind = chorus::codec::kTopK;
  p.blockSize = 64;
  p.topk = 40;
  const size_t count = 64;
  const size_t bytes = chorus::codec::encodedBytes(p, count);
  std::vector<uint8_t> enc(bytes);
  std::mt19937 rng(5);
  for (size_t j = 0; j < p.topk; ++j) {
    uint16_t idx = static_cast<uint16_t>(j % 3 == 0 ? 7 : (j == 5 ? 64 : rng() % 64));
    float v = static_cast<float>(j) + 0.5f;
    std::memcpy(&enc[6 * j], &idx, 2);
    std::memcpy(&enc[6 * j + 2], &v, 4);
  }
  std::vector<float> cpu(count), gpu(count);
  ASSERT_TRUE(chorus::kernels::decode(p, enc.data(), bytes, count, cpu.data()).isOk());
  DeviceBuffer din(bytes), dout(count * 4);
  ASSERT_EQ(cudaMemcpy(din.p, enc.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(
      chorus::cuda::decode(p, static_cast<uint8_t*>(din.p), count, static_cast<float*>(dout.p)),
      "");
  ASSERT_EQ(cudaMemcpy(gpu.data(), dout.p, count * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), count * 4), 0);
  EXPECT_EQ(cpu[7], 39.5f);  // j = 39 is the last entry naming index 7
}

// chorusInit plus a coordinator in this process, undone at scope exit.
struct EmbeddedCoordinator {
  chorusCoordinator_t coord = nullptr;
  char addr[128] = {};
  EmbeddedCoordinator() {
    chorusInit();
    chorusCoordinatorParams_t cp;
    chorusCoordinatorParamsInit(&cp);
    cp.bindAddress = "127.0.0.1:0";
    cp.secret = "cuda-test";
    if (chorusCoordinatorStart(&cp, &coord) == chorusSuccess)
      chorusCoordinatorGetAddress(coord, addr, sizeof(addr));
  }
  ~EmbeddedCoordinator() {
    if (coord) chorusCoordinatorStop(coord);
    chorusFinalize();
  }
};

TEST(CudaState, RegistrationIsCheckedEverywhere) {
  EmbeddedCoordinator c;
  ASSERT_TRUE(c.coord) << chorusGetLastError(nullptr);
  const char* addr = c.addr;
  chorusCommParams_t p;
  chorusCommParamsInit(&p);
  p.coordinator = addr;
  p.secret = "cuda-test";
  p.group = "reg";
  p.expectedPeers = 1;
  chorusComm_t comm = nullptr;
  ASSERT_EQ(chorusCommCreate(&p, &comm), chorusSuccess);
  ASSERT_EQ(chorusCommConnect(comm), chorusSuccess);
  std::vector<float> host(16);
  chorusResult_t rc = chorusStateRegister(comm, "w", host.data(), host.size(), chorusFloat32,
                                          CHORUS_STATE_CUDA_DEVICE);
  // A host pointer flagged as device memory: invalid where CUDA works,
  // unsupported where it does not; never silently accepted.
  EXPECT_EQ(rc, chorus::cuda::available() ? chorusInvalidArgument : chorusUnsupported)
      << chorusGetLastError(comm);
  EXPECT_NE(std::string(chorusGetLastError(comm)).find("CHORUS_STATE_CUDA_DEVICE"),
            std::string::npos);
  chorusCommDestroy(comm);
}

// Three peers in threads: two hold the state in host memory, the third in
// device memory starts empty (receive-only), syncs, then all snapshot 2+1;
// the device peer's buffer is overwritten and recovered.
TEST(CudaState, DevicePeerSyncsSnapshotsAndRecoversWithHostPeers) {
  SKIP_WITHOUT_GPU();
  EmbeddedCoordinator c;
  ASSERT_TRUE(c.coord) << chorusGetLastError(nullptr);
  const char* addr = c.addr;
  const size_t count = (3 << 20) / 4 + 77;  // 3 MiB + a partial chunk of floats
  auto want = randomBytes(count * 4, 11);
  std::vector<int> results(3, -1);
  std::vector<std::vector<uint8_t>> finals(3);
  auto peer = [&](int id) {
    chorusCommParams_t p;
    chorusCommParamsInit(&p);
    p.coordinator = addr;
    p.secret = "cuda-test";
    p.group = "devstate";
    p.expectedPeers = 3;
    chorusComm_t comm = nullptr;
    if (chorusCommCreate(&p, &comm) != chorusSuccess || chorusCommConnect(comm) != chorusSuccess)
      return;
    const bool device = id == 2;
    std::vector<uint8_t> host(count * 4, 0);
    void* buf = host.data();
    if (device) {
      cudaMalloc(&buf, count * 4);
      cudaMemset(buf, 0, count * 4);
    } else {
      host = want;
    }
    int ok = chorusStateRegister(comm, "w", buf, count, chorusFloat32,
                                 device ? CHORUS_STATE_CUDA_DEVICE : 0) == chorusSuccess;
    chorusStateSetRevision(comm, device ? 0 : 3);
    ok &= chorusSyncSharedState(comm, device ? chorusStateReceiveOnly : chorusStateEnforcePopular,
                                nullptr) == chorusSuccess;
    ok &= chorusSnapshot(comm, 2, 1, nullptr, nullptr) == chorusSuccess;
    if (device)
      cudaMemset(buf, 0xff, count * 4);  // lose the live copy
    else
      std::memset(host.data(), 0xff, host.size());
    ok &= chorusRecover(comm, 0, nullptr) == chorusSuccess;
    finals[id].resize(count * 4);
    if (device)
      cudaMemcpy(finals[id].data(), buf, count * 4, cudaMemcpyDeviceToHost);
    else
      finals[id] = host;
    if (device) cudaFree(buf);
    chorusCommDestroy(comm);
    results[id] = ok;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(peer, i);
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results[i], 1) << "peer " << i;
    EXPECT_TRUE(finals[i] == want) << "peer " << i << " does not hold the state";
  }
}

}  // namespace
