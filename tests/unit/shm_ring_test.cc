// The shared-memory byte ring: gather writes and scatter reads across the
// wrap, partial moves when full or empty, header checks on open, and a
// writer and a reader in two processes moving records through a small ring
// (the release / acquire ordering of head and tail between processes).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "transports/shm/ring.h"

namespace chorus::transport::shm {
namespace {

std::string testName(const char* what) {
  return "/chorus-shm-test." + std::to_string(::getpid()) + "." + what;
}

std::unique_ptr<Ring> makeRing(const char* what, size_t capacity) {
  auto r = Ring::create(testName(what), capacity);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return std::unique_ptr<Ring>(r.isOk() ? r.value() : nullptr);
}

TEST(ShmRing, GatherAndScatterAcrossTheWrap) {
  auto ring = makeRing("wrap", 64);
  ASSERT_TRUE(ring);
  uint8_t fill[40], sink[40];
  std::memset(fill, 7, sizeof(fill));
  // Move the positions to 40 so the next 48-byte frame wraps at 64.
  ASSERT_EQ(ring->write(fill, sizeof(fill)), sizeof(fill));
  ASSERT_EQ(ring->read(sink, sizeof(sink)), sizeof(sink));
  uint8_t header[44], payload[4];
  for (size_t i = 0; i < sizeof(header); ++i) header[i] = static_cast<uint8_t>(i);
  for (size_t i = 0; i < sizeof(payload); ++i) payload[i] = static_cast<uint8_t>(200 + i);
  ::iovec out[2] = {{header, sizeof(header)}, {payload, sizeof(payload)}};
  ASSERT_EQ(ring->write(out, 2), 48u);
  EXPECT_EQ(ring->readable(), 48u);
  EXPECT_EQ(ring->writable(), 16u);
  uint8_t h2[44] = {}, p2[4] = {};
  ::iovec in[2] = {{h2, sizeof(h2)}, {p2, sizeof(p2)}};
  ASSERT_EQ(ring->read(in, 2), 48u);
  EXPECT_EQ(std::memcmp(header, h2, sizeof(h2)), 0);
  EXPECT_EQ(std::memcmp(payload, p2, sizeof(p2)), 0);
  EXPECT_EQ(ring->readable(), 0u);
}

TEST(ShmRing, AFullRingTakesWhatFitsAndAnEmptyOneGivesWhatItHas) {
  auto ring = makeRing("full", 32);
  ASSERT_TRUE(ring);
  uint8_t a[20], b[20];
  std::memset(a, 1, sizeof(a));
  std::memset(b, 2, sizeof(b));
  ::iovec out[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
  EXPECT_EQ(ring->write(out, 2), 32u);  // all of a, 12 bytes of b
  EXPECT_EQ(ring->write(a, 1), 0u);
  EXPECT_EQ(ring->writable(), 0u);
  uint8_t x[10], y[40];
  ::iovec in[2] = {{x, sizeof(x)}, {y, sizeof(y)}};
  EXPECT_EQ(ring->read(in, 2), 32u);  // 10 into x, the 22 left into y
  EXPECT_EQ(x[9], 1);
  EXPECT_EQ(y[9], 1);
  EXPECT_EQ(y[10], 2);
  EXPECT_EQ(y[21], 2);
  EXPECT_EQ(ring->read(y, sizeof(y)), 0u);
}

TEST(ShmRing, PeekShowsBothPiecesAndConsumeGivesThemBack) {
  auto ring = makeRing("peek", 16);
  ASSERT_TRUE(ring);
  uint8_t buf[12];
  ASSERT_EQ(ring->write(buf, 12), 12u);
  ASSERT_EQ(ring->read(buf, 12), 12u);
  uint8_t msg[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(ring->write(msg, 8), 8u);
  Ring::Pieces p = ring->peek(100);
  ASSERT_EQ(p.firstLen, 4u);
  ASSERT_EQ(p.secondLen, 4u);
  EXPECT_EQ(p.first[0], 1);
  EXPECT_EQ(p.second[0], 5);
  ring->consume(6);
  EXPECT_EQ(ring->readable(), 2u);
  EXPECT_EQ(ring->writable(), 14u);
}

TEST(ShmRing, OpenRefusesAMissingOrTruncatedSegment) {
  EXPECT_FALSE(Ring::open(testName("absent")).isOk());
  auto ring = makeRing("trunc", 64);
  ASSERT_TRUE(ring);
  // Cut the segment below its header: open must refuse it, not map past it.
  int fd = ::shm_open(ring->name().c_str(), O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 16), 0);
  ::close(fd);
  auto opened = Ring::open(ring->name());
  ASSERT_FALSE(opened.isOk());
  EXPECT_NE(opened.status().toString().find("truncated"), std::string::npos)
      << opened.status().toString();
}

// Records of varying length, each a length byte, a sequence number and a
// pattern derived from it, through a 4 KiB ring between two processes: every
// record must arrive whole and in order, however the copies interleave with
// the other side's index updates.
TEST(ShmRing, RecordsCrossBetweenTwoProcessesIntactAndInOrder) {
  auto ring = makeRing("procs", 4096);
  ASSERT_TRUE(ring);
  constexpr uint32_t kRecords = 200000;
  auto pattern = [](uint32_t seq, size_t i) { return static_cast<uint8_t>(seq * 31 + i * 7); };
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto w = Ring::open(ring->name());
    if (!w.isOk()) ::_exit(2);
    Ring* out = w.value();
    auto start = std::chrono::steady_clock::now();
    for (uint32_t seq = 0; seq < kRecords; ++seq) {
      uint8_t len = static_cast<uint8_t>(1 + seq % 200);
      uint8_t body[256];
      for (size_t i = 0; i < len; ++i) body[i] = pattern(seq, i);
      uint8_t head[5] = {len};
      std::memcpy(head + 1, &seq, 4);
      ::iovec v[2] = {{head, sizeof(head)}, {body, len}};
      size_t want = sizeof(head) + len, done = 0;
      while (done < want) {
        // Resume the gather where the last partial write stopped.
        ::iovec rest[2];
        int n = 0;
        size_t skip = done;
        for (auto& piece : v) {
          if (skip >= piece.iov_len) {
            skip -= piece.iov_len;
            continue;
          }
          rest[n++] = {static_cast<uint8_t*>(piece.iov_base) + skip, piece.iov_len - skip};
          skip = 0;
        }
        done += out->write(rest, n);
        if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) ::_exit(3);
      }
    }
    ::_exit(0);
  }
  auto start = std::chrono::steady_clock::now();
  auto readAll = [&](uint8_t* p, size_t len) {
    size_t got = 0;
    while (got < len) {
      got += ring->read(p + got, len - got);
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) return false;
    }
    return true;
  };
  uint32_t bad = 0;
  for (uint32_t seq = 0; seq < kRecords; ++seq) {
    uint8_t head[5], body[256];
    ASSERT_TRUE(readAll(head, sizeof(head))) << "timed out at record " << seq;
    uint32_t got;
    std::memcpy(&got, head + 1, 4);
    ASSERT_EQ(got, seq);
    ASSERT_EQ(head[0], 1 + seq % 200);
    ASSERT_TRUE(readAll(body, head[0])) << "timed out in record " << seq;
    for (size_t i = 0; i < head[0]; ++i) bad += body[i] != pattern(seq, i);
  }
  EXPECT_EQ(bad, 0u);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer status " << status;
}

}  // namespace
}  // namespace chorus::transport::shm
