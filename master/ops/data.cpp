// File data in the namespace: which chunk holds which part of a file, versions, lengths.
#include <fmt/format.h>

#include "master/chunks/owners.h"
#include "master/namespace.h"

namespace keelfs::master {
namespace {

ChunkRef ref_of(uint64_t id, const pb::ChunkRecord& rec) {
  ChunkRef ref{id, rec.version(), rec.length(), rec.goal(), std::nullopt};
  if (rec.has_pending_cut()) ref.pending_cut = rec.pending_cut();
  return ref;
}

}  // namespace

Result<std::optional<ChunkRef>> Namespace::chunk(uint64_t chunk_id) {
  ASSIGN_OR_RETURN(auto rec, store_.get_chunk(chunk_id));
  if (!rec) return std::optional<ChunkRef>();
  return std::optional<ChunkRef>(ref_of(chunk_id, *rec));
}

Result<std::optional<ChunkRef>> Namespace::chunk_at(uint64_t ino, uint64_t index) {
  ASSIGN_OR_RETURN(auto extent, store_.get_extent(ino, index));
  if (!extent) return std::optional<ChunkRef>();
  return chunk(extent->chunk_id());
}

Result<ChunkRef> Namespace::add_chunk(uint64_t ino, uint64_t index, uint64_t chunk_id) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  if (rec.attr().type() != pb::FT_REGULAR) return error(Code::kInvalidArgument, fmt::format("inode {} is not a regular file", ino));
  ASSIGN_OR_RETURN(auto existing, store_.get_extent(ino, index));
  if (existing) return error(Code::kExists, fmt::format("inode {} already has a chunk at index {}", ino, index));
  pb::ChunkRecord chunk;
  chunk.set_version(1);
  chunk.set_goal(rec.attr().goal() == 0 ? 2 : rec.attr().goal());
  add_owner(&chunk, chunk_owner(ino, index));
  chunk.set_volume_id(rec.attr().volume_id());
  pb::FileExtent extent;
  extent.set_chunk_id(chunk_id);
  Batch batch = store_.batch();
  batch.put_chunk(chunk_id, chunk);
  batch.put_extent(ino, index, extent);
  batch.usage(rec.attr().volume_id()).chunks += 1;
  batch.dir_usage(counted_in(rec)).chunks += 1;
  RETURN_IF_ERROR(commit(batch));
  return ref_of(chunk_id, chunk);
}

Status Namespace::set_chunk_version(uint64_t chunk_id, uint32_t version, std::optional<uint64_t> length) {
  ASSIGN_OR_RETURN(auto rec, store_.get_chunk(chunk_id));
  if (!rec) return error(Code::kNotFound, fmt::format("chunk {:016x} does not exist", chunk_id));
  rec->set_version(version);
  Batch batch = store_.batch();
  if (length && *length != rec->length()) {
    const int64_t delta = static_cast<int64_t>(*length) - static_cast<int64_t>(rec->length());
    batch.usage(rec->volume_id()).chunk_bytes += delta;
    if (!rec->pack()) {
      // A file's own chunk: the directory counting the file follows.
      for (const pb::ChunkOwner& o : owners_of(*rec)) {
        auto owner = store_.get_inode(o.inode());
        if (owner.ok()) batch.dir_usage(counted_in(*owner)).chunk_bytes += delta;
      }
    }
    rec->set_length(*length);
  }
  // The cut made is the one pending, unless a smaller one was marked while it was made.
  if (length && (!rec->has_pending_cut() || rec->pending_cut() >= *length)) rec->clear_pending_cut();
  batch.put_chunk(chunk_id, *rec);
  return commit(batch);
}

