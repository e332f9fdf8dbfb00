// Read-only namespace operations: lookup, getattr, readlink, readdir.
#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {

Result<pb::Attr> Namespace::lookup(uint64_t parent, const std::string& name) {
  ASSIGN_OR_RETURN(pb::InodeRecord dir, dir_inode(parent));
  if (name == ".") return dir.attr();
  if (name == "..") {
    ASSIGN_OR_RETURN(pb::InodeRecord up, store_.get_inode(dir.parent()));
    return up.attr();
  }
  // A name no entry can have is ENAMETOOLONG, not ENOENT: the kernel looks a path up
  // before it calls chmod, rename, link... and POSIX wants that error from all of them.
  if (name.size() > kMaxNameLength)
    return error(Code::kNameTooLong, fmt::format("name of {} bytes is longer than {}", name.size(), kMaxNameLength));
  ASSIGN_OR_RETURN(auto entry, store_.get_dentry(parent, name));
  if (!entry) return error(Code::kNotFound, fmt::format("'{}' not found in directory {}", name, parent));
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(entry->inode));
  return rec.attr();
}

Result<pb::Attr> Namespace::getattr(uint64_t ino) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  return rec.attr();
}

Result<uint64_t> Namespace::volume_of(uint64_t ino) {
  if (auto it = volume_of_.find(ino); it != volume_of_.end()) return it->second;
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  constexpr size_t kMaxCached = 1 << 20;
  if (volume_of_.size() >= kMaxCached) volume_of_.clear();
  volume_of_[ino] = rec.attr().volume_id();
  return rec.attr().volume_id();
}

Result<std::string> Namespace::readlink(uint64_t ino) {
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  if (rec.attr().type() != pb::FT_SYMLINK)
    return error(Code::kInvalidArgument, fmt::format("inode {} is not a symlink", ino));
  return rec.symlink();
}

Result<pb::ReaddirResp> Namespace::readdir(const pb::ReaddirReq& req) {
  RETURN_IF_ERROR(dir_inode(req.inode()).status());
  size_t max = req.max_entries() == 0 ? 1000 : std::min<uint32_t>(req.max_entries(), 10000);
  std::vector<Dentry> entries;
  bool more = false;
  RETURN_IF_ERROR(store_.list_dentries(req.inode(), req.after(), max, &entries, &more));
  pb::ReaddirResp resp;
  resp.set_more(more);
  for (auto& d : entries) {
    pb::DirEntry* e = resp.add_entries();
    e->set_name(d.name);
    e->set_inode(d.inode);
    e->set_type(d.type);
    if (req.plus()) {
      auto rec = store_.get_inode(d.inode);
      if (rec.ok()) *e->mutable_attr() = rec->attr();
    }
  }
  return resp;
}

}  // namespace keelfs::master
