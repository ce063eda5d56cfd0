// TLS on data links between real processes: every dtype x op x count on a
// striped pool in secret mode (N = 3) and with certificates (N = 2), each
// link checked to run over TLS; a peer with another TLS mode is refused with
// an error that names CHORUS_TLS; a peer killed mid all-reduce on TLS links
// is detected within the bound and the survivors go on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "tests/common/cases.h"
#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

void expectSweepOverTls(Workers& w) {
  ASSERT_TRUE(w.waitAll(180000)) << w.dump();
  expectAllCasesAgree(w, 100);
  for (auto& p : w.procs) {
    EXPECT_NE(p->output().find("over tls"), std::string::npos) << "a link did not use TLS";
    EXPECT_EQ(p->output().find("over tcp"), std::string::npos) << "a link ran in plaintext";
  }
}

TEST(Tls, SecretModeSweepOnStripedPoolsN3) {
  TestCoordinator coord;
  auto w = Workers::launch(
      3, coord.address(), "tlssecret",
      {"--scenario", "sweep", "--counts", "0,1,7,1000,65537,300001", "--count", "20001",
       "--streams", "2"},
      "test-secret", {"CHORUS_TLS=secret", "CHORUS_LOG_LEVEL=debug", "CHORUS_SEGMENT_BYTES=65536"});
  expectSweepOverTls(w);
}

TEST(Tls, CertificateModeSweepN2) {
  auto dir = std::filesystem::temp_directory_path() / ("chorus-tls-it-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string d = dir.string();
  std::string cmd =
      "(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "
      "/CN=job-ca -keyout " +
      d + "/ca.key -out " + d +
      "/ca.pem && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=peer -keyout " +
      d + "/peer.key -out " + d + "/peer.csr && openssl x509 -req -days 2 -in " + d +
      "/peer.csr -CA " + d + "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial -out " + d +
      "/peer.pem) >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make the test certificates";
  TestCoordinator coord;
  auto w = Workers::launch(
      2, coord.address(), "tlscert",
      {"--scenario", "sweep", "--counts", "0,1,7,1000,65537", "--count", "20001"}, "test-secret",
      {"CHORUS_TLS=cert", "CHORUS_TLS_CERT=" + d + "/peer.pem", "CHORUS_TLS_KEY=" + d + "/peer.key",
       "CHORUS_TLS_CA=" + d + "/ca.pem", "CHORUS_LOG_LEVEL=debug"});
  expectSweepOverTls(w);
  std::filesystem::remove_all(dir);
}

TEST(Tls, PeerWithAnotherTlsModeIsRefused) {
  TestCoordinator coord;
  Workers w;
  for (const char* mode : {"CHORUS_TLS=secret", "CHORUS_TLS=off"})
    w.procs.push_back(Proc::spawn(
        workerPath(),
        {"--coordinator", coord.address(), "--group", "tlsmix", "--expected", "2", "--secret",
         "test-secret", "--connect-timeout-ms", "6000", "--scenario", "sweep", "--counts", "1"},
        {mode}));
  ASSERT_TRUE(w.waitAll(60000)) << w.dump();
  std::string all;
  for (auto& p : w.procs) {
    EXPECT_NE(p->exitCode(), 0) << p->output();
    EXPECT_NE(p->output().find("stage=connect"), std::string::npos) << p->output();
    all += p->output();
  }
  EXPECT_NE(all.find("CHORUS_TLS"), std::string::npos) << w.dump();
}

// kill -9 of one peer mid all-reduce on TLS links. A survivor writing to the
// dead peer once died of SIGPIPE here (OpenSSL's socket BIO used write(2));
// Tls.SendingToAPeerThatHasGoneIsAnErrorNotSigpipe pins that down.
TEST(Tls, KilledPeerIsDetectedAndSurvivorsGoOn) {
  TestCoordinator coord;
  auto w = Workers::launch(3, coord.address(), "tlskill",
                           {"--scenario", "loop", "--iters", "1000000", "--count", "100000",
                            "--op-timeout-ms", "20000", "--streams", "2"},
                           "test-secret", {"CHORUS_TLS=secret"});
  for (auto& p : w.procs) ASSERT_TRUE(p->waitForLine("OP it=", 30000, 20)) << w.dump();
  w.procs[2]->signal(SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  // Both survivors reach operations in a view of two.
  bool shrunk[2] = {false, false};
  while (!(shrunk[0] && shrunk[1]) &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
    for (int i = 0; i < 2; ++i) {
      w.procs[i]->pump(25);
      for (const auto& l : w.procs[i]->lines("OP ")) shrunk[i] |= fields(l)["size"] == "2";
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(shrunk[0] && shrunk[1]) << w.dump();
  EXPECT_LT(s, 10.0) << "the loss of a peer on TLS links took too long to detect";
  for (int i = 0; i < 2; ++i) {
    w.procs[i]->signal(SIGTERM);
    w.procs[i]->wait(5000);
  }
}

}  // namespace
