#include "common/auth.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/crypto.h"

namespace keelfs {
namespace {

// Hex keeps the fields apart: no nonce or subject can be shifted into its neighbour.
std::string login_message(const char* label, const LoginNonces& n, const std::string& subject) {
  return fmt::format("{}|{}|{}|{}", label, to_hex(n.client), to_hex(n.server), subject);
}

std::string xor_bytes(const std::string& a, const std::string& b) {
  std::string out(a.size(), '\0');
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i]);
  return out;
}

std::string client_key(const std::string& salted) { return hmac_sha256(salted, "Client Key"); }

}  // namespace

std::string admin_subject() { return "admin"; }

std::string chunkserver_subject(uint64_t cs_id, const std::string& address) {
  return fmt::format("chunkserver|{:016x}|{}", cs_id, address);
}

std::string login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject) {
  return hmac_sha256(key, login_message("keelfs-login", nonces, subject));
}

std::string master_login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject) {
  // Its own label: the master's answer cannot be reflected back to it as a login.
  return hmac_sha256(key, login_message("keelfs-master", nonces, subject));
}

Status check_login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject,
                         const std::string& proof, const char* what) {
  if (!same_bytes(proof, login_proof(key, nonces, subject)))
    return error(Code::kPermissionDenied, fmt::format("{} is not signed with this cluster's secret", what));
  return Status::Ok();
}

Status check_master_login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject,
                                const std::string& proof, const std::string& master_address) {
  if (!same_bytes(proof, master_login_proof(key, nonces, subject)))
    return error(Code::kPermissionDenied,
                 fmt::format("the master at {} could not prove that it holds the cluster secret", master_address));
  return Status::Ok();
}

std::string monitor_key(const std::string& cluster_secret) {
  return to_hex(hmac_sha256(cluster_secret, "keelfs-monitor-key"));
}

VolumeKeys volume_keys(const std::string& secret, const std::string& salt) {
  return volume_keys_from_salted(salt, sha256(salt + secret));
}

VolumeKeys volume_keys_from_salted(const std::string& salt, const std::string& salted) {
  VolumeKeys keys;
  keys.salt = salt;
  keys.stored_key = sha256(client_key(salted));
  keys.server_key = hmac_sha256(salted, "Server Key");
  return keys;
}

std::string mount_proof(const std::string& secret, const std::string& salt, const LoginNonces& nonces,
                        const std::string& volume) {
  std::string salted = sha256(salt + secret);
  std::string key = client_key(salted);
  return xor_bytes(key, hmac_sha256(sha256(key), login_message("keelfs-mount", nonces, volume)));
}

Status check_mount_proof(const VolumeKeys& keys, const LoginNonces& nonces, const std::string& volume,
                         const std::string& proof) {
  std::string signature = hmac_sha256(keys.stored_key, login_message("keelfs-mount", nonces, volume));
  if (proof.size() != signature.size() || !same_bytes(sha256(xor_bytes(proof, signature)), keys.stored_key))
    return error(Code::kPermissionDenied, fmt::format("wrong secret for volume '{}'", volume));
  return Status::Ok();
}

std::string master_mount_proof(const VolumeKeys& keys, const LoginNonces& nonces, const std::string& volume) {
  return hmac_sha256(keys.server_key, login_message("keelfs-mount-master", nonces, volume));
}

Status check_master_mount_proof(const std::string& secret, const std::string& salt, const LoginNonces& nonces,
                                const std::string& volume, const std::string& proof,
                                const std::string& master_address) {
  VolumeKeys keys = volume_keys(secret, salt);
  if (!same_bytes(proof, master_mount_proof(keys, nonces, volume)))
    return error(Code::kPermissionDenied,
                 fmt::format("the master at {} could not prove that it knows volume '{}'", master_address, volume));
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

}  // namespace keelfs
