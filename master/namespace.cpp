#include "master/namespace.h"

#include <sys/stat.h>

#include <chrono>

#include <fmt/format.h>

#include "master/chunks/owners.h"

namespace keelfs::master {

Status check_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..")
    return error(Code::kInvalidArgument, fmt::format("'{}' is not a valid file name", name));
  if (name.size() > kMaxNameLength)
    return error(Code::kNameTooLong, fmt::format("name of {} bytes is longer than {}", name.size(), kMaxNameLength));
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
    return error(Code::kInvalidArgument, fmt::format("file name '{}' contains '/' or NUL", name));
  return Status::Ok();
}

void touch_times(pb::Attr* attr, bool mtime, bool ctime) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  int64_t sec = ns / 1000000000;
  uint32_t nsec = static_cast<uint32_t>(ns % 1000000000);
  if (mtime) {
    attr->set_mtime_sec(sec);
    attr->set_mtime_nsec(nsec);
  }
  if (ctime) {
    attr->set_ctime_sec(sec);
    attr->set_ctime_nsec(nsec);
  }
}

bool is_dir(const pb::Attr& attr) { return attr.type() == pb::FT_DIRECTORY; }

Result<pb::InodeRecord> Namespace::dir_inode(uint64_t ino) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  if (!is_dir(rec.attr())) return error(Code::kNotDir, fmt::format("inode {} is not a directory", ino));
  return rec;
}

pb::InodeRecord Namespace::new_inode(pb::FileType type, uint32_t mode, uint32_t uid, uint32_t gid,
                                     const pb::InodeRecord& parent) {
  pb::InodeRecord rec;
  pb::Attr* a = rec.mutable_attr();
  a->set_inode(store_.allocate_inode());
  a->set_type(type);
  a->set_mode(mode & 07777);
  a->set_uid(uid);
  a->set_gid(gid);
  a->set_nlink(type == pb::FT_DIRECTORY ? 2 : 1);
  a->set_volume_id(parent.attr().volume_id());
  a->set_goal(parent.attr().goal());
  // setgid directories: new entries take the directory's group, new directories keep the bit.
  if (parent.attr().mode() & S_ISGID) {
    a->set_gid(parent.attr().gid());
    if (type == pb::FT_DIRECTORY) a->set_mode(a->mode() | S_ISGID);
  }
  touch_times(a, true, true);
  a->set_atime_sec(a->mtime_sec());
  a->set_atime_nsec(a->mtime_nsec());
  return rec;
}

Result<std::optional<pb::OpRecord>> Namespace::replayed(const pb::OpId& op) {
  // Only a retry can have been applied before: a first attempt costs no lookup.
  if (!op.retry() || op.client() == 0) return std::optional<pb::OpRecord>();
  return store_.get_op(op);
}

pb::OpRecord op_record(pb::MsgType type, uint64_t inode, bool created) {
  pb::OpRecord rec;
  rec.set_msg_type(type);
  rec.set_inode(inode);
  rec.set_created(created);
  return rec;
}

Status Namespace::commit(Batch& batch, std::vector<FreedChunk>* freed) {
  RETURN_IF_ERROR(store_.commit(batch));
  batch.take_freed(freed);
  return Status::Ok();
}

Status Namespace::drop_data_from(const pb::InodeRecord& rec, uint64_t first_index, Batch& batch) {
  const uint64_t ino = rec.attr().inode();
  std::vector<std::pair<uint64_t, pb::FileExtent>> extents;
  RETURN_IF_ERROR(store_.list_extents(ino, first_index, 0, [&](uint64_t index, const pb::FileExtent& e) {
    extents.emplace_back(index, e);
  }));
  for (const auto& [index, extent] : extents) {
    batch.delete_extent(ino, index);
    RETURN_IF_ERROR(let_go(ino, index, extent, counted_in(rec), batch));
  }
  return Status::Ok();
}

Result<std::optional<pb::ChunkRecord>> Namespace::chunk_in(const Batch& batch, uint64_t chunk_id) {
  if (const auto* changed = batch.chunk_change(chunk_id)) return *changed;
  return store_.get_chunk(chunk_id);
}

Status Namespace::let_go(uint64_t ino, uint64_t index, const pb::FileExtent& extent, uint64_t dir_ino, Batch& batch) {
  if (extent.length() > 0) batch.delete_pack_file(extent.chunk_id(), ino);
  ASSIGN_OR_RETURN(auto chunk, chunk_in(batch, extent.chunk_id()));
  if (!chunk) return Status::Ok();
  DirDelta& dir = batch.dir_usage(dir_ino);
  if (extent.length() > 0) {
    dir.packed_bytes -= static_cast<int64_t>(extent.length());
  } else {
    dir.chunks -= 1;
    dir.chunk_bytes -= static_cast<int64_t>(chunk->length());
  }
  const pb::ChunkRecord before = *chunk;
  const bool last = extent.length() > 0 ? drop_pack_extent(&*chunk, extent.length()) : drop_owner(&*chunk, ino, index);
  if (!last) {
    count_pack(batch, before, chunk);
    batch.put_chunk(extent.chunk_id(), *chunk);  // other files' data is still in it
    return Status::Ok();
  }
  count_pack(batch, before, chunk);  // the extent goes first...
  free_chunk(extent.chunk_id(), *chunk, batch);  // ...then the pack
  return Status::Ok();
}

