// Authentication by run secret: HMAC-SHA256 challenge-response in both
// directions. The secret itself never crosses the wire; each side proves it
// knows the secret by MACing the other side's fresh nonce (and the identities
// involved), so a recorded exchange cannot be replayed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace chorus::auth {

using Nonce = std::array<uint8_t, 32>;
using Proof = std::array<uint8_t, 32>;

Nonce makeNonce();
// HMAC-SHA256(key = SHA-256("chorus-run-secret-v1" || secret), label || transcript).
Proof prove(const std::string& secret, std::string_view label, std::string_view transcript);
// Constant-time comparison.
bool equal(const Proof& a, const Proof& b);
// Transcript helper: concatenation with length prefixes so fields cannot be
// shifted into one another.
class Transcript {
 public:
  Transcript& add(std::string_view s);
  Transcript& add(uint64_t v);
  template <size_t N>
  Transcript& add(const std::array<uint8_t, N>& a) {
    return add(std::string_view(reinterpret_cast<const char*>(a.data()), N));
  }
  const std::string& str() const { return buf_; }

 private:
  std::string buf_;
};

}  // namespace chorus::auth
