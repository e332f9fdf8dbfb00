#include "common/chunk_io.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace keelfs {
namespace {

Status no_copy(const pb::ChunkInfo& chunk) {
  return error(Code::kUnavailable, fmt::format("chunk {:016x} has no live copy", chunk.chunk_id()));
}

// The request's chain: every copy after the head, in order.
template <class Req>
void fill_chain(const pb::ChunkInfo& chunk, Req* req) {
  for (int i = 1; i < chunk.replicas_size(); ++i) req->add_chain(chunk.replicas(i).address());
}

}  // namespace

awaitable<Result<std::string>> read_from_copies(ConnectionCache& conns, const pb::ChunkInfo& chunk, uint64_t offset,
                                                size_t len) {
  if (chunk.replicas().empty()) co_return no_copy(chunk);
  pb::ChunkReadReq req;
  req.set_chunk_id(chunk.chunk_id());
  req.set_version(chunk.version());
  req.set_offset(offset);
  req.set_length(static_cast<uint32_t>(len));
  *req.mutable_ticket() = chunk.ticket();
  Status last;
  for (const pb::Replica& r : chunk.replicas()) {
    auto conn = co_await conns.get(r.address());
    if (!conn.ok()) {
      last = conn.status();
      continue;
    }
    auto f = co_await (*conn)->call(pb::CHUNK_READ, req);
    if (!f.ok()) {
      last = f.status();
      spdlog::warn("read of chunk {:016x} from {} failed, trying another copy: {}", chunk.chunk_id(), r.address(),
                   last.message());
      continue;
    }
    co_return std::move(f->payload);
  }
  co_return last;
}

awaitable<Status> write_down_chain(ConnectionCache& conns, const pb::ChunkInfo& chunk, uint64_t offset,
                                   std::string data) {
  if (chunk.replicas().empty()) co_return no_copy(chunk);
  pb::ChunkWriteReq req;
  req.set_chunk_id(chunk.chunk_id());
  req.set_version(chunk.version());
  req.set_offset(offset);
  fill_chain(chunk, &req);
  *req.mutable_ticket() = chunk.ticket();
  CO_ASSIGN_OR_RETURN(ConnectionPtr conn, co_await conns.get(chunk.replicas(0).address()));
  auto r = co_await conn->call(pb::CHUNK_WRITE, req, std::move(data));
  co_return r.status();
}

awaitable<Status> sync_down_chain(ConnectionCache& conns, const pb::ChunkInfo& chunk) {
  if (chunk.replicas().empty()) co_return no_copy(chunk);
  pb::ChunkSyncReq req;
  req.set_chunk_id(chunk.chunk_id());
  req.set_version(chunk.version());
  fill_chain(chunk, &req);
  *req.mutable_ticket() = chunk.ticket();
  CO_ASSIGN_OR_RETURN(ConnectionPtr conn, co_await conns.get(chunk.replicas(0).address()));
  auto r = co_await conn->call(pb::CHUNK_SYNC, req);
  co_return r.status();
}

}  // namespace keelfs