void Namespace::count_pack(Batch& batch, const pb::ChunkRecord& before, const std::optional<pb::ChunkRecord>& after) {
  if (!before.pack()) return;
  UsageDelta& u = batch.usage(before.volume_id());
  const uint64_t length = after ? after->length() : 0, live = after ? after->live_bytes() : 0;
  u.pack_bytes += static_cast<int64_t>(length) - static_cast<int64_t>(before.length());
  u.packed_bytes += static_cast<int64_t>(live) - static_cast<int64_t>(before.live_bytes());
}

void Namespace::free_chunk(uint64_t chunk_id, const pb::ChunkRecord& chunk, Batch& batch) {
  count_pack(batch, chunk, std::nullopt);
  batch.delete_chunk(chunk_id);
  UsageDelta& u = batch.usage(chunk.volume_id());
  u.chunks -= 1;
  u.chunk_bytes -= static_cast<int64_t>(chunk.length());
  batch.free_chunk(FreedChunk{chunk_id, chunk.version()});
}

Status Namespace::drop_link(pb::InodeRecord& rec, uint64_t dir, Batch& batch) {
  pb::Attr* a = rec.mutable_attr();
  uint32_t nlink = a->nlink();
  if (!is_dir(*a) && nlink > 1) {
    RETURN_IF_ERROR(note_unlink(rec, dir, batch));
    a->set_nlink(nlink - 1);
    touch_times(a, false, true);
    batch.put_inode(rec);
    return Status::Ok();
  }
  if (!is_dir(*a) && is_open(a->inode())) {
    RETURN_IF_ERROR(move_figures(rec, counted_in(rec), 0, batch));  // no directory shows it any more
    rec.set_parent(0);
    rec.clear_link_parents();
    a->set_nlink(0);
    touch_times(a, false, true);
    batch.put_inode(rec);
    batch.put_dentry(kOrphanDir, std::to_string(a->inode()), a->inode(), a->type());
    return Status::Ok();
  }
  return drop_inode(rec, batch);
}

Status Namespace::drop_inode(const pb::InodeRecord& rec, Batch& batch) {
  const pb::Attr& a = rec.attr();
  batch.delete_inode(a.inode());
  if (a.type() == pb::FT_REGULAR) RETURN_IF_ERROR(drop_data_from(rec, 0, batch));
  if (rec.unpack_chunk() != 0) {
    pb::InodeRecord unpacking = rec;
    RETURN_IF_ERROR(drop_unpack_chunk(unpacking, batch));
  }
  std::vector<std::string> names;
  RETURN_IF_ERROR(store_.list_xattrs(a.inode(), &names));
  for (auto& n : names) batch.delete_xattr(a.inode(), n);
  batch.usage(a.volume_id()).files -= 1;
  if (is_dir(a)) {
    batch.dir_usage(counted_in(rec)).dirs -= 1;
    batch.delete_dir_usage(a.inode());
  } else {
    batch.dir_usage(counted_in(rec)).files -= 1;
  }
  account_size(rec, a.size(), 0, batch);
  return Status::Ok();
}

void Namespace::account_size(const pb::InodeRecord& rec, uint64_t old_size, uint64_t new_size, Batch& batch) {
  if (rec.attr().type() != pb::FT_REGULAR || old_size == new_size) return;
  const int64_t delta = static_cast<int64_t>(new_size) - static_cast<int64_t>(old_size);
  batch.usage(rec.attr().volume_id()).logical_bytes += delta;
  batch.dir_usage(counted_in(rec)).logical_bytes += delta;
}

Status TreeWalk::next_page(size_t max, const WalkFn& fn) {
  Dir& dir = dirs_.back();
  const uint64_t ino = dir.ino;
  const std::string dir_path = dir.path;
  std::vector<Dentry> page;
  bool more = false;
  RETURN_IF_ERROR(store_->list_dentries(ino, dir.after, max, &page, &more));
  if (more)
    dir.after = page.back().name;
  else
    dirs_.pop_back();  // `dir` is gone from here on
  for (const Dentry& d : page) {
    std::string path = dir_path + "/" + d.name;
    RETURN_IF_ERROR(fn(path, ino, d));
    if (d.type == pb::FT_DIRECTORY) dirs_.push_back({d.inode, std::move(path), ""});
  }
  return Status::Ok();
}

Status Namespace::walk(uint64_t root, const WalkFn& fn) {
  constexpr size_t kPage = 4096;
  TreeWalk tree(store_, root);
  while (!tree.done()) RETURN_IF_ERROR(tree.next_page(kPage, fn));
  return Status::Ok();
}

}  // namespace keelfs::master
