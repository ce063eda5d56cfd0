#pragma once
// Payload buffers for frames that arrive before their operation starts here.
//
// In a loop of collectives the faster peers routinely send the next
// operation's first frames before a slower peer has posted it, so such a
// frame is the common case, not the exception. A fresh buffer per frame
// (hundreds of KiB and up) is mapped and trimmed by glibc every time: at N=4,
// 1 MiB on shared memory that was a page fault per 4 KiB of every early frame
// and tripled the time per operation. Buffers given back are kept for the
// next early frame instead, within a bound.
//
// Not thread-safe: used under the engine lock.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace chorus {

class BufferCache {
 public:
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    size_t capacity = 0;
  };

  explicit BufferCache(size_t maxBuffers = 16, size_t maxBytes = size_t{64} << 20)
      : maxBuffers_(maxBuffers), maxBytes_(maxBytes) {}

  // The smallest cached buffer of at least `bytes`, else a new one (not
  // zero-filled). Never empty: a zero-byte request gets one byte, so the
  // pointer can mark "received".
  Buffer take(size_t bytes);

  // Keeps `b` for a later take() while under the bounds; frees it otherwise.
  void give(Buffer b);

  size_t cachedBuffers() const { return spare_.size(); }
  size_t cachedBytes() const { return spareBytes_; }

 private:
  const size_t maxBuffers_;
  const size_t maxBytes_;
  std::vector<Buffer> spare_;
  size_t spareBytes_ = 0;
};

}  // namespace chorus
