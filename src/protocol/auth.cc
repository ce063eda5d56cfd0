#include "src/protocol/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include "src/core/status.h"
#include "src/protocol/wire.h"

namespace chorus::auth {

Nonce makeNonce() {
  Nonce n{};
  CHORUS_CHECK_MSG(RAND_bytes(n.data(), static_cast<int>(n.size())) == 1,
                   "OpenSSL RAND_bytes failed");
  return n;
}

Proof prove(const std::string& secret, std::string_view label, std::string_view transcript) {
  // Derive a fixed-size key so that secrets of any length behave the same.
  std::string keyInput = "chorus-run-secret-v1";
  keyInput += secret;
  unsigned char key[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(keyInput.data()), keyInput.size(), key);

  std::string msg(label);
  msg.push_back('\0');
  msg.append(transcript);
  Proof out{};
  unsigned int len = 0;
  unsigned char* r =
      HMAC(EVP_sha256(), key, sizeof(key), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), out.data(), &len);
  CHORUS_CHECK_MSG(r != nullptr && len == out.size(), "OpenSSL HMAC failed");
  OPENSSL_cleanse(key, sizeof(key));
  return out;
}

bool equal(const Proof& a, const Proof& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Transcript& Transcript::add(std::string_view s) {
  uint8_t len[4];
  wire::storeU32(len, static_cast<uint32_t>(s.size()));
  buf_.append(reinterpret_cast<const char*>(len), 4);
  buf_.append(s);
  return *this;
}

Transcript& Transcript::add(uint64_t v) {
  uint8_t b[8];
  wire::storeU64(b, v);
  buf_.append(reinterpret_cast<const char*>(b), 8);
  return *this;
}

}  // namespace chorus::auth
