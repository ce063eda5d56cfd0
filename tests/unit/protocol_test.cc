// Wire formats: round trips, and rejection of truncated, oversized,
// wrong-version and garbled input (no crash, a clear error).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "src/membership/view.h"
#include "src/protocol/auth.h"
#include "src/protocol/control.h"
#include "src/protocol/frame.h"
#include "src/protocol/wire.h"

using namespace chorus;

TEST(Frame, RoundTrip) {
  frame::Header h;
  h.type = frame::Type::kDone;
  h.flags = 7;
  h.length = 12345;
  h.block = 99;
  h.epoch = 1ull << 40;
  h.tag = 0xdeadbeefcafe;
  h.seq = 17;
  h.desc = 0x0102030405060708ull;
  uint8_t buf[frame::kHeaderSize];
  frame::encode(h, buf);
  frame::Header g;
  ASSERT_TRUE(frame::decode(buf, &g).isOk());
  EXPECT_EQ(g.type, h.type);
  EXPECT_EQ(g.flags, h.flags);
  EXPECT_EQ(g.length, h.length);
  EXPECT_EQ(g.block, h.block);
  EXPECT_EQ(g.epoch, h.epoch);
  EXPECT_EQ(g.tag, h.tag);
  EXPECT_EQ(g.seq, h.seq);
  EXPECT_EQ(g.desc, h.desc);
}

TEST(Frame, RejectsBadInput) {
  frame::Header h;
  h.length = 10;
  uint8_t buf[frame::kHeaderSize];
  frame::Header g;

  frame::encode(h, buf);
  buf[0] ^= 0xff;
  Status s = frame::decode(buf, &g);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("magic"), std::string::npos);

  frame::encode(h, buf);
  buf[4] = 9;
  s = frame::decode(buf, &g);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("version 9"), std::string::npos);
  // Version 1 had no kFlagAfterDone: its peers would drop the DONEs that
  // ride in data frames, so it is refused, not half understood.
  frame::encode(h, buf);
  buf[4] = 1;
  s = frame::decode(buf, &g);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("version 1 not supported"), std::string::npos);

  frame::encode(h, buf);
  buf[5] = 77;
  EXPECT_EQ(frame::decode(buf, &g).code(), Code::kProtocol);
  // RESULT (7) is the last type; the next one is refused.
  buf[5] = static_cast<uint8_t>(frame::Type::kResult);
  ASSERT_TRUE(frame::decode(buf, &g).isOk());
  EXPECT_EQ(g.type, frame::Type::kResult);
  EXPECT_STREQ(frame::typeName(g.type), "RESULT");
  buf[5] = static_cast<uint8_t>(frame::Type::kResult) + 1;
  EXPECT_EQ(frame::decode(buf, &g).code(), Code::kProtocol);

  h.length = frame::kMaxPayload + 1;
  frame::encode(h, buf);
  s = frame::decode(buf, &g);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("exceeds"), std::string::npos);
}

TEST(Frame, RandomBytesNeverCrash) {
  std::mt19937 rng(1);
  uint8_t buf[frame::kHeaderSize];
  frame::Header g;
  int accepted = 0;
  for (int i = 0; i < 100000; ++i) {
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    if (i % 2) wire::storeU32(buf, frame::kMagic);  // get past the magic half the time
    if (frame::decode(buf, &g).isOk()) {
      ++accepted;
      EXPECT_LE(g.length, frame::kMaxPayload);
    }
  }
  SUCCEED() << accepted << " random headers decoded";
}

