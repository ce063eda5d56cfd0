// Control-plane messages: peer <-> coordinator, and the handshake that opens
// a peer <-> peer data connection. Each message travels as a 12-byte header
// (magic, version, type, body length) followed by a body encoded with
// wire::Writer. Decoders reject unknown types, wrong versions, oversized or
// truncated bodies and trailing bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/core/status.h"
#include "src/membership/view.h"
#include "src/protocol/auth.h"
#include "src/protocol/wire.h"

namespace chorus::control {

constexpr uint32_t kMagic = 0x43524843u;  // "CHRC"
// 2: HELLO carries the TLS mode; 3: HELLO names the connection's generation
// and may ask for a stream to be dialled again (Role::kRedial); 4: REGISTERED
// carries the coordinator's failure timeout (a peer's lease).
constexpr uint8_t kVersion = 4;
constexpr size_t kHeaderSize = 12;
constexpr uint32_t kMaxBody = 16u << 20;

enum class Type : uint8_t {
  // Authentication (both links)
  kHello = 1,      // client -> server: who I am + client nonce
  kChallenge = 2,  // server -> client: server nonce + server proof
  kAuth = 3,       // client -> server: client proof
  kWelcome = 4,    // server -> client: authenticated
  kError = 5,      // either way: code + message, then the sender closes
  // Peer <-> coordinator
  kRegister = 10,        // peer -> coord: join / re-register
  kRegistered = 11,      // coord -> peer: accepted (pending or member)
  kHeartbeat = 12,       // peer -> coord
  kHeartbeatAck = 13,    // coord -> peer: pending counts
  kViewProposal = 14,    // coord -> members: new view, open connections and report
  kReady = 15,           // member -> coord: connections open, report attached
  kCommit = 16,          // coord -> members: view is live, decisions attached
  kUpdateRequest = 17,   // member -> coord: joint chorusUpdateMembership
  kUpdateNoChange = 18,  // coord -> members: update barrier passed, nothing to change
  kLeaveNow = 19,        // member -> coord: leaving outside a joint call (destroy)
  kAnnounceLeave = 20,   // member -> coord: will leave at the next update
  kRemoved = 21,         // coord -> peer: you are not (or no longer) a member
  kSuspect = 22,         // member -> coord: lost my connection to a peer
};
const char* typeName(Type t);

struct Message {
  Type type = Type::kError;
  std::vector<uint8_t> body;
};

// Serialise header + body into one buffer.
std::vector<uint8_t> frame(Type type, const std::vector<uint8_t>& body);
// Validate a 12-byte header; on success sets type and body length.
Status decodeHeader(const uint8_t* in, Type* type, uint32_t* bodyLen);

// kRedial: the higher peer id of a pair lost stream `stream` (generation
// `generation`) with no other stream open, and asks the lower id, which
// dials, to dial it again (it may not have seen the break: a dropped flow
// carries no reset). The connection closes after the handshake.
enum class Role : uint8_t { kPeer = 1, kDataLink = 2, kRedial = 3 };

struct Hello {
  uint16_t protocol = kVersion;
  Role role = Role::kPeer;
  std::string group;
  uint64_t fromPeer = 0;     // data links: dialing peer
  uint64_t toPeer = 0;       // data links: peer being dialed
  uint16_t stream = 0;       // data links: index of this connection in the pair's pool
  uint16_t streamCount = 1;  // data links: size of the pair's pool
  uint64_t epoch = 0;        // data links: epoch of the view the dialer is setting up
  auth::Nonce nonce{};
  uint8_t tls = 0;  // data links: the dialer's chorusTlsMode_t (both ends must agree)
  // Data links: how many connections of this stream came before this one
  // since the link was set up (0: the first); kRedial: the one lost.
  uint32_t generation = 0;
  std::vector<uint8_t> encode() const;
  static Result<Hello> decode(const std::vector<uint8_t>& b);
};

struct Challenge {
  auth::Nonce nonce{};
  auth::Proof proof{};
  std::vector<uint8_t> encode() const;
  static Result<Challenge> decode(const std::vector<uint8_t>& b);
};

struct AuthMsg {
  auth::Proof proof{};
  std::vector<uint8_t> encode() const;
  static Result<AuthMsg> decode(const std::vector<uint8_t>& b);
};

struct ErrorMsg {
  Code code = Code::kInternal;
  std::string message;
  std::vector<uint8_t> encode() const;
  static Result<ErrorMsg> decode(const std::vector<uint8_t>& b);
  Status toStatus() const { return Status(code, message); }
};

struct Register {
  uint64_t peerId = 0;
  std::string listenHost;
  uint16_t listenPort = 0;
  std::string hostId;
  uint32_t expectedPeers = 1;
  uint32_t coordinatorCount = 1;  // >1: a standby exists (quorum policy "auto")
  // Re-registration after the coordinator link broke: the last committed
  // view, and the report of the last transition with whether its decisions
  // arrived.
  View knownView;
  bool hasReport = false;
  bool decisionsReceived = false;
  uint64_t reportForEpoch = 0;  // epoch of the proposal the report was sent for
  Report lastReport;
  Decisions lastDecisions;  // when decisionsReceived: what that commit decided
  std::vector<uint8_t> encode() const;
  static Result<Register> decode(const std::vector<uint8_t>& b);
};

enum class RegisterStatus : uint8_t { kPending = 0, kMember = 1, kRecovering = 2 };

struct Registered {
  RegisterStatus status = RegisterStatus::kPending;
  uint32_t heartbeatMs = 100;
  uint64_t epoch = 0;
  // Silence after which the coordinator declares a peer dead: a peer whose
  // heartbeat sent at t was acknowledged is not removed for silence before
  // t + failureTimeoutMs (its lease).
  uint32_t failureTimeoutMs = 1000;
  std::vector<uint8_t> encode() const;
  static Result<Registered> decode(const std::vector<uint8_t>& b);
};

struct Heartbeat {
  uint64_t epoch = 0;
  std::vector<uint8_t> encode() const;
  static Result<Heartbeat> decode(const std::vector<uint8_t>& b);
};

struct HeartbeatAck {
  uint64_t epoch = 0;
  uint32_t pendingJoins = 0;
  uint32_t pendingLeaves = 0;
  std::vector<uint8_t> encode() const;
  static Result<HeartbeatAck> decode(const std::vector<uint8_t>& b);
};

struct ViewProposal {
  View view;
  uint64_t lastCommitted = 0;  // epoch whose operations are being closed
  ViewReason reason = ViewReason::kInitial;
  bool endsUpdate = false;  // committing it completes a joint chorusUpdateMembership
  std::vector<uint8_t> encode() const;
  static Result<ViewProposal> decode(const std::vector<uint8_t>& b);
};

struct Ready {
  uint64_t epoch = 0;  // proposal being acknowledged
  Report report;
  std::vector<uint8_t> encode() const;
  static Result<Ready> decode(const std::vector<uint8_t>& b);
};

struct Commit {
  uint64_t epoch = 0;
  ViewReason reason = ViewReason::kInitial;
  bool endsUpdate = false;
  Decisions decisions;
  std::vector<uint8_t> encode() const;
  static Result<Commit> decode(const std::vector<uint8_t>& b);
};

struct UpdateRequest {
  uint64_t epoch = 0;
  bool leave = false;
  std::vector<uint8_t> encode() const;
  static Result<UpdateRequest> decode(const std::vector<uint8_t>& b);
};

struct EpochOnly {  // kUpdateNoChange, kLeaveNow, kAnnounceLeave
  uint64_t epoch = 0;
  std::vector<uint8_t> encode() const;
  static Result<EpochOnly> decode(const std::vector<uint8_t>& b);
};

struct Removed {
  std::string reason;
  std::vector<uint8_t> encode() const;
  static Result<Removed> decode(const std::vector<uint8_t>& b);
};

struct Suspect {
  uint64_t epoch = 0;
  uint64_t peerId = 0;
  std::string reason;
  std::vector<uint8_t> encode() const;
  static Result<Suspect> decode(const std::vector<uint8_t>& b);
};

}  // namespace chorus::control
