// Logins: challenge–response, both ways, with no secret on the wire (docs/decisions.md,
// "Logins are challenge–response, both ways").
//
// HELLO gives every connection two fresh nonces, one from each side (LoginNonces). Every
// login proof is an HMAC over both of them, so a proof seen on one connection is worthless
// on any other. Each login is answered by the master's own proof, made with the same key
// and nonces: a peer that merely answers at the master's address cannot make it, and is
// neither obeyed (chunkservers) nor trusted (mounts, admins).
//
// - Admins and chunkservers prove the cluster secret (a monitoring client the monitoring
//   key derived from it), over a subject that names who logs in.
// - Mounts prove a volume's secret in the shape of SCRAM-SHA-256 (RFC 5802): the master
//   keeps only a salt, SHA-256 of the client key and the server key, so its store is no
//   key to a volume either.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace keelfs {

struct LoginNonces {
  std::string client;  // sent in HELLO by the side that dialled
  std::string server;  // answered to HELLO by the side that accepted
};
constexpr size_t kLoginNonceBytes = 16;

// ---- cluster-secret logins. `key` is the cluster secret or the monitoring key.
std::string admin_subject();
std::string chunkserver_subject(uint64_t cs_id, const std::string& address);
// What the peer logging in sends, and what the master answers with.
std::string login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject);
std::string master_login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject);
// `what` names the login in the error ("admin login", "chunkserver login").
Status check_login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject,
                         const std::string& proof, const char* what);
Status check_master_login_proof(const std::string& key, const LoginNonces& nonces, const std::string& subject,
                                const std::string& proof, const std::string& master_address);

// The monitoring key of a cluster: 64 hex characters derived from the cluster secret (which
// it does not reveal). An admin login proved with it may read (HEALTH, FSCK, listings of
// volumes, sessions and chunkservers) and change nothing.
std::string monitor_key(const std::string& cluster_secret);

// ---- volume secrets.
// What the master keeps of a volume's secret. salted = SHA-256(salt || secret); client key
// = HMAC(salted, "Client Key"); stored key = SHA-256(client key); server key =
// HMAC(salted, "Server Key").
struct VolumeKeys {
  std::string salt;
  std::string stored_key;
  std::string server_key;
};
// Made by whoever creates the volume (the CLI), which alone ever sees the secret.
VolumeKeys volume_keys(const std::string& secret, const std::string& salt);
// From SHA-256(salt || secret): what stores written before these logins kept.
VolumeKeys volume_keys_from_salted(const std::string& salt, const std::string& salted);

// The mount's proof: client key XOR HMAC(stored key, "keelfs-mount" | nonces | volume).
std::string mount_proof(const std::string& secret, const std::string& salt, const LoginNonces& nonces,
                        const std::string& volume);
Status check_mount_proof(const VolumeKeys& keys, const LoginNonces& nonces, const std::string& volume,
                         const std::string& proof);
// The master's answer: HMAC(server key, "keelfs-mount-master" | nonces | volume).
std::string master_mount_proof(const VolumeKeys& keys, const LoginNonces& nonces, const std::string& volume);
Status check_master_mount_proof(const std::string& secret, const std::string& salt, const LoginNonces& nonces,
                                const std::string& volume, const std::string& proof,
                                const std::string& master_address);

// Reads a secret from a file (whitespace trimmed). An empty file is an error.
Result<std::string> read_secret_file(const std::string& path);

}  // namespace keelfs