Result<uint64_t> Namespace::reserve_append(uint64_t ino, uint64_t length, const pb::OpId& op) {
  ASSIGN_OR_RETURN(auto done, replayed(op));
  if (done) return done->offset();
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  if (rec.attr().type() != pb::FT_REGULAR) return error(Code::kInvalidArgument, fmt::format("inode {} is not a regular file", ino));
  pb::Attr* a = rec.mutable_attr();
  uint64_t offset = a->size();
  RETURN_IF_ERROR(check_bytes(a->volume_id(), offset, offset + length));
  Batch batch = store_.batch();
  account_size(rec, offset, offset + length, batch);
  a->set_size(offset + length);
  touch_times(a, true, true);
  batch.put_inode(rec);
  pb::OpRecord done_rec = op_record(pb::APPEND, ino);
  done_rec.set_offset(offset);
  batch.put_op(op, done_rec);
  RETURN_IF_ERROR(commit(batch));
  return offset;
}

Result<pb::Attr> Namespace::write_end(const pb::WriteEndReq& req, uint64_t* chunk_growth) {
  if (chunk_growth) *chunk_growth = 0;
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(req.inode()));
  // Bytes past the volume's size are refused before anything changes: the file keeps the
  // size it had, and the writer hears QuotaExceeded (EDQUOT) at fsync or close.
  RETURN_IF_ERROR(check_bytes(rec.attr().volume_id(), rec.attr().size(), req.file_size()));
  Batch batch = store_.batch();
  uint64_t growth = 0;
  if (req.chunk_id() != 0) {
    ASSIGN_OR_RETURN(auto chunk, store_.get_chunk(req.chunk_id()));
    if (chunk && owned_by(*chunk, req.inode()) && req.chunk_length() > chunk->length()) {
      growth = req.chunk_length() - chunk->length();
      batch.usage(chunk->volume_id()).chunk_bytes += static_cast<int64_t>(growth);
      batch.dir_usage(counted_in(rec)).chunk_bytes += static_cast<int64_t>(growth);
      chunk->set_length(req.chunk_length());
      batch.put_chunk(req.chunk_id(), *chunk);
    }
  }
  pb::Attr* a = rec.mutable_attr();
  if (req.file_size() > a->size()) {
    account_size(rec, a->size(), req.file_size(), batch);
    a->set_size(req.file_size());
  }
  touch_times(a, true, true);
  batch.put_inode(rec);
  RETURN_IF_ERROR(commit(batch));
  if (chunk_growth) *chunk_growth = growth;
  return rec.attr();
}

Result<pb::ChunkLocateResp> Namespace::locate(uint64_t ino, uint64_t first, uint64_t count) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  pb::ChunkLocateResp resp;
  *resp.mutable_attr() = rec.attr();
  std::vector<std::pair<uint64_t, pb::FileExtent>> found;
  RETURN_IF_ERROR(store_.list_extents(ino, first, count, [&](uint64_t index, const pb::FileExtent& e) {
    found.emplace_back(index, e);
  }));
  for (const auto& [index, extent] : found) {
    const uint64_t chunk_id = extent.chunk_id();
    ASSIGN_OR_RETURN(auto chunk, store_.get_chunk(chunk_id));
    pb::ChunkInfo* info = resp.add_chunks();
    info->set_index(index);
    info->set_chunk_id(chunk_id);
    info->set_extent_offset(extent.chunk_offset());
    info->set_extent_length(extent.length());
    if (chunk) {
      info->set_version(chunk->version());
      info->set_length(chunk->length());
    }
  }
  return resp;
}

Result<std::optional<uint64_t>> Namespace::cut_pending_before(uint64_t ino, uint64_t new_end) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  const uint64_t size = rec.attr().size();
  if (rec.attr().type() != pb::FT_REGULAR || size % kChunkSize == 0 || new_end <= size) return std::optional<uint64_t>();
  ASSIGN_OR_RETURN(auto chunk, chunk_at(ino, size / kChunkSize));
  if (!chunk || !chunk->pending_cut) return std::optional<uint64_t>();
  return std::optional<uint64_t>(size / kChunkSize);
}

}  // namespace keelfs::master
