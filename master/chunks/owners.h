// Owners of a chunk: which parts of which files it holds. A file's own chunk lists its
// one owner (ChunkRecord.owners). A pack chunk, shared by thousands of small files, counts
// its owners instead (ChunkRecord.live_extents, live_bytes): the files' extents name it,
// and a list rewritten on every commit would cost as much as the data. The namespace
// operations add and drop owners through these functions only; a chunk is freed when its
// last owner lets go (a pack: when it is also sealed).
#pragma once

#include <cstdint>
#include <vector>

#include "master_records.pb.h"

namespace keelfs::master {

// The owner of bytes [index * 64 MiB, ...) of `inode`, at [offset, offset + length) of the
// chunk (length 0: to the chunk's end).
pb::ChunkOwner chunk_owner(uint64_t inode, uint64_t index, uint64_t offset = 0, uint64_t length = 0);
// Every owner, the one of a record written before owners existed included.
std::vector<pb::ChunkOwner> owners_of(const pb::ChunkRecord& rec);
bool owned_by(const pb::ChunkRecord& rec, uint64_t inode);
bool owned_by(const pb::ChunkRecord& rec, uint64_t inode, uint64_t index);
void add_owner(pb::ChunkRecord* rec, const pb::ChunkOwner& owner);
// Takes (inode, index) off the owners; true when none is left (the chunk is to be freed).
bool drop_owner(pb::ChunkRecord* rec, uint64_t inode, uint64_t index);

// ---- pack chunks
void add_pack_extent(pb::ChunkRecord* rec, uint64_t length);
// Takes one extent of `length` bytes out of the pack; true when the pack is then to be
// freed (see pack_is_dead()).
bool drop_pack_extent(pb::ChunkRecord* rec, uint64_t length);
// No session appends to it and no extent is left in it.
bool pack_is_dead(const pb::ChunkRecord& rec);

}  // namespace keelfs::master
