#include "common/crypto.h"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

namespace keelfs {

std::string hmac_sha256(const std::string& key, const std::string& msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &out_len);
  return std::string(reinterpret_cast<char*>(out), out_len);
}

std::string sha256(const std::string& bytes) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

bool same_bytes(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string secure_random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // The kernel's generator never fails on Linux; if OpenSSL's does, do not hand out a weak secret.
    std::abort();
  }
  return out;
}

std::string to_hex(const std::string& raw) {
  std::string hex;
  hex.reserve(raw.size() * 2);
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
}

std::string random_secret() { return to_hex(secure_random_bytes(32)); }

std::string random_salt() { return secure_random_bytes(16); }

uint64_t random_u64_nonzero() {
  for (;;) {
    std::string b = secure_random_bytes(8);
    uint64_t v = 0;
    std::memcpy(&v, b.data(), sizeof v);
    if (v != 0) return v;
  }
}

}  // namespace keelfs
