// Packed small files at the master (docs/small-files.md): PACK_OPEN hands a session a pack
// chunk of its own to append to, PACK_COMMIT makes a file's whole content an extent of it,
// and a write into a packed file first moves it into a chunk of its own (CHUNK_FOR_WRITE,
// then UNPACK_END).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/ticket.h"
#include "master/master.h"

namespace keelfs::master {

awaitable<Result<Master::NewChunk>> Master::chunk_for(const pb::VolumeRecord& vol, uint32_t goal) {
  if (Status st = ns_->check_bytes(vol.id(), 0, 1); !st.ok()) co_return st;  // a full volume takes no new chunk
  std::optional<NewChunk> made = take_spare(vol.region(), goal);
  if (!made) {
    auto created = co_await new_chunk({vol.region(), goal});
    if (!created.ok()) co_return created.status();
    made = std::move(*created);
  }
  unfiled_ids_.erase(made->chunk_id);  // the caller files it now (or deletes its copies)
  co_return *made;
}

void Master::hand_out(const NewChunk& made, pb::ChunkInfo* info, uint64_t session) {
  registry_.set_locations(made.chunk_id, made.servers);
  writing_[made.chunk_id] = std::chrono::steady_clock::now();
  info->set_chunk_id(made.chunk_id);
  info->set_version(1);
  fill_replicas(info, kRightRead | kRightWrite, session);
}

void Master::drop_copies(const NewChunk& made) {
  for (uint64_t id : made.servers)
    if (ChunkServer* cs = registry_.server(id)) delete_copy(*cs, made.chunk_id, 1);
}

awaitable<Reply> Master::pack_open(uint64_t session, const pb::PackOpenReq& req) {
  auto attr = ns_->getattr(req.inode());
  if (!attr.ok()) co_return reply_error(attr.status());
  auto vol = ns_->volume_by_id(attr->volume_id());
  if (!vol.ok()) co_return reply_error(vol.status());
  if (pack_below(*vol) == 0)
    co_return reply_error(error(Code::kNotSupported, fmt::format("volume '{}' packs no files", vol->name())));
  // The pack it has, with a new ticket, while it is still on goal-many servers.
  if (auto it = open_packs_.find(session); req.renew() != 0 && it != open_packs_.end() && it->second == req.renew()) {
    auto rec = store_->get_chunk(req.renew());
    if (!rec.ok()) co_return reply_error(rec.status());
    if (*rec && registry_.holders(req.renew()).size() >= (*rec)->goal()) {
      pb::PackOpenResp resp;
      pb::ChunkInfo* info = resp.mutable_chunk();
      info->set_chunk_id(req.renew());
      info->set_version((*rec)->version());
      info->set_length((*rec)->length());
      fill_replicas(info, kRightRead | kRightWrite, session);
      writing_[req.renew()] = std::chrono::steady_clock::now();
      resp.set_volume_id(vol->id());
      resp.set_capacity(kChunkSize);
      co_return reply_ok(resp);
    }
  }
  // A session appends to one pack at a time: asking for another gives up the one it had.
  seal_session_pack(session);
  auto made = co_await chunk_for(*vol, vol->goal());
  if (!made.ok()) co_return reply_error(made.status());
  if (Status st = ns_->add_pack(made->chunk_id, vol->id(), vol->goal(), session); !st.ok()) {
    drop_copies(*made);
    co_return reply_error(st);
  }
  if (made->servers.size() < vol->goal()) queue_heal(made->chunk_id, HealQueue::kUnderGoal);
  open_packs_[session] = made->chunk_id;
  pb::PackOpenResp resp;
  hand_out(*made, resp.mutable_chunk(), session);
  resp.set_volume_id(vol->id());
  resp.set_capacity(kChunkSize);
  co_return reply_ok(resp);
}

Result<pb::Attr> Master::pack_commit(uint64_t session, const pb::PackCommitReq& req) {
  std::vector<FreedChunk> freed;
  uint64_t growth = 0;
  auto attr = ns_->pack_commit(req, session, &freed, &growth);
  delete_chunks(freed);
  if (attr.ok()) {
    writing_[req.chunk_id()] = std::chrono::steady_clock::now();  // its writer is still at it
    // Counted against the servers' free space now, as WRITE_END does.
    if (growth > 0)
      for (ChunkServer* cs : registry_.holders(req.chunk_id())) cs->used_bytes += growth;
  }
  return attr;
}

void Master::seal_session_pack(uint64_t session) {
  auto it = open_packs_.find(session);
  if (it == open_packs_.end()) return;
  const uint64_t chunk_id = it->second;
  open_packs_.erase(it);
  writing_.erase(chunk_id);  // the healer may copy it now
  std::vector<FreedChunk> freed;
  if (Status st = ns_->seal_pack(chunk_id, &freed); !st.ok())
    spdlog::error("session {:x}: sealing pack {:016x}: {}", session, chunk_id, st.message());
  delete_chunks(freed);
  if (writer_held_.erase(chunk_id)) queue_heal(chunk_id, HealQueue::kUnderGoal);
}

void Master::seal_pack_of_any_session(uint64_t chunk_id) {
  // A scan over one entry per session with a pack; it runs only for an open chunk that
  // lost a copy.
  for (const auto& [session, pack] : open_packs_)
    if (pack == chunk_id) {
      spdlog::info("pack {:016x} of session {:x} lost a copy: sealed, so that it can be healed", chunk_id, session);
      seal_session_pack(session);
      return;
    }
}

awaitable<Reply> Master::unpack_for_write(uint64_t session, const pb::Attr& attr, const pb::FileExtent& packed) {
  auto vol = ns_->volume_by_id(attr.volume_id());
  if (!vol.ok()) co_return reply_error(vol.status());
  const uint32_t goal = attr.goal() ? attr.goal() : vol->goal();
  auto pack = ns_->chunk(packed.chunk_id());
  if (!pack.ok()) co_return reply_error(pack.status());
  if (!*pack) co_return reply_error(error(Code::kNotFound, fmt::format("pack {:016x} is gone", packed.chunk_id())));
  auto made = co_await chunk_for(*vol, goal);
  if (!made.ok()) co_return reply_error(made.status());
  std::vector<FreedChunk> freed;
  if (Status st = ns_->begin_unpack(attr.inode(), made->chunk_id, goal, &freed); !st.ok()) {
    drop_copies(*made);
    co_return reply_error(st);
  }
  delete_chunks(freed);
  if (made->servers.size() < goal) queue_heal(made->chunk_id, HealQueue::kUnderGoal);
  pb::ChunkForWriteResp resp;
  resp.mutable_chunk()->set_index(0);
  hand_out(*made, resp.mutable_chunk(), session);
  pb::ChunkInfo* from = resp.mutable_packed();
  from->set_chunk_id(packed.chunk_id());
  from->set_version((*pack)->version);
  from->set_length((*pack)->length);
  from->set_extent_offset(packed.chunk_offset());
  from->set_extent_length(packed.length());
  fill_replicas(from, kRightRead, session);
  co_return reply_ok(resp);
}

Status Master::unpack_end(const pb::UnpackEndReq& req) {
  std::vector<FreedChunk> freed;
  Status st = ns_->unpack_end(req, &freed);
  delete_chunks(freed);
  return st;
}

}  // namespace keelfs::master
