// Packed small files (docs/small-files.md): pack chunks a session appends to, a file's
// whole content committed into one, and a packed file moving into a chunk of its own.
#include <algorithm>

#include <fmt/format.h>

#include "master/chunks/owners.h"
#include "master/namespace.h"

namespace keelfs::master {

uint32_t pack_below(const pb::VolumeRecord& vol) {
  return vol.has_pack_below() ? vol.pack_below() : kDefaultPackBelow;
}

Status Namespace::add_pack(uint64_t chunk_id, uint64_t volume_id, uint32_t goal, uint64_t session) {
  pb::ChunkRecord pack;
  pack.set_version(1);
  pack.set_goal(goal);
  pack.set_volume_id(volume_id);
  pack.set_pack(true);
  pack.set_open_session(session);
  Batch batch = store_.batch();
  batch.put_chunk(chunk_id, pack);
  batch.set_pack_open(chunk_id, true);
  batch.usage(volume_id).chunks += 1;
  return commit(batch);
}

Status Namespace::seal_pack(uint64_t chunk_id, std::vector<FreedChunk>* freed) {
  ASSIGN_OR_RETURN(auto pack, store_.get_chunk(chunk_id));
  Batch batch = store_.batch();
  batch.set_pack_open(chunk_id, false);
  if (pack && pack->pack()) {
    pack->set_open_session(0);
    if (pack_is_dead(*pack))
      free_chunk(chunk_id, *pack, batch);  // a session that wrote nothing it kept
    else
      batch.put_chunk(chunk_id, *pack);
  }
  return commit(batch, freed);
}

Result<pb::Attr> Namespace::pack_commit(const pb::PackCommitReq& req, uint64_t session, std::vector<FreedChunk>* freed,
                                        uint64_t* pack_growth) {
  *pack_growth = 0;
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(req.inode()));
  pb::Attr* a = rec.mutable_attr();
  if (a->type() != pb::FT_REGULAR) return error(Code::kInvalidArgument, fmt::format("inode {} is not a regular file", req.inode()));
  ASSIGN_OR_RETURN(pb::VolumeRecord vol, volume_by_id(a->volume_id()));
  if (req.length() == 0 || req.length() >= pack_below(vol) || req.file_size() < req.length() ||
      req.offset() + req.length() > kChunkSize)
    return error(Code::kInvalidArgument,
                 fmt::format("a packed file holds 1 to {} bytes inside its pack (asked: {} bytes at {}, file size {})",
                             pack_below(vol) - 1, req.length(), req.offset(), req.file_size()));
  // The client's bytes are the whole file as it saw it: another client's change meanwhile
  // is not overwritten by them (the client then writes the ordinary way).
  if (a->size() != req.base_size())
    return error(Code::kBusy, fmt::format("inode {} is {} bytes now, not {}: changed meanwhile", req.inode(), a->size(),
                                          req.base_size()));
  RETURN_IF_ERROR(check_bytes(a->volume_id(), a->size(), req.file_size()));
  ASSIGN_OR_RETURN(auto pack, store_.get_chunk(req.chunk_id()));
  if (!pack || !pack->pack() || pack->open_session() != session || pack->volume_id() != a->volume_id())
    return error(Code::kStaleVersion, fmt::format("chunk {:016x} is not a pack this session appends to", req.chunk_id()));

  Batch batch = store_.batch();
  RETURN_IF_ERROR(drop_data_from(rec, 0, batch));  // the file's old data, in this pack or elsewhere
  RETURN_IF_ERROR(drop_unpack_chunk(rec, batch));
  ASSIGN_OR_RETURN(pack, chunk_in(batch, req.chunk_id()));  // as dropping the old data left it
  const pb::ChunkRecord before = *pack;
  add_pack_extent(&*pack, req.length());
  const uint64_t end = req.offset() + req.length();
  if (end > pack->length()) {
    *pack_growth = end - pack->length();
    batch.usage(pack->volume_id()).chunk_bytes += static_cast<int64_t>(*pack_growth);
    pack->set_length(end);
  }
  count_pack(batch, before, pack);
  batch.put_chunk(req.chunk_id(), *pack);
  pb::FileExtent extent;
  extent.set_chunk_id(req.chunk_id());
  extent.set_chunk_offset(req.offset());
  extent.set_length(req.length());
  batch.put_extent(req.inode(), 0, extent);
  batch.put_pack_file(req.chunk_id(), req.inode());
  batch.dir_usage(counted_in(rec)).packed_bytes += static_cast<int64_t>(req.length());
  account_size(rec, a->size(), req.file_size(), batch);
  a->set_size(req.file_size());
  touch_times(a, true, true);
  batch.put_inode(rec);
  RETURN_IF_ERROR(commit(batch, freed));
  return rec.attr();
}

Result<std::optional<pb::FileExtent>> Namespace::packed_extent(uint64_t ino) {
  ASSIGN_OR_RETURN(auto extent, store_.get_extent(ino, 0));
  if (!extent || extent->length() == 0) return std::optional<pb::FileExtent>();
  return extent;
}

Status Namespace::begin_unpack(uint64_t ino, uint64_t chunk_id, uint32_t goal, std::vector<FreedChunk>* freed) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  ASSIGN_OR_RETURN(auto packed, packed_extent(ino));
  if (!packed) return error(Code::kStaleVersion, fmt::format("inode {} is not packed (any more)", ino));
  Batch batch = store_.batch();
  RETURN_IF_ERROR(drop_unpack_chunk(rec, batch));  // an earlier move that was not finished
  pb::ChunkRecord chunk;
  chunk.set_version(1);
  chunk.set_goal(goal);
  chunk.set_volume_id(rec.attr().volume_id());
  add_owner(&chunk, chunk_owner(ino, 0));
  batch.put_chunk(chunk_id, chunk);
  batch.usage(rec.attr().volume_id()).chunks += 1;
  batch.dir_usage(counted_in(rec)).chunks += 1;
  rec.set_unpack_chunk(chunk_id);
  batch.put_inode(rec);
  return commit(batch, freed);
}

