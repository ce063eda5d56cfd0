// A single-producer single-consumer byte ring in POSIX shared memory: one per
// direction of a same-host peer pair, created by the writer, opened by the
// reader. Head (read position) and tail (write position) only grow; each is
// written by one side. The armed flags drive wake-ups: a side about to sleep
// arms, the other side sends it a wake-up byte after it moved data.
//
// Names: /chorus-shm.<creator pid>.<writer peer id>.<reader peer id>. The
// reader unlinks the name as soon as it has mapped the ring, so a crash later
// leaves nothing behind; a name whose creator died before that is removed by
// sweepStaleSegments() (the pid no longer exists).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include <sys/uio.h>

#include "src/core/status.h"

namespace chorus::transport::shm {

struct alignas(64) RingHeader {
  uint64_t magic;
  uint64_t capacity;
  alignas(64) std::atomic<uint64_t> head;  // reader
  alignas(64) std::atomic<uint64_t> tail;  // writer
  alignas(64) std::atomic<uint32_t> readerArmed;
  alignas(64) std::atomic<uint32_t> writerArmed;
};

class Ring {
 public:
  static constexpr uint64_t kMagic = 0x314752534D4843ull;  // "CHMSRG1"
  static Result<Ring*> create(const std::string& name, size_t capacity);
  static Result<Ring*> open(const std::string& name);
  ~Ring();

  // Copies up to len bytes in / out; returns the count moved. The iovec
  // forms gather / scatter in order, stop where the ring is full / empty,
  // and move the index once. Index stores are release only: a caller that
  // then looks at the other side's armed flag must fence first.
  size_t write(const uint8_t* p, size_t len);
  size_t read(uint8_t* p, size_t len);
  size_t write(const ::iovec* iov, int n);
  size_t read(const ::iovec* iov, int n);
  // The readable bytes where they lie, without consuming them: up to
  // `limit` bytes in at most two pieces (the second starts at the ring's
  // beginning, after the wrap). consume(n) then gives n of them back to the
  // writer. For readers that reduce straight out of the ring.
  struct Pieces {
    const uint8_t* first = nullptr;
    size_t firstLen = 0;
    const uint8_t* second = nullptr;
    size_t secondLen = 0;
    size_t total() const { return firstLen + secondLen; }
  };
  Pieces peek(size_t limit) const;
  void consume(size_t n);
  size_t readable() const;
  size_t writable() const;
  RingHeader* header() { return hdr_; }
  const std::string& name() const { return name_; }
  void unlinkName();

 private:
  Ring() = default;
  RingHeader* hdr_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t mapped_ = 0;
  // The writer's last look at the reader's head (only the writer uses it):
  // the free space is at least what it implies, since head only grows.
  mutable uint64_t headSeen_ = 0;
  std::string name_;
  bool linked_ = false;
};

// Removes /dev/shm/chorus-shm.* segments whose creating process is gone.
void sweepStaleSegments();

}  // namespace chorus::transport::shm
