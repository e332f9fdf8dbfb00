// Administration: listings of volumes, sessions and chunkservers, HEALTH, FSCK, draining
// and removing volumes. Requests enter in client_service.cpp (every one needs the cluster
// secret: check_admin). Work that grows with the cluster is sliced: a Slicer gives the
// master's thread back to the clients' requests every couple of milliseconds.
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/util.h"
#include "master/chunks/owners.h"
#include "master/master.h"

namespace keelfs::master {

awaitable<Status> Master::walk_sliced(uint64_t root, Slicer& slicer, const WalkFn& fn) {
  // FSCK reads a file's extents and chunk records per name: small pages keep a slice short.
  constexpr size_t kPage = 64;
  TreeWalk tree(*store_, root);
  while (!tree.done()) {
    CO_RETURN_IF_ERROR(tree.next_page(kPage, fn));
    if (slicer.due()) co_await slicer.yield();
  }
  co_return Status::Ok();
}

awaitable<Reply> Master::volume_remove(const pb::VolumeRemoveReq& req) {
  auto vol = ns_->find_volume(req.name());
  if (!vol.ok()) co_return reply_error(vol.status());
  auto attached = sessions_.list(vol->id());
  if (!attached.empty()) {
    std::string who;
    for (const Session* s : attached)
      who += fmt::format("{}{}:{} (pid {})", who.empty() ? "" : ", ", s->host, s->mount_point, s->pid);
    co_return reply_error(error(Code::kBusy, fmt::format("volume '{}' has {} session{} attached: {}", req.name(),
                                                         attached.size(), attached.size() == 1 ? "" : "s", who)));
  }
  auto removal = ns_->remove_volume(req.name());
  if (!removal.ok()) co_return reply_error(removal.status());
  spdlog::info("volume '{}' removed; its files are deleted in the background", req.name());
  asio::co_spawn(io_, remove_tree(std::move(*removal)), asio::detached);
  co_return co_await durable(reply_ok(pb::EmptyResp()));
}

// A removed volume's tree goes a slice at a time, between clients' requests; its chunks
// are deleted as their files go. A slice that fails starts the removal over after a
// pause (what is left is all reachable from the root).
awaitable<void> Master::remove_tree(TreeRemoval removal) {
  constexpr size_t kNamesPerSlice = 256;
  Slicer slicer;
  uint64_t slices = 0;
  for (;;) {
    std::vector<FreedChunk> freed;
    auto done = ns_->remove_tree_slice(removal, kNamesPerSlice, &freed);
    delete_chunks(freed);
    if (!done.ok()) {
      spdlog::error("removing the tree of volume {}: {}; starting over in a second", removal.volume_id,
                    done.status().message());
      co_await sleep_for(std::chrono::seconds(1));
      if (stopping_) co_return;
      removal = TreeRemoval(*store_, removal.volume_id, removal.root);
      continue;
    }
    ++slices;
    if (*done) break;
    if (slicer.due()) co_await slicer.yield();
  }
  spdlog::info("volume {}: every file and directory deleted ({} slices)", removal.volume_id, slices);
}

Reply Master::session_list(const pb::SessionListReq& req) {
  uint64_t volume_id = 0;
  if (!req.volume().empty()) {
    auto vol = ns_->find_volume(req.volume());
    if (!vol.ok()) return reply_error(vol.status());
    volume_id = vol->id();
  }
  pb::SessionListResp resp;
  int64_t now = unix_ms();
  for (const Session* s : sessions_.list(volume_id)) *resp.add_sessions() = session_info(*s, now);
  return reply_ok(resp);
}

awaitable<Reply> Master::health() {
  Slicer slicer;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> counts;  // (goal, copies) -> chunks
  pb::HealthResp resp;
  auto count = [&](uint64_t id, const pb::ChunkRecord& rec) {
    uint32_t copies = static_cast<uint32_t>(registry_.holders(id).size());
    ++counts[{rec.goal(), copies}];
    resp.set_chunks(resp.chunks() + 1);
    if (copies == 0) {
      resp.set_missing(resp.missing() + 1);
      if (resp.missing_chunk_ids_size() < 100) resp.add_missing_chunk_ids(id);
    } else if (copies < rec.goal()) {
      resp.set_under_goal(resp.under_goal() + 1);
      if (resp.under_goal_chunk_ids_size() < 20) resp.add_under_goal_chunk_ids(id);
    } else if (copies > rec.goal()) {
      resp.set_over_goal(resp.over_goal() + 1);
    }
  };
  for (uint64_t next = 0;;) {
    next = store_->for_each_chunk_from(next, kScanSlice, count);
    if (next == 0) break;
    if (slicer.due()) co_await slicer.yield();
  }
  for (auto& [key, n] : counts) {
    pb::HealthRow* row = resp.add_rows();
    row->set_goal(key.first);
    row->set_copies(key.second);
    row->set_chunks(n);
  }
  for (ChunkServer* cs : registry_.servers()) {
    if (cs->alive)
      resp.set_servers_alive(resp.servers_alive() + 1);
    else
      resp.set_servers_dead(resp.servers_dead() + 1);
    if (cs->draining) resp.set_servers_draining(resp.servers_draining() + 1);
  }
  resp.set_stale_deleted(stale_deleted_);
  resp.set_damaged_reported(damaged_reported_);
  resp.set_damaged_last_copies(damaged_last_copy_.size());
  resp.set_healing(healing_.size());
  resp.set_waiting_for_writers(writer_held_.size());
  resp.set_heal_queued(heal_queue_.size());
  resp.set_sweeps(sweeps_done_);
  resp.set_packs_compacted(packs_compacted_);
  resp.set_packs_to_compact(compact_queue_.size());
  resp.set_store_memory_bytes(store_->memory_bytes());
  resp.set_location_memory_bytes(registry_.locations().memory_bytes());
  co_await name_missing_chunks(&resp, slicer);
  co_return reply_ok(resp);
}

awaitable<void> Master::name_missing_chunks(pb::HealthResp* resp, Slicer& slicer) {
  constexpr int kNamed = 20;
  std::map<uint64_t, std::vector<pb::MissingChunk*>> by_inode;
  std::set<uint64_t> volumes;
  for (int i = 0; i < resp->missing_chunk_ids_size() && i < kNamed; ++i) {
    uint64_t id = resp->missing_chunk_ids(i);
    auto rec = store_->get_chunk(id);
    if (!rec.ok() || !*rec) continue;
    std::vector<pb::ChunkOwner> owners = owners_of(**rec);
    if (owners.empty()) continue;
    pb::MissingChunk* m = resp->add_missing_chunks();
    m->set_chunk_id(id);
    m->set_inode(owners[0].inode());
    m->set_index(owners[0].index());
    auto vol = ns_->volume_by_id((*rec)->volume_id());
    if (vol.ok()) {
      m->set_volume(vol->name());
      volumes.insert(vol->id());
    }
    by_inode[m->inode()].push_back(m);
  }
  // A file knows no name of its own: walk the volumes concerned until every one is named.
  size_t left = by_inode.size();
  for (uint64_t volume_id : volumes) {
    auto vol = ns_->volume_by_id(volume_id);
    if (!vol.ok() || left == 0) continue;
    Status st = co_await walk_sliced(vol->root_inode(), slicer, [&](const std::string& path, uint64_t, const Dentry& d) -> Status {
      auto it = by_inode.find(d.inode);
      if (it == by_inode.end() || !it->second.front()->path().empty()) return Status::Ok();
      for (pb::MissingChunk* m : it->second) m->set_path(path);
      if (--left == 0) return error(Code::kBusy, "every missing chunk named");  // stops the walk
      return Status::Ok();
    });
    (void)st;
  }
}

namespace {

// FSCK's own count of every directory's figures, from the names it walks: each file's
// figures go to the directory counting it, then each directory's total to its parent.
class DirTally {
 public:
  explicit DirTally(uint64_t root) : order_{{root, 0, ""}} {}
  void add_dir(uint64_t ino, uint64_t parent, const std::string& path) {
    order_.push_back({ino, parent, path});
    own_[parent].dirs += 1;
  }
  void add(uint64_t dir, const DirDelta& figures) {
    if (dir != 0) own_[dir] += figures;
  }
  // (directory, path, figures of everything below it); children come after their parents
  // in the walk, so adding up from the end reaches every ancestor.
  std::vector<std::tuple<uint64_t, std::string, DirDelta>> totals() {
    std::vector<std::tuple<uint64_t, std::string, DirDelta>> out;
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      const DirDelta total = own_[it->ino];
      if (it->parent != 0) own_[it->parent] += total;
      out.emplace_back(it->ino, it->path, total);
    }
    return out;
  }

