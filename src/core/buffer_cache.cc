#include "src/core/buffer_cache.h"

#include <algorithm>
#include <utility>

namespace chorus {

BufferCache::Buffer BufferCache::take(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
  size_t best = spare_.size();
  for (size_t i = 0; i < spare_.size(); ++i)
    if (spare_[i].capacity >= bytes &&
        (best == spare_.size() || spare_[i].capacity < spare_[best].capacity))
      best = i;
  if (best == spare_.size()) return Buffer{std::unique_ptr<uint8_t[]>(new uint8_t[bytes]), bytes};
  Buffer b = std::move(spare_[best]);
  spare_[best] = std::move(spare_.back());
  spare_.pop_back();
  spareBytes_ -= b.capacity;
  return b;
}

void BufferCache::give(Buffer b) {
  if (!b.data) return;
  if (b.capacity > maxBytes_) return;
  // Full: make room by dropping smaller buffers (a large early frame is the
  // costly one to allocate again); if that is not enough, drop this one.
  while (!spare_.empty() &&
         (spare_.size() >= maxBuffers_ || spareBytes_ + b.capacity > maxBytes_)) {
    auto smallest =
        std::min_element(spare_.begin(), spare_.end(),
                         [](const Buffer& x, const Buffer& y) { return x.capacity < y.capacity; });
    if (smallest->capacity >= b.capacity) return;
    spareBytes_ -= smallest->capacity;
    *smallest = std::move(spare_.back());
    spare_.pop_back();
  }
  spareBytes_ += b.capacity;
  spare_.push_back(std::move(b));
}

}  // namespace chorus
