// Per-directory figures (docs/small-files.md, "Accounting"): every directory carries the
// figures of everything below it (DirDelta, store.h), moved by each change in the change's
// own batch (Batch::dir_usage), so that `keelfs du` of any directory is one read and no
// tree walk. A file counts once, in the directory InodeRecord.parent names; a file with
// several names keeps the list of their directories (InodeRecord.link_parents), so that
// its figures can follow a name that stays when the one they are counted under goes.
#include <algorithm>
#include <map>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "master/namespace.h"

namespace keelfs::master {
namespace {

// Takes one `dir` out of the list; true when it was there.
bool erase_one(google::protobuf::RepeatedField<uint64_t>* list, uint64_t dir) {
  auto it = std::find(list->begin(), list->end(), dir);
  if (it == list->end()) return false;
  list->erase(it);
  return true;
}

bool contains(const google::protobuf::RepeatedField<uint64_t>& list, uint64_t dir) {
  return std::find(list.begin(), list.end(), dir) != list.end();
}

}  // namespace

uint64_t Namespace::counted_in(const pb::InodeRecord& rec) {
  if (is_dir(rec.attr()) && rec.parent() == rec.attr().inode()) return 0;  // a volume's root
  return rec.parent();
}

Result<DirDelta> Namespace::figures_of(const pb::InodeRecord& rec, const Batch& batch) {
  const pb::Attr& a = rec.attr();
  DirDelta f;
  if (is_dir(a)) {
    ASSIGN_OR_RETURN(f, store_.get_dir_usage(a.inode()));
    f.dirs += 1;  // itself
    return f;
  }
  f.files = 1;
  if (a.type() != pb::FT_REGULAR) return f;
  f.logical_bytes = static_cast<int64_t>(a.size());
  std::vector<pb::FileExtent> extents;
  RETURN_IF_ERROR(store_.list_extents(a.inode(), 0, 0, [&](uint64_t, const pb::FileExtent& e) { extents.push_back(e); }));
  std::vector<uint64_t> own;
  for (const pb::FileExtent& e : extents) {
    if (e.length() > 0)
      f.packed_bytes += static_cast<int64_t>(e.length());
    else
      own.push_back(e.chunk_id());
  }
  if (rec.unpack_chunk() != 0) own.push_back(rec.unpack_chunk());
  for (uint64_t id : own) {
    ASSIGN_OR_RETURN(auto chunk, chunk_in(batch, id));
    if (!chunk) continue;
    f.chunks += 1;
    f.chunk_bytes += static_cast<int64_t>(chunk->length());
  }
  return f;
}

Status Namespace::move_figures(const pb::InodeRecord& rec, uint64_t from, uint64_t to, Batch& batch) {
  if (from == to) return Status::Ok();
  ASSIGN_OR_RETURN(DirDelta f, figures_of(rec, batch));
  batch.dir_usage(from) += -f;
  batch.dir_usage(to) += f;
  return Status::Ok();
}

void Namespace::note_link(pb::InodeRecord& rec, uint64_t dir) {
  if (rec.parent() == 0) return;  // counted nowhere: stays so
  if (rec.link_parents().empty()) rec.add_link_parents(rec.parent());
  rec.add_link_parents(dir);
}

Status Namespace::note_unlink(pb::InodeRecord& rec, uint64_t dir, Batch& batch) {
  if (rec.parent() == 0 || rec.link_parents().empty()) return Status::Ok();
  erase_one(rec.mutable_link_parents(), dir);
  if (rec.parent() == dir && !contains(rec.link_parents(), dir) && !rec.link_parents().empty()) {
    const uint64_t next = rec.link_parents(0);
    RETURN_IF_ERROR(move_figures(rec, dir, next, batch));
    rec.set_parent(next);
  }
  if (rec.link_parents_size() <= 1) rec.clear_link_parents();  // one name left: its directory is `parent`
  return Status::Ok();
}

Status Namespace::note_move(pb::InodeRecord& rec, uint64_t from, uint64_t to, Batch& batch) {
  if (from == to || counted_in(rec) == 0) return Status::Ok();
  if (is_dir(rec.attr()) || rec.link_parents().empty()) {
    RETURN_IF_ERROR(move_figures(rec, from, to, batch));
    rec.set_parent(to);
    return Status::Ok();
  }
  erase_one(rec.mutable_link_parents(), from);
  rec.add_link_parents(to);
  if (rec.parent() == from && !contains(rec.link_parents(), from)) {
    RETURN_IF_ERROR(move_figures(rec, from, to, batch));
    rec.set_parent(to);
  }
  return Status::Ok();
}

Status Namespace::count_dir_figures() {
  if (store_.dir_figures_counted()) return Status::Ok();
  for (const auto& [id, vol] : volumes_) {
    // Every name below the root: the directories (in the order found: parents first) and,
    // per file, the directory of each of its names.
    std::vector<std::pair<uint64_t, uint64_t>> dirs{{vol.root_inode(), 0}};  // (dir, parent)
    std::map<uint64_t, std::vector<uint64_t>> names;
    RETURN_IF_ERROR(walk(vol.root_inode(), [&](const std::string&, uint64_t parent, const Dentry& d) -> Status {
      if (d.type == pb::FT_DIRECTORY)
        dirs.emplace_back(d.inode, parent);
      else
        names[d.inode].push_back(parent);
      return Status::Ok();
    }));
    Batch batch = store_.batch();
    std::unordered_map<uint64_t, DirDelta> below;
    for (const auto& [ino, in_dirs] : names) {
      ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
      if (std::find(in_dirs.begin(), in_dirs.end(), rec.parent()) == in_dirs.end()) rec.set_parent(in_dirs.front());
      rec.clear_link_parents();
      if (in_dirs.size() > 1)
        for (uint64_t d : in_dirs) rec.add_link_parents(d);
      batch.put_inode(rec);
      ASSIGN_OR_RETURN(DirDelta f, figures_of(rec, batch));
      below[rec.parent()] += f;
    }
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {  // children before their parents
      const auto& [dir, parent] = *it;
      const DirDelta total = below[dir];
      if (parent != 0) {
        below[parent] += total;
        below[parent].dirs += 1;
      }
      batch.put_dir_usage(dir, total);
    }
    RETURN_IF_ERROR(commit(batch));
    spdlog::info("volume '{}': counted the figures of {} directories and {} files", vol.name(), dirs.size(), names.size());
  }
  Batch done = store_.batch();
  done.set_dir_figures_counted(true);
  return commit(done);
}

Result<pb::DuResp> Namespace::du(uint64_t ino) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  ASSIGN_OR_RETURN(pb::VolumeRecord vol, volume_by_id(rec.attr().volume_id()));
  ASSIGN_OR_RETURN(DirDelta f, figures_of(rec, store_.batch()));
  if (is_dir(rec.attr())) f.dirs -= 1;  // the figures of what is below it, not of itself
  pb::DuResp resp;
  *resp.mutable_attr() = rec.attr();
  resp.set_files(f.files);
  resp.set_dirs(f.dirs);
  resp.set_logical_bytes(f.logical_bytes);
  resp.set_chunks(f.chunks);
  resp.set_chunk_bytes(f.chunk_bytes);
  resp.set_packed_bytes(f.packed_bytes);
  resp.set_goal(vol.goal());
  resp.set_physical_bytes((f.chunk_bytes + f.packed_bytes) * vol.goal());
  return resp;
}

}  // namespace keelfs::master