 private:
  struct Dir {
    uint64_t ino;
    uint64_t parent;
    std::string path;
  };
  std::vector<Dir> order_;
  std::unordered_map<uint64_t, DirDelta> own_;
};

std::string differences(const DirDelta& stored, const DirDelta& counted) {
  std::string out;
  auto check = [&](const char* what, int64_t have, int64_t want) {
    if (have == want) return;
    out += fmt::format("{}{} {} (the tree: {})", out.empty() ? "" : ", ", what, have, want);
  };
  check("files", stored.files, counted.files);
  check("directories", stored.dirs, counted.dirs);
  check("logical bytes", stored.logical_bytes, counted.logical_bytes);
  check("chunks", stored.chunks, counted.chunks);
  check("chunk bytes", stored.chunk_bytes, counted.chunk_bytes);
  check("packed bytes", stored.packed_bytes, counted.packed_bytes);
  return out;
}

}  // namespace

awaitable<Reply> Master::fsck(const pb::FsckReq& req) {
  auto vol = ns_->find_volume(req.volume());
  if (!vol.ok()) co_return reply_error(vol.status());
  Slicer slicer;
  const std::string usage_before = store_->usage_of(vol->id()).SerializeAsString();
  constexpr int kMaxProblems = 1000;
  pb::FsckResp resp;
  auto problem = [&](std::string text) {
    if (resp.problems_size() < kMaxProblems) resp.add_problems(std::move(text));
  };
  const uint64_t dir_usage_before = store_->dir_usage_commits();
  std::set<uint64_t> seen;  // a file with several names is checked once
  uint64_t inodes = 0;
  DirTally tally(vol->root_inode());
  Status st = co_await walk_sliced(vol->root_inode(), slicer, [&](const std::string& path, uint64_t parent, const Dentry& d) -> Status {
    auto rec = store_->get_inode(d.inode);
    if (!rec.ok()) {
      // Between slices clients go on: a name removed meanwhile is no damage.
      auto now = store_->get_dentry(parent, d.name);
      if (now.ok() && *now && (*now)->inode == d.inode)
        problem(fmt::format("{}: names inode {}, which does not exist", path, d.inode));
      return Status::Ok();
    }
    const pb::Attr& a = rec->attr();
    if (a.volume_id() != vol->id()) problem(fmt::format("{}: inode {} belongs to volume id {}", path, d.inode, a.volume_id()));
    if (a.type() != d.type) problem(fmt::format("{}: entry says type {}, inode {} is type {}", path, static_cast<int>(d.type), d.inode, static_cast<int>(a.type())));
    if (!seen.insert(d.inode).second) return Status::Ok();
    ++inodes;
    if (a.type() == pb::FT_DIRECTORY) {
      resp.set_directories(resp.directories() + 1);
      if (rec->parent() != parent)
        problem(fmt::format("{}: directory {} names {} as its parent, not {}", path, d.inode, rec->parent(), parent));
      tally.add_dir(d.inode, parent, path);
      return Status::Ok();
    }
    auto figures = ns_->figures_of(*rec, store_->batch());
    if (!figures.ok()) return figures.status();
    tally.add(Namespace::counted_in(*rec), *figures);
    resp.set_files(resp.files() + 1);
    if (a.type() != pb::FT_REGULAR) return Status::Ok();
    resp.set_logical_bytes(resp.logical_bytes() + a.size());
    std::vector<std::pair<uint64_t, pb::FileExtent>> extents;
    Status listed = store_->list_extents(d.inode, 0, 0, [&](uint64_t index, const pb::FileExtent& e) {
      extents.emplace_back(index, e);
    });
    if (!listed.ok()) return listed;
    for (const auto& [index, extent] : extents) {
      const uint64_t chunk_id = extent.chunk_id();
      resp.set_chunks(resp.chunks() + 1);
      if (index * kChunkSize >= a.size() && a.size() > 0)
        problem(fmt::format("{}: chunk {} lies past the file's end ({} bytes)", path, index, a.size()));
      auto chunk = store_->get_chunk(chunk_id);
      if (!chunk.ok() || !*chunk) {
        problem(fmt::format("{}: chunk {} ({:016x}) has no chunk record", path, index, chunk_id));
        continue;
      }
      if (extent.length() > 0) {
        // Packed: a pack counts its files rather than naming them.
        if (!(*chunk)->pack() || index != 0 || extent.chunk_offset() + extent.length() > (*chunk)->length())
          problem(fmt::format("{}: its packed bytes [{}, +{}) are not inside pack {:016x} ({} bytes)", path,
                              extent.chunk_offset(), extent.length(), chunk_id, (*chunk)->length()));
      } else if (!owned_by(**chunk, d.inode, index))
        problem(fmt::format("{}: chunk {} ({:016x}) does not name inode {} index {} among its owners", path, index,
                            chunk_id, d.inode, index));
      size_t copies = registry_.holders(chunk_id).size();
      if (copies == 0) {
        resp.set_missing(resp.missing() + 1);
        problem(fmt::format("{}: chunk {} ({:016x} v{}) has no valid copy", path, index, chunk_id, (*chunk)->version()));
      } else if (copies < (*chunk)->goal()) {
        resp.set_under_goal(resp.under_goal() + 1);
      }
    }
    return Status::Ok();
  });
  if (!st.ok()) co_return reply_error(st);
  pb::VolumeInfo info = ns_->volume_info(*vol);
  if (store_->usage_of(vol->id()).SerializeAsString() != usage_before) {
    // Files came or went while the tree was walked (in slices, between clients' requests):
    // the totals cannot be compared with what the walk counted.
    resp.set_changed_during_check(true);
    co_return reply_ok(resp);
  }
  if (info.files() != inodes)
    problem(fmt::format("usage counts {} inodes, the tree has {} (files open after their last unlink count too)",
                        info.files(), inodes));
  if (info.logical_bytes() != resp.logical_bytes())
    problem(fmt::format("usage counts {} logical bytes, the files hold {}", info.logical_bytes(), resp.logical_bytes()));
  if (store_->dir_usage_commits() != dir_usage_before) {
    resp.set_changed_during_check(true);  // a rename, say, moves figures without moving the volume's
    co_return reply_ok(resp);
  }
  const auto totals = tally.totals();
  for (const auto& [dir, path, counted] : totals) {
    auto stored = store_->get_dir_usage(dir);
    if (!stored.ok()) co_return reply_error(stored.status());
    if (std::string diff = differences(*stored, counted); !diff.empty())
      problem(fmt::format("{}: directory figures differ from the tree below it: {}", path.empty() ? "/" : path, diff));
  }
  co_return reply_ok(resp);
}

