#include "client/packer.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/chunk_io.h"
#include "common/util.h"

namespace keelfs::client {
namespace {

constexpr int kMaxAttempts = 6;  // backing off 0.1 s more each time: 1.5 s in all
// A pack's write ticket is renewed this long before it expires (at most half its life).
constexpr int64_t kTicketMarginMs = 60 * 1000;

}  // namespace

template <class Resp>
awaitable<Result<Resp>> Packer::ask(uint16_t type, const google::protobuf::MessageLite& req) {
  CO_ASSIGN_OR_RETURN(Frame f, co_await call_master_(type, req));
  Resp resp;
  CO_RETURN_IF_ERROR(parse_body(f, &resp));
  co_return resp;
}

awaitable<Result<Packer::Committed>> Packer::write_file(uint64_t volume_id, uint64_t ino, const std::string& data,
                                                        uint64_t file_size, uint64_t base_size) {
  Status last;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (attempt > 0) co_await sleep_for(std::chrono::milliseconds(100 * attempt));
    auto placed = co_await place(volume_id, ino, data.size());
    if (!placed.ok()) {
      // No chunkserver to make a pack on yet (a master that just restarted): again, later.
      last = placed.status();
      if (last.is(Code::kUnavailable)) continue;
      co_return last;
    }
    Place at = std::move(*placed);
    if (Status st = co_await write_down_chain(cs_conns_, at.chunk, at.offset, data); !st.ok()) {
      spdlog::warn("packing inode {} into {:016x} failed, taking a new pack: {}", ino, at.chunk.chunk_id(), st.message());
      give_up(volume_id, at.chunk.chunk_id());
      last = st;
      continue;
    }
    pb::PackCommitReq req;
    req.set_inode(ino);
    req.set_chunk_id(at.chunk.chunk_id());
    req.set_offset(at.offset);
    req.set_length(data.size());
    req.set_file_size(file_size);
    req.set_base_size(base_size);
    auto resp = co_await ask<pb::AttrResp>(pb::PACK_COMMIT, req);
    if (resp.ok()) co_return Committed{resp->attr(), at.chunk};
    last = resp.status();
    // The pack is no longer this session's (a master restart sealed it): a new one.
    if (!last.is(Code::kStaleVersion)) co_return last;
    give_up(volume_id, at.chunk.chunk_id());
  }
  co_return last;
}

awaitable<Result<Packer::Place>> Packer::place(uint64_t volume_id, uint64_t ino, uint64_t len) {
  auto guard = co_await opening_.lock(volume_id);
  auto it = packs_.find(volume_id);
  const bool room = it != packs_.end() && it->second.next + len <= it->second.capacity;
  const bool fresh = room && unix_ms() < it->second.renew_at_ms;
  if (!fresh) {
    pb::PackOpenReq req;
    req.set_inode(ino);
    // A pack with room whose ticket runs out is kept, with a new ticket, when it can be.
    if (room) req.set_renew(it->second.chunk.chunk_id());
    CO_ASSIGN_OR_RETURN(pb::PackOpenResp resp, co_await ask<pb::PackOpenResp>(pb::PACK_OPEN, req));
    if (resp.chunk().replicas().empty())
      co_return error(Code::kUnavailable, fmt::format("master gave no chain for a pack of volume {}", volume_id));
    uint64_t next = resp.chunk().length();
    if (room && resp.chunk().chunk_id() == it->second.chunk.chunk_id()) next = std::max(next, it->second.next);
    const int64_t now = unix_ms(), expires = resp.chunk().ticket().expires_unix_ms();
    OpenPack pack{resp.chunk(), resp.capacity(), next, expires - std::min(kTicketMarginMs, (expires - now) / 2)};
    it = packs_.insert_or_assign(resp.volume_id(), std::move(pack)).first;
  }
  Place at{it->second.chunk, it->second.next};
  it->second.next += len;
  co_return at;
}

void Packer::give_up(uint64_t volume_id, uint64_t chunk_id) {
  auto it = packs_.find(volume_id);
  if (it != packs_.end() && it->second.chunk.chunk_id() == chunk_id) packs_.erase(it);
}

}  // namespace keelfs::client
