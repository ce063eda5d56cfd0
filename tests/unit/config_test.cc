#include <gtest/gtest.h>

#include "algorithms/selector.h"
#include "src/core/config.h"

using namespace chorus;

TEST(Config, HostPort) {
  auto a = parseHostPort("127.0.0.1:29500");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 29500);
  auto b = parseHostPort("[::1]:80");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->toString(), "[::1]:80");
  EXPECT_FALSE(parseHostPort("localhost").isOk());
  EXPECT_FALSE(parseHostPort("host:99999").isOk());
  EXPECT_FALSE(parseHostPort("host:0").isOk());
  EXPECT_TRUE(parseHostPort("host:0", true).isOk());
  EXPECT_FALSE(parseHostPort(":80").isOk());
  EXPECT_FALSE(parseHostPort("h:8a").isOk());
  auto l = parseHostPortList("a:1, b:2,");
  ASSERT_TRUE(l.isOk());
  EXPECT_EQ(l->size(), 2u);
  EXPECT_FALSE(parseHostPortList("").isOk());
}

TEST(Config, CommParamsValidation) {
  chorusCommParams_t p;
  fillCommDefaults(&p);
  p.coordinator = "127.0.0.1:1";
  EXPECT_TRUE(commConfigFromParams(&p).isOk());
  chorusCommParams_t bad = p;
  bad.magic = 0;
  EXPECT_EQ(commConfigFromParams(&bad).status().code(), Code::kInvalidArgument);
  bad = p;
  bad.version = 99;
  EXPECT_NE(commConfigFromParams(&bad).status().message().find("version"), std::string::npos);
  bad = p;
  bad.coordinator = nullptr;
  EXPECT_NE(commConfigFromParams(&bad).status().message().find("coordinator"), std::string::npos);
  bad = p;
  bad.connectionsPerPeer = 1000;
  EXPECT_FALSE(commConfigFromParams(&bad).isOk());
  bad = p;
  bad.opTimeoutMs = -5;
  EXPECT_FALSE(commConfigFromParams(&bad).isOk());
}

TEST(Selector, DefaultsAndOverrides) {
  auto def = algo::Selector::create("");
  ASSERT_TRUE(def.isOk());
  using algo::Collective;
  EXPECT_STREQ(def->select(Collective::kAllReduce, 4, 1)->name, "direct");
  EXPECT_STREQ(def->select(Collective::kAllReduce, 4, 4)->name, "direct");
  EXPECT_STREQ(def->select(Collective::kAllReduce, 16 << 20, 4)->name, "ring");
  EXPECT_STREQ(def->select(Collective::kAllReduce, 1 << 20, 4)->name, "twophase");
  EXPECT_STREQ(def->select(Collective::kAllReduce, 1 << 20, 2)->name, "ring");

  auto ring = algo::Selector::create("ring");
  ASSERT_TRUE(ring.isOk());
  EXPECT_STREQ(ring->select(Collective::kAllReduce, 4, 4)->name, "ring");

  auto ranged = algo::Selector::create("allreduce:0-64k:direct#64k-inf:ring");
  ASSERT_TRUE(ranged.isOk());
  EXPECT_STREQ(ranged->select(Collective::kAllReduce, 1000, 8)->name, "direct");
  EXPECT_STREQ(ranged->select(Collective::kAllReduce, 65535, 8)->name, "direct");
  EXPECT_STREQ(ranged->select(Collective::kAllReduce, 65536, 8)->name, "ring");
  EXPECT_NE(ranged->describe(Collective::kAllReduce, 8).find("ring"), std::string::npos);

  auto unknown = algo::Selector::create("allreduce:0-1k:magic");
  ASSERT_FALSE(unknown.isOk());
  EXPECT_NE(unknown.status().message().find("known: ring, direct, twophase"), std::string::npos);
  EXPECT_FALSE(algo::Selector::create("allreduce:10-5:ring").isOk());
  EXPECT_FALSE(algo::Selector::create("allreduce:x-5:ring").isOk());
  EXPECT_EQ(*algo::parseSize("64k"), 65536u);
  EXPECT_EQ(*algo::parseSize("2M"), 2u << 20);
}
