#include "src/protocol/control.h"

namespace chorus::control {

const char* typeName(Type t) {
  switch (t) {
    case Type::kHello:
      return "HELLO";
    case Type::kChallenge:
      return "CHALLENGE";
    case Type::kAuth:
      return "AUTH";
    case Type::kWelcome:
      return "WELCOME";
    case Type::kError:
      return "ERROR";
    case Type::kRegister:
      return "REGISTER";
    case Type::kRegistered:
      return "REGISTERED";
    case Type::kHeartbeat:
      return "HEARTBEAT";
    case Type::kHeartbeatAck:
      return "HEARTBEAT_ACK";
    case Type::kViewProposal:
      return "VIEW_PROPOSAL";
    case Type::kReady:
      return "READY";
    case Type::kCommit:
      return "COMMIT";
    case Type::kUpdateRequest:
      return "UPDATE_REQUEST";
    case Type::kUpdateNoChange:
      return "UPDATE_NO_CHANGE";
    case Type::kLeaveNow:
      return "LEAVE_NOW";
    case Type::kAnnounceLeave:
      return "ANNOUNCE_LEAVE";
    case Type::kRemoved:
      return "REMOVED";
    case Type::kSuspect:
      return "SUSPECT";
  }
  return "?";
}

static bool knownType(uint8_t t) {
  return (t >= 1 && t <= 5) || (t >= 10 && t <= 22);
}

std::vector<uint8_t> frame(Type type, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out(kHeaderSize + body.size());
  wire::storeU32(out.data(), kMagic);
  out[4] = kVersion;
  out[5] = static_cast<uint8_t>(type);
  wire::storeU16(out.data() + 6, 0);
  wire::storeU32(out.data() + 8, static_cast<uint32_t>(body.size()));
  std::copy(body.begin(), body.end(), out.begin() + kHeaderSize);
  return out;
}

Status decodeHeader(const uint8_t* in, Type* type, uint32_t* bodyLen) {
  if (wire::loadU32(in) != kMagic) return protocolError("not a Chorus control message (bad magic)");
  if (in[4] != kVersion)
    return protocolError("control protocol version " + std::to_string(in[4]) +
                         " is not supported (this build speaks " + std::to_string(kVersion) + ")");
  if (!knownType(in[5]))
    return protocolError("unknown control message type " + std::to_string(in[5]));
  uint32_t len = wire::loadU32(in + 8);
  if (len > kMaxBody)
    return protocolError("control message of " + std::to_string(len) +
                         " bytes exceeds the limit of " + std::to_string(kMaxBody));
  *type = static_cast<Type>(in[5]);
  *bodyLen = len;
  return Status::ok();
}

// ---- encoders / decoders --------------------------------------------------

std::vector<uint8_t> Hello::encode() const {
  wire::Writer w;
  w.u16(protocol);
  w.u8(static_cast<uint8_t>(role));
  w.str(group);
  w.u64(fromPeer);
  w.u64(toPeer);
  w.u16(stream);
  w.u16(streamCount);
  w.u64(epoch);
  w.fixed(nonce);
  w.u8(tls);
  w.u32(generation);
  return std::move(w.buffer());
}
Result<Hello> Hello::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Hello h;
  h.protocol = r.u16();
  uint8_t role = r.u8();
  h.group = r.str(255);
  h.fromPeer = r.u64();
  h.toPeer = r.u64();
  h.stream = r.u16();
  h.streamCount = r.u16();
  h.epoch = r.u64();
  h.nonce = r.fixed<32>();
  h.tls = r.u8();
  h.generation = r.u32();
  CHORUS_RETURN_IF_ERROR(r.finish("HELLO"));
  if (role != static_cast<uint8_t>(Role::kPeer) && role != static_cast<uint8_t>(Role::kDataLink) &&
      role != static_cast<uint8_t>(Role::kRedial))
    return protocolError("HELLO with unknown role " + std::to_string(role));
  h.role = static_cast<Role>(role);
  if (h.role != Role::kPeer && (h.streamCount == 0 || h.stream >= h.streamCount))
    return protocolError("HELLO with stream index out of range");
  return h;
}

