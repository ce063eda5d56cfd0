#include "transports/shm/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/core/log.h"
#include "src/protocol/wire.h"

namespace chorus::transport::shm {

namespace {
// Offer: "CHSO" u32 length, name. Answer: "CHSA" u8 ok.
constexpr char kOffer[4] = {'C', 'H', 'S', 'O'};
constexpr char kAnswer[4] = {'C', 'H', 'S', 'A'};

std::string ringName(uint64_t writer, uint64_t reader) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "/chorus-shm.%d.%016llx.%016llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(writer), static_cast<unsigned long long>(reader));
  return buf;
}
}  // namespace

ShmConnection::ShmConnection(int fd, uint64_t peerId, int stream, uint64_t myPeerId,
                             const std::string& myHost, size_t ringBytes)
    : TcpConnection(fd, peerId, stream), myHost_(myHost) {
  std::string offered;
  if (ringBytes > 0) {
    std::string name = ringName(myPeerId, peerId) + "." + std::to_string(stream);
    auto r = Ring::create(name, ringBytes);
    if (r.isOk()) {
      out_.reset(r.value());
      offered = name;
    } else {
      LOG_INFO("shared memory to peer " << peerId << " unavailable: " << r.status().toString());
    }
  }
  // Offer: "CHSO", u32 length of the rest, u32 host length, host, ring name
  // (empty: shared memory off or unavailable here).
  uint32_t hostLen = static_cast<uint32_t>(myHost.size());
  uint32_t rest = 4 + hostLen + static_cast<uint32_t>(offered.size());
  outbox_.assign(kOffer, 4);
  outbox_.append(reinterpret_cast<const char*>(&rest), 4);
  outbox_.append(reinterpret_cast<const char*>(&hostLen), 4);
  outbox_ += myHost;
  outbox_ += offered;
}

ShmConnection::~ShmConnection() = default;

void ShmConnection::close() {
  TcpConnection::close();
  in_.reset();
  out_.reset();
}

