// Little-endian, bounds-checked encoding of message bodies. A WireReader never
// reads past its buffer: the first out-of-bounds or oversized field makes it
// fail (sticky), and every later read returns zero values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/status.h"

namespace chorus::wire {

inline void storeU16(uint8_t* p, uint16_t v) {
  p[0] = v & 0xff;
  p[1] = v >> 8;
}
inline void storeU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void storeU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint16_t loadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t loadU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t loadU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

class Writer {
 public:
  void u8(uint8_t v) { buf_.push_back(v); }
  void u16(uint16_t v) {
    grow(2, [&](uint8_t* p) { storeU16(p, v); });
  }
  void u32(uint32_t v) {
    grow(4, [&](uint8_t* p) { storeU32(p, v); });
  }
  void u64(uint64_t v) {
    grow(8, [&](uint8_t* p) { storeU64(p, v); });
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    buf_.insert(buf_.end(), s.begin(), s.end());
  }
  template <size_t N>
  void fixed(const std::array<uint8_t, N>& a) {
    buf_.insert(buf_.end(), a.begin(), a.end());
  }
  void bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  std::vector<uint8_t>& buffer() { return buf_; }
  size_t size() const { return buf_.size(); }

 private:
  // Not inlined: control messages only, and inlined into its callers GCC 12
  // reported the resize as overflowing (-Wstringop-overflow, a false
  // positive of its range tracking).
  template <typename F>
  [[gnu::noinline]] void grow(size_t n, F f) {
    size_t at = buf_.size();
    buf_.resize(at + n);
    f(buf_.data() + at);
  }
  std::vector<uint8_t> buf_;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t len) : p_(data), n_(len) {}
  explicit Reader(const std::vector<uint8_t>& v) : Reader(v.data(), v.size()) {}

  uint8_t u8() { return take(1) ? p_[pos_ - 1] : 0; }
  uint16_t u16() { return take(2) ? loadU16(p_ + pos_ - 2) : 0; }
  uint32_t u32() { return take(4) ? loadU32(p_ + pos_ - 4) : 0; }
  uint64_t u64() { return take(8) ? loadU64(p_ + pos_ - 8) : 0; }
  int32_t i32() { return static_cast<int32_t>(u32()); }
  // Length-prefixed string of at most maxLen bytes.
  std::string str(size_t maxLen) {
    uint32_t len = u32();
    if (failed_) return {};
    if (len > maxLen) {
      fail("string field of " + std::to_string(len) + " bytes exceeds limit " +
           std::to_string(maxLen));
      return {};
    }
    if (!take(len)) return {};
    return std::string(reinterpret_cast<const char*>(p_ + pos_ - len), len);
  }
  template <size_t N>
  std::array<uint8_t, N> fixed() {
    std::array<uint8_t, N> a{};
    if (take(N)) std::memcpy(a.data(), p_ + pos_ - N, N);
    return a;
  }
  // Element count for a following list whose items take at least
  // minItemBytes each: rejects counts the remaining bytes cannot hold.
  uint32_t count(size_t maxCount, size_t minItemBytes) {
    uint32_t c = u32();
    if (failed_) return 0;
    if (c > maxCount || (minItemBytes && c > remaining() / minItemBytes)) {
      fail("list of " + std::to_string(c) + " items does not fit the message");
      return 0;
    }
    return c;
  }

  bool ok() const { return !failed_; }
  size_t remaining() const { return n_ - pos_; }
  // OK if every read was in bounds and (when exact) every byte was consumed.
  Status finish(const char* what, bool exact = true) const {
    if (failed_) return protocolError(std::string("malformed ") + what + ": " + error_);
    if (exact && pos_ != n_)
      return protocolError(std::string("malformed ") + what + ": " + std::to_string(n_ - pos_) +
                           " trailing bytes");
    return Status::ok();
  }
  void fail(const std::string& why) {
    if (!failed_) {
      failed_ = true;
      error_ = why;
    }
  }

 private:
  bool take(size_t k) {
    if (failed_) return false;
    if (k > n_ - pos_) {
      fail("truncated (needed " + std::to_string(k) + " more bytes, " + std::to_string(n_ - pos_) +
           " left)");
      return false;
    }
    pos_ += k;
    return true;
  }
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool failed_ = false;
  std::string error_;
};

}  // namespace chorus::wire
