#include "master/chunks/owners.h"

#include <algorithm>

namespace keelfs::master {
namespace {

// A record written before `owners` existed names its one owner in inode and index: moved
// into `owners` when the record is next changed.
void upgrade(pb::ChunkRecord* rec) {
  if (rec->owners_size() > 0 || rec->inode() == 0) return;
  *rec->add_owners() = chunk_owner(rec->inode(), rec->index());
  rec->clear_inode();
  rec->clear_index();
}

}  // namespace

pb::ChunkOwner chunk_owner(uint64_t inode, uint64_t index, uint64_t offset, uint64_t length) {
  pb::ChunkOwner o;
  o.set_inode(inode);
  o.set_index(index);
  o.set_offset(offset);
  o.set_length(length);
  return o;
}

std::vector<pb::ChunkOwner> owners_of(const pb::ChunkRecord& rec) {
  if (rec.owners_size() == 0 && rec.inode() != 0) return {chunk_owner(rec.inode(), rec.index())};
  return {rec.owners().begin(), rec.owners().end()};
}

namespace {

// Whether some owner satisfies `pred`, looking at the record in place (WRITE_END asks on
// every write's end: no copy of the owners).
template <class Pred>
bool any_owner(const pb::ChunkRecord& rec, Pred pred) {
  if (rec.owners_size() == 0 && rec.inode() != 0) return pred(chunk_owner(rec.inode(), rec.index()));
  return std::any_of(rec.owners().begin(), rec.owners().end(), pred);
}

}  // namespace

bool owned_by(const pb::ChunkRecord& rec, uint64_t inode) {
  return any_owner(rec, [&](const pb::ChunkOwner& o) { return o.inode() == inode; });
}

bool owned_by(const pb::ChunkRecord& rec, uint64_t inode, uint64_t index) {
  return any_owner(rec, [&](const pb::ChunkOwner& o) { return o.inode() == inode && o.index() == index; });
}

void add_owner(pb::ChunkRecord* rec, const pb::ChunkOwner& owner) {
  upgrade(rec);
  *rec->add_owners() = owner;
}

bool drop_owner(pb::ChunkRecord* rec, uint64_t inode, uint64_t index) {
  upgrade(rec);
  auto* owners = rec->mutable_owners();
  owners->erase(std::remove_if(owners->begin(), owners->end(),
                               [&](const pb::ChunkOwner& o) { return o.inode() == inode && o.index() == index; }),
                owners->end());
  return owners->empty();
}

void add_pack_extent(pb::ChunkRecord* rec, uint64_t length) {
  rec->set_live_extents(rec->live_extents() + 1);
  rec->set_live_bytes(rec->live_bytes() + length);
}

bool drop_pack_extent(pb::ChunkRecord* rec, uint64_t length) {
  rec->set_live_extents(rec->live_extents() > 0 ? rec->live_extents() - 1 : 0);
  rec->set_live_bytes(rec->live_bytes() > length ? rec->live_bytes() - length : 0);
  return pack_is_dead(*rec);
}

bool pack_is_dead(const pb::ChunkRecord& rec) { return rec.open_session() == 0 && rec.live_extents() == 0; }

}  // namespace keelfs::master
