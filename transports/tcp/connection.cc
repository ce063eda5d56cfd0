#include "transports/tcp/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "src/core/log.h"

namespace chorus::transport::tcp {

namespace {
constexpr size_t kStageSize = 256 << 10;
// At most this much is read into the staging buffer at once: enough to batch
// many small frames per system call, small enough that the start of a large
// payload is not read there (and copied again) instead of in place.
constexpr size_t kStageRead = 16 << 10;
constexpr size_t kDiscardSize = 64 << 10;
constexpr int kMaxIov = 64;
// Source of filler bytes for a frame cancelled after it was partly written.
const uint8_t kZeros[16 << 10] = {};
// Control frames (DONE, ABORT, STREAM_LOST) kept for resending: a stream
// that breaks after this many more have gone out cannot be replaced.
constexpr size_t kMaxRetainedControl = 4096;
}  // namespace

TcpConnection::TcpConnection(int fd, uint64_t peerId, int stream)
    : Connection(peerId, stream), fd_(fd) {
  stage_.resize(kStageSize);
  discard_.resize(kDiscardSize);
}

TcpConnection::~TcpConnection() {
  close();
}

void TcpConnection::close() {
  if (!open_) return;
  open_ = false;
  ::shutdown(fd_, SHUT_RDWR);
  ::close(fd_);
  fd_ = -1;
  if (!retain_) sendq_.clear();  // else kept for takeUnreceived()
}

Status TcpConnection::brokenError(const std::string& what, int err) {
  std::string msg = "connection to peer " + std::to_string(peerId_) + " (stream " +
                    std::to_string(stream_) + ") " + what;
  if (err) msg += std::string(": ") + std::strerror(err);
  return unavailable(msg);
}

void TcpConnection::postSend(const frame::Header& h, const void* payload, SendOwner* owner,
                             uint64_t cookie) {
  SendItem item;
  frame::encode(h, item.header);
  item.payload = static_cast<const uint8_t*>(payload);
  item.length = h.length;
  item.owner = owner;
  item.cookie = cookie;
  item.control = owner == nullptr && h.length == 0;
  if (h.length > 0 && payload == nullptr) item.payload = nullptr;
  sendq_.push_back(item);
}

void TcpConnection::postSendCopy(const frame::Header& h, const void* payload) {
  SendItem item;
  frame::encode(h, item.header);
  item.owned = std::make_shared<std::vector<uint8_t>>(
      static_cast<const uint8_t*>(payload), static_cast<const uint8_t*>(payload) + h.length);
  item.payload = item.owned->data();
  item.length = h.length;
  item.owner = nullptr;
  item.cookie = 0;
  item.control = true;
  sendq_.push_back(std::move(item));
}

size_t TcpConnection::queuedSendBytes() const {
  size_t n = 0;
  for (const SendItem& it : sendq_) n += frame::kHeaderSize + it.length - it.done;
  return n;
}

uint32_t TcpConnection::rttUs() const {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (fd_ < 0 || ::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  return ti.tcpi_rtt;
}

uint32_t TcpConnection::unackedForMs() const {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (fd_ < 0 || ::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  // Zero-window probes are not in tcpi_unacked, so a stalled reader reads 0.
  return ti.tcpi_unacked > 0 ? ti.tcpi_last_ack_recv : 0;
}

void TcpConnection::cancelSends(const SendOwner* owner) {
  // Written early (writeQueuedNow) and not reported yet: the owner is going.
  if (!completed_.empty())
    completed_.erase(std::remove_if(completed_.begin(), completed_.end(),
                                    [&](const auto& c) { return c.first == owner; }),
                     completed_.end());
  if (!retained_.empty())
    retained_.erase(std::remove_if(retained_.begin(), retained_.end(),
                                   [&](const SendItem& it) { return it.owner == owner; }),
                    retained_.end());
  for (auto it = sendq_.begin(); it != sendq_.end();) {
    if (it->owner == owner) {
      if (it->done == 0) {
        it = sendq_.erase(it);
        continue;
      }
      // Partly on the wire: finish the frame with zeros; the receiver drops
      // it because the operation is gone on both sides.
      it->payload = nullptr;
      it->owner = nullptr;
      it->control = false;
    }
    ++it;
  }
}

Result<std::vector<Unreceived>> TcpConnection::takeUnreceived(uint64_t peerReceived) {
  if (open_ || !retain_)
    return failedPrecondition("takeUnreceived needs a closed connection that retained its frames");
  if (peerReceived > framesStarted_)
    return protocolError("peer " + std::to_string(peerId_) + " reports " +
                         std::to_string(peerReceived) + " frames received on stream " +
                         std::to_string(stream_) + ", but only " + std::to_string(framesStarted_) +
                         " were sent");
  if (peerReceived < controlFloor_)
    return resourceExhausted("peer " + std::to_string(peerId_) + " missed control frames from " +
                             std::to_string(peerReceived) + " on stream " +
                             std::to_string(stream_) + "; only those from " +
                             std::to_string(controlFloor_) + " were kept");
  std::vector<std::pair<uint64_t, Unreceived>> written;
  std::vector<Unreceived> out;
  auto make = [&](const SendItem& it, bool sentReported) {
    Unreceived u;
    (void)frame::decode(it.header, &u.h);  // encoded here: cannot fail
    u.owner = it.owner;
    u.cookie = it.cookie;
    u.sentReported = sentReported;
    if (it.owner)
      u.payload = it.payload;
    else if (it.owned)
      u.copy = *it.owned;
    return u;
  };
  for (const SendItem& it : retained_)
    if (it.index >= peerReceived) written.emplace_back(it.index, make(it, true));
  for (const SendItem& it : retainedControl_)
    if (it.index >= peerReceived) written.emplace_back(it.index, make(it, false));
  std::sort(written.begin(), written.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (auto& [index, u] : written) out.push_back(std::move(u));
  // A partly written frame cannot have arrived whole, so every queued frame
  // is unreceived (remainders of cancelled frames are not needed).
  for (const SendItem& it : sendq_)
    if (it.owner || it.control) out.push_back(make(it, false));
  retained_.clear();
  retainedControl_.clear();
  sendq_.clear();
  return out;
}

void TcpConnection::detachReceives(const void* owner) {
  if (inPayload_ && target_.owner == owner) {
    target_.ptr = nullptr;
    target_.owner = nullptr;
    target_.reduce = {};
  }
}

ssize_t TcpConnection::writeBytes(const iovec* iov, int n) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(n);
  ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  return w < 0 ? -errno : w;
}

ssize_t TcpConnection::readBytes(const iovec* iov, int n) {
  ssize_t r = ::readv(fd_, iov, n);
  return r < 0 ? -errno : r;
}

Result<bool> TcpConnection::flushSends() {
  auto r = writeQueued();
  // Frames an earlier write of this call finished still count as sent, also
  // when a later one failed: a replaced stream resends them as such
  // (takeUnreceived).
  reportSent();
  return r;
}

Result<bool> TcpConnection::writeQueued() {
  bool progressed = false;
  while (!sendq_.empty()) {
    iovec iov[kMaxIov];
    int n = 0;
    for (auto it = sendq_.begin(); it != sendq_.end() && n < kMaxIov - 1; ++it) {
      size_t done = it->done;
      if (done < frame::kHeaderSize) {
        iov[n].iov_base = it->header + done;
        iov[n].iov_len = frame::kHeaderSize - done;
        ++n;
        done = frame::kHeaderSize;
      }
      size_t payDone = done - frame::kHeaderSize;
      size_t payLeft = it->length - payDone;
      if (payLeft == 0) continue;
      if (it->payload) {
        iov[n].iov_base = const_cast<uint8_t*>(it->payload + payDone);
        iov[n].iov_len = payLeft;
        ++n;
      } else {
        iov[n].iov_base = const_cast<uint8_t*>(kZeros);
        iov[n].iov_len = payLeft < sizeof(kZeros) ? payLeft : sizeof(kZeros);
        ++n;
        break;  // filler may be shorter than the payload: stop after it
      }
    }
    ssize_t w = writeBytes(iov, n);
    if (w < 0) {
      if (w == -EINTR) continue;
      if (w == -EAGAIN || w == -EWOULDBLOCK) {
        writeBlocked_ = true;
        break;
      }
      return brokenError("failed while sending", static_cast<int>(-w));
    }
    if (w == 0) break;
    writeBlocked_ = false;
    progressed = true;
    bytesSent_ += static_cast<uint64_t>(w);
    size_t left = static_cast<size_t>(w);
    while (left > 0 && !sendq_.empty()) {
      SendItem& front = sendq_.front();
      if (front.done == 0) front.index = framesStarted_++;
      size_t total = frame::kHeaderSize + front.length;
      size_t take = total - front.done;
      if (take > left) {
        front.done += left;
        left = 0;
        break;
      }
      left -= take;
      if (front.owner) completed_.emplace_back(front.owner, front.cookie);
      if (retain_ && front.owner) {
        retained_.push_back(std::move(front));
      } else if (retain_ && front.control) {
        retainedControl_.push_back(std::move(front));
        if (retainedControl_.size() > kMaxRetainedControl) {
          controlFloor_ = retainedControl_.front().index + 1;
          retainedControl_.pop_front();
        }
      }
      sendq_.pop_front();
    }
  }
  return progressed;
}

void TcpConnection::reportSent() {
  if (completed_.empty()) return;
  // Callbacks may post new sends; iterate over a private copy. The copy is
  // a member that keeps its capacity (a vector made here was an allocation
  // per small call), unless a callback reports again from within.
  if (reporting_) {
    std::vector<std::pair<SendOwner*, uint64_t>> done;
    done.swap(completed_);
    for (auto& [owner, cookie] : done) owner->onSent(cookie);
    return;
  }
  reporting_ = true;
  reported_.swap(completed_);
  for (auto& [owner, cookie] : reported_) owner->onSent(cookie);
  reported_.clear();
  reporting_ = false;
}

size_t TcpConnection::stageReadBytes(bool) const {
  return kStageRead;
}

void TcpConnection::finishFrame(FrameSink& sink) {
  inPayload_ = false;
  RecvTarget t = target_;
  target_ = RecvTarget{};
  ++framesReceived_;
  sink.onFrame(*this, cur_, t);
}

Status TcpConnection::parseStaged(FrameSink& sink, bool* progressed) {
  for (;;) {
    size_t staged = stageEnd_ - stageBegin_;
    if (!inPayload_) {
      if (staged < frame::kHeaderSize) break;
      frame::Header h;
      Status s = frame::decode(stage_.data() + stageBegin_, &h);
      if (!s.isOk())
        return s.withContext("from peer " + std::to_string(peerId_) + " stream " +
                             std::to_string(stream_));
      stageBegin_ += frame::kHeaderSize;
      staged -= frame::kHeaderSize;
      cur_ = h;
      payloadDone_ = 0;
      inPayload_ = true;
      target_ = sink.onHeader(*this, cur_);
      // Payload bytes already staged cannot be reduced from the byte stream:
      // this payload lands at ptr and is reduced by the receiver.
      if (staged > 0 && cur_.length > 0) target_.reduce = {};
      *progressed = true;
    }
    uint32_t remaining = cur_.length - payloadDone_;
    size_t take = remaining < staged ? remaining : staged;
    if (take > 0) {
      if (target_.ptr) std::memcpy(target_.ptr + payloadDone_, stage_.data() + stageBegin_, take);
      payloadDone_ += static_cast<uint32_t>(take);
      stageBegin_ += take;
    }
    if (payloadDone_ == cur_.length) {
      finishFrame(sink);
      if (!open_) return Status::ok();
      continue;
    }
    break;  // need more bytes
  }
  if (stageBegin_ == stageEnd_) stageBegin_ = stageEnd_ = 0;
  return Status::ok();
}

Result<bool> TcpConnection::readFrames(FrameSink& sink) {
  bool progressed = false;
  for (int rounds = 0; rounds < 64 && open_; ++rounds) {
    CHORUS_RETURN_IF_ERROR(parseStaged(sink, &progressed));
    if (!open_) break;
    if (inPayload_ && target_.reduce.dst) {
      // Reduce straight out of the byte stream (shared memory).
      ssize_t r = readReducing(target_.reduce, payloadDone_, cur_.length - payloadDone_);
      if (r == -EAGAIN) break;
      if (r == 0) return brokenError("was closed by the peer", 0);
      if (r < 0) return brokenError("failed while receiving", static_cast<int>(-r));
      progressed = true;
      bytesReceived_ += static_cast<uint64_t>(r);
      payloadDone_ += static_cast<uint32_t>(r);
      if (payloadDone_ == cur_.length) {
        finishFrame(sink);
      }
      continue;
    }
    iovec iov[2];
    int n = 0;
    size_t directLen = 0;
    uint8_t* direct = nullptr;
    if (inPayload_) {
      // Staging is empty here (parseStaged consumed it): read the payload in
      // place, and whatever follows into the staging buffer.
      stageBegin_ = stageEnd_ = 0;
      directLen = cur_.length - payloadDone_;
      if (target_.ptr) {
        direct = target_.ptr + payloadDone_;
      } else {
        direct = discard_.data();
        if (directLen > discard_.size()) directLen = discard_.size();
      }
      iov[n++] = {direct, directLen};
      iov[n++] = {stage_.data(), stageReadBytes(false)};
    } else {
      const size_t want = stageReadBytes(stageBegin_ == stageEnd_);
      if (stageBegin_ > 0 && stageEnd_ + want > stage_.size()) {
        std::memmove(stage_.data(), stage_.data() + stageBegin_, stageEnd_ - stageBegin_);
        stageEnd_ -= stageBegin_;
        stageBegin_ = 0;
      }
      iov[n++] = {stage_.data() + stageEnd_, want};
    }
    ssize_t r = readBytes(iov, n);
    if (r < 0) {
      if (r == -EINTR) continue;
      if (r == -EAGAIN || r == -EWOULDBLOCK) break;
      return brokenError("failed while receiving", static_cast<int>(-r));
    }
    if (r == 0) return brokenError("was closed by the peer", 0);
    progressed = true;
    bytesReceived_ += static_cast<uint64_t>(r);
    size_t got = static_cast<size_t>(r);
    if (inPayload_) {
      size_t first = got < directLen ? got : directLen;
      payloadDone_ += static_cast<uint32_t>(first);
      stageEnd_ = got - first;
      if (payloadDone_ == cur_.length) {
        finishFrame(sink);
      }
    } else {
      stageEnd_ += got;
    }
    if (got < iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0)) {
      // Short read: the socket is drained; parse what we have and stop.
      CHORUS_RETURN_IF_ERROR(parseStaged(sink, &progressed));
      break;
    }
  }
  return progressed;
}

Result<ProgressResult> TcpConnection::progress(FrameSink& sink) {
  ProgressResult pr;
  if (!open_) return unavailable("connection to peer " + std::to_string(peerId_) + " is closed");
  if (!completed_.empty()) {  // frames written early (writeQueuedNow)
    reportSent();
    pr.didWork = true;
  }
  {
    CHORUS_ASSIGN_OR_RETURN(bool flushed, flushTransport());
    pr.didWork |= flushed;
  }
  if (!sendq_.empty()) {
    CHORUS_ASSIGN_OR_RETURN(bool sent, flushSends());
    pr.didWork |= sent;
  }
  CHORUS_ASSIGN_OR_RETURN(bool read, readFrames(sink));
  pr.didWork |= read;
  // Receiving may have queued new sends (the next pipeline step); a socket
  // that was full a moment ago is not tried again before epoll says so.
  if (open_ && !sendq_.empty() && !writeBlocked()) {
    CHORUS_ASSIGN_OR_RETURN(bool sent, flushSends());
    pr.didWork |= sent;
  }
  return pr;
}

}  // namespace chorus::transport::tcp
