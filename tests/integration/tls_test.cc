// TLS between real processes: every dtype x op x count on a striped pool in
// secret mode (N = 3) and with certificates (N = 2), each data link checked
// to run over TLS, the coordinator speaking TLS too; the coordinator link
// recorded through a relay carries no membership data in the clear (and does
// without TLS, so the check can fail); a peer with another TLS mode is
// refused with an error that names CHORUS_TLS; a peer killed mid all-reduce
// on TLS links is detected within the bound and the survivors go on.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "tests/common/cases.h"
#include "tests/common/harness.h"

using namespace chorus_test;

namespace {

// A coordinator started with the given TLS mode (and files for cert mode).
std::unique_ptr<TestCoordinator> tlsCoordinator(chorusTlsMode_t mode, const std::string& dir = "") {
  static std::string cert, key, ca;
  cert = dir + "/peer.pem";
  key = dir + "/peer.key";
  ca = dir + "/ca.pem";
  return std::make_unique<TestCoordinator>([&](chorusCoordinatorParams_t* p) {
    p->tls = mode;
    if (mode == chorusTlsCertificates) {
      p->tlsCert = cert.c_str();
      p->tlsKey = key.c_str();
      p->tlsCa = ca.c_str();
    }
  });
}

// Forwards TCP connections on 127.0.0.1 to a target and keeps every byte
// that crosses, both ways: what someone on the path would see.
class RecordingRelay {
 public:
  explicit RecordingRelay(const std::string& target) {
    auto colon = target.rfind(':');
    targetPort_ = std::stoi(target.substr(colon + 1));
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(lfd_, 16);
    socklen_t len = sizeof(a);
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    address_ = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    thread_ = std::thread([this] { run(); });
  }
  ~RecordingRelay() {
    stop_ = true;
    thread_.join();
    ::close(lfd_);
    for (auto& [a, b] : pairs_) ::close(a), ::close(b);
  }
  const std::string& address() const { return address_; }
  std::string seen() {
    std::lock_guard<std::mutex> lk(mu_);
    return seen_;
  }

 private:
  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{lfd_, POLLIN, 0}};
      for (auto& [a, b] : pairs_) fds.push_back({a, POLLIN, 0}), fds.push_back({b, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int c = ::accept(lfd_, nullptr, nullptr);
        int t = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(targetPort_));
        if (c >= 0 && ::connect(t, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
          pairs_.emplace_back(c, t);
        } else {
          if (c >= 0) ::close(c);
          ::close(t);
        }
        continue;  // the pair list changed: poll again
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& pr = pairs_[(i - 1) / 2];
        int from = fds[i].fd, to = from == pr.first ? pr.second : pr.first;
        char buf[65536];
        ssize_t n = ::read(from, buf, sizeof(buf));
        if (n <= 0) {  // one side closed: close the pair (indices change, poll again)
          ::close(pr.first);
          ::close(pr.second);
          pairs_.erase(pairs_.begin() + static_cast<long>((i - 1) / 2));
          break;
        }
        {
          std::lock_guard<std::mutex> lk(mu_);
          seen_.append(buf, static_cast<size_t>(n));
        }
        for (ssize_t off = 0; off < n;) {
          ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
          if (w <= 0) break;
          off += w;
        }
      }
    }
  }
  int lfd_ = -1, targetPort_ = 0;
  std::string address_;
  std::vector<std::pair<int, int>> pairs_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::string seen_;
};

void expectSweepOverTls(Workers& w) {
  ASSERT_TRUE(w.waitAll(180000)) << w.dump();
  expectAllCasesAgree(w, 100);
  for (auto& p : w.procs) {
    EXPECT_NE(p->output().find("over tls"), std::string::npos) << "a link did not use TLS";
    EXPECT_EQ(p->output().find("over tcp"), std::string::npos) << "a link ran in plaintext";
  }
}

TEST(Tls, SecretModeSweepOnStripedPoolsN3) {
  auto coord = tlsCoordinator(chorusTlsSecret);
  ASSERT_TRUE(coord->ok());
  auto w = Workers::launch(
      3, coord->address(), "tlssecret",
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
  auto coord = tlsCoordinator(chorusTlsCertificates, d);
  ASSERT_TRUE(coord->ok());
  auto w = Workers::launch(
      2, coord->address(), "tlscert",
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

// What a relay on the coordinator path sees. Members' addresses ("127.0.0.1")
// travel in REGISTER and every view: in the clear without TLS (checked, so
// the assertion can fail), never with it. The run-secret handshake before
// TLS (group name, peer ids, nonces, proofs) is all that stays plaintext.
TEST(Tls, CoordinatorLinkCarriesNoMembershipInTheClear) {
  for (chorusTlsMode_t mode : {chorusTlsOff, chorusTlsSecret}) {
    auto coord = tlsCoordinator(mode);
    ASSERT_TRUE(coord->ok());
    RecordingRelay relay(coord->address());
    std::string group = mode == chorusTlsOff ? "clearcoord" : "tlscoord";
    auto w = Workers::launch(
        2, relay.address(), group, {"--scenario", "sweep", "--counts", "1,1000"}, "test-secret",
        {mode == chorusTlsOff ? "CHORUS_TLS=off" : "CHORUS_TLS=secret", "CHORUS_LOG_LEVEL=debug"});
    ASSERT_TRUE(w.waitAll(60000)) << w.dump();
    expectAllCasesAgree(w, 100);
    std::string seen = relay.seen();
    EXPECT_NE(seen.find(group), std::string::npos) << "the relay did not carry the links";
    if (mode == chorusTlsOff) {
      EXPECT_NE(seen.find("127.0.0.1"), std::string::npos) << "control check: plaintext views";
    } else {
      EXPECT_EQ(seen.find("127.0.0.1"), std::string::npos)
          << "a member address crossed the coordinator link in the clear";
      for (auto& p : w.procs)
        EXPECT_NE(p->output().find("coordinator link over tls"), std::string::npos) << p->output();
    }
  }
}

// A coordinator and a peer with different modes: the peer is refused at
// registration, at once (no retries), with an error naming CHORUS_TLS.
TEST(Tls, PeerAndCoordinatorWithDifferentModesAreRefused) {
  auto coord = tlsCoordinator(chorusTlsSecret);
  ASSERT_TRUE(coord->ok());
  auto t0 = std::chrono::steady_clock::now();
  auto p = Proc::spawn(
      workerPath(),
      {"--coordinator", coord->address(), "--group", "tlscoordmix", "--expected", "1", "--secret",
       "test-secret", "--connect-timeout-ms", "20000", "--scenario", "sweep", "--counts", "1"},
      {"CHORUS_TLS=off"});
  Workers w;
  w.procs.push_back(std::move(p));
  ASSERT_TRUE(w.waitAll(30000)) << w.dump();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(w.procs[0]->exitCode(), 0) << w.dump();
  EXPECT_NE(w.procs[0]->output().find("CHORUS_TLS"), std::string::npos) << w.dump();
  EXPECT_LT(s, 10.0) << "a TLS mismatch with the coordinator should fail at once";
}

// kill -9 of one peer mid all-reduce on TLS links. A survivor writing to the
// dead peer once died of SIGPIPE here (OpenSSL's socket BIO used write(2));
// Tls.SendingToAPeerThatHasGoneIsAnErrorNotSigpipe pins that down.
TEST(Tls, KilledPeerIsDetectedAndSurvivorsGoOn) {
  auto coord = tlsCoordinator(chorusTlsSecret);
  ASSERT_TRUE(coord->ok());
  auto w = Workers::launch(3, coord->address(), "tlskill",
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
