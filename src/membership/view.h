// Views (the membership of one epoch), the reports members send when a view
// changes, and the decisions the coordinator derives from them.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "src/protocol/wire.h"

namespace chorus {

struct Member {
  uint64_t peerId = 0;
  std::string host;  // where its data listener is reachable
  uint16_t port = 0;
  std::string hostId;  // equal for members on the same host
};

// Why a view was proposed. Failure and leave views can interrupt operations
// in flight; update and initial views happen at joint calls only.
enum class ViewReason : uint8_t {
  kInitial = 0,   // first view of a group
  kUpdate = 1,    // joint chorusUpdateMembership (joins, announced leaves)
  kFailure = 2,   // a member crashed, stalled, or could not be reached
  kLeave = 3,     // a member left outside a joint call (destroy)
  kRecovery = 4,  // a restarted coordinator adopted the running view
};
const char* viewReasonName(ViewReason r);

struct View {
  uint64_t epoch = 0;           // 0 = no view
  std::vector<Member> members;  // index = rank

  int size() const { return static_cast<int>(members.size()); }
  // Rank of peerId in this view, or -1.
  int rankOf(uint64_t peerId) const;
  bool contains(uint64_t peerId) const { return rankOf(peerId) >= 0; }
  void encode(wire::Writer& w) const;
  static View decode(wire::Reader& r);
};

// One in-flight operation of the epoch being closed, as a member saw it when
// it froze the epoch.
struct OpReport {
  uint64_t tag = 0;
  uint64_t seq = 0;
  bool haveAll = false;        // holds the operation's complete result
  bool inputModified = false;  // in-place operation already overwrote its input
  uint64_t partner = 0;        // point-to-point: the other end; 0 = every member takes part
  // Already returned success here without the other member's DONE (two
  // members on shared memory, where what this side wrote reaches the other
  // while it lives): the decision must be success, and a member that froze
  // it partial completes it from the frames still arriving.
  bool succeeded = false;
};

// How far a member's numbering had gone for one tag: calls with seq < next
// were made there (and are finished unless reported).
struct TagProgress {
  uint64_t tag = 0;
  uint64_t next = 0;
};

struct Report {
  uint64_t ofEpoch = 0;
  std::vector<OpReport> ops;
  std::vector<TagProgress> progress;
  void encode(wire::Writer& w) const;
  static Report decode(wire::Reader& r);
};

enum class Decision : uint8_t {
  kSuccess = 0,  // every survivor holds the full result: complete successfully
  kFail = 1,     // fail with chorusPeerLost
  kRerun = 2,    // run again in the new view (graceful leave, inputs intact)
};

struct OpDecision {
  uint64_t tag = 0;
  uint64_t seq = 0;
  Decision decision = Decision::kFail;
};

struct Decisions {
  uint64_t ofEpoch = 0;
  std::vector<OpDecision> ops;
  void encode(wire::Writer& w) const;
  static Decisions decode(wire::Reader& r);
  // Decision for (tag, seq), or nullptr when the key was not reported.
  const OpDecision* find(uint64_t tag, uint64_t seq) const;
};

// The rule that keeps outcomes uniform (docs/ARCHITECTURE.md, "Uniform
// outcome"): an operation succeeds iff no survivor reports it partial (a
// member returns success only after every member held the full result, so
// then every survivor does) and every surviving member it involves has
// called it (a broadcast's root or a send can hold "everything" while a
// receiver has not called yet; that receiver would wait forever). Otherwise
// it is re-run when the view changed by a graceful leave and no survivor's
// input was overwritten, else it fails.
// `reports` holds one report per member of the new view, by peer id;
// `closing` is the view whose epoch is being closed.
Decisions decide(const std::map<uint64_t, Report>& reports, const View& closing, ViewReason reason);

// Whom to remove when members report each other unreachable (accused ->
// its accusers; every one a live member). A partition between live peers
// makes both sides accuse each other, so removing every accused peer would
// empty the job; instead remove as few as leave no accusation standing
// between those kept, greedily: the accused peer with the most accusations
// in and out first (ties: the higher peer id), then drop what it said and
// what was said of it, and repeat. A dead peer accuses no one: it alone
// goes. Only accused peers are ever removed.
std::set<uint64_t> peersToEvict(const std::map<uint64_t, std::set<uint64_t>>& accusers);

}  // namespace chorus
