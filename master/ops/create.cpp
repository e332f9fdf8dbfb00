// Creating names: mkdir, create (regular files and special files), symlink, link.
#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {

Result<pb::Attr> Namespace::mkdir(const pb::MkdirReq& req) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return getattr(done->inode());
  RETURN_IF_ERROR(check_name(req.name()));
  ASSIGN_OR_RETURN(pb::InodeRecord parent, dir_inode(req.parent()));
  ASSIGN_OR_RETURN(auto existing, store_.get_dentry(req.parent(), req.name()));
  if (existing) return error(Code::kExists, fmt::format("'{}' already exists", req.name()));
  if (parent.attr().nlink() >= kMaxLinks) return error(Code::kTooManyLinks, "too many subdirectories");
  RETURN_IF_ERROR(check_inodes(parent.attr().volume_id()));

  pb::InodeRecord rec = new_inode(pb::FT_DIRECTORY, req.mode(), req.uid(), req.gid(), parent);
  rec.set_parent(req.parent());
  pb::Attr* pa = parent.mutable_attr();
  pa->set_nlink(pa->nlink() + 1);
  touch_times(pa, true, true);

  Batch batch = store_.batch();
  batch.put_inode(rec);
  batch.put_inode(parent);
  batch.put_dentry(req.parent(), req.name(), rec.attr().inode(), pb::FT_DIRECTORY);
  batch.put_op(req.op(), op_record(pb::MKDIR, rec.attr().inode()));
  batch.usage(rec.attr().volume_id()).files += 1;
  batch.dir_usage(req.parent()).dirs += 1;
  RETURN_IF_ERROR(commit(batch));
  return rec.attr();
}

Result<pb::Attr> Namespace::create(const pb::CreateReq& req, std::vector<FreedChunk>* freed, bool* created) {
  if (created) *created = false;
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) {
    if (created) *created = done->created();
    return getattr(done->inode());
  }
  RETURN_IF_ERROR(check_name(req.name()));
  pb::FileType type = req.type() == pb::FT_NONE ? pb::FT_REGULAR : req.type();
  if (type == pb::FT_DIRECTORY || type == pb::FT_SYMLINK)
    return error(Code::kInvalidArgument, "create makes files, not directories or symlinks");
  ASSIGN_OR_RETURN(pb::InodeRecord parent, dir_inode(req.parent()));
  ASSIGN_OR_RETURN(auto existing, store_.get_dentry(req.parent(), req.name()));
  if (existing) {
    if (req.exclusive()) return error(Code::kExists, fmt::format("'{}' already exists", req.name()));
    ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(existing->inode));
    if (is_dir(rec.attr())) return error(Code::kIsDir, fmt::format("'{}' is a directory", req.name()));
    if (!req.truncate() || rec.attr().size() == 0) return rec.attr();
    Batch batch = store_.batch();
    RETURN_IF_ERROR(drop_data_from(rec, 0, batch));
    account_size(rec, rec.attr().size(), 0, batch);
    rec.mutable_attr()->set_size(0);
    touch_times(rec.mutable_attr(), true, true);
    batch.put_inode(rec);
    batch.put_op(req.op(), op_record(pb::CREATE, rec.attr().inode()));
    RETURN_IF_ERROR(commit(batch, freed));
    return rec.attr();
  }

  RETURN_IF_ERROR(check_inodes(parent.attr().volume_id()));
  pb::InodeRecord rec = new_inode(type, req.mode(), req.uid(), req.gid(), parent);
  rec.set_parent(req.parent());
  rec.mutable_attr()->set_rdev(req.rdev());
  touch_times(parent.mutable_attr(), true, true);
  Batch batch = store_.batch();
  batch.put_inode(rec);
  batch.put_inode(parent);
  batch.put_dentry(req.parent(), req.name(), rec.attr().inode(), type);
  batch.put_op(req.op(), op_record(pb::CREATE, rec.attr().inode(), true));
  batch.usage(rec.attr().volume_id()).files += 1;
  batch.dir_usage(req.parent()).files += 1;
  RETURN_IF_ERROR(commit(batch));
  if (created) *created = true;
  return rec.attr();
}

Result<pb::Attr> Namespace::symlink(const pb::SymlinkReq& req) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return getattr(done->inode());
  RETURN_IF_ERROR(check_name(req.name()));
  if (req.target().empty() || req.target().size() > 4096)
    return error(Code::kInvalidArgument, "symlink target must be 1 to 4096 bytes");
  ASSIGN_OR_RETURN(pb::InodeRecord parent, dir_inode(req.parent()));
  ASSIGN_OR_RETURN(auto existing, store_.get_dentry(req.parent(), req.name()));
  if (existing) return error(Code::kExists, fmt::format("'{}' already exists", req.name()));

  RETURN_IF_ERROR(check_inodes(parent.attr().volume_id()));
  pb::InodeRecord rec = new_inode(pb::FT_SYMLINK, 0777, req.uid(), req.gid(), parent);
  rec.set_parent(req.parent());
  rec.set_symlink(req.target());
  rec.mutable_attr()->set_size(req.target().size());
  touch_times(parent.mutable_attr(), true, true);
  Batch batch = store_.batch();
  batch.put_inode(rec);
  batch.put_inode(parent);
  batch.put_dentry(req.parent(), req.name(), rec.attr().inode(), pb::FT_SYMLINK);
  batch.put_op(req.op(), op_record(pb::SYMLINK, rec.attr().inode()));
  batch.usage(rec.attr().volume_id()).files += 1;
  batch.dir_usage(req.parent()).files += 1;
  RETURN_IF_ERROR(commit(batch));
  return rec.attr();
}

Result<pb::Attr> Namespace::link(const pb::LinkReq& req) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return getattr(done->inode());
  RETURN_IF_ERROR(check_name(req.new_name()));
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(req.inode()));
  if (is_dir(rec.attr())) return error(Code::kPermissionDenied, "hard links to directories are not allowed");
  if (rec.attr().nlink() == 0) return error(Code::kNotFound, fmt::format("inode {} was unlinked", req.inode()));
  if (rec.attr().nlink() >= kMaxLinks) return error(Code::kTooManyLinks, fmt::format("inode {} has too many links", req.inode()));
  ASSIGN_OR_RETURN(pb::InodeRecord parent, dir_inode(req.new_parent()));
  if (parent.attr().volume_id() != rec.attr().volume_id())
    return error(Code::kInvalidArgument, "hard links cannot cross volumes");
  ASSIGN_OR_RETURN(auto existing, store_.get_dentry(req.new_parent(), req.new_name()));
  if (existing) return error(Code::kExists, fmt::format("'{}' already exists", req.new_name()));

  rec.mutable_attr()->set_nlink(rec.attr().nlink() + 1);
  note_link(rec, req.new_parent());
  touch_times(rec.mutable_attr(), false, true);
  touch_times(parent.mutable_attr(), true, true);
  Batch batch = store_.batch();
  batch.put_inode(rec);
  batch.put_inode(parent);
  batch.put_dentry(req.new_parent(), req.new_name(), rec.attr().inode(), rec.attr().type());
  batch.put_op(req.op(), op_record(pb::LINK, rec.attr().inode()));
  RETURN_IF_ERROR(commit(batch));
  return rec.attr();
}

}  // namespace keelfs::master
