// Tickets: the master's signed permission for one data operation on one chunk version.
// mac = HMAC-SHA256(cluster secret, chunk_id | version | rights | expires_unix_ms | session
// [| for each server of the chain: u32 length | address]), all little-endian fixed width.
// A chunkserver checks the mac, the expiry, the chunk id, the version and the rights
// before it reads or writes a byte, and for writes and syncs the chain (check_chain).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace keelfs {
namespace pb {
class Ticket;
}

constexpr uint32_t kRightRead = 1;
constexpr uint32_t kRightWrite = 2;

void sign_ticket(const std::string& secret, pb::Ticket* ticket);
// OK when the ticket is genuine, unexpired, for this chunk and version, and grants `rights`.
Status check_ticket(const std::string& secret, const pb::Ticket& ticket, uint64_t chunk_id, uint32_t version,
                    uint32_t rights, int64_t now_unix_ms);

// A write or sync reaching chunkserver `self` with `rest` as the servers after it: OK when
// the ticket's signed chain names `self` and exactly `rest` after it, and, unless `self`
// heads the chain, `hop` proves the request came down the chain (a writer can neither
// skip a copy, repeat one, add a host of its own, nor start part-way down the chain).
Status check_chain(const std::string& secret, const pb::Ticket& ticket, const std::string& self,
                   const std::vector<std::string>& rest, const std::string& hop);
// What a chunkserver sets as `hop` when it forwards to the server at `position` of the
// ticket's chain: HMAC-SHA256(secret, "keelfs-hop" | ticket mac | u32 position).
std::string hop_proof(const std::string& secret, const pb::Ticket& ticket, uint32_t position);

}  // namespace keelfs
