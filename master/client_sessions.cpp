// Who a client is and what it may reach: mounts and their sessions, admin logins, which
// session may touch which inode, the directory watches that tell a client of the others'
// changes, and what goes when a client's connection closes.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/auth.h"
#include "common/util.h"
#include "master/master.h"

namespace keelfs::master {

void Master::client_closed(ConnectionPtr conn) {
  // Its sessions wait for the client to dial again; they expire if it does not.
  if (conn->tag != 0) sessions_.detach_connection(conn->tag);
  admin_conns_.erase(conn->tag);
  monitor_conns_.erase(conn->tag);
  dir_watches_.forget(conn.get());
}

namespace {

constexpr auto kWatchTimeout = std::chrono::seconds(2);

// A watcher that does not confirm in time loses its connection, and a client drops its
// watched snapshots when its connection closes: no client goes on denying a name that exists.
awaitable<Status> tell_dir_changed(ConnectionPtr conn, pb::DirChangedReq req) {
  auto r = co_await conn->call(pb::DIR_CHANGED, req, {}, kWatchTimeout);
  if (r.ok() || !conn->is_open()) co_return r.status();
  spdlog::warn("client {} ({}) did not confirm a change of directory {}: {}; closing its connection", conn->peer_name(),
               conn->peer(), req.dirs(0), r.status().message());
  conn->close(error(Code::kTimeout, "a directory change was not confirmed"));
  co_return r.status();
}

}  // namespace

awaitable<Reply> Master::after_change(const ConnectionPtr& changer, Reply r, uint64_t dir, uint64_t other_dir) {
  if (!r.status.ok()) co_return std::move(r);
  last_name_change_ = std::chrono::steady_clock::now();
  std::map<Connection*, std::pair<ConnectionPtr, pb::DirChangedReq>> to_tell;
  for (uint64_t d : {dir, other_dir}) {
    if (d == 0) continue;
    for (ConnectionPtr& c : dir_watches_.take(d, changer.get())) {
      auto& [conn, req] = to_tell[c.get()];
      conn = c;
      req.add_dirs(d);
    }
  }
  if (to_tell.empty()) co_return std::move(r);
  std::vector<awaitable<Status>> tells;
  for (auto& [key, t] : to_tell) tells.push_back(tell_dir_changed(t.first, std::move(t.second)));
  co_await when_all(std::move(tells));
  co_return std::move(r);
}

Status Master::check_admin(const ConnectionPtr& conn) const {
  if (admin_conns_.count(conn->tag)) return Status::Ok();
  if (monitor_conns_.count(conn->tag))
    return error(Code::kPermissionDenied,
                 "the monitoring key may only read (health, fsck, listings); changing volumes or chunkservers "
                 "needs the cluster secret (keelfs --cluster-secret-file)");
  return error(Code::kPermissionDenied,
               "administration (volumes, sessions, chunkservers, health, fsck) needs the cluster secret "
               "(keelfs --cluster-secret-file, or $KEELFS_HOME/cluster.secret) or, to read only, the "
               "monitoring key (keelfs --monitor-key-file)");
}

Status Master::check_reader(const ConnectionPtr& conn) const {
  if (monitor_conns_.count(conn->tag)) return Status::Ok();
  return check_admin(conn);
}

void Master::end_session(uint64_t id, const std::string& why) {
  Session* s = sessions_.find(id);
  if (!s) return;
  spdlog::info("session {:x} of volume '{}' ({}:{} pid {}) ended: {}", id, s->volume, s->host, s->mount_point, s->pid,
               why);
  // A session that ends (unmount, crash, lost pod) keeps no file locked...
  locks_.release_session(id);
  // ...appends to no pack...
  seal_session_pack(id);
  // ...and holds no file open: the orphans only it held go now.
  std::vector<FreedChunk> freed;
  Status st = ns_->release_session(id, &freed);
  if (!st.ok()) spdlog::error("session {:x}: releasing its open files: {}", id, st.to_string());
  delete_chunks(freed);
  sessions_.remove(id);
  // ...and its tickets stop working on every chunkserver by their next heartbeat.
  ended_sessions_[id] = unix_ms() + config_.ticket_ttl_ms;
}

Result<uint64_t> Master::session_for(const ConnectionPtr& conn, uint64_t inode) {
  ASSIGN_OR_RETURN(uint64_t volume_id, ns_->volume_of(inode));
  Session* s = sessions_.of(conn->tag, volume_id);
  if (s) return s->id;
  auto vol = ns_->volume_by_id(volume_id);
  return error(Code::kNoSession, fmt::format("volume '{}' is not mounted on this connection (or its session expired)",
                                             vol.ok() ? vol->name() : std::to_string(volume_id)));
}

Result<uint64_t> Master::session_for(const ConnectionPtr& conn, uint64_t inode, uint64_t other) {
  ASSIGN_OR_RETURN(uint64_t first, session_for(conn, inode));
  ASSIGN_OR_RETURN(uint64_t second, session_for(conn, other));
  if (first != second) return error(Code::kCrossDevice, "rename and link do not cross volumes");
  return first;
}

pb::SessionInfo Master::session_info(const Session& s, int64_t now_ms) const {
  pb::SessionInfo i;
  i.set_id(s.id);
  i.set_volume(s.volume);
  i.set_host(s.host);
  i.set_mount_point(s.mount_point);
  i.set_pid(s.pid);
  i.set_region(s.region);
  i.set_client_version(s.client_version);
  i.set_since_unix_ms(s.since_ms);
  i.set_last_heartbeat_ms_ago(now_ms - s.last_heard_ms);
  i.set_connected(s.conn_id != 0);
  i.set_peer(s.peer);
  return i;
}

awaitable<Reply> Master::mount(const ConnectionPtr& conn, const pb::MountReq& req) {
  auto vol = ns_->find_volume(req.volume());
  if (!vol.ok()) co_return reply_error(vol.status());
  const std::string who = fmt::format("{} ({})", req.host().empty() ? conn->peer_name() : req.host(), conn->peer());
  std::string region = req.region().empty() ? kDefaultRegion : req.region();
  if (!config_.region_networks.empty()) {
    // The master's networks say where the host is; what it claims counts for nothing.
    auto decided = config_.region_networks.region_of(conn->peer());
    if (!decided) {
      spdlog::warn("mount of volume '{}' from {} refused: its address is in no region's network", vol->name(), who);
      co_return reply_error(error(Code::kPermissionDenied,
                                  fmt::format("this host's address ({}) is in no region's network; volume {} is in "
                                              "region {}", conn->peer(), vol->name(), vol->region())));
    }
    if (*decided != region)
      spdlog::info("mount of volume '{}' from {}: claims region {}, its address is in region {}", vol->name(), who,
                   region, *decided);
    region = *decided;
  }
  if (region != vol->region()) {
    spdlog::warn("mount of volume '{}' from {} refused: host is in region {}, the volume in {}", vol->name(), who,
                 region, vol->region());
    co_return reply_error(error(Code::kPermissionDenied, fmt::format("volume {} is in region {}; this host is in {}",
                                                                      vol->name(), vol->region(), region)));
  }
  const VolumeKeys keys{vol->secret_salt(), vol->stored_key(), vol->server_key()};
  if (req.proof().empty()) {
    spdlog::warn("mount of volume '{}' from {} refused: no secret given", vol->name(), who);
    co_return reply_error(error(Code::kPermissionDenied,
                                fmt::format("volume '{}' needs its secret (--secret-file or KEELFS_SECRET)", vol->name())));
  }
  if (Status st = check_mount_proof(keys, conn->nonces(), vol->name(), req.proof()); !st.ok()) {
    spdlog::warn("mount of volume '{}' from {} refused: {}", vol->name(), who, st.message());
    co_return reply_error(st);
  }
  auto root = ns_->getattr(vol->root_inode());
  if (!root.ok()) co_return reply_error(root.status());

  int64_t now = unix_ms();
  Session* session = sessions_.of(conn->tag, vol->id());  // mounted twice on one connection
  if (!session && req.resume_session() != 0) {
    Session* old = sessions_.find(req.resume_session());
    if (old && old->volume_id == vol->id() && old->conn_id == 0) {
      sessions_.attach(*old, conn->tag, conn->peer(), now);
      session = old;
      spdlog::info("session {:x} of volume '{}' resumed by {}", old->id, vol->name(), who);
    }
  }
  if (!session) {
    Session s;
    s.volume_id = vol->id();
    s.volume = vol->name();
    s.host = req.host();
    s.mount_point = req.mount_point();
    s.pid = req.pid();
    s.region = region;
    s.client_version = req.client_version();
    s.peer = conn->peer();
    s.since_ms = now;
    s.last_heard_ms = now;
    s.conn_id = conn->tag;
    session = &sessions_.add(std::move(s));
    spdlog::info("session {:x}: volume '{}' mounted by {} on {} (pid {})", session->id, vol->name(), who,
                 req.mount_point(), req.pid());
  }
  pb::MountResp resp;
  *resp.mutable_volume() = ns_->volume_info(*vol);
  *resp.mutable_root() = *root;
  resp.set_session(session->id);
  resp.set_heartbeat_ms(static_cast<uint32_t>(std::max<int64_t>(config_.session_timeout_ms / 3, 100)));
  resp.set_master_proof(master_mount_proof(keys, conn->nonces(), vol->name()));
  resp.set_master_incarnation(durability_epoch_);
  co_return reply_ok(resp);
}

}  // namespace keelfs::master
