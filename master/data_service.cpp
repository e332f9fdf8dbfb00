// File data at the master: where a file's chunks are and who may write them (CHUNK_FOR_WRITE,
// CHUNK_LOCATE, the chunks in OPEN's answer), truncates and the cuts they leave, statfs.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/ticket.h"
#include "common/util.h"
#include "master/master.h"

namespace keelfs::master {

// An open file's attributes and, for files of up to 16 chunks (1 GiB), where every chunk
// is: the client's first read then goes straight to a chunkserver.
pb::ChunkLocateResp Master::open_reply(uint64_t session, const pb::Attr& attr) {
  constexpr uint64_t kMaxChunks = 16;
  pb::ChunkLocateResp resp;
  if (attr.type() == pb::FT_REGULAR && attr.size() <= kMaxChunks * kChunkSize) {
    auto located = ns_->locate(attr.inode(), 0, kMaxChunks + 1);
    if (located.ok() && static_cast<uint64_t>(located->chunks_size()) <= kMaxChunks) {
      resp = std::move(*located);
      for (auto& info : *resp.mutable_chunks()) fill_replicas(&info, kRightRead, session);
      resp.set_all_chunks(true);
    }
  }
  *resp.mutable_attr() = attr;
  return resp;
}

void Master::fill_replicas(pb::ChunkInfo* info, uint32_t rights, uint64_t session) {
  for (ChunkServer* cs : registry_.holders(info->chunk_id())) {
    pb::Replica* r = info->add_replicas();
    r->set_cs_id(cs->id);
    r->set_address(cs->address);
  }
  pb::Ticket* t = info->mutable_ticket();
  t->set_chunk_id(info->chunk_id());
  t->set_version(info->version());
  t->set_rights(rights);
  t->set_expires_unix_ms(unix_ms() + config_.ticket_ttl_ms);
  t->set_session(session);
  // A write ticket names the chain: chunkservers forward down it and nowhere else.
  if (rights & kRightWrite)
    for (const pb::Replica& r : info->replicas()) t->add_chain(r.address());
  sign_ticket(config_.cluster_secret, t);
}

awaitable<Reply> Master::chunk_for_write(uint64_t session, const pb::ChunkForWriteReq& req) {
  if (req.index() >= (1ull << 32)) co_return reply_error(error(Code::kInvalidArgument, "chunk index out of range"));
  // A write into this chunk may grow the file over a truncate whose cut is not made yet:
  // make it first. (Writes inside the file need not wait for it.)
  if (Status st = co_await finish_cut_at_end(req.inode(), (req.index() + 1) * kChunkSize); !st.ok())
    co_return reply_error(st);
  auto attr = ns_->getattr(req.inode());
  if (!attr.ok()) co_return reply_error(attr.status());
  if (attr->type() != pb::FT_REGULAR)
    co_return reply_error(error(Code::kInvalidArgument, fmt::format("inode {} is not a regular file", req.inode())));
  if (req.index() == 0) {
    // A packed file moves into a chunk of its own before it is written in place.
    auto packed = ns_->packed_extent(req.inode());
    if (!packed.ok()) co_return reply_error(packed.status());
    if (*packed) co_return co_await unpack_for_write(session, *attr, **packed);
  }
  pb::ChunkForWriteResp resp;
  pb::ChunkInfo* info = resp.mutable_chunk();
  info->set_index(req.index());
  std::vector<ChunkServer*> chain;
  // A new chunk for the file, unless another writer's set-up put one there first: then
  // that one is written (its new copies are deleted).
  for (int attempt = 0; attempt < 2 && info->chunk_id() == 0; ++attempt) {
    auto existing = ns_->chunk_at(req.inode(), req.index());
    if (!existing.ok()) co_return reply_error(existing.status());
    if (*existing) {
      // Set-ups of the same bytes of a chunk take turns (healing copies and cuts lock it all).
      auto guard = co_await chunk_locks_.lock((*existing)->chunk_id, 0, kChunkSize);
      auto now = ns_->chunk_at(req.inode(), req.index());
      if (!now.ok()) co_return reply_error(now.status());
      if (!*now || (*now)->chunk_id != (*existing)->chunk_id) continue;  // replaced meanwhile: again
      auto bumped = co_await bump_version(**now, std::nullopt);
      if (!bumped.ok()) co_return reply_error(bumped.status());
      chain = *bumped;
      info->set_chunk_id((*now)->chunk_id);
      info->set_version((*now)->version + 1);
      info->set_length((*now)->length);
      break;
    }
    auto vol = ns_->volume_by_id(attr->volume_id());
    if (!vol.ok()) co_return reply_error(vol.status());
    // (A full volume takes no new chunk; writes inside existing chunks may still go on.)
    uint32_t goal = attr->goal() ? attr->goal() : vol->goal();
    auto made = co_await chunk_for(*vol, goal);
    if (!made.ok()) co_return reply_error(made.status());
    const uint64_t chunk_id = made->chunk_id;
    std::vector<ChunkServer*> servers;
    for (uint64_t id : made->servers) servers.push_back(registry_.server(id));
    auto ref = ns_->add_chunk(req.inode(), req.index(), chunk_id);
    if (!ref.ok()) {
      // The file went, or another writer gave it a chunk here while these copies were made:
      // they belong to nothing.
      for (ChunkServer* cs : servers) delete_copy(*cs, chunk_id, 1);
      if (ref.status().is(Code::kExists)) continue;
      co_return reply_error(ref.status());
    }
    chain = std::move(servers);
    info->set_chunk_id(chunk_id);
    info->set_version(1);
    // Made on fewer servers than its goal: healed once its writer is done.
    if (chain.size() < goal) queue_heal(chunk_id, HealQueue::kUnderGoal);
  }
  if (info->chunk_id() == 0)
    co_return reply_error(error(Code::kUnavailable, fmt::format("inode {} chunk {}: set-ups raced; try again", req.inode(), req.index())));
  std::vector<uint64_t> ids;
  for (ChunkServer* cs : chain) ids.push_back(cs->id);
  registry_.set_locations(info->chunk_id(), ids);
  writing_[info->chunk_id()] = std::chrono::steady_clock::now();
  fill_replicas(info, kRightRead | kRightWrite, session);
  co_return reply_ok(resp);
}

awaitable<Reply> Master::chunk_locate(uint64_t session, const pb::ChunkLocateReq& req) {
  auto resp = ns_->locate(req.inode(), req.first_index(), req.count());
  if (!resp.ok()) co_return reply_error(resp.status());
  for (auto& info : *resp->mutable_chunks()) fill_replicas(&info, kRightRead, session);
  co_return reply_ok(*resp);
}

awaitable<Result<pb::Attr>> Master::setattr(const pb::SetattrReq& req) {
  const bool sizing = req.mask() & pb::SET_SIZE;
  // Growing past a cut not made yet: it is made first, so that the bytes between the old
  // end and the new one read as zeros. (A shrink need not wait for it.)
  if (sizing)
    if (Status st = co_await finish_cut_at_end(req.inode(), req.size()); !st.ok()) co_return st;
  std::vector<FreedChunk> freed;
  auto attr = ns_->setattr(req, &freed);
  delete_chunks(freed);
  if (attr.ok() && (req.mask() & pb::SET_GOAL)) {
    // The file's chunks took the new goal: the healer adds or trims copies.
    (void)store_->list_extents(req.inode(), 0, 0, [&](uint64_t, const pb::FileExtent& e) {
      queue_heal(e.chunk_id(), HealQueue::kCheck);
    });
  }
  if (attr.ok() && sizing) {
    // Committed: now the chunk the new end cuts is cut on its servers. When that cannot be
    // done now, the cut stays pending and is made before the chunk is written again.
    if (Status st = co_await finish_cut_at_end(req.inode()); !st.ok())
      spdlog::warn("inode {}: truncated to {} bytes; the cut of its last chunk waits: {}", req.inode(), req.size(),
                   st.message());
  }
  co_return attr;
}

awaitable<Status> Master::finish_cut_at_end(uint64_t ino, uint64_t new_end) {
  if (!store_->has_pending_cuts()) co_return Status::Ok();  // the usual case: no read at all
  CO_ASSIGN_OR_RETURN(auto index, ns_->cut_pending_before(ino, new_end));
  if (!index) co_return Status::Ok();
  co_return co_await finish_cut(ino, *index);
}

awaitable<Status> Master::finish_cut(uint64_t ino, uint64_t index) {
  CO_ASSIGN_OR_RETURN(auto before, ns_->chunk_at(ino, index));
  if (!before) co_return Status::Ok();
  auto guard = co_await chunk_locks_.lock(before->chunk_id, 0, kChunkSize);
  CO_ASSIGN_OR_RETURN(auto chunk, ns_->chunk_at(ino, index));
  if (!chunk || chunk->chunk_id != before->chunk_id || !chunk->pending_cut) co_return Status::Ok();  // made meanwhile, or gone
  co_return (co_await bump_version(*chunk, chunk->pending_cut)).status();
}

Reply Master::statfs(const pb::StatfsReq& req) {
  auto attr = ns_->getattr(req.inode());
  if (!attr.ok()) return reply_error(attr.status());
  auto vol = ns_->volume_by_id(attr->volume_id());
  if (!vol.ok()) return reply_error(vol.status());
  uint64_t total = 0, free = 0;
  for (ChunkServer* cs : registry_.alive_in_region(vol->region())) {
    total += cs->total_bytes;
    free += cs->free_bytes();
  }
  // What the volume may still take: its size less what it holds, and no more than its
  // region's chunkservers can store at its goal.
  uint32_t goal = std::max<uint32_t>(1, vol->goal());
  pb::VolumeInfo info = ns_->volume_info(*vol);
  pb::StatfsResp resp;
  uint64_t region_free = free / goal;
  if (vol->size_bytes() != 0) {
    uint64_t left = vol->size_bytes() > info.logical_bytes() ? vol->size_bytes() - info.logical_bytes() : 0;
    resp.set_total_bytes(vol->size_bytes());
    resp.set_free_bytes(std::min(left, region_free));
  } else {
    resp.set_total_bytes(total / goal);
    resp.set_free_bytes(region_free);
  }
  resp.set_used_bytes(info.logical_bytes());
  uint64_t max_inodes = vol->max_inodes() != 0 ? vol->max_inodes() : (1ull << 40);
  resp.set_files(info.files());
  resp.set_free_files(max_inodes > info.files() ? max_inodes - info.files() : 0);
  return reply_ok(resp);
}

}  // namespace keelfs::master
