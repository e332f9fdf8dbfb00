// Extended attributes.
#include <fmt/format.h>

#include "master/namespace.h"

namespace keelfs::master {
namespace {
constexpr uint32_t kXattrCreate = 1;
constexpr uint32_t kXattrReplace = 2;
constexpr size_t kMaxXattrValue = 64 * 1024;
}  // namespace

Status Namespace::setxattr(const pb::SetxattrReq& req) {
  ASSIGN_OR_RETURN(auto done, replayed(req.op()));
  if (done) return Status::Ok();  // a retry of one that committed (XATTR_CREATE would say EEXIST)
  if (req.name().empty() || req.name().size() > 255) return error(Code::kNameTooLong, "xattr name must be 1 to 255 bytes");
  if (req.value().size() > kMaxXattrValue) return error(Code::kNoSpace, "xattr value is over 64 KiB");
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(req.inode()));
  ASSIGN_OR_RETURN(auto existing, store_.get_xattr(req.inode(), req.name()));
  if (existing && (req.flags() & kXattrCreate)) return error(Code::kExists, fmt::format("xattr '{}' exists", req.name()));
  if (!existing && (req.flags() & kXattrReplace)) return error(Code::kNoData, fmt::format("no xattr '{}'", req.name()));
  touch_times(rec.mutable_attr(), false, true);
  Batch batch = store_.batch();
  batch.put_xattr(req.inode(), req.name(), req.value());
  batch.put_inode(rec);
  batch.put_op(req.op(), op_record(pb::SETXATTR, req.inode()));
  return commit(batch);
}

Result<std::string> Namespace::getxattr(uint64_t ino, const std::string& name) {
  RETURN_IF_ERROR(store_.get_inode(ino).status());
  ASSIGN_OR_RETURN(auto value, store_.get_xattr(ino, name));
  if (!value) return error(Code::kNoData, fmt::format("no xattr '{}'", name));
  return *value;
}

Result<std::vector<std::string>> Namespace::listxattr(uint64_t ino) {
  RETURN_IF_ERROR(store_.get_inode(ino).status());
  std::vector<std::string> names;
  RETURN_IF_ERROR(store_.list_xattrs(ino, &names));
  return names;
}

Status Namespace::removexattr(uint64_t ino, const std::string& name, const pb::OpId& op) {
  ASSIGN_OR_RETURN(auto done, replayed(op));
  if (done) return Status::Ok();  // a retry of one that committed (it would say ENODATA)
  ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(ino));
  ASSIGN_OR_RETURN(auto value, store_.get_xattr(ino, name));
  if (!value) return error(Code::kNoData, fmt::format("no xattr '{}'", name));
  touch_times(rec.mutable_attr(), false, true);
  Batch batch = store_.batch();
  batch.delete_xattr(ino, name);
  batch.put_inode(rec);
  batch.put_op(op, op_record(pb::REMOVEXATTR, ino));
  return commit(batch);
}

}  // namespace keelfs::master