std::vector<uint8_t> Challenge::encode() const {
  wire::Writer w;
  w.fixed(nonce);
  w.fixed(proof);
  return std::move(w.buffer());
}
Result<Challenge> Challenge::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Challenge c;
  c.nonce = r.fixed<32>();
  c.proof = r.fixed<32>();
  CHORUS_RETURN_IF_ERROR(r.finish("CHALLENGE"));
  return c;
}

std::vector<uint8_t> AuthMsg::encode() const {
  wire::Writer w;
  w.fixed(proof);
  return std::move(w.buffer());
}
Result<AuthMsg> AuthMsg::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  AuthMsg a;
  a.proof = r.fixed<32>();
  CHORUS_RETURN_IF_ERROR(r.finish("AUTH"));
  return a;
}

std::vector<uint8_t> ErrorMsg::encode() const {
  wire::Writer w;
  w.u8(static_cast<uint8_t>(code));
  w.str(message);
  return std::move(w.buffer());
}
Result<ErrorMsg> ErrorMsg::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  ErrorMsg e;
  uint8_t c = r.u8();
  e.message = r.str(4096);
  CHORUS_RETURN_IF_ERROR(r.finish("ERROR"));
  if (c == 0 || c > static_cast<uint8_t>(Code::kInProgress))
    c = static_cast<uint8_t>(Code::kInternal);
  e.code = static_cast<Code>(c);
  return e;
}

std::vector<uint8_t> Register::encode() const {
  wire::Writer w;
  w.u64(peerId);
  w.str(listenHost);
  w.u16(listenPort);
  w.str(hostId);
  w.u32(expectedPeers);
  w.u32(coordinatorCount);
  knownView.encode(w);
  w.u8(static_cast<uint8_t>((hasReport ? 1 : 0) | (decisionsReceived ? 2 : 0)));
  w.u64(reportForEpoch);
  lastReport.encode(w);
  lastDecisions.encode(w);
  return std::move(w.buffer());
}
Result<Register> Register::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Register g;
  g.peerId = r.u64();
  g.listenHost = r.str(255);
  g.listenPort = r.u16();
  g.hostId = r.str(512);
  g.expectedPeers = r.u32();
  g.coordinatorCount = r.u32();
  g.knownView = View::decode(r);
  uint8_t flags = r.u8();
  g.hasReport = flags & 1;
  g.decisionsReceived = flags & 2;
  g.reportForEpoch = r.u64();
  g.lastReport = Report::decode(r);
  g.lastDecisions = Decisions::decode(r);
  CHORUS_RETURN_IF_ERROR(r.finish("REGISTER"));
  if (g.peerId == 0) return protocolError("REGISTER with peer id 0");
  if (g.expectedPeers == 0 || g.expectedPeers > 65536)
    return protocolError("REGISTER with expected peers out of range");
  return g;
}

std::vector<uint8_t> Registered::encode() const {
  wire::Writer w;
  w.u8(static_cast<uint8_t>(status));
  w.u32(heartbeatMs);
  w.u64(epoch);
  w.u32(failureTimeoutMs);
  return std::move(w.buffer());
}
Result<Registered> Registered::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Registered g;
  uint8_t s = r.u8();
  g.heartbeatMs = r.u32();
  g.epoch = r.u64();
  g.failureTimeoutMs = r.u32();
  CHORUS_RETURN_IF_ERROR(r.finish("REGISTERED"));
  if (s > 2) return protocolError("REGISTERED with unknown status");
  if (g.heartbeatMs == 0 || g.heartbeatMs > 60000)
    return protocolError("REGISTERED with heartbeat period out of range");
  if (g.failureTimeoutMs == 0 || g.failureTimeoutMs > 3600000)
    return protocolError("REGISTERED with failure timeout out of range");
  g.status = static_cast<RegisterStatus>(s);
  return g;
}

std::vector<uint8_t> Heartbeat::encode() const {
  wire::Writer w;
  w.u64(epoch);
  return std::move(w.buffer());
}
Result<Heartbeat> Heartbeat::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Heartbeat h;
  h.epoch = r.u64();
  CHORUS_RETURN_IF_ERROR(r.finish("HEARTBEAT"));
  return h;
}

std::vector<uint8_t> HeartbeatAck::encode() const {
  wire::Writer w;
  w.u64(epoch);
  w.u32(pendingJoins);
  w.u32(pendingLeaves);
  return std::move(w.buffer());
}
Result<HeartbeatAck> HeartbeatAck::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  HeartbeatAck h;
  h.epoch = r.u64();
  h.pendingJoins = r.u32();
  h.pendingLeaves = r.u32();
  CHORUS_RETURN_IF_ERROR(r.finish("HEARTBEAT_ACK"));
  return h;
}

