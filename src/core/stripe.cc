#include "src/core/stripe.h"

#include <algorithm>

namespace chorus {

StripeScheduler::StripeScheduler(int poolSize, bool adaptive, size_t lowWater)
    : pool_(std::max(1, poolSize)),
      active_(adaptive ? std::min(2, std::max(1, poolSize)) : std::max(1, poolSize)),
      adaptive_(adaptive),
      lowWater_(std::max<size_t>(1, lowWater)) {}

void StripeScheduler::push(const Item& item) {
  for (auto& q : queues_)
    if (q.first == item.owner) {
      q.second.push_back(item);
      return;
    }
  queues_.emplace_back(item.owner, std::deque<Item>{item});
}

void StripeScheduler::cancel(const transport::SendOwner* owner) {
  queues_.erase(std::remove_if(queues_.begin(), queues_.end(),
                               [&](const auto& q) { return q.first == owner; }),
                queues_.end());
}

size_t StripeScheduler::waiting() const {
  size_t n = 0;
  for (auto& q : queues_) n += q.second.size();
  return n;
}

StripeScheduler::Item StripeScheduler::pop() {
  auto q = std::move(queues_.front());
  queues_.pop_front();
  Item it = q.second.front();
  q.second.pop_front();
  if (!q.second.empty()) queues_.push_back(std::move(q));  // next operation's turn
  return it;
}

void StripeScheduler::pump(std::vector<std::unique_ptr<transport::Connection>>& streams,
                           const std::function<void(transport::Connection*)>& posted) {
  const int n = std::min<int>(active_, static_cast<int>(streams.size()));
  // Fill the emptiest stream first, one frame at a time, until none has room.
  while (!queues_.empty()) {
    transport::Connection* best = nullptr;
    size_t bestQueued = lowWater_;
    for (int i = 0; i < n; ++i) {
      transport::Connection* c = streams[i].get();
      if (!c || !c->isOpen()) continue;
      size_t q = c->queuedSendBytes();
      if (q < bestQueued) {
        best = c;
        bestQueued = q;
      }
    }
    if (!best) return;
    Item it = pop();
    best->postSend(it.h, it.data, it.owner, 0);
    posted(best);
  }
}

bool StripeScheduler::observe(TimePoint now, uint64_t sentTotal,
                              const std::function<uint32_t()>& rttUs) {
  if (queues_.empty()) {
    busy_ = false;  // the application is the limit: this window says nothing
    return false;
  }
  if (!busy_) {
    busy_ = true;
    windowStart_ = now;
    windowBytes_ = sentTotal;
    window_ =
        std::chrono::microseconds(std::clamp<int64_t>(10 * int64_t{rttUs()}, 200000, 3000000));
    return false;
  }
  if (now - windowStart_ < window_) return false;
  double secs = std::chrono::duration<double>(now - windowStart_).count();
  double rate = static_cast<double>(sentTotal - windowBytes_) / secs;
  lastRate_ = rate;
  windowStart_ = now;
  windowBytes_ = sentTotal;
  window_ = std::chrono::microseconds(std::clamp<int64_t>(10 * int64_t{rttUs()}, 200000, 3000000));
  if (!adaptive_) return false;
  const int before = active_;
  if (probing_) {
    if (rate > bestRate_ * 1.1 && active_ < pool_) {
      active_ = std::min(pool_, active_ * 2);
    } else {
      probing_ = false;  // the last step did not help (or the pool is all in use)
    }
    bestRate_ = std::max(bestRate_, rate);
  } else if (rate < bestRate_ * 0.6) {
    // Conditions changed (competing traffic, loss): measure again from here.
    bestRate_ = rate;
    probing_ = true;
  }
  return active_ != before;
}

}  // namespace chorus
