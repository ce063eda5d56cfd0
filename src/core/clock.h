// Monotonic time and deadlines. Every wait in Chorus has a Deadline.
#pragma once

#include <chrono>
#include <cstdint>

namespace chorus {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

class Deadline {
 public:
  static Deadline never() { return Deadline(TimePoint::max()); }
  static Deadline afterMs(int64_t ms) {
    if (ms < 0) return never();
    return Deadline(Clock::now() + std::chrono::milliseconds(ms));
  }
  explicit Deadline(TimePoint at) : at_(at) {}

  bool expired() const { return at_ != TimePoint::max() && Clock::now() >= at_; }
  bool isNever() const { return at_ == TimePoint::max(); }
  TimePoint at() const { return at_; }
  // Milliseconds left, clamped to [0, cap].
  int remainingMs(int cap) const {
    if (isNever()) return cap;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at_ - Clock::now()).count();
    if (left < 0) return 0;
    return left > cap ? cap : static_cast<int>(left);
  }
  static Deadline earliest(const Deadline& a, const Deadline& b) { return a.at_ < b.at_ ? a : b; }

 private:
  TimePoint at_;
};

}  // namespace chorus