Status Namespace::unpack_end(const pb::UnpackEndReq& req, std::vector<FreedChunk>* freed) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(req.inode()));
  ASSIGN_OR_RETURN(auto extent, store_.get_extent(req.inode(), 0));
  if (rec.unpack_chunk() != req.chunk_id()) {
    if (extent && extent->chunk_id() == req.chunk_id() && extent->length() == 0) return Status::Ok();  // a retry
    return error(Code::kStaleVersion, fmt::format("inode {} is not moving into chunk {:016x}", req.inode(), req.chunk_id()));
  }
  // Only the bytes copied may become the file's: not if its packed data changed meanwhile.
  if (!extent || extent->length() != req.length() || extent->chunk_id() != req.packed_chunk() ||
      extent->chunk_offset() != req.packed_offset())
    return error(Code::kStaleVersion, fmt::format("inode {}'s packed data changed while it was copied", req.inode()));
  ASSIGN_OR_RETURN(auto chunk, store_.get_chunk(req.chunk_id()));
  if (!chunk) return error(Code::kNotFound, fmt::format("chunk {:016x} does not exist", req.chunk_id()));

  Batch batch = store_.batch();
  RETURN_IF_ERROR(let_go(req.inode(), 0, *extent, counted_in(rec), batch));
  pb::FileExtent own;
  own.set_chunk_id(req.chunk_id());
  batch.put_extent(req.inode(), 0, own);
  if (req.length() > chunk->length()) {
    const int64_t growth = static_cast<int64_t>(req.length() - chunk->length());
    batch.usage(chunk->volume_id()).chunk_bytes += growth;
    batch.dir_usage(counted_in(rec)).chunk_bytes += growth;
    chunk->set_length(req.length());
  }
  batch.put_chunk(req.chunk_id(), *chunk);
  rec.set_unpack_chunk(0);
  batch.put_inode(rec);
  return commit(batch, freed);
}

Result<std::vector<PackedFile>> Namespace::pack_files(uint64_t pack_id, uint64_t after, size_t max, bool* more) {
  std::vector<uint64_t> inodes;
  RETURN_IF_ERROR(store_.list_pack_files(pack_id, after, max, &inodes, more));
  std::vector<PackedFile> out;
  for (uint64_t ino : inodes) {
    ASSIGN_OR_RETURN(auto extent, packed_extent(ino));
    if (extent && extent->chunk_id() == pack_id) out.push_back({ino, extent->chunk_offset(), extent->length()});
  }
  return out;
}

Status Namespace::move_packed(uint64_t from, uint64_t to, const std::vector<PackMove>& moves,
                              std::vector<FreedChunk>* freed) {
  Batch batch = store_.batch();
  ASSIGN_OR_RETURN(auto target, store_.get_chunk(to));
  if (!target || !target->pack()) return error(Code::kNotFound, fmt::format("pack {:016x} is gone", to));
  // The copies hold every byte copied, moved or not (those not moved are dead at once).
  uint64_t end = target->length();
  for (const PackMove& m : moves) end = std::max(end, m.to_offset + m.length);
  if (end > target->length()) {
    const pb::ChunkRecord before = *target;
    batch.usage(target->volume_id()).chunk_bytes += static_cast<int64_t>(end - target->length());
    target->set_length(end);
    count_pack(batch, before, target);
    batch.put_chunk(to, *target);
  }
  for (const PackMove& m : moves) {
    // Only a file whose bytes are still where they were copied from moves (it may have
    // been deleted, rewritten, moved out or truncated meanwhile: then as it is now).
    ASSIGN_OR_RETURN(auto extent, packed_extent(m.inode));
    if (!extent || extent->chunk_id() != from || extent->chunk_offset() != m.from_offset || extent->length() > m.length)
      continue;
    RETURN_IF_ERROR(let_go(m.inode, 0, *extent, /*dir=*/0, batch));  // the file keeps its bytes, in another pack
    ASSIGN_OR_RETURN(target, chunk_in(batch, to));
    const pb::ChunkRecord before = *target;
    add_pack_extent(&*target, extent->length());
    count_pack(batch, before, target);
    batch.put_chunk(to, *target);
    pb::FileExtent moved = *extent;
    moved.set_chunk_id(to);
    moved.set_chunk_offset(m.to_offset);
    batch.put_extent(m.inode, 0, moved);
    batch.put_pack_file(to, m.inode);
  }
  return commit(batch, freed);
}

Status Namespace::drop_unpack_chunk(pb::InodeRecord& rec, Batch& batch) {
  if (rec.unpack_chunk() == 0) return Status::Ok();
  ASSIGN_OR_RETURN(auto chunk, chunk_in(batch, rec.unpack_chunk()));
  if (chunk) {
    DirDelta& dir = batch.dir_usage(counted_in(rec));
    dir.chunks -= 1;
    dir.chunk_bytes -= static_cast<int64_t>(chunk->length());
    free_chunk(rec.unpack_chunk(), *chunk, batch);
  }
  rec.set_unpack_chunk(0);
  return Status::Ok();
}

}  // namespace keelfs::master
