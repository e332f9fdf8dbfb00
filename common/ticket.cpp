#include "common/ticket.h"

#include <fmt/format.h>

#include "common/crypto.h"
#include "keelfs.pb.h"

namespace keelfs {
namespace {

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

}  // namespace keelfs
