// Reed-Solomon codec (ISA-L, Cauchy) and the snapshot manifest parser.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "src/state/erasure.h"
#include "src/state/snapshot.h"

namespace chorus::state {
namespace {

struct Shards {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<uint8_t*> ptr;
};

Shards encoded(const ErasureCode& ec, size_t len, uint32_t seed) {
  const int k = ec.dataShards(), m = ec.parityShards();
  Shards s;
  s.bytes.assign(k + m, std::vector<uint8_t>(len));
  std::mt19937 rng(seed);
  for (int i = 0; i < k; ++i)
    for (auto& b : s.bytes[i]) b = static_cast<uint8_t>(rng());
  for (auto& b : s.bytes) s.ptr.push_back(b.data());
  ec.encode(s.ptr.data(), s.ptr.data() + k, len);
  return s;
}

// Erases every set of `lose` shards and checks the decoder rebuilds them all
// byte for byte from the survivors.
void everyLoss(int k, int m, int lose, size_t len) {
  auto ec = ErasureCode::create(k, m).value();
  Shards ref = encoded(ec, len, static_cast<uint32_t>(k * 100 + m));
  const int n = k + m;
  int sets = 0;
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != lose) continue;
    ++sets;
    Shards work = ref;
    work.ptr.clear();
    for (auto& b : work.bytes) work.ptr.push_back(b.data());
    std::vector<bool> present(n), rebuild(n);
    for (int i = 0; i < n; ++i) {
      present[i] = !(mask >> i & 1);
      rebuild[i] = !present[i];
      if (!present[i]) std::fill(work.bytes[i].begin(), work.bytes[i].end(), 0xee);
    }
    ASSERT_TRUE(ec.decode(work.ptr.data(), present, rebuild, len).isOk());
    for (int i = 0; i < n; ++i) ASSERT_EQ(work.bytes[i], ref.bytes[i]) << "mask " << mask;
  }
  EXPECT_GT(sets, 0);
}

TEST(Erasure, EveryPairLost4Plus2) {
  everyLoss(4, 2, 1, 4096 + 64);
  everyLoss(4, 2, 2, 4096 + 64);
}
TEST(Erasure, EveryPairLost8Plus2) {
  everyLoss(8, 2, 2, 8192);
}
TEST(Erasure, EveryTripleLost6Plus3) {
  everyLoss(6, 3, 3, 1024);
}
TEST(Erasure, OddLengths) {
  everyLoss(3, 2, 2, 1);
  everyLoss(3, 2, 2, 77);
}

TEST(Erasure, EncodeOneMatchesEncode) {
  auto ec = ErasureCode::create(5, 3).value();
  Shards ref = encoded(ec, 3000, 7);
  for (int j = 0; j < 3; ++j) {
    std::vector<uint8_t> one(3000);
    ec.encodeOne(j, ref.ptr.data(), one.data(), one.size());
    EXPECT_EQ(one, ref.bytes[5 + j]);
  }
}

TEST(Erasure, TooFewShardsIsDataLoss) {
  auto ec = ErasureCode::create(4, 2).value();
  Shards s = encoded(ec, 256, 3);
  std::vector<bool> present = {true, false, true, false, false, true};
  std::vector<bool> rebuild = {false, true, false, true, true, false};
  Status st = ec.decode(s.ptr.data(), present, rebuild, 256);
  EXPECT_EQ(st.code(), Code::kDataLoss);
  EXPECT_NE(st.message().find("only 3 of the 4"), std::string::npos) << st.message();
}

TEST(Erasure, RejectsBadGeometry) {
  EXPECT_FALSE(ErasureCode::create(0, 2).isOk());
  EXPECT_FALSE(ErasureCode::create(4, 0).isOk());
  EXPECT_FALSE(ErasureCode::create(200, 56).isOk());
  EXPECT_TRUE(ErasureCode::create(200, 55).isOk());
}

Manifest sample() {
  Manifest m;
  m.id = 0x1234;
  m.revision = 9;
  m.k = 4;
  m.m = 2;
  Section a;
  a.name = "weights";
  a.dtype = 8;
  a.count = 100;
  a.bytes = 400;
  a.hash = 77;
  Section b;
  b.owner = 5;
  b.name = "rng";
  b.dtype = 1;
  b.count = 16;
  b.offset = 400;
  b.bytes = 16;
  m.sections = {a, b};
  m.stateBytes = 416;
  m.shardBytes = 128;
  m.shardHash = {1, 2, 3, 4, 5, 6};
  return m;
}

TEST(Manifest, RoundTrip) {
  Manifest m = sample();
  auto bytes = m.serialize();
  auto back = Manifest::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back.value().serialize(), bytes);
  EXPECT_EQ(back.value().sections[1].name, "rng");
}

TEST(Manifest, EveryTruncationAndCorruptionIsRejectedCleanly) {
  auto bytes = sample().serialize();
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(Manifest::parse(bytes.data(), n).isOk()) << "length " << n;
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(Manifest::parse(longer.data(), longer.size()).isOk());
  // Any single flipped byte either still parses consistently or is refused;
  // it must never crash or read out of bounds (ASan/UBSan builds check).
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= 0xff;
    auto r = Manifest::parse(bad.data(), bad.size());
    if (r.isOk()) {
      EXPECT_EQ(r.value().sections.size(), 2u);
    }
  }
}

}  // namespace
}  // namespace chorus::state
