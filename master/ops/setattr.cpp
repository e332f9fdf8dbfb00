// setattr: mode, owner, times, size (truncate) and goal.
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {

Result<pb::Attr> Namespace::setattr(const pb::SetattrReq& req, std::vector<FreedChunk>* freed) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(req.inode()));
  pb::Attr* a = rec.mutable_attr();
  uint32_t m = req.mask();
  // Everything that can refuse the request is checked before anything is built.
  if ((m & pb::SET_GOAL) && (req.goal() < 1 || req.goal() > kMaxGoal))
    return error(Code::kInvalidArgument, fmt::format("goal {} is not between 1 and {}", req.goal(), kMaxGoal));
  if (m & pb::SET_SIZE) {
    if (a->type() == pb::FT_DIRECTORY) return error(Code::kIsDir, fmt::format("inode {} is a directory", req.inode()));
    if (a->type() != pb::FT_REGULAR) return error(Code::kInvalidArgument, "only regular files have a size to set");
    RETURN_IF_ERROR(check_bytes(a->volume_id(), a->size(), req.size()));
  }
  Batch batch = store_.batch();
  std::map<uint64_t, pb::ChunkRecord> chunks;  // chunk records this change rewrites, by id

  if (m & pb::SET_MODE) a->set_mode(req.mode() & 07777);
  if (m & pb::SET_UID) a->set_uid(req.uid());
  if (m & pb::SET_GID) a->set_gid(req.gid());
  // chown by anyone clears setuid/setgid on regular files, as Linux does.
  if ((m & (pb::SET_UID | pb::SET_GID)) && !(m & pb::SET_MODE) && a->type() == pb::FT_REGULAR)
    a->set_mode(a->mode() & ~(S_ISUID | S_ISGID));
  uint64_t first_dropped = UINT64_MAX;  // chunk index from which this change drops the data
  if (m & pb::SET_SIZE) {
    const uint64_t new_size = req.size();
    if (new_size < a->size()) {
      // Chunks that start at or past the new end go entirely; one the new end cuts in the
      // middle is cut on its chunkservers after this commits (pending_cut).
      first_dropped = (new_size + kChunkSize - 1) / kChunkSize;
      RETURN_IF_ERROR(drop_data_from(rec, first_dropped, batch));
      if (new_size % kChunkSize != 0) {
        ASSIGN_OR_RETURN(auto extent, store_.get_extent(a->inode(), new_size / kChunkSize));
        ASSIGN_OR_RETURN(auto chunk, extent ? store_.get_chunk(extent->chunk_id()) : std::optional<pb::ChunkRecord>());
        const uint64_t cut = new_size % kChunkSize;
        if (chunk && extent->length() > cut) {
          // A packed file: its extent shrinks, the pack is never cut (its other files' bytes
          // follow); the bytes left behind are dead until the pack is compacted.
          const pb::ChunkRecord before = *chunk;
          chunk->set_live_bytes(chunk->live_bytes() - std::min(chunk->live_bytes(), extent->length() - cut));
          count_pack(batch, before, chunk);
          batch.dir_usage(counted_in(rec)).packed_bytes -= static_cast<int64_t>(extent->length() - cut);
          extent->set_length(cut);
          batch.put_extent(a->inode(), 0, *extent);
          chunks[extent->chunk_id()] = *chunk;
        } else if (chunk && extent->length() == 0 && (!chunk->has_pending_cut() || cut < chunk->pending_cut())) {
          chunk->set_pending_cut(cut);
          chunks[extent->chunk_id()] = *chunk;
        }
      }
    }
    account_size(rec, a->size(), new_size, batch);
    a->set_size(new_size);
    touch_times(a, true, false);
  }
  if (m & pb::SET_GOAL) {
    a->set_goal(req.goal());
    // The file's chunks take the new goal: the healer then adds or removes copies.
    if (a->type() == pb::FT_REGULAR) {
      std::vector<uint64_t> chunk_ids;
      // A packed file's pack keeps its goal (the volume's): see docs/small-files.md.
      RETURN_IF_ERROR(store_.list_extents(a->inode(), 0, 0, [&](uint64_t index, const pb::FileExtent& e) {
        if (index < first_dropped && e.length() == 0) chunk_ids.push_back(e.chunk_id());  // not those dropped above
      }));
      for (uint64_t id : chunk_ids) {
        if (chunks.count(id)) {
          chunks[id].set_goal(req.goal());
          continue;
        }
        ASSIGN_OR_RETURN(auto chunk, store_.get_chunk(id));
        if (!chunk || chunk->goal() == req.goal()) continue;
        chunk->set_goal(req.goal());
        chunks[id] = *chunk;
      }
    }
  }
  if (m & pb::SET_ATIME_NOW) {
    pb::Attr now;
    touch_times(&now, true, false);
    a->set_atime_sec(now.mtime_sec());
    a->set_atime_nsec(now.mtime_nsec());
  } else if (m & pb::SET_ATIME) {
    a->set_atime_sec(req.atime_sec());
    a->set_atime_nsec(req.atime_nsec());
  }
  if (m & pb::SET_MTIME_NOW) {
    touch_times(a, true, false);
  } else if (m & pb::SET_MTIME) {
    a->set_mtime_sec(req.mtime_sec());
    a->set_mtime_nsec(req.mtime_nsec());
  }
  if (m & pb::SET_CTIME) {
    a->set_ctime_sec(req.ctime_sec());
    a->set_ctime_nsec(req.ctime_nsec());
  } else {
    touch_times(a, false, true);
  }
  for (auto& [id, chunk] : chunks) batch.put_chunk(id, chunk);
  batch.put_inode(rec);
  RETURN_IF_ERROR(commit(batch, freed));
  return rec.attr();
}

}  // namespace keelfs::master
