#include "src/membership/view.h"

#include <iterator>
#include <map>
#include <set>
#include <utility>

namespace chorus {

namespace {
constexpr size_t kMaxMembers = 1 << 16;
constexpr size_t kMaxOps = 1 << 20;
constexpr size_t kMaxTags = 1 << 20;
}  // namespace

const char* viewReasonName(ViewReason r) {
  switch (r) {
    case ViewReason::kInitial:
      return "initial";
    case ViewReason::kUpdate:
      return "update";
    case ViewReason::kFailure:
      return "failure";
    case ViewReason::kLeave:
      return "leave";
    case ViewReason::kRecovery:
      return "recovery";
  }
  return "?";
}

int View::rankOf(uint64_t peerId) const {
  for (size_t i = 0; i < members.size(); ++i)
    if (members[i].peerId == peerId) return static_cast<int>(i);
  return -1;
}

void View::encode(wire::Writer& w) const {
  w.u64(epoch);
  w.u32(static_cast<uint32_t>(members.size()));
  for (const Member& m : members) {
    w.u64(m.peerId);
    w.str(m.host);
    w.u16(m.port);
    w.str(m.hostId);
  }
}

View View::decode(wire::Reader& r) {
  View v;
  v.epoch = r.u64();
  uint32_t n = r.count(kMaxMembers, 8 + 4 + 2 + 4);
  v.members.resize(n);
  for (Member& m : v.members) {
    m.peerId = r.u64();
    m.host = r.str(255);
    m.port = r.u16();
    m.hostId = r.str(512);
  }
  return v;
}

void Report::encode(wire::Writer& w) const {
  w.u64(ofEpoch);
  w.u32(static_cast<uint32_t>(ops.size()));
  for (const OpReport& o : ops) {
    w.u64(o.tag);
    w.u64(o.seq);
    w.u8(static_cast<uint8_t>((o.haveAll ? 1 : 0) | (o.inputModified ? 2 : 0) |
                              (o.partner ? 4 : 0) | (o.succeeded ? 8 : 0)));
    if (o.partner) w.u64(o.partner);
  }
  w.u32(static_cast<uint32_t>(progress.size()));
  for (const TagProgress& t : progress) {
    w.u64(t.tag);
    w.u64(t.next);
  }
}

Report Report::decode(wire::Reader& r) {
  Report rep;
  rep.ofEpoch = r.u64();
  uint32_t n = r.count(kMaxOps, 17);
  rep.ops.resize(n);
  for (OpReport& o : rep.ops) {
    o.tag = r.u64();
    o.seq = r.u64();
    uint8_t f = r.u8();
    if (f & ~15u) r.fail("unknown op report flags");
    o.haveAll = f & 1;
    o.inputModified = f & 2;
    o.succeeded = f & 8;
    if (f & 4) {
      o.partner = r.u64();
      if (o.partner == 0) r.fail("point-to-point report without a partner");
    }
  }
  uint32_t t = r.count(kMaxTags, 16);
  rep.progress.resize(t);
  for (TagProgress& p : rep.progress) {
    p.tag = r.u64();
    p.next = r.u64();
  }
  return rep;
}

void Decisions::encode(wire::Writer& w) const {
  w.u64(ofEpoch);
  w.u32(static_cast<uint32_t>(ops.size()));
  for (const OpDecision& d : ops) {
    w.u64(d.tag);
    w.u64(d.seq);
    w.u8(static_cast<uint8_t>(d.decision));
  }
}

Decisions Decisions::decode(wire::Reader& r) {
  Decisions ds;
  ds.ofEpoch = r.u64();
  uint32_t n = r.count(kMaxOps, 17);
  ds.ops.resize(n);
  for (OpDecision& d : ds.ops) {
    d.tag = r.u64();
    d.seq = r.u64();
    uint8_t v = r.u8();
    if (v > static_cast<uint8_t>(Decision::kRerun)) r.fail("unknown decision value");
    d.decision = static_cast<Decision>(v);
  }
  return ds;
}

const OpDecision* Decisions::find(uint64_t tag, uint64_t seq) const {
  for (const OpDecision& d : ops)
    if (d.tag == tag && d.seq == seq) return &d;
  return nullptr;
}

Decisions decide(const std::map<uint64_t, Report>& reports, const View& closing,
                 ViewReason reason) {
  struct Tally {
    bool anyPartial = false;
    bool anyInputModified = false;
    std::set<uint64_t> reporters;
    std::set<uint64_t> partners;  // point-to-point ends named by reporters
    bool pointToPoint = false;
    bool succeededSomewhere = false;
  };
  std::map<std::pair<uint64_t, uint64_t>, Tally> keys;
  uint64_t ofEpoch = 0;
  for (const auto& [peer, rep] : reports) {
    if (rep.ofEpoch > ofEpoch) ofEpoch = rep.ofEpoch;
    for (const OpReport& o : rep.ops) {
      Tally& t = keys[{o.tag, o.seq}];
      if (!o.haveAll) t.anyPartial = true;
      if (o.inputModified) t.anyInputModified = true;
      if (o.succeeded) t.succeededSomewhere = true;
      t.reporters.insert(peer);
      if (o.partner) {
        t.pointToPoint = true;
        t.partners.insert(o.partner);
      }
    }
  }
  // Members of the closing view that survive into the new one.
  std::vector<uint64_t> survivors;
  for (const Member& m : closing.members)
    if (reports.count(m.peerId)) survivors.push_back(m.peerId);
  auto called = [&](uint64_t peer, uint64_t tag, uint64_t seq) {
    const Report& rep = reports.at(peer);
    for (const TagProgress& p : rep.progress)
      if (p.tag == tag) return seq < p.next;
    return false;
  };
  Decisions ds;
  ds.ofEpoch = ofEpoch;
  for (const auto& [key, t] : keys) {
    OpDecision d;
    d.tag = key.first;
    d.seq = key.second;
    bool everyoneCalled = true;
    for (uint64_t s : survivors) {
      bool involved = t.pointToPoint ? t.partners.count(s) > 0 : true;
      if (involved && !t.reporters.count(s) && !called(s, key.first, key.second))
        everyoneCalled = false;
    }
    // A member that returned success already cannot take it back; the
    // others complete it from frames in flight (see OpReport::succeeded).
    if (t.succeededSomewhere || (!t.anyPartial && everyoneCalled))
      d.decision = Decision::kSuccess;
    else if (reason == ViewReason::kLeave && !t.anyInputModified)
      d.decision = Decision::kRerun;
    else
      d.decision = Decision::kFail;
    ds.ops.push_back(d);
  }
  return ds;
}

std::set<uint64_t> peersToEvict(const std::map<uint64_t, std::set<uint64_t>>& accusers) {
  // Edges accuser -> accused, both still kept.
  std::set<std::pair<uint64_t, uint64_t>> edges;
  for (const auto& [accused, by] : accusers)
    for (uint64_t a : by)
      if (a != accused) edges.insert({a, accused});
  std::set<uint64_t> evicted;
  while (!edges.empty()) {
    std::map<uint64_t, int> degree;
    std::set<uint64_t> accused;
    for (const auto& [a, b] : edges) {
      ++degree[a];
      ++degree[b];
      accused.insert(b);
    }
    uint64_t pick = 0;
    for (uint64_t b : accused)
      if (pick == 0 || degree[b] > degree[pick] || (degree[b] == degree[pick] && b > pick))
        pick = b;
    evicted.insert(pick);
    for (auto it = edges.begin(); it != edges.end();)
      it = (it->first == pick || it->second == pick) ? edges.erase(it) : std::next(it);
  }
  return evicted;
}

}  // namespace chorus
