#include "src/core/config.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace chorus {

std::string HostPort::toString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> parseHostPort(const std::string& in, bool allowZeroPort) {
  std::string s = in;
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  HostPort hp;
  std::string portStr;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return invalidArgument("bad address '" + in + "': expected [ipv6]:port");
    hp.host = s.substr(1, close - 1);
    portStr = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return invalidArgument("bad address '" + in + "': expected host:port");
    hp.host = s.substr(0, colon);
    portStr = s.substr(colon + 1);
  }
  if (portStr.empty() || portStr.size() > 5 ||
      portStr.find_first_not_of("0123456789") != std::string::npos)
    return invalidArgument("bad port in address '" + in + "'");
  long port = std::strtol(portStr.c_str(), nullptr, 10);
  if (port > 65535 || (port == 0 && !allowZeroPort))
    return invalidArgument("port out of range in address '" + in + "'");
  hp.port = static_cast<uint16_t>(port);
  if (hp.host.empty()) return invalidArgument("empty host in address '" + in + "'");
  return hp;
}

Result<std::vector<HostPort>> parseHostPortList(const std::string& s) {
  std::vector<HostPort> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      CHORUS_ASSIGN_OR_RETURN(HostPort hp, parseHostPort(item));
      out.push_back(hp);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return invalidArgument("no coordinator address given");
  return out;
}

const char* envOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : fallback;
}

int envIntOr(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0') return fallback;
  return static_cast<int>(x);
}

namespace {
// CHORUS_TLS; an unknown word becomes an invalid mode the params check names.
chorusTlsMode_t tlsModeFromEnv() {
  std::string tls = envOr("CHORUS_TLS", "off");
  return tls == "off" || tls == "0" || tls.empty() ? chorusTlsOff
         : tls == "secret"                         ? chorusTlsSecret
         : tls == "cert" || tls == "certificates"  ? chorusTlsCertificates
                                                   : static_cast<chorusTlsMode_t>(-1);
}

Status tlsFromParams(chorusTlsMode_t mode, const char* cert, const char* key, const char* ca,
                     int* outMode, std::string* outCert, std::string* outKey, std::string* outCa) {
  if (static_cast<int>(mode) < 0 || mode > chorusTlsCertificates)
    return invalidArgument(
        "tls must be chorusTlsOff, chorusTlsSecret or chorusTlsCertificates (CHORUS_TLS: off, "
        "secret or cert)");
  *outMode = mode;
  *outCert = cert ? cert : "";
  *outKey = key ? key : "";
  *outCa = ca ? ca : "";
  return Status::ok();
}
}  // namespace

void fillCommDefaults(chorusCommParams_t* p) {
  std::memset(p, 0, sizeof(*p));
  p->size = sizeof(*p);
  p->magic = CHORUS_COMM_PARAMS_MAGIC;
  p->version = CHORUS_COMM_PARAMS_VERSION;
  p->coordinator = envOr("CHORUS_COORDINATOR", nullptr);
  p->secret = envOr("CHORUS_SECRET", nullptr);
  p->group = envOr("CHORUS_GROUP", "default");
  p->expectedPeers = envIntOr("CHORUS_EXPECTED_PEERS", 1);
  if (const char* v = envOr("CHORUS_CONNECTIONS_PER_PEER", nullptr); v && std::string(v) == "auto")
    p->connectionsPerPeer = CHORUS_CONNECTIONS_ADAPTIVE;
  else
    p->connectionsPerPeer = envIntOr("CHORUS_CONNECTIONS_PER_PEER", 1);
  p->connectTimeoutMs = envIntOr("CHORUS_CONNECT_TIMEOUT_MS", 60000);
  p->opTimeoutMs = envIntOr("CHORUS_OP_TIMEOUT_MS", 60000);
  p->listenHost = envOr("CHORUS_LISTEN_HOST", nullptr);
  p->locality = envOr("CHORUS_LOCALITY", nullptr);
  p->tls = tlsModeFromEnv();
  p->tlsCert = envOr("CHORUS_TLS_CERT", nullptr);
  p->tlsKey = envOr("CHORUS_TLS_KEY", nullptr);
  p->tlsCa = envOr("CHORUS_TLS_CA", nullptr);
}

