// Volumes: a named namespace root with a region, a goal, a size and inode quota, and a
// secret that mounting proves (the master keeps only its keys, common/auth.h).
#include <algorithm>

#include <fmt/format.h>

#include "common/auth.h"
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
  if (name[0] == '.' || name[0] == '-')
    return error(Code::kInvalidArgument, fmt::format("volume name '{}' must start with a letter or digit", name));
  return Status::Ok();
}

Status check_region_name(const std::string& region) {
  if (region.size() > 63) return error(Code::kInvalidArgument, "a region name is at most 63 characters");
  for (char c : region) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return error(Code::kInvalidArgument, fmt::format("region '{}' may hold only a-z, 0-9, '-' and '_'", region));
  }
  return Status::Ok();
}

}  // namespace

void Namespace::load_volumes() {
  volumes_.clear();
  for (auto& v : store_.list_volumes()) volumes_[v.id()] = v;
}

Result<pb::VolumeInfo> Namespace::create_volume(const pb::VolumeCreateReq& req) {
  RETURN_IF_ERROR(check_volume_name(req.name()));
  RETURN_IF_ERROR(check_region_name(req.region()));
  uint32_t goal = req.goal() == 0 ? 2 : req.goal();
  if (goal > kMaxGoal) return error(Code::kInvalidArgument, fmt::format("goal {} is above the maximum {}", goal, kMaxGoal));
  if (req.has_pack_below() && req.pack_below() > kMaxPackBelow)
    return error(Code::kInvalidArgument,
                 fmt::format("files of up to {} bytes can be packed, not {}", kMaxPackBelow, req.pack_below()));
  if (req.salt().empty() || req.stored_key().size() != 32 || req.server_key().size() != 32)
    return error(Code::kInvalidArgument,
                 "a new volume needs the keys of its secret (salt, stored and server key: common/auth.h)");
  ASSIGN_OR_RETURN(auto existing, store_.get_volume(req.name()));
  if (existing) return error(Code::kExists, fmt::format("volume '{}' already exists", req.name()));

  pb::VolumeRecord vol;
  vol.set_name(req.name());
  vol.set_id(store_.allocate_volume_id());
  vol.set_goal(goal);
  vol.set_region(req.region().empty() ? kDefaultRegion : req.region());
  vol.set_created_unix(unix_seconds());
  vol.set_size_bytes(req.size_bytes());
  vol.set_max_inodes(req.max_inodes());
  if (req.has_pack_below()) vol.set_pack_below(req.pack_below());
  vol.set_secret_salt(req.salt());
  vol.set_stored_key(req.stored_key());
  vol.set_server_key(req.server_key());

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
  batch.usage(vol.id());  // the volume starts with a usage record of zeros
  RETURN_IF_ERROR(commit(batch));
  volumes_[vol.id()] = vol;
  return volume_info(vol);
}

Status Namespace::convert_volume_secrets() {
  for (auto& [id, vol] : volumes_) {
    if (vol.secret_hash().empty()) continue;
    VolumeKeys keys = volume_keys_from_salted(vol.secret_salt(), vol.secret_hash());
    pb::VolumeRecord converted = vol;
    converted.set_stored_key(keys.stored_key);
    converted.set_server_key(keys.server_key);
    converted.clear_secret_hash();
    Batch batch = store_.batch();
    batch.put_volume(converted);
    RETURN_IF_ERROR(commit(batch));
    vol = converted;
  }
  return Status::Ok();
}

Result<pb::VolumeRecord> Namespace::find_volume(const std::string& name) {
  for (auto& [id, v] : volumes_)
    if (v.name() == name) return v;
  return error(Code::kNotFound, fmt::format("volume '{}' does not exist", name));
}

Result<pb::VolumeRecord> Namespace::volume_by_id(uint64_t volume_id) {
  auto it = volumes_.find(volume_id);
  if (it == volumes_.end()) return error(Code::kNotFound, fmt::format("volume id {} does not exist", volume_id));
  return it->second;
}

pb::VolumeInfo Namespace::volume_info(const pb::VolumeRecord& rec) {
  pb::VolumeInfo info;
  info.set_name(rec.name());
  info.set_id(rec.id());
  info.set_root_inode(rec.root_inode());
  info.set_goal(rec.goal());
  info.set_region(rec.region());
  info.set_created_unix(rec.created_unix());
  info.set_size_bytes(rec.size_bytes());
  info.set_max_inodes(rec.max_inodes());
  info.set_pack_below(pack_below(rec));
  const pb::UsageRecord u = store_.usage_of(rec.id());
  info.set_logical_bytes(u.logical_bytes());
  info.set_files(u.files());
  info.set_chunks(u.chunks());
  info.set_physical_bytes(u.chunk_bytes() * rec.goal());
  info.set_packed_bytes(u.packed_bytes());
  info.set_dead_bytes(u.pack_bytes() > u.packed_bytes() ? u.pack_bytes() - u.packed_bytes() : 0);
  return info;
}

std::vector<pb::VolumeInfo> Namespace::list_volumes() {
  std::vector<pb::VolumeInfo> out;
  for (auto& [id, rec] : volumes_) out.push_back(volume_info(rec));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name() < b.name(); });
  return out;
}