Reply Master::cs_list() {
  pb::CsListResp resp;
  int64_t now = unix_ms();
  for (ChunkServer* cs : registry_.servers()) {
    pb::CsInfo* i = resp.add_servers();
    i->set_cs_id(cs->id);
    i->set_address(cs->address);
    i->set_region(cs->region);
    i->set_zone(cs->zone);
    i->set_host(cs->host);
    i->set_chunks(cs->chunks - std::min(cs->chunks, spares_on(cs->id)));  // spares hold no file's data
    i->set_used_bytes(cs->used_bytes);
    i->set_total_bytes(cs->total_bytes);
    i->set_last_heartbeat_ms_ago(now - cs->last_heartbeat_ms);
    i->set_alive(cs->alive);
    i->set_draining(cs->draining);
    i->set_drain_left(drain_left(*cs));
  }
  return reply_ok(resp);
}

awaitable<Reply> Master::cs_drain(const pb::CsDrainReq& req) {
  ChunkServer* found = nullptr;
  for (ChunkServer* cs : registry_.servers())
    if (cs->address == req.address()) found = cs;
  if (!found) co_return reply_error(error(Code::kNotFound, fmt::format("no chunkserver at {}", req.address())));
  Batch batch = store_->batch();
  batch.set_draining(found->id, req.drain());
  if (Status st = store_->commit(batch); !st.ok()) co_return reply_error(st);
  if (req.drain()) {
    draining_.insert(found->id);
    drain_needs_[found->id].clear();
  } else {
    draining_.erase(found->id);
    drain_needs_.erase(found->id);
  }
  found->draining = req.drain();
  // Its chunks are looked at again: copied elsewhere, or (undrained) trimmed back to goal.
  asio::co_spawn(io_, drain_scan(found->id), asio::detached);
  spdlog::info("chunkserver {:016x} at {}: {}", found->id, found->address, req.drain() ? "draining" : "drain stopped");
  co_return co_await durable(reply_ok(pb::EmptyResp()));
}

}  // namespace keelfs::master
