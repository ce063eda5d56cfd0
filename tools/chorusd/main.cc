// chorusd: the standalone Chorus coordinator.
//
//   chorusd --bind 0.0.0.0:29500 --secret-file /run/secret [--tls secret]
//
// It holds only soft state; restart it (same address) or run a standby at a
// second address and list both in the peers' coordinator parameter.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "src/core/config.h"
#include "src/core/log.h"
#include "src/membership/coordinator.h"

namespace {
volatile std::sig_atomic_t gStop = 0;
void onSignal(int) {
  gStop = 1;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"chorusd - Chorus coordinator"};
  chorusCoordinatorParams_t p;
  chorus::fillCoordinatorDefaults(&p);
  std::string bind = p.bindAddress ? p.bindAddress : "0.0.0.0:0";
  std::string secret = p.secret ? p.secret : "";
  std::string secretFile;
  std::string portFile;
  app.add_option("--bind", bind, "host:port to listen on (port 0 = pick one)");
  app.add_option("--secret", secret, "run secret (prefer --secret-file or CHORUS_SECRET)");
  app.add_option("--secret-file", secretFile, "file holding the run secret");
  app.add_option("--heartbeat-ms", p.heartbeatIntervalMs, "heartbeat period told to peers");
  app.add_option("--failure-timeout-ms", p.failureTimeoutMs, "silence that declares a peer dead");
  app.add_option("--setup-timeout-ms", p.viewSetupTimeoutMs, "deadline for a new view to connect");
  app.add_option("--recovery-grace-ms", p.recoveryGraceMs,
                 "after a restart, wait this long for members to re-register");
  app.add_option("--quorum", p.quorumPolicy, "0 auto, 1 majority, 2 any");
  app.add_option("--port-file", portFile, "write the chosen host:port to this file");
  std::string tls = p.tls == chorusTlsSecret         ? "secret"
                    : p.tls == chorusTlsCertificates ? "cert"
                    : p.tls == chorusTlsOff          ? "off"
                                                     : "invalid CHORUS_TLS";
  std::string tlsCert = p.tlsCert ? p.tlsCert : "", tlsKey = p.tlsKey ? p.tlsKey : "",
              tlsCa = p.tlsCa ? p.tlsCa : "";
  app.add_option("--tls", tls,
                 "TLS 1.3 on peer links: off, secret or cert (as the peers' CHORUS_TLS)")
      ->check(CLI::IsMember({"off", "secret", "cert"}));
  app.add_option("--tls-cert", tlsCert, "cert mode: this coordinator's PEM certificate chain");
  app.add_option("--tls-key", tlsKey, "cert mode: its private key");
  app.add_option("--tls-ca", tlsCa, "cert mode: the job's CA peers' certificates chain to");
  CLI11_PARSE(app, argc, argv);

  if (!secretFile.empty()) {
    std::ifstream in(secretFile);
    if (!in) {
      std::fprintf(stderr, "chorusd: cannot read %s\n", secretFile.c_str());
      return 2;
    }
    std::getline(in, secret);
  }
  p.bindAddress = bind.c_str();
  p.secret = secret.c_str();
  if (tls == "secret")
    p.tls = chorusTlsSecret;
  else if (tls == "cert")
    p.tls = chorusTlsCertificates;
  else if (tls == "off")
    p.tls = chorusTlsOff;  // otherwise an invalid CHORUS_TLS stays invalid and is refused below
  p.tlsCert = tlsCert.c_str();
  p.tlsKey = tlsKey.c_str();
  p.tlsCa = tlsCa.c_str();
  auto cfg = chorus::coordinatorConfigFromParams(&p);
  if (!cfg.isOk()) {
    std::fprintf(stderr, "chorusd: %s\n", cfg.status().message().c_str());
    return 2;
  }
  chorus::setLogTag("chorusd");
  if (chorus::logLevel() < chorus::LogLevel::kInfo) chorus::setLogLevel(chorus::LogLevel::kInfo);
  auto coord = chorus::membership::Coordinator::start(*cfg);
  if (!coord.isOk()) {
    std::fprintf(stderr, "chorusd: %s\n", coord.status().message().c_str());
    return 1;
  }
  std::string addr = (*coord)->address().toString();
  if (!portFile.empty()) {
    std::string tmp = portFile + ".tmp";
    {
      std::ofstream out(tmp);
      out << addr << "\n";
    }
    std::rename(tmp.c_str(), portFile.c_str());
  }
  std::printf("chorusd listening on %s\n", addr.c_str());
  std::fflush(stdout);
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  while (!gStop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*coord)->stop();
  return 0;
}