void fillCoordinatorDefaults(chorusCoordinatorParams_t* p) {
  std::memset(p, 0, sizeof(*p));
  p->size = sizeof(*p);
  p->magic = CHORUS_COORDINATOR_PARAMS_MAGIC;
  p->version = CHORUS_COORDINATOR_PARAMS_VERSION;
  p->bindAddress = envOr("CHORUS_COORDINATOR_BIND", "0.0.0.0:0");
  p->secret = envOr("CHORUS_SECRET", nullptr);
  p->heartbeatIntervalMs = envIntOr("CHORUS_HEARTBEAT_MS", 100);
  p->failureTimeoutMs = envIntOr("CHORUS_FAILURE_TIMEOUT_MS", 1000);
  p->viewSetupTimeoutMs = envIntOr("CHORUS_VIEW_SETUP_TIMEOUT_MS", 10000);
  p->recoveryGraceMs = envIntOr("CHORUS_RECOVERY_GRACE_MS", 2000);
  p->quorumPolicy = envIntOr("CHORUS_QUORUM", 0);
  p->tls = tlsModeFromEnv();
  p->tlsCert = envOr("CHORUS_TLS_CERT", nullptr);
  p->tlsKey = envOr("CHORUS_TLS_KEY", nullptr);
  p->tlsCa = envOr("CHORUS_TLS_CA", nullptr);
}

namespace {
Status checkHeader(size_t size, uint32_t magic, uint32_t version, size_t minSize,
                   uint32_t wantMagic, uint32_t maxVersion, const char* what) {
  if (magic != wantMagic)
    return invalidArgument(std::string(what) + " has a bad magic number (call " + what +
                           "Init first)");
  if (size < minSize)
    return invalidArgument(std::string(what) + ".size is " + std::to_string(size) +
                           ", smaller than the version-1 struct");
  if (version == 0 || version > maxVersion)
    return invalidArgument(std::string(what) + ".version " + std::to_string(version) +
                           " is not supported by this library");
  return Status::ok();
}
}  // namespace

Result<CommConfig> commConfigFromParams(const chorusCommParams_t* p) {
  // Version 1 ended before `locality`; a caller built against it passes the
  // smaller size and keeps working.
  constexpr size_t kV1Size = offsetof(chorusCommParams_t, locality);
  CHORUS_RETURN_IF_ERROR(checkHeader(p->size, p->magic, p->version, kV1Size,
                                     CHORUS_COMM_PARAMS_MAGIC, CHORUS_COMM_PARAMS_VERSION,
                                     "chorusCommParams"));
  CommConfig c;
  if (!p->coordinator || !*p->coordinator)
    return invalidArgument(
        "no coordinator address: set chorusCommParams_t.coordinator or CHORUS_COORDINATOR");
  CHORUS_ASSIGN_OR_RETURN(c.coordinators, parseHostPortList(p->coordinator));
  c.secret = p->secret ? p->secret : "";
  c.group = (p->group && *p->group) ? p->group : "default";
  if (c.group.size() > 255) return invalidArgument("group name longer than 255 bytes");
  if (p->expectedPeers < 0 || p->expectedPeers > 65536)
    return invalidArgument("expectedPeers must be in [0, 65536]");
  c.expectedPeers = p->expectedPeers == 0 ? 1 : p->expectedPeers;
  if (p->connectionsPerPeer == CHORUS_CONNECTIONS_ADAPTIVE) {
    int pool = envIntOr("CHORUS_MAX_CONNECTIONS_PER_PEER", 16);
    if (pool < 1 || pool > 64)
      return invalidArgument("CHORUS_MAX_CONNECTIONS_PER_PEER must be in [1, 64]");
    c.connectionsPerPeer = pool;
    c.adaptiveStreams = true;
  } else {
    if (p->connectionsPerPeer < 0 || p->connectionsPerPeer > 64)
      return invalidArgument(
          "connectionsPerPeer must be in [1, 64] or CHORUS_CONNECTIONS_ADAPTIVE");
    c.connectionsPerPeer = p->connectionsPerPeer == 0 ? 1 : p->connectionsPerPeer;
  }
  if (p->connectTimeoutMs < 0 || p->opTimeoutMs < 0)
    return invalidArgument("timeouts must not be negative");
  c.connectTimeoutMs = p->connectTimeoutMs == 0 ? 60000 : p->connectTimeoutMs;
  c.opTimeoutMs = p->opTimeoutMs == 0 ? 60000 : p->opTimeoutMs;
  c.listenHost = p->listenHost ? p->listenHost : "";
  bool hasLocality =
      p->version >= 2 && p->size >= offsetof(chorusCommParams_t, locality) + sizeof(p->locality);
  c.locality = (hasLocality && p->locality) ? p->locality : envOr("CHORUS_LOCALITY", "");
  // Callers built against version 2 get TLS from the environment.
  chorusCommParams_t env;
  bool hasTls =
      p->version >= 3 && p->size >= offsetof(chorusCommParams_t, tlsCa) + sizeof(p->tlsCa);
  if (!hasTls) {
    fillCommDefaults(&env);
    p = &env;
  }
  CHORUS_RETURN_IF_ERROR(tlsFromParams(p->tls, p->tlsCert, p->tlsKey, p->tlsCa, &c.tls, &c.tlsCert,
                                       &c.tlsKey, &c.tlsCa));
  c.uniformOutcome = envIntOr("CHORUS_UNIFORM", 1) != 0;
  c.algorithm = envOr("CHORUS_ALGO", "");
  c.spinUs = envIntOr("CHORUS_SPIN_US", -1);
  c.streamStallMs = std::max(0, envIntOr("CHORUS_STREAM_STALL_MS", 3000));
  c.relinkMs = std::max(0, envIntOr("CHORUS_RELINK_MS", 3000));
  return c;
}

