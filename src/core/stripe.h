// Striping of one peer pair's data frames over its pool of TCP streams.
//
// Frames wait here until a stream has room (fewer than lowWater bytes queued
// in user space; TCP_NOTSENT_LOWAT keeps the kernel's unsent share small
// too), so the stream that drains first gets the next frame: a slow or
// fair-queued stream takes fewer frames instead of holding up the transfer.
// Each frame names its operation and block, so the receiver places it
// wherever it arrives from; no reassembly order is needed.
//
// Frames of concurrent operations are taken round-robin, one frame each in
// turn, so one collective does not wait behind another's whole backlog.
//
// Adaptive pools (CHORUS_CONNECTIONS_PER_PEER=auto) start with two active
// streams and double them while the pair's throughput, measured only while
// frames are waiting (the link, not the application, is the limit), rises by
// more than 10% per step; a later drop below 60% of the best rate starts a
// new probe. The measurement window is ten round trips (kernel TCP_INFO
// estimate), clamped to [0.2 s, 3 s].
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "src/core/clock.h"
#include "src/protocol/frame.h"
#include "transports/transport.h"

namespace chorus {

class StripeScheduler {
 public:
  struct Item {
    frame::Header h;
    const void* data = nullptr;
    transport::SendOwner* owner = nullptr;
  };

  StripeScheduler(int poolSize, bool adaptive, size_t lowWater);

  void push(const Item& item);
  // Drop every waiting frame of owner (its operation finished or failed).
  void cancel(const transport::SendOwner* owner);
  bool empty() const { return queues_.empty(); }
  size_t waiting() const;
  int active() const { return active_; }
  int poolSize() const { return pool_; }
  double bestRate() const { return bestRate_; }

  // Hand waiting frames to the first active() streams that have room;
  // posted(c) is called for each stream that got a frame. Streams that are
  // missing or closed are skipped (their frames go to the others).
  void pump(std::vector<std::unique_ptr<transport::Connection>>& streams,
            const std::function<void(transport::Connection*)>& posted);

  // Throughput bookkeeping: sentTotal = bytes the pair's streams have
  // written so far, rttUs() = a round-trip estimate in us (0: unknown),
  // asked only when a measurement window starts (it may be a system call).
  // Returns true when active() changed.
  bool observe(TimePoint now, uint64_t sentTotal, const std::function<uint32_t()>& rttUs);
  double lastRate() const { return lastRate_; }

 private:
  Item pop();

  int pool_, active_;
  bool adaptive_;
  size_t lowWater_;
  // One FIFO per operation, served round-robin.
  std::deque<std::pair<const transport::SendOwner*, std::deque<Item>>> queues_;
  // Adaptation.
  bool busy_ = false, probing_ = true;
  TimePoint windowStart_{};
  Duration window_{};
  uint64_t windowBytes_ = 0;
  double bestRate_ = 0, lastRate_ = 0;
};

}  // namespace chorus
