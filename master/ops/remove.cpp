// Removing names: unlink and rmdir.
#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {

Status Namespace::unlink(const pb::UnlinkReq& req, std::vector<FreedChunk>* freed) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return Status::Ok();
  const uint64_t parent_ino = req.parent();
  const std::string& name = req.name();
  RETURN_IF_ERROR(check_name(name));
  ASSIGN_OR_RETURN(pb::InodeRecord parent, dir_inode(parent_ino));
  ASSIGN_OR_RETURN(auto entry, store_.get_dentry(parent_ino, name));
  if (!entry) return error(Code::kNotFound, fmt::format("'{}' not found", name));
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(entry->inode));
  if (is_dir(rec.attr())) return error(Code::kIsDir, fmt::format("'{}' is a directory", name));

  Batch batch = store_.batch();
  batch.delete_dentry(parent_ino, name);
  touch_times(parent.mutable_attr(), true, true);
  batch.put_inode(parent);
  RETURN_IF_ERROR(drop_link(rec, parent_ino, batch));
  batch.put_op(req.op(), op_record(pb::UNLINK, entry->inode));
  return commit(batch, freed);
}

Status Namespace::rmdir(const pb::UnlinkReq& req) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return Status::Ok();
  const uint64_t parent_ino = req.parent();
  const std::string& name = req.name();
  RETURN_IF_ERROR(check_name(name));
  ASSIGN_OR_RETURN(pb::InodeRecord parent, dir_inode(parent_ino));
  ASSIGN_OR_RETURN(auto entry, store_.get_dentry(parent_ino, name));
  if (!entry) return error(Code::kNotFound, fmt::format("'{}' not found", name));
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(entry->inode));
  if (!is_dir(rec.attr())) return error(Code::kNotDir, fmt::format("'{}' is not a directory", name));
  ASSIGN_OR_RETURN(bool empty, store_.dir_is_empty(entry->inode));
  if (!empty) return error(Code::kNotEmpty, fmt::format("directory '{}' is not empty", name));

  Batch batch = store_.batch();
  batch.delete_dentry(parent_ino, name);
  RETURN_IF_ERROR(drop_inode(rec, batch));
  pb::Attr* pa = parent.mutable_attr();
  pa->set_nlink(pa->nlink() > 2 ? pa->nlink() - 1 : 2);
  touch_times(pa, true, true);
  batch.put_inode(parent);
  batch.put_op(req.op(), op_record(pb::RMDIR, entry->inode));
  return commit(batch);
}

}  // namespace keelfs::master
