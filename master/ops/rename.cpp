// rename(2) with RENAME_NOREPLACE and RENAME_EXCHANGE semantics.
#include <map>

#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {
namespace {

// The inode records one rename touches, loaded once and written back once, so that the
// same directory as source and destination parent is not written twice with stale data.
class Touched {
 public:
  explicit Touched(MetaStore& store) : store_(store) {}
  Result<pb::InodeRecord*> get(uint64_t ino) {
    auto it = recs_.find(ino);
    if (it != recs_.end()) return &it->second;
    ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
    return &(recs_[ino] = std::move(rec));
  }
  void forget(uint64_t ino) { recs_.erase(ino); }
  void put_all(Batch& batch) {
    for (auto& [ino, rec] : recs_) batch.put_inode(rec);
  }

 private:
  MetaStore& store_;
  std::map<uint64_t, pb::InodeRecord> recs_;
};

}  // namespace

Status Namespace::rename(const pb::RenameReq& req, std::vector<FreedChunk>* freed) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return Status::Ok();
  RETURN_IF_ERROR(check_name(req.name()));
  RETURN_IF_ERROR(check_name(req.new_name()));
  bool noreplace = req.flags() & pb::RF_NOREPLACE;
  bool exchange = req.flags() & pb::RF_EXCHANGE;
  if (noreplace && exchange) return error(Code::kInvalidArgument, "RENAME_NOREPLACE and RENAME_EXCHANGE together");

  Touched t(store_);
  ASSIGN_OR_RETURN(pb::InodeRecord * src_parent, t.get(req.parent()));
  ASSIGN_OR_RETURN(pb::InodeRecord * dst_parent, t.get(req.new_parent()));
  if (!is_dir(src_parent->attr()) || !is_dir(dst_parent->attr()))
    return error(Code::kNotDir, "rename between non-directories");
  if (src_parent->attr().volume_id() != dst_parent->attr().volume_id())
    return error(Code::kInvalidArgument, "rename cannot cross volumes");

  ASSIGN_OR_RETURN(auto src_entry, store_.get_dentry(req.parent(), req.name()));
  if (!src_entry) return error(Code::kNotFound, fmt::format("'{}' not found", req.name()));
  ASSIGN_OR_RETURN(auto dst_entry, store_.get_dentry(req.new_parent(), req.new_name()));
  if (dst_entry && noreplace) return error(Code::kExists, fmt::format("'{}' already exists", req.new_name()));
  if (!dst_entry && exchange) return error(Code::kNotFound, fmt::format("'{}' not found", req.new_name()));
  if (req.parent() == req.new_parent() && req.name() == req.new_name()) return Status::Ok();
  if (dst_entry && dst_entry->inode == src_entry->inode) return Status::Ok();  // two links of one file

  ASSIGN_OR_RETURN(pb::InodeRecord * src, t.get(src_entry->inode));
  bool src_dir = is_dir(src->attr());

  // A directory must not move below itself: walk up from where it goes.
  auto inside = [&](uint64_t dir, uint64_t start) -> Result<bool> {
    uint64_t ino = start;
    for (int depth = 0; depth < 100000; ++depth) {
      if (ino == dir) return true;
      ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
      if (rec.parent() == ino || rec.parent() == 0) return false;
      ino = rec.parent();
    }
    return error(Code::kCorruption, "directory parent chain does not end");
  };
  if (src_dir) {
    ASSIGN_OR_RETURN(bool loop, inside(src_entry->inode, req.new_parent()));
    if (loop) return error(Code::kLoop, fmt::format("cannot move directory '{}' into its own subtree", req.name()));
  }

  Batch batch = store_.batch();
  if (exchange) {
    ASSIGN_OR_RETURN(pb::InodeRecord * dst, t.get(dst_entry->inode));
    bool dst_dir = is_dir(dst->attr());
    if (dst_dir) {
      ASSIGN_OR_RETURN(bool loop, inside(dst_entry->inode, req.parent()));
      if (loop) return error(Code::kLoop, fmt::format("cannot move directory '{}' into its own subtree", req.new_name()));
    }
    batch.put_dentry(req.parent(), req.name(), dst_entry->inode, dst_entry->type);
    batch.put_dentry(req.new_parent(), req.new_name(), src_entry->inode, src_entry->type);
    if (req.parent() != req.new_parent()) {
      RETURN_IF_ERROR(note_move(*src, req.parent(), req.new_parent(), batch));
      RETURN_IF_ERROR(note_move(*dst, req.new_parent(), req.parent(), batch));
      int delta = static_cast<int>(src_dir) - static_cast<int>(dst_dir);  // subdirs moving to new_parent
      src_parent->mutable_attr()->set_nlink(src_parent->attr().nlink() - delta);
      dst_parent->mutable_attr()->set_nlink(dst_parent->attr().nlink() + delta);
    }
    touch_times(dst->mutable_attr(), false, true);
  } else {
    if (dst_entry) {
      ASSIGN_OR_RETURN(pb::InodeRecord * dst, t.get(dst_entry->inode));
      bool dst_dir = is_dir(dst->attr());
      if (src_dir && !dst_dir) return error(Code::kNotDir, fmt::format("'{}' is not a directory", req.new_name()));
      if (!src_dir && dst_dir) return error(Code::kIsDir, fmt::format("'{}' is a directory", req.new_name()));
      if (dst_dir) {
        ASSIGN_OR_RETURN(bool empty, store_.dir_is_empty(dst_entry->inode));
        if (!empty) return error(Code::kNotEmpty, fmt::format("directory '{}' is not empty", req.new_name()));
        RETURN_IF_ERROR(drop_inode(*dst, batch));  // as rmdir does: inode, xattrs and usage
        dst_parent->mutable_attr()->set_nlink(dst_parent->attr().nlink() - 1);
        t.forget(dst_entry->inode);
      } else {
        pb::InodeRecord victim = *dst;
        t.forget(dst_entry->inode);
        RETURN_IF_ERROR(drop_link(victim, req.new_parent(), batch));
      }
    }
    batch.delete_dentry(req.parent(), req.name());
    batch.put_dentry(req.new_parent(), req.new_name(), src_entry->inode, src_entry->type);
    RETURN_IF_ERROR(note_move(*src, req.parent(), req.new_parent(), batch));
    if (src_dir && req.parent() != req.new_parent()) {
      src_parent->mutable_attr()->set_nlink(src_parent->attr().nlink() - 1);
      dst_parent->mutable_attr()->set_nlink(dst_parent->attr().nlink() + 1);
    }
  }
  touch_times(src->mutable_attr(), false, true);
  touch_times(src_parent->mutable_attr(), true, true);
  touch_times(dst_parent->mutable_attr(), true, true);
  t.put_all(batch);
  batch.put_op(req.op(), op_record(pb::RENAME, src_entry->inode));
  return commit(batch, freed);
}

}  // namespace keelfs::master