TEST(Wire, ReaderBounds) {
  wire::Writer w;
  w.u32(5);
  w.str("hello");
  w.u64(42);
  auto buf = w.buffer();
  {
    wire::Reader r(buf);
    EXPECT_EQ(r.u32(), 5u);
    EXPECT_EQ(r.str(100), "hello");
    EXPECT_EQ(r.u64(), 42u);
    EXPECT_TRUE(r.finish("test").isOk());
  }
  {
    wire::Reader r(buf);
    r.u32();
    EXPECT_EQ(r.str(3), "");  // over the limit
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.finish("test").code(), Code::kProtocol);
  }
  for (size_t cut = 0; cut < buf.size(); ++cut) {
    wire::Reader r(buf.data(), cut);
    r.u32();
    r.str(100);
    r.u64();
    EXPECT_FALSE(r.ok()) << cut;
    EXPECT_EQ(r.u64(), 0u);  // sticky failure, zero values
  }
  {
    wire::Reader r(buf);
    r.u32();
    EXPECT_EQ(r.finish("test").code(), Code::kProtocol);  // trailing bytes
  }
  {
    // A list count that the remaining bytes cannot hold.
    wire::Writer w2;
    w2.u32(1000000);
    auto b2 = w2.buffer();
    wire::Reader r(b2);
    EXPECT_EQ(r.count(1 << 20, 8), 0u);
    EXPECT_FALSE(r.ok());
  }
}

namespace {
View sampleView() {
  View v;
  v.epoch = 7;
  v.members.push_back({11, "10.0.0.1", 5000, "hostA"});
  v.members.push_back({22, "10.0.0.2", 5001, "hostB"});
  return v;
}

// Decoding every prefix of a valid body fails cleanly, and random bodies
// never crash the decoder.
template <typename M>
void checkTruncationAndGarbage(const std::vector<uint8_t>& body) {
  for (size_t cut = 0; cut < body.size(); ++cut) {
    std::vector<uint8_t> part(body.begin(), body.begin() + cut);
    EXPECT_FALSE(M::decode(part).isOk()) << "prefix of " << cut << " bytes accepted";
  }
  auto extra = body;
  extra.push_back(0);
  EXPECT_FALSE(M::decode(extra).isOk()) << "trailing byte accepted";
  std::mt19937 rng(static_cast<unsigned>(body.size()));
  for (int i = 0; i < 2000; ++i) {
    auto g = body;
    for (int k = 0; k < 3; ++k) g[rng() % g.size()] = static_cast<uint8_t>(rng());
    (void)M::decode(g);  // must not crash or allocate absurdly
  }
}
}  // namespace