Result<CoordinatorConfig> coordinatorConfigFromParams(const chorusCoordinatorParams_t* p) {
  // Version 1 ended before `tls`.
  CHORUS_RETURN_IF_ERROR(checkHeader(p->size, p->magic, p->version,
                                     offsetof(chorusCoordinatorParams_t, tls),
                                     CHORUS_COORDINATOR_PARAMS_MAGIC,
                                     CHORUS_COORDINATOR_PARAMS_VERSION, "chorusCoordinatorParams"));
  CoordinatorConfig c;
  CHORUS_ASSIGN_OR_RETURN(c.bind, parseHostPort(p->bindAddress ? p->bindAddress : "0.0.0.0:0",
                                                /*allowZeroPort=*/true));
  c.secret = p->secret ? p->secret : "";
  if (p->heartbeatIntervalMs < 0 || p->failureTimeoutMs < 0 || p->viewSetupTimeoutMs < 0 ||
      p->recoveryGraceMs < 0)
    return invalidArgument("coordinator timeouts must not be negative");
  if (p->heartbeatIntervalMs) c.heartbeatIntervalMs = p->heartbeatIntervalMs;
  if (p->failureTimeoutMs) c.failureTimeoutMs = p->failureTimeoutMs;
  if (c.failureTimeoutMs < 2 * c.heartbeatIntervalMs)
    return invalidArgument("failureTimeoutMs must be at least twice heartbeatIntervalMs");
  if (p->viewSetupTimeoutMs) c.viewSetupTimeoutMs = p->viewSetupTimeoutMs;
  c.recoveryGraceMs = p->recoveryGraceMs;
  if (p->quorumPolicy < 0 || p->quorumPolicy > 2)
    return invalidArgument("quorumPolicy must be 0 (auto), 1 (majority) or 2 (any)");
  c.quorumPolicy = p->quorumPolicy;
  // Callers built against version 1 get TLS from the environment.
  chorusCoordinatorParams_t env;
  if (!(p->version >= 2 &&
        p->size >= offsetof(chorusCoordinatorParams_t, tlsCa) + sizeof(p->tlsCa))) {
    fillCoordinatorDefaults(&env);
    p = &env;
  }
  CHORUS_RETURN_IF_ERROR(tlsFromParams(p->tls, p->tlsCert, p->tlsKey, p->tlsCa, &c.tls, &c.tlsCert,
                                       &c.tlsKey, &c.tlsCa));
  return c;
}

}  // namespace chorus