Result<pb::VolumeInfo> Namespace::resize_volume(const pb::VolumeResizeReq& req) {
  ASSIGN_OR_RETURN(pb::VolumeRecord vol, find_volume(req.name()));
  const pb::UsageRecord u = store_.usage_of(vol.id());
  if (req.size_bytes() != 0 && req.size_bytes() < u.logical_bytes())
    return error(Code::kInvalidArgument,
                 fmt::format("volume '{}' holds {} ({} bytes); it cannot shrink to {} ({} bytes)", vol.name(),
                             human_bytes(u.logical_bytes()), u.logical_bytes(), human_bytes(req.size_bytes()),
                             req.size_bytes()));
  if (req.max_inodes() != 0 && req.max_inodes() < u.files())
    return error(Code::kInvalidArgument, fmt::format("volume '{}' holds {} inodes; it cannot shrink to {}", vol.name(),
                                                     u.files(), req.max_inodes()));
  vol.set_size_bytes(req.size_bytes());
  if (req.max_inodes() != 0) vol.set_max_inodes(req.max_inodes());
  Batch batch = store_.batch();
  batch.put_volume(vol);
  RETURN_IF_ERROR(commit(batch));
  volumes_[vol.id()] = vol;
  return volume_info(vol);
}

Result<TreeRemoval> Namespace::remove_volume(const std::string& name) {
  ASSIGN_OR_RETURN(pb::VolumeRecord vol, find_volume(name));
  Batch batch = store_.batch();
  batch.delete_volume(vol.name());
  batch.forget_usage(vol.id());
  batch.set_removing(vol.id(), vol.root_inode());
  RETURN_IF_ERROR(commit(batch));
  volumes_.erase(vol.id());
  return TreeRemoval(store_, vol.id(), vol.root_inode());
}

Result<bool> Namespace::remove_tree_slice(TreeRemoval& r, size_t max, std::vector<FreedChunk>* freed) {
  Batch batch = store_.batch();
  // The volume's usage record went with the volume: what the deletions count goes nowhere.
  auto commit_slice = [&]() -> Status {
    batch.forget_usage(r.volume_id);
    batch.skip_dir_usage();
    RETURN_IF_ERROR(commit(batch, freed));
    batch = store_.batch();
    return Status::Ok();
  };
  if (!r.walk.done()) {
    RETURN_IF_ERROR(r.walk.next_page(max, [&](const std::string&, uint64_t parent, const Dentry& d) -> Status {
      if (d.type == pb::FT_DIRECTORY) {
        r.dirs.emplace_back(parent, d);
        return Status::Ok();
      }
      ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(d.inode));
      const bool more_names = rec.attr().nlink() > 1;
      batch.delete_dentry(parent, d.name);
      RETURN_IF_ERROR(drop_link(rec, parent, batch));
      // A file with more names: its next name must read the link count this one left.
      if (more_names) RETURN_IF_ERROR(commit_slice());
      return Status::Ok();
    }));
    RETURN_IF_ERROR(commit_slice());
    return false;
  }
  const size_t n = std::min(max, r.dirs.size());
  for (size_t i = r.dirs.size(); i > r.dirs.size() - n; --i) {
    const auto& [parent, d] = r.dirs[i - 1];
    ASSIGN_OR_RETURN(pb::InodeRecord rec, store_.get_inode(d.inode));
    batch.delete_dentry(parent, d.name);
    RETURN_IF_ERROR(drop_inode(rec, batch));
  }
  if (n < r.dirs.size()) {
    RETURN_IF_ERROR(commit_slice());
    r.dirs.resize(r.dirs.size() - n);
    return false;
  }
  ASSIGN_OR_RETURN(pb::InodeRecord root, store_.get_inode(r.root));
  RETURN_IF_ERROR(drop_inode(root, batch));
  batch.set_removing(r.volume_id, 0);
  RETURN_IF_ERROR(commit_slice());
  r.dirs.clear();
  return true;
}

Status Namespace::check_bytes(uint64_t volume_id, uint64_t old_size, uint64_t new_size) {
  if (new_size <= old_size) return Status::Ok();
  auto it = volumes_.find(volume_id);
  if (it == volumes_.end() || it->second.size_bytes() == 0) return Status::Ok();
  const pb::VolumeRecord& vol = it->second;
  uint64_t used = store_.usage_of(volume_id).logical_bytes();
  if (used + (new_size - old_size) <= vol.size_bytes()) return Status::Ok();
  return error(Code::kQuotaExceeded, fmt::format("volume '{}' is full: {} of {} used, {} more asked", vol.name(),
                                                 human_bytes(used), human_bytes(vol.size_bytes()),
                                                 human_bytes(new_size - old_size)));
}

Status Namespace::check_inodes(uint64_t volume_id) {
  auto it = volumes_.find(volume_id);
  if (it == volumes_.end() || it->second.max_inodes() == 0) return Status::Ok();
  uint64_t used = store_.usage_of(volume_id).files();
  if (used < it->second.max_inodes()) return Status::Ok();
  return error(Code::kQuotaExceeded,
               fmt::format("volume '{}' has no inode left: {} of {} used", it->second.name(), used, it->second.max_inodes()));
}

}  // namespace keelfs::master