TEST(Control, RoundTrips) {
  control::Hello h;
  h.role = control::Role::kDataLink;
  h.group = "grp";
  h.fromPeer = 1;
  h.toPeer = 2;
  h.stream = 3;
  h.streamCount = 4;
  h.epoch = 5;
  h.nonce = auth::makeNonce();
  h.tls = 2;
  h.generation = 7;
  auto hb = h.encode();
  auto h2 = control::Hello::decode(hb);
  ASSERT_TRUE(h2.isOk());
  EXPECT_EQ(h2->group, "grp");
  EXPECT_EQ(h2->stream, 3);
  EXPECT_EQ(h2->streamCount, 4);
  EXPECT_EQ(h2->nonce, h.nonce);
  EXPECT_EQ(h2->tls, 2);
  EXPECT_EQ(h2->generation, 7u);
  checkTruncationAndGarbage<control::Hello>(hb);
  // A request to dial a stream again names a stream of the pool too.
  h.role = control::Role::kRedial;
  auto hr = control::Hello::decode(h.encode());
  ASSERT_TRUE(hr.isOk());
  EXPECT_EQ(hr->role, control::Role::kRedial);
  h.stream = 4;
  EXPECT_EQ(control::Hello::decode(h.encode()).status().code(), Code::kProtocol);
  h.stream = 3;

  control::Register r;
  r.peerId = 9;
  r.listenHost = "127.0.0.1";
  r.listenPort = 4000;
  r.hostId = "h";
  r.expectedPeers = 3;
  r.knownView = sampleView();
  r.hasReport = true;
  r.lastReport.ofEpoch = 6;
  r.lastReport.ops.push_back({1, 2, true, false});
  r.lastReport.ops.push_back({3, 4, true, false, 77});
  r.lastReport.ops.push_back({5, 6, true, false, 0, /*succeeded=*/true});
  r.lastReport.progress.push_back({1, 3});
  r.lastDecisions.ops.push_back({1, 2, Decision::kSuccess});
  auto rb = r.encode();
  auto r2 = control::Register::decode(rb);
  ASSERT_TRUE(r2.isOk());
  EXPECT_EQ(r2->knownView.members.size(), 2u);
  EXPECT_EQ(r2->knownView.members[1].host, "10.0.0.2");
  ASSERT_EQ(r2->lastReport.ops.size(), 3u);
  EXPECT_TRUE(r2->lastReport.ops[0].haveAll);
  EXPECT_EQ(r2->lastReport.ops[0].partner, 0u);
  EXPECT_EQ(r2->lastReport.ops[1].partner, 77u);
  EXPECT_FALSE(r2->lastReport.ops[1].succeeded);
  EXPECT_TRUE(r2->lastReport.ops[2].succeeded);
  EXPECT_EQ(r2->lastReport.ops[2].tag, 5u);
  ASSERT_EQ(r2->lastReport.progress.size(), 1u);
  EXPECT_EQ(r2->lastReport.progress[0].next, 3u);
  EXPECT_EQ(r2->lastDecisions.ops[0].decision, Decision::kSuccess);
  checkTruncationAndGarbage<control::Register>(rb);

  // The failure timeout travels with the registration: it bounds a peer's lease.
  control::Registered g{control::RegisterStatus::kMember, 50, 9, 750};
  auto gb = g.encode();
  auto g2 = control::Registered::decode(gb);
  ASSERT_TRUE(g2.isOk());
  EXPECT_EQ(g2->status, control::RegisterStatus::kMember);
  EXPECT_EQ(g2->heartbeatMs, 50u);
  EXPECT_EQ(g2->epoch, 9u);
  EXPECT_EQ(g2->failureTimeoutMs, 750u);
  checkTruncationAndGarbage<control::Registered>(gb);
  g.failureTimeoutMs = 0;
  EXPECT_EQ(control::Registered::decode(g.encode()).status().code(), Code::kProtocol);

  control::ViewProposal p{sampleView(), 6, ViewReason::kFailure, true};
  auto pb = p.encode();
  auto p2 = control::ViewProposal::decode(pb);
  ASSERT_TRUE(p2.isOk());
  EXPECT_EQ(p2->reason, ViewReason::kFailure);
  EXPECT_TRUE(p2->endsUpdate);
  EXPECT_EQ(p2->view.epoch, 7u);
  checkTruncationAndGarbage<control::ViewProposal>(pb);

  control::Commit c;
  c.epoch = 8;
  c.reason = ViewReason::kLeave;
  c.decisions.ops.push_back({3, 4, Decision::kRerun});
  auto cb = c.encode();
  auto c2 = control::Commit::decode(cb);
  ASSERT_TRUE(c2.isOk());
  EXPECT_EQ(c2->decisions.ops[0].decision, Decision::kRerun);
  checkTruncationAndGarbage<control::Commit>(cb);

  control::ErrorMsg e{Code::kUnauthenticated, "nope"};
  auto e2 = control::ErrorMsg::decode(e.encode());
  ASSERT_TRUE(e2.isOk());
  EXPECT_EQ(e2->code, Code::kUnauthenticated);
}

TEST(Control, HeaderChecks) {
  auto f = control::frame(control::Type::kHeartbeat, {1, 2, 3});
  control::Type t;
  uint32_t len;
  ASSERT_TRUE(control::decodeHeader(f.data(), &t, &len).isOk());
  EXPECT_EQ(t, control::Type::kHeartbeat);
  EXPECT_EQ(len, 3u);
  f[4] = control::kVersion + 1;  // a version this build does not speak
  Status s = control::decodeHeader(f.data(), &t, &len);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("version " + std::to_string(control::kVersion + 1)),
            std::string::npos);
  f[4] = control::kVersion;
  f[5] = 200;  // type
  EXPECT_EQ(control::decodeHeader(f.data(), &t, &len).code(), Code::kProtocol);
  f[5] = static_cast<uint8_t>(control::Type::kHeartbeat);
  wire::storeU32(f.data() + 8, control::kMaxBody + 1);
  EXPECT_EQ(control::decodeHeader(f.data(), &t, &len).code(), Code::kProtocol);
}

