// Configuration of communicators and coordinators: the C params structs
// validated and copied into C++ values, with CHORUS_* environment overrides.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chorus.h"
#include "src/core/status.h"

namespace chorus {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string toString() const;
};

// "host:port" (IPv6 as "[addr]:port"). Port must be given unless allowZeroPort.
Result<HostPort> parseHostPort(const std::string& s, bool allowZeroPort = false);
// Comma-separated list of host:port.
Result<std::vector<HostPort>> parseHostPortList(const std::string& s);

struct CommConfig {
  std::vector<HostPort> coordinators;
  std::string secret;
  std::string group = "default";
  int expectedPeers = 1;
  int connectionsPerPeer = 1;    // pool size per peer pair
  bool adaptiveStreams = false;  // use as many of the pool as help (StripeScheduler)
  int connectTimeoutMs = 60000;
  int opTimeoutMs = 60000;
  std::string listenHost;  // empty: local address of the coordinator link
  std::string locality;    // "host=a,rack=r,dc=d" (any subset)
  int tls = 0;             // chorusTlsMode_t
  std::string tlsCert, tlsKey, tlsCa;
  // Tuning knobs from the environment only (not in the C struct):
  bool uniformOutcome = true;  // CHORUS_UNIFORM=0 turns the completion agreement off
  std::string algorithm;       // CHORUS_ALGO
  int spinUs = -1;             // CHORUS_SPIN_US; -1 = automatic
  // CHORUS_STREAM_STALL_MS: a TCP data stream whose data has gone this long
  // without any acknowledgement from the peer's host is treated as broken
  // (a pool's stream is replaced; 0 = never).
  int streamStallMs = 3000;
  // CHORUS_RELINK_MS: a link that loses its last open TCP stream (every
  // one-stream link that breaks) is dialled again and its unreceived frames
  // resent, if the new stream is up within this bound; else, or with 0, the
  // link is broken and the peer suspected.
  int relinkMs = 3000;
};

struct CoordinatorConfig {
  HostPort bind{"0.0.0.0", 0};
  std::string secret;
  int heartbeatIntervalMs = 100;
  int failureTimeoutMs = 1000;
  int viewSetupTimeoutMs = 10000;
  int recoveryGraceMs = 2000;
  int quorumPolicy = 0;  // 0 auto, 1 majority, 2 any
  int tls = 0;           // chorusTlsMode_t, on every peer link
  std::string tlsCert, tlsKey, tlsCa;
};

void fillCommDefaults(chorusCommParams_t* p);
void fillCoordinatorDefaults(chorusCoordinatorParams_t* p);
Result<CommConfig> commConfigFromParams(const chorusCommParams_t* p);
Result<CoordinatorConfig> coordinatorConfigFromParams(const chorusCoordinatorParams_t* p);

// Environment helpers.
const char* envOr(const char* name, const char* fallback);
int envIntOr(const char* name, int fallback);

}  // namespace chorus
