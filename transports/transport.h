// Transport interfaces. A Connection moves frames (src/protocol/frame.h)
// between two peers. Transports start no threads: the progress engine calls
// Connection::progress() from whichever thread drives it (a blocking caller or
// the engine's own thread), always under the engine lock.
//
// Receiving: the transport decodes each frame header and asks the FrameSink
// where the payload goes, so payloads land directly in their final buffer
// (the operation's output or scratch) without an intermediate copy.
// Sending: postSend queues a header plus a pointer to payload bytes that must
// stay valid until the SendOwner hears onSent, or until cancelSends(owner)
// returns (the transport then never touches that memory again).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/reduce.h"
#include "src/core/status.h"
#include "src/protocol/frame.h"

namespace chorus::transport {

class Connection;

// Whoever owns send or receive buffers (an operation). Identity only.
class SendOwner {
 public:
  virtual ~SendOwner() = default;
  virtual void onSent(uint64_t cookie) = 0;
};

struct RecvTarget {
  uint8_t* ptr = nullptr;       // nullptr: read and discard the payload
  const void* owner = nullptr;  // for detachReceives()
  // Set only on connections that canReduceOnArrival(): reduce the payload
  // while reading it instead of landing it at ptr. onFrame gets it back
  // still set if it was applied to the whole payload, cleared if the
  // payload landed at ptr after all.
  kernels::ArrivalReduction reduce{};
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // A header arrived; say where its payload goes.
  virtual RecvTarget onHeader(Connection& conn, const frame::Header& h) = 0;
  // The payload arrived completely at target.ptr (or was discarded).
  virtual void onFrame(Connection& conn, const frame::Header& h, const RecvTarget& target) = 0;
};

struct ProgressResult {
  bool didWork = false;  // bytes moved
};

// A frame handed back by Connection::takeUnreceived, to be sent again:
// an operation's (owner set, payload in its memory) or a control frame
// without owner (DONE, ABORT...: payload copied into `copy`).
struct Unreceived {
  frame::Header h;
  const void* payload = nullptr;
  SendOwner* owner = nullptr;
  uint64_t cookie = 0;
  bool sentReported = false;  // owner->onSent already ran for it
  std::vector<uint8_t> copy;
};

class Connection {
 public:
  virtual ~Connection() = default;

  uint64_t peerId() const { return peerId_; }
  int stream() const { return stream_; }
  // Descriptor to wait on for readiness, or -1 (then the engine polls).
  virtual int fd() const = 0;
  virtual const char* transportName() const = 0;

  // Queue a frame. h.length payload bytes are read from payload later.
  virtual void postSend(const frame::Header& h, const void* payload, SendOwner* owner,
                        uint64_t cookie) = 0;
  // Queue a frame whose (small) payload is copied now; no completion.
  virtual void postSendCopy(const frame::Header& h, const void* payload) = 0;
  // Move bytes without blocking. An error means the connection is broken.
  virtual Result<ProgressResult> progress(FrameSink& sink) = 0;
  virtual bool hasPendingSends() const = 0;
  // Header and payload bytes queued here and not yet handed to the kernel
  // (the striping scheduler fills the emptiest stream).
  virtual size_t queuedSendBytes() const = 0;
  // Smoothed round-trip time the transport measured, us (0: unknown).
  virtual uint32_t rttUs() const { return 0; }
  // How long data has gone unacknowledged by the peer's host, ms: the time
  // since its last acknowledgement while data is in flight, 0 when nothing
  // is in flight (or the transport cannot tell). It grows on a flow the
  // network drops or a host that vanished; a receiver that merely stopped
  // reading (zero window) acknowledges everything sent, so it stays 0.
  virtual uint32_t unackedForMs() const { return 0; }
  // Forget every queued send of owner; a frame already half-written is
  // finished with zero bytes so the stream stays framed.
  virtual void cancelSends(const SendOwner* owner) = 0;
  // A payload being received into owner's memory continues into a discard
  // buffer instead.
  virtual void detachReceives(const void* owner) = 0;
  // Close for good; later calls fail.
  virtual void close() = 0;
  // Transports whose data does not raise fd() readiness (shared memory) are
  // progressed on every engine pass, and asked before the engine sleeps:
  // prepareSleep() arms their wake-up and returns false if work is already
  // waiting (then the engine must not sleep).
  virtual bool needsPolling() const { return false; }
  virtual bool prepareSleep() { return true; }
  // Input already taken off fd() and held by the transport (TLS: a record
  // only partly handed out): fd() will not report it, so the engine
  // progresses the connection again instead of sleeping.
  virtual bool hasBufferedInput() const { return false; }
  // Whether this connection reads payloads from memory it can reduce out of
  // in place (RecvTarget::reduce), saving the copy that landing costs.
  virtual bool canReduceOnArrival() const { return false; }
  // Whether a frame written here (onSent) reaches the peer for as long as
  // the peer lives, whatever this side does next: the link is never lost or
  // replaced while both ends live (shared memory). A TCP stream can break
  // with written frames in flight.
  virtual bool deliversWhatItWrote() const { return false; }
  // Writes the queued frames now where that costs no system call (a shared-
  // memory ring): the caller posting the data every peer waits for sends it
  // before its own bookkeeping, not at its next pass. Their onSent runs at
  // the next progress() or reportWritten(), never from in here. Returns
  // whether it wrote; does nothing elsewhere.
  virtual bool writeQueuedNow() { return false; }
  // Runs onSent for frames writeQueuedNow() wrote, at a point where the
  // caller can take the callbacks.
  virtual void reportWritten() {}
  // Whether the engine should wake when fd() becomes writable.
  virtual bool wantsWriteReadiness() const { return hasPendingSends(); }
  // The last send found fd() full (-EAGAIN): retrying before fd() turns
  // writable only costs a failed system call, so the engine waits for epoll
  // to report it. Never true where readiness does not come from fd().
  virtual bool writeBlocked() const { return false; }
  virtual bool isOpen() const = 0;

  // Replaceable streams (a striped pool's): the connection numbers frames
  // in wire order and keeps a record of each one it wrote -- an operation's
  // as header and payload pointer (not a copy) until cancelSends() of its
  // owner, whose memory stays valid until then; the latest control frames
  // (no owner) as copies. When the stream
  // breaks, the peer says how many frames it received whole, and
  // takeUnreceived() hands back the rest -- written, partly written or
  // still queued -- to be sent on the other streams. Returns false if the
  // transport cannot.
  virtual bool retainSent() { return false; }
  virtual bool retainsSent() const { return false; }
  // On a closed connection: every frame from number peerReceived on, in
  // order, except remainders of cancelled ones. An error if the count is
  // impossible or names control frames no longer kept.
  virtual Result<std::vector<Unreceived>> takeUnreceived(uint64_t /*peerReceived*/) {
    return unimplemented(std::string(transportName()) + " streams cannot be replaced");
  }
  // Frames received whole so far (counted in the same wire order).
  uint64_t framesReceived() const { return framesReceived_; }

  uint64_t bytesSent() const { return bytesSent_; }
  uint64_t bytesReceived() const { return bytesReceived_; }

 protected:
  Connection(uint64_t peerId, int stream) : peerId_(peerId), stream_(stream) {}
  uint64_t peerId_;
  int stream_;
  uint64_t bytesSent_ = 0;
  uint64_t bytesReceived_ = 0;
  uint64_t framesReceived_ = 0;
};

}  // namespace chorus::transport