TEST(Auth, ProofsDependOnSecretAndTranscript) {
  auto a = auth::prove("secret", "label", "transcript");
  EXPECT_TRUE(auth::equal(a, auth::prove("secret", "label", "transcript")));
  EXPECT_FALSE(auth::equal(a, auth::prove("Secret", "label", "transcript")));
  EXPECT_FALSE(auth::equal(a, auth::prove("secret", "label2", "transcript")));
  EXPECT_FALSE(auth::equal(a, auth::prove("secret", "label", "transcript2")));
  // Length prefixes keep fields apart.
  auth::Transcript t1, t2;
  t1.add("ab").add("c");
  t2.add("a").add("bc");
  EXPECT_NE(t1.str(), t2.str());
  EXPECT_NE(auth::makeNonce(), auth::makeNonce());
}

static View viewOf(std::initializer_list<uint64_t> ids) {
  View v;
  v.epoch = 3;
  for (uint64_t id : ids) {
    Member m;
    m.peerId = id;
    v.members.push_back(m);
  }
  return v;
}

TEST(Decide, UniformOutcomeRule) {
  Report a, b;
  a.ofEpoch = b.ofEpoch = 3;
  // op 1: both hold the result -> success
  a.ops.push_back({0, 1, true, false});
  b.ops.push_back({0, 1, true, false});
  // op 2: one partial -> fail
  a.ops.push_back({0, 2, true, true});
  b.ops.push_back({0, 2, false, false});
  // op 3: only a started it -> fail (b never called it, so nobody completed)
  a.ops.push_back({5, 3, false, false});
  std::map<uint64_t, Report> reports{{10, a}, {11, b}};
  View closing = viewOf({10, 11, 12});  // 12 is lost
  auto d = decide(reports, closing, ViewReason::kFailure);
  ASSERT_EQ(d.ops.size(), 3u);
  EXPECT_EQ(d.find(0, 1)->decision, Decision::kSuccess);
  EXPECT_EQ(d.find(0, 2)->decision, Decision::kFail);
  EXPECT_EQ(d.find(5, 3)->decision, Decision::kFail);
  EXPECT_EQ(d.find(9, 9), nullptr);
  // After a graceful leave, unfinished ops re-run unless an input was overwritten.
  auto l = decide(reports, closing, ViewReason::kLeave);
  EXPECT_EQ(l.find(0, 1)->decision, Decision::kSuccess);
  EXPECT_EQ(l.find(0, 2)->decision, Decision::kFail);
  EXPECT_EQ(l.find(5, 3)->decision, Decision::kRerun);
}

TEST(Decide, EverySurvivorInvolvedMustHaveCalled) {
  // A broadcast root (10) holds "everything" from the start; survivor 11 has
  // not called the broadcast yet, so it cannot succeed.
  Report root, late, done;
  root.ofEpoch = late.ofEpoch = done.ofEpoch = 3;
  root.ops.push_back({0, 4, true, false});
  late.progress.push_back({0, 4});  // calls 0..3 made, #4 not yet
  done.progress.push_back({0, 5});  // #4 made and finished
  View closing = viewOf({10, 11, 12, 13});
  auto d = decide({{10, root}, {11, late}, {12, done}}, closing, ViewReason::kFailure);
  EXPECT_EQ(d.find(0, 4)->decision, Decision::kFail);
  EXPECT_EQ(decide({{10, root}, {11, late}}, closing, ViewReason::kLeave).find(0, 4)->decision,
            Decision::kRerun);
  // Once every surviving member called it (or finished it), it succeeds.
  late.progress[0].next = 5;
  EXPECT_EQ(decide({{10, root}, {11, late}, {12, done}}, closing, ViewReason::kFailure)
                .find(0, 4)
                ->decision,
            Decision::kSuccess);
  // A joiner (not in the closing view) is never waited for.
  Report joiner;
  EXPECT_EQ(decide({{10, root}, {11, late}, {99, joiner}}, closing, ViewReason::kFailure)
                .find(0, 4)
                ->decision,
            Decision::kSuccess);
}

