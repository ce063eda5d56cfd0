// TCP data connection: framed, non-blocking I/O on a connected socket.
// The socket is connected and authenticated with Asio, then released from
// Asio's reactor: only the progress engine's epoll watches it, so arriving
// data wakes only the thread that waits for it.
// Reads use readv() into [current payload destination, staging buffer], so a
// large payload lands in place and small frames that follow it are picked up
// by the same system call. Writes gather queued headers and payloads into one
// sendmsg().
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>

#include <deque>
#include <memory>
#include <vector>

#include "transports/transport.h"

namespace chorus::transport::tcp {

class TcpConnection : public Connection {
 public:
  // Takes ownership of a connected, authenticated, non-blocking descriptor.
  TcpConnection(int fd, uint64_t peerId, int stream);
  ~TcpConnection() override;

  int fd() const override { return fd_; }
  const char* transportName() const override { return "tcp"; }
  void postSend(const frame::Header& h, const void* payload, SendOwner* owner,
                uint64_t cookie) override;
  void postSendCopy(const frame::Header& h, const void* payload) override;
  Result<ProgressResult> progress(FrameSink& sink) override;
  bool hasPendingSends() const override { return !sendq_.empty(); }
  bool writeBlocked() const override { return writeBlocked_; }
  size_t queuedSendBytes() const override;
  uint32_t rttUs() const override;
  uint32_t unackedForMs() const override;
  void cancelSends(const SendOwner* owner) override;
  void detachReceives(const void* owner) override;
  void close() override;
  bool isOpen() const override { return open_; }
  bool retainSent() override {
    retain_ = true;
    return true;
  }
  bool retainsSent() const override { return retain_; }
  Result<std::vector<Unreceived>> takeUnreceived(uint64_t peerReceived) override;
  void reportWritten() override { reportSent(); }

 protected:
  // For a byte stream that never blocks (shared memory): see
  // Connection::writeQueuedNow. Errors are left to the next progress().
  bool writeQueuedUnreported() {
    if (sendq_.empty()) return false;
    auto r = writeQueued();
    return r.isOk() && *r;
  }
  // The byte stream under the framing. Return bytes moved (> 0), 0 at end of
  // stream (reads only), or -errno (-EAGAIN: would block). The shared-memory
  // transport overrides both.
  virtual ssize_t writeBytes(const ::iovec* iov, int n);
  virtual ssize_t readBytes(const ::iovec* iov, int n);
  // Bytes the byte stream itself still holds after writeBytes accepted them
  // (TLS: plaintext not yet encrypted out); true if some moved.
  virtual Result<bool> flushTransport() { return false; }
  // How many bytes to read into the staging buffer when a frame header is
  // due. Payload bytes that arrive there are copied to their target once
  // more, which a socket accepts to save read() calls (16 KiB); a byte
  // stream without system calls reads just the header, or the small frames
  // it already holds whole (shared memory). atFrameStart: the stream's next
  // byte starts a frame (nothing partial staged, no payload before it).
  virtual size_t stageReadBytes(bool atFrameStart) const;
  // Reads up to len payload bytes of the current frame (from payload byte
  // offset on) and applies r to them, whole elements only. Returns bytes
  // consumed (> 0), 0 at end of stream, or -errno (-EAGAIN: nothing yet).
  // Only called where canReduceOnArrival().
  virtual ssize_t readReducing(const kernels::ArrivalReduction& r, size_t offset, size_t len) {
    (void)r, (void)offset, (void)len;
    return -ENOTSUP;
  }
  Status brokenError(const std::string& what, int err);

  int fd_;
  bool open_ = true;
  bool writeBlocked_ = false;  // see Connection::writeBlocked

 private:
  struct SendItem {
    uint8_t header[frame::kHeaderSize];
    const uint8_t* payload;  // nullptr: send zeros (cancelled mid-frame)
    uint32_t length;
    size_t done = 0;       // bytes of header+payload already written
    uint64_t index = 0;    // wire order, set when the first byte is written
    bool control = false;  // no owner, payload (if any) owned: resendable
    SendOwner* owner;
    uint64_t cookie;
    std::shared_ptr<std::vector<uint8_t>> owned;  // payload copy (postSendCopy)
  };
  Result<bool> flushSends();
  // flushSends() without reporting: frames written whole wait in completed_.
  Result<bool> writeQueued();
  // Runs onSent for the frames written whole since the last call.
  void reportSent();
  Result<bool> readFrames(FrameSink& sink);
  Status parseStaged(FrameSink& sink, bool* progressed);
  // The current payload is complete: hand the frame to the sink.
  void finishFrame(FrameSink& sink);

  std::deque<SendItem> sendq_;
  // retainSent(): frames written whole, kept until their owner is cancelled;
  // control frames, the latest kMaxRetainedControl (controlFloor_: index
  // after the last one dropped).
  bool retain_ = false;
  std::deque<SendItem> retained_;
  std::deque<SendItem> retainedControl_;
  uint64_t controlFloor_ = 0;
  uint64_t framesStarted_ = 0;
  std::vector<std::pair<SendOwner*, uint64_t>> completed_;
  std::vector<std::pair<SendOwner*, uint64_t>> reported_;  // reportSent()'s copy
  bool reporting_ = false;

  // Receive state.
  std::vector<uint8_t> stage_;
  size_t stageBegin_ = 0, stageEnd_ = 0;
  bool inPayload_ = false;
  frame::Header cur_;
  RecvTarget target_;
  uint32_t payloadDone_ = 0;
  std::vector<uint8_t> discard_;
};

}  // namespace chorus::transport::tcp
