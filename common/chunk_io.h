// Data calls on one chunk, as every writer and reader makes them (the client's write-back
// and reads, the packer, the master's compactor): read from the first copy that answers,
// write or sync down the chain the ticket names.
#pragma once

#include <cstdint>
#include <string>

#include "common/asio.h"
#include "common/rpc.h"
#include "common/status.h"
#include "keelfs.pb.h"

namespace keelfs {

// Bytes [offset, offset + len) of the chunk from the first of its copies that answers; short
// when the chunk ends before. Unavailable when it has no copy.
awaitable<Result<std::string>> read_from_copies(ConnectionCache& conns, const pb::ChunkInfo& chunk, uint64_t offset,
                                                size_t len);
// CHUNK_WRITE of `data` at `offset` to the chain's head, which forwards it down the chain
// (chunk.replicas in order). OK once every copy took it.
awaitable<Status> write_down_chain(ConnectionCache& conns, const pb::ChunkInfo& chunk, uint64_t offset,
                                   std::string data);
// CHUNK_SYNC down the chain: OK once the chunk is on disk on every copy.
awaitable<Status> sync_down_chain(ConnectionCache& conns, const pb::ChunkInfo& chunk);

}  // namespace keelfs
