#include <gtest/gtest.h>

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
  bad.connectionsPerPeer = -2;  // negative and not CHORUS_CONNECTIONS_ADAPTIVE
  EXPECT_NE(commConfigFromParams(&bad).status().message().find("CHORUS_CONNECTIONS_ADAPTIVE"),
            std::string::npos);
  chorusCommParams_t adaptive = p;
  adaptive.connectionsPerPeer = CHORUS_CONNECTIONS_ADAPTIVE;
  auto cfg = commConfigFromParams(&adaptive);
  ASSERT_TRUE(cfg.isOk());
  EXPECT_TRUE(cfg->adaptiveStreams);
  EXPECT_GT(cfg->connectionsPerPeer, 1);  // the pool (CHORUS_MAX_CONNECTIONS_PER_PEER, 16)
  bad = p;
  bad.opTimeoutMs = -5;
  EXPECT_FALSE(commConfigFromParams(&bad).isOk());
}

TEST(Config, CoordinatorTlsParams) {
  chorusCoordinatorParams_t p;
  fillCoordinatorDefaults(&p);
  p.secret = "s";
  p.tls = chorusTlsSecret;
  auto c = coordinatorConfigFromParams(&p);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->tls, chorusTlsSecret);
  chorusCoordinatorParams_t bad = p;
  bad.tls = static_cast<chorusTlsMode_t>(7);
  EXPECT_NE(coordinatorConfigFromParams(&bad).status().message().find("CHORUS_TLS"),
            std::string::npos);
  // A caller built against version 1 (no TLS fields) is accepted and gets
  // TLS from the environment (off here).
  chorusCoordinatorParams_t v1 = p;
  v1.version = 1;
  v1.size = offsetof(chorusCoordinatorParams_t, tls);
  v1.tls = static_cast<chorusTlsMode_t>(7);  // beyond its size: must not be read
  auto c1 = coordinatorConfigFromParams(&v1);
  ASSERT_TRUE(c1.isOk()) << c1.status().toString();
  EXPECT_EQ(c1->tls, chorusTlsOff);
  // Smaller than version 1: refused.
  chorusCoordinatorParams_t tiny = p;
  tiny.size = offsetof(chorusCoordinatorParams_t, quorumPolicy);
  EXPECT_FALSE(coordinatorConfigFromParams(&tiny).isOk());
}