TEST(Decide, PointToPointWaitsOnlyForItsPartner) {
  Report sender, other, receiver;
  sender.ops.push_back({7, 0, true, false, 11});  // sent to 11
  View closing = viewOf({10, 11, 12, 13});
  // The receiver has not called its receive: the send cannot be declared done.
  auto d = decide({{10, sender}, {11, receiver}, {12, other}}, closing, ViewReason::kLeave);
  EXPECT_EQ(d.find(7, 0)->decision, Decision::kRerun);
  // 12 never takes part; the receiver finished it already.
  receiver.progress.push_back({7, 1});
  d = decide({{10, sender}, {11, receiver}, {12, other}}, closing, ViewReason::kFailure);
  EXPECT_EQ(d.find(7, 0)->decision, Decision::kSuccess);
  // Both ends report it, both complete.
  Report receiving;
  receiving.ops.push_back({7, 0, true, false, 10});
  d = decide({{10, sender}, {11, receiving}}, closing, ViewReason::kFailure);
  EXPECT_EQ(d.find(7, 0)->decision, Decision::kSuccess);
}

TEST(Decide, OperationThatReturnedSuccessSomewhereSucceeds) {
  // Two members: 10 returned success without waiting for 11's DONE, then a
  // view change both survive found 11 frozen without 10's last frame.
  Report early, frozen;
  early.ops.push_back({0, 8, true, false, 0, /*succeeded=*/true});
  early.progress.push_back({0, 10});
  frozen.ops.push_back({0, 8, false, false});
  frozen.ops.push_back({0, 9, false, false});  // called after; 10 ran #9 too
  frozen.progress.push_back({0, 10});
  View closing = viewOf({10, 11});
  for (ViewReason why : {ViewReason::kRecovery, ViewReason::kFailure, ViewReason::kLeave}) {
    auto d = decide({{10, early}, {11, frozen}}, closing, why);
    EXPECT_EQ(d.find(0, 8)->decision, Decision::kSuccess);  // 11 completes it from its ring
    EXPECT_NE(d.find(0, 9)->decision, Decision::kSuccess);  // partial, nobody returned
  }
  // Without the flag the same reports are a failure, as before.
  early.ops[0].succeeded = false;
  EXPECT_EQ(
      decide({{10, early}, {11, frozen}}, closing, ViewReason::kRecovery).find(0, 8)->decision,
      Decision::kFail);
  // Report flags beyond the known ones are refused.
  wire::Writer w;
  early.encode(w);
  std::vector<uint8_t> b = w.buffer();
  b[8 + 4 + 16] = 0x10;  // ofEpoch, count, tag and seq, then the flags
  wire::Reader r(b.data(), b.size());
  Report::decode(r);
  EXPECT_FALSE(r.ok());
}

// Members report each other unreachable (accused -> accusers).
TEST(PeersToEvict, ADeadPeerAloneGoes) {
  EXPECT_EQ(peersToEvict({{7, {1, 2, 3}}}), (std::set<uint64_t>{7}));
  EXPECT_EQ(peersToEvict({{7, {1}}}), (std::set<uint64_t>{7}));  // one witness is enough
  EXPECT_TRUE(peersToEvict({}).empty());
}

TEST(PeersToEvict, APartitionedPairLosesOneNotBoth) {
  // 4 and 9 lost their link and each blames the other: the higher id goes.
  EXPECT_EQ(peersToEvict({{4, {9}}, {9, {4}}}), (std::set<uint64_t>{9}));
}

TEST(PeersToEvict, ThePeerCutOffFromTheRestGoes) {
  // 5 reaches no one and accuses 1, 2, 3; they all accuse 5.
  EXPECT_EQ(peersToEvict({{5, {1, 2, 3}}, {1, {5}}, {2, {5}}, {3, {5}}}), (std::set<uint64_t>{5}));
}

TEST(PeersToEvict, AChainLosesItsMiddle) {
  // 1 blames 2, 2 blames 3: removing 2 settles both; removing 3 would not.
  EXPECT_EQ(peersToEvict({{2, {1}}, {3, {2}}}), (std::set<uint64_t>{2}));
}

TEST(PeersToEvict, TwoSeparatePartitionsEachLoseOne) {
  auto out = peersToEvict({{1, {2}}, {2, {1}}, {3, {4}}, {4, {3}}});
  EXPECT_EQ(out, (std::set<uint64_t>{2, 4}));
}
