// Volumes: a named namespace root with a goal and a region.
#include <fmt/format.h>

#include "common/util.h"
#include "master/namespace.h"

namespace keelfs::master {
namespace {

Status check_volume_name(const std::string& name) {
  if (name.empty() || name.size() > 63)
    return error(Code::kInvalidArgument, fmt::format("volume name '{}' must be 1 to 63 characters", name));
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok)
      return error(Code::kInvalidArgument,
                   fmt::format("volume name '{}' may hold only a-z, 0-9, '-', '_' and '.'", name));
  }
  return Status::Ok();
}

}  // namespace

Result<pb::VolumeInfo> Namespace::create_volume(const pb::VolumeCreateReq& req) {
  RETURN_IF_ERROR(check_volume_name(req.name()));
  uint32_t goal = req.goal() == 0 ? 2 : req.goal();
  if (goal > kMaxGoal) return error(Code::kInvalidArgument, fmt::format("goal {} is above the maximum {}", goal, kMaxGoal));
  ASSIGN_OR_RETURN(auto existing, store_.get_volume(req.name()));
  if (existing) return error(Code::kExists, fmt::format("volume '{}' already exists", req.name()));

  pb::VolumeRecord vol;
  vol.set_name(req.name());
  vol.set_id(store_.allocate_volume_id());
  vol.set_goal(goal);
  vol.set_region(req.region().empty() ? "default" : req.region());
  vol.set_created_unix(unix_seconds());

  pb::InodeRecord root;
  pb::Attr* a = root.mutable_attr();
  a->set_inode(store_.allocate_inode());
  a->set_type(pb::FT_DIRECTORY);
  a->set_mode(0755);
  a->set_nlink(2);
  a->set_volume_id(vol.id());
  a->set_goal(goal);
  touch_times(a, true, true);
  a->set_atime_sec(a->mtime_sec());
  root.set_parent(a->inode());
  vol.set_root_inode(a->inode());

  Batch batch = store_.batch();
  batch.put_inode(root);
  batch.put_volume(vol);
  store_.usage(vol.id());
  RETURN_IF_ERROR(store_.commit(batch));
  return volume_info(vol);
}

Result<pb::VolumeRecord> Namespace::find_volume(const std::string& name) {
  ASSIGN_OR_RETURN(auto vol, store_.get_volume(name));
  if (!vol) return error(Code::kNotFound, fmt::format("volume '{}' does not exist", name));
  return *vol;
}

pb::VolumeInfo Namespace::volume_info(const pb::VolumeRecord& rec) {
  pb::VolumeInfo info;
  info.set_name(rec.name());
  info.set_id(rec.id());
  info.set_root_inode(rec.root_inode());
  info.set_goal(rec.goal());
  info.set_region(rec.region());
  info.set_created_unix(rec.created_unix());
  const pb::UsageRecord u = store_.usage_of(rec.id());
  info.set_logical_bytes(u.logical_bytes());
  info.set_files(u.files());
  info.set_chunks(u.chunks());
  info.set_physical_bytes(u.chunk_bytes() * rec.goal());
  return info;
}

std::vector<pb::VolumeInfo> Namespace::list_volumes() {
  std::vector<pb::VolumeInfo> out;
  for (const auto& rec : store_.list_volumes()) out.push_back(volume_info(rec));
  return out;
}

}  // namespace keelfs::master
