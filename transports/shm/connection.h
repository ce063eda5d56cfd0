// Same-host data connection: frames travel through two shared-memory rings
// (ring.h), one per direction; the TCP socket the peers authenticated on stays
// open and carries only one-byte wake-ups (to a side that armed before
// sleeping) and the end-of-stream that reveals a dead peer. It reuses the TCP
// connection's framing over a different byte pipe.
//
// Every data link starts with a set-up on the socket, before any frame: each
// side sends its host identity and the name of the outgoing ring it created;
// each opens the other's ring if the hosts match and answers whether it
// could. Shared memory is used only if both could; otherwise the link simply
// stays TCP (other host, different containers, no /dev/shm, CHORUS_SHM=0 on
// either side), with no frame lost. Deciding in band keeps both ends in
// agreement even when one learned of the other before its view did.
#pragma once

#include <memory>
#include <string>

#include "transports/shm/ring.h"
#include "transports/tcp/connection.h"

namespace chorus::transport::shm {

class ShmConnection final : public tcp::TcpConnection {
 public:
  // ringBytes 0: offer no shared memory (CHORUS_SHM=0); the link stays TCP.
  ShmConnection(int fd, uint64_t peerId, int stream, uint64_t myPeerId, const std::string& myHost,
                size_t ringBytes);
  ~ShmConnection() override;

  const char* transportName() const override { return mode_ == Mode::kShm ? "shm" : "tcp"; }
  Result<ProgressResult> progress(FrameSink& sink) override;
  bool needsPolling() const override { return mode_ != Mode::kTcp; }
  // Frames in a ring cannot be counted back after a break: not replaceable.
  // A link that settles on TCP keeps its frames as TCP does (no frame is
  // written before the set-up decides).
  bool retainSent() override {
    retainWanted_ = true;
    if (mode_ == Mode::kTcp) TcpConnection::retainSent();
    return mode_ != Mode::kShm;
  }
  bool prepareSleep() override;
  bool canReduceOnArrival() const override { return mode_ == Mode::kShm; }
  bool deliversWhatItWrote() const override { return mode_ == Mode::kShm; }
  bool writeQueuedNow() override { return mode_ == Mode::kShm && writeQueuedUnreported(); }
  bool wantsWriteReadiness() const override;
  // A full ring is no fd() state: only a link that settled on TCP blocks.
  bool writeBlocked() const override {
    return mode_ == Mode::kTcp && TcpConnection::writeBlocked();
  }
  void close() override;

 protected:
  ssize_t writeBytes(const ::iovec* iov, int n) override;
  ssize_t readBytes(const ::iovec* iov, int n) override;
  // Applies r straight out of the ring (no landing copy).
  ssize_t readReducing(const kernels::ArrivalReduction& r, size_t offset, size_t len) override;
  // Reading the ring costs no system call: take just the next header, so
  // that its payload goes from the ring straight to its target (a 16 KiB
  // staging read put up to 16 KiB of each payload through a second copy).
  // But small frames the ring already holds whole are taken together, in one
  // read: a small all-reduce's DONE and next DATA frame, header and payload,
  // were three reads, each with its fence.
  size_t stageReadBytes(bool atFrameStart) const override;

 private:
  enum class Mode { kSetup, kShm, kTcp };
  Status setupStep(bool* progressed);
  void wake();
  // 0 at end of stream, -EAGAIN when drained; *drained set if bytes came.
  ssize_t drainWakes(bool* drained);
  // Drains the socket (rate-limited); true once it reported end of stream or
  // an error.
  bool peerGone(bool* drained);
  size_t readRing(const ::iovec* iov, int n);
  // After reading: wake a writer that armed because the ring was full.
  void wakeWriterIfArmed();

  // A spinning reader finds the ring empty every few hundred ns; reading the
  // clock to pace the drain cost more than the check it paced (28 ns a
  // read on this VM, on every empty pass). 512 empty reads: ~0.1 ms.
  static constexpr int kDrainEveryEmptyReads = 512;
  // Small frames staged whole in one read (see stageReadBytes): up to this
  // many bytes, frames of at most kSmallFrameBytes each.
  static constexpr size_t kSmallStageBytes = 1024;
  static constexpr size_t kSmallFrameBytes = 256;

  Mode mode_ = Mode::kSetup;
  std::string myHost_;
  std::unique_ptr<Ring> out_, in_;
  // Set-up state.
  std::string outbox_;  // set-up bytes still to send
  std::string inbox_;   // set-up bytes received
  bool sentAnswer_ = false, gotOffer_ = false, peerOk_ = false, iOk_ = false;
  int emptyReads_ = 0;      // since the last drain
  bool drainNext_ = false;  // after prepareSleep(): do not wait for the count
  bool peerClosed_ = false;
  bool retainWanted_ = false;
  bool reducedOnArrival_ = false;  // logged once per link
  int drainError_ = 0;
};

}  // namespace chorus::transport::shm
