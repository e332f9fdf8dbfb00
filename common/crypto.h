// The cryptographic primitives keelfs uses, over OpenSSL: HMAC-SHA256, SHA-256, a
// constant-time compare and random bytes from the kernel's generator.
#pragma once

#include <cstdint>
#include <string>

namespace keelfs {

std::string hmac_sha256(const std::string& key, const std::string& msg);
std::string sha256(const std::string& bytes);
// Compares secrets, keys and proofs in constant time.
bool same_bytes(const std::string& a, const std::string& b);

std::string secure_random_bytes(size_t n);  // aborts rather than return weak bytes
std::string to_hex(const std::string& raw);
std::string random_secret();            // 64 hex characters (256 random bits)
std::string random_salt();              // 16 random bytes
uint64_t random_u64_nonzero();          // 64 random bits, never 0 (ids that must not collide)

}  // namespace keelfs