static void checkReason(uint8_t v, wire::Reader& r) {
  if (v > static_cast<uint8_t>(ViewReason::kRecovery)) r.fail("unknown view reason");
}

std::vector<uint8_t> ViewProposal::encode() const {
  wire::Writer w;
  view.encode(w);
  w.u64(lastCommitted);
  w.u8(static_cast<uint8_t>(reason));
  w.u8(endsUpdate ? 1 : 0);
  return std::move(w.buffer());
}
Result<ViewProposal> ViewProposal::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  ViewProposal p;
  p.view = View::decode(r);
  p.lastCommitted = r.u64();
  uint8_t reason = r.u8();
  checkReason(reason, r);
  uint8_t ends = r.u8();
  CHORUS_RETURN_IF_ERROR(r.finish("VIEW_PROPOSAL"));
  if (ends > 1) return protocolError("VIEW_PROPOSAL with bad flag");
  p.endsUpdate = ends;
  if (p.view.epoch == 0 || p.view.members.empty())
    return protocolError("VIEW_PROPOSAL with an empty view");
  p.reason = static_cast<ViewReason>(reason);
  return p;
}

std::vector<uint8_t> Ready::encode() const {
  wire::Writer w;
  w.u64(epoch);
  report.encode(w);
  return std::move(w.buffer());
}
Result<Ready> Ready::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Ready g;
  g.epoch = r.u64();
  g.report = Report::decode(r);
  CHORUS_RETURN_IF_ERROR(r.finish("READY"));
  return g;
}

std::vector<uint8_t> Commit::encode() const {
  wire::Writer w;
  w.u64(epoch);
  w.u8(static_cast<uint8_t>(reason));
  w.u8(endsUpdate ? 1 : 0);
  decisions.encode(w);
  return std::move(w.buffer());
}
Result<Commit> Commit::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Commit c;
  c.epoch = r.u64();
  uint8_t reason = r.u8();
  checkReason(reason, r);
  uint8_t ends = r.u8();
  c.decisions = Decisions::decode(r);
  CHORUS_RETURN_IF_ERROR(r.finish("COMMIT"));
  if (ends > 1) return protocolError("COMMIT with bad flag");
  c.endsUpdate = ends;
  c.reason = static_cast<ViewReason>(reason);
  return c;
}

std::vector<uint8_t> UpdateRequest::encode() const {
  wire::Writer w;
  w.u64(epoch);
  w.u8(leave ? 1 : 0);
  return std::move(w.buffer());
}
Result<UpdateRequest> UpdateRequest::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  UpdateRequest u;
  u.epoch = r.u64();
  uint8_t l = r.u8();
  CHORUS_RETURN_IF_ERROR(r.finish("UPDATE_REQUEST"));
  if (l > 1) return protocolError("UPDATE_REQUEST with bad leave flag");
  u.leave = l;
  return u;
}

std::vector<uint8_t> EpochOnly::encode() const {
  wire::Writer w;
  w.u64(epoch);
  return std::move(w.buffer());
}
Result<EpochOnly> EpochOnly::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  EpochOnly e;
  e.epoch = r.u64();
  CHORUS_RETURN_IF_ERROR(r.finish("message"));
  return e;
}

std::vector<uint8_t> Removed::encode() const {
  wire::Writer w;
  w.str(reason);
  return std::move(w.buffer());
}
Result<Removed> Removed::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Removed m;
  m.reason = r.str(4096);
  CHORUS_RETURN_IF_ERROR(r.finish("REMOVED"));
  return m;
}

std::vector<uint8_t> Suspect::encode() const {
  wire::Writer w;
  w.u64(epoch);
  w.u64(peerId);
  w.str(reason);
  return std::move(w.buffer());
}
Result<Suspect> Suspect::decode(const std::vector<uint8_t>& b) {
  wire::Reader r(b);
  Suspect s;
  s.epoch = r.u64();
  s.peerId = r.u64();
  s.reason = r.str(4096);
  CHORUS_RETURN_IF_ERROR(r.finish("SUSPECT"));
  return s;
}

}  // namespace chorus::control