Status ShmConnection::setupStep(bool* progressed) {
  // Send what is queued (tiny: one offer, one answer).
  while (!outbox_.empty()) {
    ssize_t w = ::send(fd_, outbox_.data(), outbox_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (w <= 0) return brokenError("failed during the shared-memory set-up", errno);
    outbox_.erase(0, static_cast<size_t>(w));
    *progressed = true;
  }
  // Read exactly the set-up messages, never a byte of the frames after them.
  for (;;) {
    size_t want;
    if (!gotOffer_) {
      want = inbox_.size() < 8 ? 8 - inbox_.size() : 0;
      if (want == 0) {
        uint32_t len;
        std::memcpy(&len, inbox_.data() + 4, 4);
        if (std::memcmp(inbox_.data(), kOffer, 4) != 0 || len < 4 || len > 1200)
          return protocolError("bad link set-up offer from peer " + std::to_string(peerId_));
        want = 8 + len - inbox_.size();
        if (want == 0) {
          uint32_t hostLen;
          std::memcpy(&hostLen, inbox_.data() + 8, 4);
          if (hostLen > len - 4)
            return protocolError("bad link set-up offer from peer " + std::to_string(peerId_));
          std::string host = inbox_.substr(12, hostLen);
          std::string name = inbox_.substr(12 + hostLen);
          inbox_.clear();
          gotOffer_ = true;
          // Shared memory only between processes of one host (the same host
          // identity, or the same CHORUS_LOCALITY host label).
          if (!name.empty() && out_ && host == myHost_) {
            auto r = Ring::open(name);
            if (r.isOk()) {
              in_.reset(r.value());
              in_->unlinkName();  // mapped: nothing to clean up after a crash
              iOk_ = true;
            } else {
              LOG_INFO("cannot open peer " << peerId_ << "'s ring: " << r.status().toString());
            }
          }
          char ans[5];
          std::memcpy(ans, kAnswer, 4);
          ans[4] = iOk_ ? 1 : 0;
          outbox_.append(ans, 5);
          sentAnswer_ = true;
          return setupStep(progressed);
        }
      }
    } else {
      want = 5 - inbox_.size();
      if (want == 0) {
        if (std::memcmp(inbox_.data(), kAnswer, 4) != 0)
          return protocolError("bad link set-up answer from peer " + std::to_string(peerId_));
        peerOk_ = inbox_[4] == 1;
        if (!outbox_.empty()) return Status::ok();  // our answer is not out yet
        mode_ = (iOk_ && peerOk_) ? Mode::kShm : Mode::kTcp;
        if (out_) out_->unlinkName();
        if (mode_ == Mode::kTcp) {
          in_.reset();
          out_.reset();
          if (retainWanted_) TcpConnection::retainSent();  // a TCP link can be replaced
        }
        LOG_DEBUG("link to peer " << peerId_ << " stream " << stream_ << ": "
                                  << (mode_ == Mode::kShm ? "shared memory" : "tcp"));
        *progressed = true;
        return Status::ok();
      }
    }
    char buf[256];
    ssize_t r = ::recv(fd_, buf, std::min(want, sizeof(buf)), MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::ok();
    if (r == 0) return brokenError("was closed by the peer during set-up", 0);
    if (r < 0) return brokenError("failed during the shared-memory set-up", errno);
    inbox_.append(buf, static_cast<size_t>(r));
    *progressed = true;
  }
}

Result<ProgressResult> ShmConnection::progress(FrameSink& sink) {
  if (mode_ == Mode::kSetup && isOpen()) {
    ProgressResult pr;
    CHORUS_RETURN_IF_ERROR(setupStep(&pr.didWork));
    if (mode_ == Mode::kSetup) return pr;
    CHORUS_ASSIGN_OR_RETURN(ProgressResult more, TcpConnection::progress(sink));
    pr.didWork |= more.didWork;
    return pr;
  }
  return TcpConnection::progress(sink);
}

void ShmConnection::wake() {
  char b = 0;
  ssize_t w = ::send(fd_, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)w;  // EAGAIN: wake-ups are already queued
}

ssize_t ShmConnection::drainWakes(bool* drained) {
  char buf[256];
  for (;;) {
    ssize_t r = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (r > 0) {
      *drained = true;
      continue;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

ssize_t ShmConnection::writeBytes(const ::iovec* iov, int n) {
  if (mode_ == Mode::kTcp) return TcpConnection::writeBytes(iov, n);
  if (mode_ != Mode::kShm) return -EAGAIN;
  size_t total = out_->write(iov, n);
  // Only a reader that armed before sleeping needs the (syscall) wake-up; a
  // spinning one sees the tail move.
  // The fence orders the tail store before the flag load (the reader stores
  // the flag, then loads the tail): without it x86 may load the flag first,
  // both sides miss each other and the reader sleeps until its timeout.
  if (total > 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (out_->header()->readerArmed.load(std::memory_order_relaxed) &&
        out_->header()->readerArmed.exchange(0, std::memory_order_seq_cst))
      wake();
  }
  return total > 0 ? static_cast<ssize_t>(total) : -EAGAIN;
}

bool ShmConnection::peerGone(bool* drained) {
  // The socket carries only wake-up bytes and, when the peer dies, its end of
  // stream. Reading it costs a syscall, so a busy ring checks once every
  // kDrainEveryEmptyReads; after prepareSleep() the next check is not delayed.
  if (!peerClosed_ && (drainNext_ || ++emptyReads_ >= kDrainEveryEmptyReads)) {
    drainNext_ = false;
    emptyReads_ = 0;
    ssize_t d = drainWakes(drained);
    if (d == 0) peerClosed_ = true;
    if (d != 0 && d != -EAGAIN) drainError_ = static_cast<int>(-d);
  }
  return peerClosed_ || drainError_ != 0;
}

size_t ShmConnection::stageReadBytes(bool atFrameStart) const {
  if (mode_ != Mode::kShm) return TcpConnection::stageReadBytes(atFrameStart);
  if (!atFrameStart) return frame::kHeaderSize;
  // Walk the frames at the head of the ring by their length fields (bytes
  // 8-11 of a header; decode() validates the rest once staged) and take the
  // small ones that are whole. A large payload is never staged, so it still
  // goes straight to its target or is reduced out of the ring.
  const Ring::Pieces p = in_->peek(kSmallStageBytes);
  const size_t have = p.total();
  size_t take = 0;
  while (take + frame::kHeaderSize <= have) {
    uint8_t len[4];
    for (size_t i = 0; i < 4; ++i) {
      size_t at = take + 8 + i;
      len[i] = at < p.firstLen ? p.first[at] : p.second[at - p.firstLen];
    }
    const size_t frameBytes = frame::kHeaderSize + wire::loadU32(len);
    if (frameBytes > kSmallFrameBytes || take + frameBytes > have) break;
    take += frameBytes;
  }
  return take > 0 ? take : frame::kHeaderSize;
}

size_t ShmConnection::readRing(const ::iovec* iov, int n) {
  return in_->read(iov, n);
}

ssize_t ShmConnection::readBytes(const ::iovec* iov, int n) {
  if (mode_ == Mode::kTcp) return TcpConnection::readBytes(iov, n);
  if (mode_ != Mode::kShm) return -EAGAIN;
  size_t total = readRing(iov, n);
  if (total == 0) {
    // Empty ring: is the writer still there? (What it wrote before dying was
    // read first.)
    bool drained = false;
    if (peerGone(&drained)) return drainError_ != 0 ? -drainError_ : 0;
    // A wake-up drained here may announce bytes written after the ring
    // looked empty; read them now, or another caller asleep on this link
    // would wait for a wake-up that is gone.
    if (drained) total = readRing(iov, n);
    if (total == 0) return -EAGAIN;
  }
  wakeWriterIfArmed();
  return static_cast<ssize_t>(total);
}

void ShmConnection::wakeWriterIfArmed() {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // as in writeBytes
  if (in_->header()->writerArmed.load(std::memory_order_relaxed) &&
      in_->header()->writerArmed.exchange(0, std::memory_order_seq_cst))
    wake();
}

ssize_t ShmConnection::readReducing(const kernels::ArrivalReduction& r, size_t offset, size_t len) {
  // Whole accumulator elements only; payloads are whole elements, so a
  // partial one is simply left in the ring until the rest of it arrives.
  const size_t as = accumulatorSize(r.dtype);
  Ring::Pieces p = in_->peek(len);
  if (p.total() < as) {
    bool drained = false;
    if (peerGone(&drained)) return drainError_ != 0 ? -drainError_ : 0;
    if (drained) p = in_->peek(len);  // as in readBytes
    if (p.total() < as) return -EAGAIN;
  }
  const size_t take = p.total() / as * as;
  size_t elem = offset / as;
  if (!reducedOnArrival_) {
    reducedOnArrival_ = true;
    LOG_DEBUG("link to peer " << peerId_ << " stream " << stream_
                              << ": reducing a payload straight out of the ring");
  }
  // The kernels read elements through typed pointers, which must be aligned
  // to their size. A payload starts aligned when everything before it in
  // the ring was whole 8-byte units (48-byte headers, payloads of 4- or
  // 8-byte elements); after odd-sized frames it may not: then the elements
  // go through a small aligned buffer (in L1) instead.
  auto apply = [&](const uint8_t* src, size_t count) {
    if (reinterpret_cast<uintptr_t>(src) % as == 0) {
      kernels::applyArrivalReduction(r, src, elem, count);
      elem += count;
      return;
    }
    alignas(64) uint8_t bounce[4096];
    while (count > 0) {
      size_t k = std::min(count, sizeof(bounce) / as);
      std::memcpy(bounce, src, k * as);
      kernels::applyArrivalReduction(r, bounce, elem, k);
      src += k * as;
      elem += k;
      count -= k;
    }
  };
  size_t inFirst = std::min(take, p.firstLen);
  size_t whole = inFirst / as;
  if (whole > 0) apply(p.first, whole);
  size_t done = whole * as;
  if (done < inFirst) {
    // One element straddles the wrap: reduce it from a copy.
    alignas(16) uint8_t one[16];
    size_t head = inFirst - done;
    std::memcpy(one, p.first + done, head);
    std::memcpy(one + head, p.second, as - head);
    apply(one, 1);
    done += as;
  }
  if (done < take) apply(p.second + (done - p.firstLen), (take - done) / as);
  in_->consume(take);
  wakeWriterIfArmed();
  return static_cast<ssize_t>(take);
}

bool ShmConnection::prepareSleep() {
  if (mode_ != Mode::kShm) return mode_ == Mode::kTcp || outbox_.empty();
  // Arm, then look again: the writer either sees the flag and sends a
  // wake-up byte, or wrote before we looked.
  in_->header()->readerArmed.store(1, std::memory_order_seq_cst);
  if (in_->readable() > 0) return false;
  if (hasPendingSends()) {
    out_->header()->writerArmed.store(1, std::memory_order_seq_cst);
    if (out_->writable() > 0) return false;
  }
  // Wake-up bytes are drained by the next read that finds the ring empty,
  // not here: the progress thread prepares to sleep while a blocking caller
  // may be asleep waiting for exactly that byte.
  drainNext_ = true;
  return true;
}

bool ShmConnection::wantsWriteReadiness() const {
  if (mode_ == Mode::kShm) return false;  // space in the ring comes with a wake-up byte
  if (mode_ == Mode::kSetup) return !outbox_.empty();
  return hasPendingSends();
}

}  // namespace chorus::transport::shm
