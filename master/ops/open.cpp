// Open files: which sessions hold which files, and the orphans (files without a name) that
// live as long as someone holds them.
#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {

Result<pb::Attr> Namespace::open(uint64_t session, uint64_t ino) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  if (is_dir(rec.attr())) return error(Code::kIsDir, fmt::format("inode {} is a directory", ino));
  hold_open(session, ino);
  return rec.attr();
}

void Namespace::hold_open(uint64_t session, uint64_t ino) {
  ++opens_[{session, ino}];
  ++open_count_[ino];
}

Status Namespace::release(uint64_t session, uint64_t ino, std::vector<FreedChunk>* freed) {
  // A release the master does not know (it restarted since the open) has nothing to end.
  if (opens_.count({session, ino}) == 0) return Status::Ok();
  return release_opens(session, ino, 1, freed);
}

Status Namespace::release_session(uint64_t session, std::vector<FreedChunk>* freed) {
  std::vector<std::pair<uint64_t, uint32_t>> held;
  for (auto it = opens_.lower_bound({session, 0}); it != opens_.end() && it->first.first == session; ++it)
    held.emplace_back(it->first.second, it->second);
  Status first_error;
  for (auto [ino, count] : held) {
    Status st = release_opens(session, ino, count, freed);
    if (!st.ok() && first_error.ok()) first_error = st;  // the others are still released
  }
  return first_error;
}

Status Namespace::release_opens(uint64_t session, uint64_t ino, uint32_t count, std::vector<FreedChunk>* freed) {
  auto it = opens_.find({session, ino});
  it->second -= count;
  if (it->second == 0) opens_.erase(it);
  auto total = open_count_.find(ino);
  total->second -= count;
  if (total->second > 0) return Status::Ok();
  open_count_.erase(total);
  return drop_if_orphan(ino, freed);
}

Status Namespace::drop_if_orphan(uint64_t ino, std::vector<FreedChunk>* freed) {
  auto rec = store_.get_inode(ino);
  if (!rec.ok()) return rec.status().is(Code::kNotFound) ? Status::Ok() : rec.status();
  if (rec->attr().nlink() != 0 || is_dir(rec->attr())) return Status::Ok();
  Batch batch = store_.batch();
  RETURN_IF_ERROR(drop_inode(*rec, batch));
  batch.delete_dentry(kOrphanDir, std::to_string(ino));
  return commit(batch, freed);
}

Status Namespace::drop_orphans(std::vector<FreedChunk>* freed) {
  for (;;) {
    std::vector<Dentry> page;
    bool more = false;
    RETURN_IF_ERROR(store_.list_dentries(kOrphanDir, "", 1000, &page, &more));
    if (page.empty()) return Status::Ok();
    for (const Dentry& d : page) {
      Batch batch = store_.batch();
      auto rec = store_.get_inode(d.inode);
      if (rec.ok()) {
        RETURN_IF_ERROR(drop_inode(*rec, batch));
      } else if (!rec.status().is(Code::kNotFound)) {
        return rec.status();
      }
      batch.delete_dentry(kOrphanDir, d.name);
      RETURN_IF_ERROR(commit(batch, freed));
    }
  }
}

}  // namespace keelfs::master
