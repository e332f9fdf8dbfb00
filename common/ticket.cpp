#include "common/ticket.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "keelfs.pb.h"

namespace keelfs {
namespace {

std::string hmac_sha256(const std::string& key, const std::string& msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &out_len);
  return std::string(reinterpret_cast<char*>(out), out_len);
}

// Compares secrets and proofs in constant time.
bool same_bytes(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void append_le(std::string* out, const void* v, size_t n) { out->append(static_cast<const char*>(v), n); }

std::string compute_mac(const std::string& secret, const pb::Ticket& t) {
  std::string msg;
  uint64_t id = t.chunk_id();
  uint32_t version = t.version(), rights = t.rights();
  int64_t expires = t.expires_unix_ms();
  append_le(&msg, &id, 8);
  append_le(&msg, &version, 4);
  append_le(&msg, &rights, 4);
  append_le(&msg, &expires, 8);
  uint64_t session = t.session();
  append_le(&msg, &session, 8);
  for (const std::string& server : t.chain()) {
    uint32_t len = static_cast<uint32_t>(server.size());
    append_le(&msg, &len, 4);
    msg += server;
  }
  return hmac_sha256(secret, msg);
}

}  // namespace

void sign_ticket(const std::string& secret, pb::Ticket* ticket) { ticket->set_mac(compute_mac(secret, *ticket)); }

Status check_ticket(const std::string& secret, const pb::Ticket& ticket, uint64_t chunk_id, uint32_t version,
                    uint32_t rights, int64_t now_unix_ms) {
  if (!same_bytes(ticket.mac(), compute_mac(secret, ticket)))
    return error(Code::kPermissionDenied, fmt::format("ticket for chunk {:016x} has a bad signature", chunk_id));
  if (ticket.chunk_id() != chunk_id)
    return error(Code::kPermissionDenied,
                 fmt::format("ticket is for chunk {:016x}, not {:016x}", ticket.chunk_id(), chunk_id));
  if (ticket.version() != version)
    return error(Code::kPermissionDenied, fmt::format("ticket is for version {} of chunk {:016x}, not {}",
                                                      ticket.version(), chunk_id, version));
  if ((ticket.rights() & rights) != rights)
    return error(Code::kPermissionDenied, fmt::format("ticket for chunk {:016x} does not grant {}", chunk_id,
                                                      rights == kRightWrite ? "write" : "read"));
  if (ticket.expires_unix_ms() < now_unix_ms)
    return error(Code::kPermissionDenied, fmt::format("ticket for chunk {:016x} expired", chunk_id));
  return Status::Ok();
}

std::string hop_proof(const std::string& secret, const pb::Ticket& ticket, uint32_t position) {
  std::string msg = "keelfs-hop" + ticket.mac();
  append_le(&msg, &position, 4);
  return hmac_sha256(secret, msg);
}

Status check_chain(const std::string& secret, const pb::Ticket& ticket, const std::string& self,
                   const std::vector<std::string>& rest, const std::string& hop) {
  const auto& chain = ticket.chain();
  int at = -1;
  for (int i = 0; i < chain.size(); ++i)
    if (chain[i] == self) at = i;
  if (at < 0)
    return error(Code::kPermissionDenied,
                 fmt::format("the ticket for chunk {:016x} does not name this chunkserver ({}) in its chain",
                             ticket.chunk_id(), self));
  const std::vector<std::string> signed_rest(chain.begin() + at + 1, chain.end());
  if (rest != signed_rest)
    return error(Code::kPermissionDenied,
                 fmt::format("the chain after {} is not the one the master signed for chunk {:016x}", self,
                             ticket.chunk_id()));
  if (at > 0 && !same_bytes(hop, hop_proof(secret, ticket, static_cast<uint32_t>(at))))
    return error(Code::kPermissionDenied,
                 fmt::format("a write of chunk {:016x} reached {} without coming down the chain", ticket.chunk_id(), self));
  return Status::Ok();
}

Result<std::string> read_secret_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return error(Code::kNotFound, fmt::format("cannot read secret file {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && isspace(static_cast<unsigned char>(s[start]))) ++start;
  s = s.substr(start);
  if (s.empty()) return error(Code::kInvalidArgument, fmt::format("secret file {} is empty", path));
  return s;
}

namespace {
std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // The kernel's generator never fails on Linux; if OpenSSL's does, do not hand out a weak secret.
    std::abort();
  }
  return out;
}

Status check_proof(const std::string& expected, const std::string& proof, int64_t unix_ms, int64_t now_unix_ms,
                   const char* what) {
  if (!same_bytes(proof, expected))
    return error(Code::kPermissionDenied, fmt::format("{} is not signed with this cluster's secret", what));
  constexpr int64_t kSkewMs = 5 * 60 * 1000;
  if (unix_ms < now_unix_ms - kSkewMs || unix_ms > now_unix_ms + kSkewMs)
    return error(Code::kPermissionDenied, fmt::format("{} is signed with a clock more than 5 minutes off the master's", what));
  return Status::Ok();
}
}  // namespace

std::string admin_proof(const std::string& secret, int64_t unix_ms) {
  return hmac_sha256(secret, fmt::format("keelfs-admin|{}", unix_ms));
}

Status check_admin_proof(const std::string& secret, int64_t unix_ms, const std::string& proof, int64_t now_unix_ms) {
  return check_proof(admin_proof(secret, unix_ms), proof, unix_ms, now_unix_ms, "admin login");
}

std::string registration_proof(const std::string& secret, uint64_t cs_id, const std::string& address, int64_t unix_ms) {
  return hmac_sha256(secret, fmt::format("keelfs-cs-register|{:016x}|{}|{}", cs_id, address, unix_ms));
}

Status check_registration(const std::string& secret, uint64_t cs_id, const std::string& address, int64_t unix_ms,
                          const std::string& proof, int64_t now_unix_ms) {
  return check_proof(registration_proof(secret, cs_id, address, unix_ms), proof, unix_ms, now_unix_ms, "registration");
}

std::string monitor_key(const std::string& cluster_secret) {
  std::string hex;
  for (unsigned char c : hmac_sha256(cluster_secret, "keelfs-monitor-key")) hex += fmt::format("{:02x}", c);
  return hex;
}

std::string random_secret() {
  std::string raw = random_bytes(32), hex;
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
}

std::string random_salt() { return random_bytes(16); }

uint64_t random_u64_nonzero() {
  for (;;) {
    std::string b = random_bytes(8);
    uint64_t v = 0;
    std::memcpy(&v, b.data(), sizeof v);
    if (v != 0) return v;
  }
}

std::string hash_secret(const std::string& salt, const std::string& secret) {
  std::string msg = salt + secret;
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

bool secret_matches(const std::string& salt, const std::string& hash, const std::string& secret) {
  return same_bytes(hash_secret(salt, secret), hash);
}

}  // namespace keelfs
