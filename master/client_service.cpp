// Where a client's or admin's request enters the master: one case per message type.
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/ticket.h"
#include "common/util.h"
#include "master/master.h"

namespace keelfs::master {
namespace {

template <class Req>
Result<Req> parse(const Frame& frame) {
  Req req;
  RETURN_IF_ERROR(parse_body(frame, &req));
  return req;
}

Reply attr_reply(const Result<pb::Attr>& attr) {
  if (!attr.ok()) return reply_error(attr.status());
  pb::AttrResp resp;
  *resp.mutable_attr() = *attr;
  return reply_ok(resp);
}

Reply status_reply(const Status& st) { return st.ok() ? reply_ok(pb::EmptyResp()) : reply_error(st); }

// The answer to a namespace change: the new entry's attributes (when there is one) and
// those of the directories it changed.
Reply changed_reply(Namespace& ns, const Result<pb::Attr>& attr, uint64_t parent, uint64_t new_parent = 0,
                    bool created = false) {
  if (!attr.ok()) return reply_error(attr.status());
  pb::AttrResp resp;
  resp.set_created(created);
  if (attr->inode() != 0) *resp.mutable_attr() = *attr;
  if (auto p = ns.getattr(parent); p.ok()) *resp.mutable_parent() = *p;
  if (new_parent != 0 && new_parent != parent)
    if (auto p = ns.getattr(new_parent); p.ok()) *resp.mutable_new_parent() = *p;
  return reply_ok(resp);
}

Result<pb::Attr> no_entry(const Status& st) {
  if (!st.ok()) return st;
  return pb::Attr();
}

template <class Resp>
Reply result_reply(const Result<Resp>& r) {
  return r.ok() ? reply_ok(*r) : reply_error(r.status());
}

}  // namespace

#define PARSE_OR_REPLY(Type, var)                 \
  auto var##_parsed = parse<Type>(frame);         \
  if (!var##_parsed.ok()) co_return reply_error(var##_parsed.status()); \
  const Type& var = *var##_parsed

// The request may touch these inodes only through a session of this connection.
#define SESSION_OR_REPLY(var, ...)                                       \
  auto var##_found = session_for(conn, __VA_ARGS__);                     \
  if (!var##_found.ok()) co_return reply_error(var##_found.status());   \
  [[maybe_unused]] const uint64_t var = *var##_found

awaitable<Reply> Master::serve_client(ConnectionPtr conn, Frame frame) {
  const uint16_t type = frame.header.msg_type();
  Reply reply = co_await handle_client(std::move(conn), std::move(frame));
  if (config_.crash_after_commit != 0 && type == config_.crash_after_commit && reply.status.ok()) {
    // Once per data directory: the restarted master answers the client's retry.
    const std::string marker = config_.data_dir + "/crashed-after-commit";
    if (::access(marker.c_str(), F_OK) != 0 && std::ofstream(marker)) {
      spdlog::critical("--crash-after-commit {}: exiting before the answer", type);
      spdlog::default_logger()->flush();
      ::_exit(137);
    }
  }
  co_return reply;
}

awaitable<Reply> Master::handle_client(ConnectionPtr conn, Frame frame) {
  if (conn->tag == 0) conn->tag = next_conn_id_++;
  sessions_.heard_from(conn->tag, unix_ms());
  std::vector<FreedChunk> freed;
  switch (frame.header.msg_type()) {
    case pb::MOUNT: {
      PARSE_OR_REPLY(pb::MountReq, req);
      co_return co_await mount(conn, req);
    }
    case pb::UNMOUNT: {
      PARSE_OR_REPLY(pb::UnmountReq, req);
      Session* s = sessions_.find(req.session());
      if (!s || s->conn_id != conn->tag)
        co_return reply_error(error(Code::kNoSession, fmt::format("session {} is not this connection's", req.session())));
      end_session(req.session(), "unmounted");
      co_return reply_ok(pb::EmptyResp());
    }
    case pb::SESSION_HEARTBEAT:
      co_return reply_ok(pb::EmptyResp());
    case pb::ADMIN_LOGIN: {
      PARSE_OR_REPLY(pb::AdminLoginReq, req);
      if (Status st = check_admin_proof(config_.cluster_secret, req.unix_ms(), req.proof(), unix_ms()); !st.ok()) {
        spdlog::warn("admin login from {} ({}) refused: {}", conn->peer_name(), conn->peer(), st.message());
        co_return reply_error(st);
      }
      admin_conns_.insert(conn->tag);
      co_return reply_ok(pb::EmptyResp());
    }
    case pb::LOOKUP: {
      PARSE_OR_REPLY(pb::LookupReq, req);
      SESSION_OR_REPLY(session, req.parent());
      co_return attr_reply(ns_->lookup(req.parent(), req.name()));
    }
    case pb::GETATTR: {
      PARSE_OR_REPLY(pb::GetattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return attr_reply(ns_->getattr(req.inode()));
    }
    case pb::SETATTR: {
      PARSE_OR_REPLY(pb::SetattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return co_await setattr(req);
    }
    case pb::MKDIR: {
      PARSE_OR_REPLY(pb::MkdirReq, req);
      SESSION_OR_REPLY(session, req.parent());
      op_memory_->heard(req.op(), unix_ms());
      co_return co_await after_change(conn, changed_reply(*ns_, ns_->mkdir(req), req.parent()), req.parent());
    }
    case pb::CREATE: {
      PARSE_OR_REPLY(pb::CreateReq, req);
      SESSION_OR_REPLY(session, req.parent());
      op_memory_->heard(req.op(), unix_ms());
      bool created = false;
      auto attr = ns_->create(req, &freed, &created);
      if (attr.ok() && req.open()) ns_->hold_open(session, attr->inode());
      delete_chunks(freed);
      co_return co_await after_change(conn, changed_reply(*ns_, attr, req.parent(), 0, created), created ? req.parent() : 0);
    }
    case pb::OPEN: {
      PARSE_OR_REPLY(pb::OpenReq, req);
      SESSION_OR_REPLY(session, req.inode());
      auto attr = ns_->open(session, req.inode());
      if (!attr.ok()) co_return reply_error(attr.status());
      co_return reply_ok(open_reply(*attr));
    }
    case pb::RELEASE: {
      PARSE_OR_REPLY(pb::OpenReq, req);
      SESSION_OR_REPLY(session, req.inode());
      Reply r = status_reply(ns_->release(session, req.inode(), &freed));
      delete_chunks(freed);
      co_return std::move(r);
    }
    case pb::SYMLINK: {
      PARSE_OR_REPLY(pb::SymlinkReq, req);
      SESSION_OR_REPLY(session, req.parent());
      op_memory_->heard(req.op(), unix_ms());
      co_return co_await after_change(conn, changed_reply(*ns_, ns_->symlink(req), req.parent()), req.parent());
    }
    case pb::LINK: {
      PARSE_OR_REPLY(pb::LinkReq, req);
      SESSION_OR_REPLY(session, req.inode(), req.new_parent());
      op_memory_->heard(req.op(), unix_ms());
      co_return co_await after_change(conn, changed_reply(*ns_, ns_->link(req), req.new_parent()), req.new_parent());
    }
    case pb::READLINK: {
      PARSE_OR_REPLY(pb::ReadlinkReq, req);
      SESSION_OR_REPLY(session, req.inode());
      auto target = ns_->readlink(req.inode());
      if (!target.ok()) co_return reply_error(target.status());
      pb::ReadlinkResp resp;
      resp.set_target(*target);
      co_return reply_ok(resp);
    }
    case pb::UNLINK: {
      PARSE_OR_REPLY(pb::UnlinkReq, req);
      SESSION_OR_REPLY(session, req.parent());
      op_memory_->heard(req.op(), unix_ms());
      Reply r = changed_reply(*ns_, no_entry(ns_->unlink(req, &freed)), req.parent());
      delete_chunks(freed);
      co_return co_await after_change(conn, std::move(r), req.parent());
    }
    case pb::RMDIR: {
      PARSE_OR_REPLY(pb::UnlinkReq, req);
      SESSION_OR_REPLY(session, req.parent());
      op_memory_->heard(req.op(), unix_ms());
      co_return co_await after_change(conn, changed_reply(*ns_, no_entry(ns_->rmdir(req)), req.parent()),
                                      req.parent());
    }
    case pb::RENAME: {
      PARSE_OR_REPLY(pb::RenameReq, req);
      SESSION_OR_REPLY(session, req.parent(), req.new_parent());
      op_memory_->heard(req.op(), unix_ms());
      Reply r = changed_reply(*ns_, no_entry(ns_->rename(req, &freed)), req.parent(), req.new_parent());
      delete_chunks(freed);
      co_return co_await after_change(conn, std::move(r), req.parent(), req.new_parent());
    }
    case pb::READDIR: {
      PARSE_OR_REPLY(pb::ReaddirReq, req);
      SESSION_OR_REPLY(session, req.inode());
      auto listed = ns_->readdir(req);
      if (listed.ok() && req.watch() && !listed->more()) listed->set_watched(dir_watches_.watch(req.inode(), conn));
      co_return result_reply(listed);
    }
    case pb::SETXATTR: {
      PARSE_OR_REPLY(pb::SetxattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return status_reply(ns_->setxattr(req));
    }
    case pb::GETXATTR: {
      PARSE_OR_REPLY(pb::GetxattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      auto value = ns_->getxattr(req.inode(), req.name());
      if (!value.ok()) co_return reply_error(value.status());
      pb::GetxattrResp resp;
      resp.set_value(*value);
      co_return reply_ok(resp);
    }
    case pb::LISTXATTR: {
      PARSE_OR_REPLY(pb::ListxattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      auto names = ns_->listxattr(req.inode());
      if (!names.ok()) co_return reply_error(names.status());
      pb::ListxattrResp resp;
      for (auto& n : *names) resp.add_names(n);
      co_return reply_ok(resp);
    }
    case pb::REMOVEXATTR: {
      PARSE_OR_REPLY(pb::GetxattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return status_reply(ns_->removexattr(req.inode(), req.name()));
    }
    case pb::STATFS: {
      PARSE_OR_REPLY(pb::StatfsReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return statfs(req);
    }
    case pb::CHUNK_FOR_WRITE: {
      PARSE_OR_REPLY(pb::ChunkForWriteReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return co_await chunk_for_write(req);
    }
    case pb::CHUNK_LOCATE: {
      PARSE_OR_REPLY(pb::ChunkLocateReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return co_await chunk_locate(req);
    }
    case pb::APPEND: {
      PARSE_OR_REPLY(pb::AppendReq, req);
      SESSION_OR_REPLY(session, req.inode());
      if (Status st = co_await finish_cut_at_end(req.inode()); !st.ok()) co_return reply_error(st);
      auto offset = ns_->reserve_append(req.inode(), req.length());
      if (!offset.ok()) co_return reply_error(offset.status());
      pb::AppendResp resp;
      resp.set_offset(*offset);
      co_return reply_ok(resp);
    }
    case pb::SYNC:
      co_return co_await durable(reply_ok(pb::EmptyResp()));
    case pb::WRITE_END: {
      PARSE_OR_REPLY(pb::WriteEndReq, req);
      SESSION_OR_REPLY(session, req.inode());
      uint64_t growth = 0;
      auto attr = ns_->write_end(req, &growth);
      writing_.erase(req.chunk_id());  // the healer may copy it again
      if (writer_held_.erase(req.chunk_id())) queue_heal(req.chunk_id(), HealQueue::kUnderGoal);
      // The chunk grew on its servers: count it against their free space now rather than
      // at their next heartbeat, so that a burst of new chunks does not overfill one.
      if (attr.ok() && growth > 0)
        for (ChunkServer* cs : registry_.holders(req.chunk_id())) cs->used_bytes += growth;
      co_return attr_reply(attr);
    }
    case pb::VOLUME_CREATE: {
      PARSE_OR_REPLY(pb::VolumeCreateReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      auto created = ns_->create_volume(req);
      if (!created.ok()) co_return reply_error(created.status());
      const pb::VolumeInfo& info = created->info;
      spdlog::info("volume '{}' created (id {}, region {}, goal {}, size {}, inodes {})", info.name(), info.id(),
                   info.region(), info.goal(), info.size_bytes() ? human_bytes(info.size_bytes()) : "unlimited",
                   info.max_inodes() ? std::to_string(info.max_inodes()) : "unlimited");
      pb::VolumeCreateResp resp;
      *resp.mutable_volume() = info;
      resp.set_secret(created->secret);
      co_return co_await durable(reply_ok(resp));
    }
    case pb::VOLUME_LIST: {
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      pb::VolumeListResp resp;
      int64_t now = unix_ms();
      for (auto& v : ns_->list_volumes()) {
        pb::VolumeInfo* info = resp.add_volumes();
        *info = v;
        for (const Session* s : sessions_.list(v.id())) *info->add_sessions() = session_info(*s, now);
      }
      co_return reply_ok(resp);
    }
    case pb::VOLUME_RESIZE: {
      PARSE_OR_REPLY(pb::VolumeResizeReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      auto info = ns_->resize_volume(req);
      if (!info.ok()) co_return reply_error(info.status());
      spdlog::info("volume '{}' resized to {}", info->name(), human_bytes(info->size_bytes()));
      pb::VolumeCreateResp resp;
      *resp.mutable_volume() = *info;
      co_return co_await durable(reply_ok(resp));
    }
    case pb::VOLUME_REMOVE: {
      PARSE_OR_REPLY(pb::VolumeRemoveReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return co_await volume_remove(req);
    }
    case pb::SESSION_LIST: {
      PARSE_OR_REPLY(pb::SessionListReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return session_list(req);
    }
    case pb::CS_LIST:
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return cs_list();
    case pb::FSCK: {
      PARSE_OR_REPLY(pb::FsckReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return co_await fsck(req);
    }
    case pb::CS_DRAIN: {
      PARSE_OR_REPLY(pb::CsDrainReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return co_await cs_drain(req);
    }
    case pb::HEALTH:
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return co_await health();
    case pb::LOCK: {
      PARSE_OR_REPLY(pb::LockReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return status_reply(locks_.set(session, req));
    }
    case pb::GETLK: {
      PARSE_OR_REPLY(pb::LockReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return reply_ok(locks_.test(session, req));
    }
    default:
      co_return reply_error(
          error(Code::kNotSupported, fmt::format("message type {} is not served on the client port", frame.header.msg_type())));
  }
}
#undef PARSE_OR_REPLY

// An open file's attributes and, for files of up to 16 chunks (1 GiB), where every chunk
// is: the client's first read then goes straight to a chunkserver.
pb::ChunkLocateResp Master::open_reply(const pb::Attr& attr) {
  constexpr uint64_t kMaxChunks = 16;
  pb::ChunkLocateResp resp;
  if (attr.type() == pb::FT_REGULAR && attr.size() <= kMaxChunks * kChunkSize) {
    auto located = ns_->locate(attr.inode(), 0, kMaxChunks + 1);
    if (located.ok() && static_cast<uint64_t>(located->chunks_size()) <= kMaxChunks) {
      resp = std::move(*located);
      for (auto& info : *resp.mutable_chunks()) fill_replicas(&info, kRightRead);
      resp.set_all_chunks(true);
    }
  }
  *resp.mutable_attr() = attr;
  return resp;
}

void Master::client_closed(ConnectionPtr conn) {
  // Its sessions wait for the client to dial again; they expire if it does not.
  if (conn->tag != 0) sessions_.detach_connection(conn->tag);
  admin_conns_.erase(conn->tag);
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
  return error(Code::kPermissionDenied,
               "administration (volumes, sessions, chunkservers, health, fsck) needs the cluster secret "
               "(keelfs --cluster-secret-file, or $KEELFS_HOME/cluster.secret)");
}

void Master::end_session(uint64_t id, const std::string& why) {
  Session* s = sessions_.find(id);
  if (!s) return;
  spdlog::info("session {:x} of volume '{}' ({}:{} pid {}) ended: {}", id, s->volume, s->host, s->mount_point, s->pid,
               why);
  // A session that ends (unmount, crash, lost pod) keeps no file locked...
  locks_.release_session(id);
  // ...and holds no file open: the orphans only it held go now.
  std::vector<FreedChunk> freed;
  Status st = ns_->release_session(id, &freed);
  if (!st.ok()) spdlog::error("session {:x}: releasing its open files: {}", id, st.to_string());
  delete_chunks(freed);
  sessions_.remove(id);
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

awaitable<Reply> Master::durable(Reply reply) {
  Status st = co_await store_->durable();
  if (!st.ok()) co_return reply_error(st);
  co_return reply;
}

awaitable<Reply> Master::mount(const ConnectionPtr& conn, const pb::MountReq& req) {
  auto vol = ns_->find_volume(req.volume());
  if (!vol.ok()) co_return reply_error(vol.status());
  const std::string who = fmt::format("{} ({})", req.host().empty() ? conn->peer_name() : req.host(), conn->peer());
  const std::string region = req.region().empty() ? kDefaultRegion : req.region();
  if (region != vol->region()) {
    spdlog::warn("mount of volume '{}' from {} refused: host is in region {}, the volume in {}", vol->name(), who,
                 region, vol->region());
    co_return reply_error(error(Code::kPermissionDenied, fmt::format("volume {} is in region {}; this host is in {}",
                                                                      vol->name(), vol->region(), region)));
  }
  if (req.secret().empty() || !secret_matches(vol->secret_salt(), vol->secret_hash(), req.secret())) {
    spdlog::warn("mount of volume '{}' from {} refused: {} secret", vol->name(), who,
                 req.secret().empty() ? "no" : "wrong");
    co_return reply_error(error(Code::kPermissionDenied,
                                req.secret().empty()
                                    ? fmt::format("volume '{}' needs its secret (--secret-file or KEELFS_SECRET)", vol->name())
                                    : fmt::format("wrong secret for volume '{}'", vol->name())));
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
  co_return reply_ok(resp);
}

void Master::fill_replicas(pb::ChunkInfo* info, uint32_t rights) {
  for (ChunkServer* cs : registry_.holders(info->chunk_id())) {
    pb::Replica* r = info->add_replicas();
    r->set_cs_id(cs->id);
    r->set_address(cs->address);
  }
  pb::Ticket* t = info->mutable_ticket();
  t->set_chunk_id(info->chunk_id());
  t->set_version(info->version());
  t->set_rights(rights);
  t->set_expires_unix_ms(unix_ms() + config_.ticket_ttl_ms);
  sign_ticket(config_.cluster_secret, t);
}

awaitable<Reply> Master::chunk_for_write(const pb::ChunkForWriteReq& req) {
  if (req.index() >= (1ull << 32)) co_return reply_error(error(Code::kInvalidArgument, "chunk index out of range"));
  // A write into this chunk may grow the file over a truncate whose cut is not made yet:
  // make it first. (Writes inside the file need not wait for it.)
  if (Status st = co_await finish_cut_at_end(req.inode(), (req.index() + 1) * kChunkSize); !st.ok())
    co_return reply_error(st);
  auto attr = ns_->getattr(req.inode());
  if (!attr.ok()) co_return reply_error(attr.status());
  if (attr->type() != pb::FT_REGULAR)
    co_return reply_error(error(Code::kInvalidArgument, fmt::format("inode {} is not a regular file", req.inode())));
  pb::ChunkForWriteResp resp;
  pb::ChunkInfo* info = resp.mutable_chunk();
  info->set_index(req.index());
  std::vector<ChunkServer*> chain;
  // A new chunk for the file, unless another writer's set-up put one there first: then
  // that one is written (its new copies are deleted).
  for (int attempt = 0; attempt < 2 && info->chunk_id() == 0; ++attempt) {
    auto existing = ns_->chunk_at(req.inode(), req.index());
    if (!existing.ok()) co_return reply_error(existing.status());
    if (*existing) {
      // Set-ups of the same bytes of a chunk take turns (healing copies and cuts lock it all).
      auto guard = co_await chunk_locks_.lock((*existing)->chunk_id, 0, kChunkSize);
      auto now = ns_->chunk_at(req.inode(), req.index());
      if (!now.ok()) co_return reply_error(now.status());
      if (!*now || (*now)->chunk_id != (*existing)->chunk_id) continue;  // replaced meanwhile: again
      auto bumped = co_await bump_version(**now, std::nullopt);
      if (!bumped.ok()) co_return reply_error(bumped.status());
      chain = *bumped;
      info->set_chunk_id((*now)->chunk_id);
      info->set_version((*now)->version + 1);
      info->set_length((*now)->length);
      break;
    }
    auto vol = ns_->volume_by_id(attr->volume_id());
    if (!vol.ok()) co_return reply_error(vol.status());
    // A full volume takes no new chunk (writes inside existing chunks may still go on).
    if (Status st = ns_->check_bytes(vol->id(), 0, 1); !st.ok()) co_return reply_error(st);
    uint32_t goal = attr->goal() ? attr->goal() : vol->goal();
    std::optional<NewChunk> made = take_spare(vol->region(), goal);
    if (!made) {
      auto created = co_await new_chunk({vol->region(), goal});
      if (!created.ok()) co_return reply_error(created.status());
      made = std::move(*created);
      unfiled_ids_.erase(made->chunk_id);  // this file takes it now
    }
    const uint64_t chunk_id = made->chunk_id;
    std::vector<ChunkServer*> servers;
    for (uint64_t id : made->servers) servers.push_back(registry_.server(id));
    auto ref = ns_->add_chunk(req.inode(), req.index(), chunk_id);
    if (!ref.ok()) {
      // The file went, or another writer gave it a chunk here while these copies were made:
      // they belong to nothing.
      for (ChunkServer* cs : servers) delete_copy(*cs, chunk_id, 1);
      if (ref.status().is(Code::kExists)) continue;
      co_return reply_error(ref.status());
    }
    chain = std::move(servers);
    info->set_chunk_id(chunk_id);
    info->set_version(1);
    // Made on fewer servers than its goal: healed once its writer is done.
    if (chain.size() < goal) queue_heal(chunk_id, HealQueue::kUnderGoal);
  }
  if (info->chunk_id() == 0)
    co_return reply_error(error(Code::kUnavailable, fmt::format("inode {} chunk {}: set-ups raced; try again", req.inode(), req.index())));
  std::vector<uint64_t> ids;
  for (ChunkServer* cs : chain) ids.push_back(cs->id);
  registry_.set_locations(info->chunk_id(), ids);
  writing_[info->chunk_id()] = std::chrono::steady_clock::now();
  fill_replicas(info, kRightRead | kRightWrite);
  co_return reply_ok(resp);
}

awaitable<Reply> Master::chunk_locate(const pb::ChunkLocateReq& req) {
  auto resp = ns_->locate(req.inode(), req.first_index(), req.count());
  if (!resp.ok()) co_return reply_error(resp.status());
  for (auto& info : *resp->mutable_chunks()) fill_replicas(&info, kRightRead);
  co_return reply_ok(*resp);
}

awaitable<Reply> Master::setattr(const pb::SetattrReq& req) {
  const bool sizing = req.mask() & pb::SET_SIZE;
  // Growing past a cut not made yet: it is made first, so that the bytes between the old
  // end and the new one read as zeros. (A shrink need not wait for it.)
  if (sizing)
    if (Status st = co_await finish_cut_at_end(req.inode(), req.size()); !st.ok()) co_return reply_error(st);
  std::vector<FreedChunk> freed;
  auto attr = ns_->setattr(req, &freed);
  delete_chunks(freed);
  if (attr.ok() && (req.mask() & pb::SET_GOAL)) {
    // The file's chunks took the new goal: the healer adds or trims copies.
    (void)store_->list_extents(req.inode(), 0, 0, [&](uint64_t, const pb::FileExtent& e) {
      queue_heal(e.chunk_id(), HealQueue::kCheck);
    });
  }
  if (attr.ok() && sizing) {
    // Committed: now the chunk the new end cuts is cut on its servers. When that cannot be
    // done now, the cut stays pending and is made before the chunk is written again.
    if (Status st = co_await finish_cut_at_end(req.inode()); !st.ok())
      spdlog::warn("inode {}: truncated to {} bytes; the cut of its last chunk waits: {}", req.inode(), req.size(),
                   st.message());
  }
  co_return attr_reply(attr);
}

awaitable<Status> Master::finish_cut_at_end(uint64_t ino, uint64_t new_end) {
  if (!store_->has_pending_cuts()) co_return Status::Ok();  // the usual case: no read at all
  CO_ASSIGN_OR_RETURN(auto index, ns_->cut_pending_before(ino, new_end));
  if (!index) co_return Status::Ok();
  co_return co_await finish_cut(ino, *index);
}

awaitable<Status> Master::finish_cut(uint64_t ino, uint64_t index) {
  CO_ASSIGN_OR_RETURN(auto before, ns_->chunk_at(ino, index));
  if (!before) co_return Status::Ok();
  auto guard = co_await chunk_locks_.lock(before->chunk_id, 0, kChunkSize);
  CO_ASSIGN_OR_RETURN(auto chunk, ns_->chunk_at(ino, index));
  if (!chunk || chunk->chunk_id != before->chunk_id || !chunk->pending_cut) co_return Status::Ok();  // made meanwhile, or gone
  co_return (co_await bump_version(*chunk, chunk->pending_cut)).status();
}

Reply Master::statfs(const pb::StatfsReq& req) {
  auto attr = ns_->getattr(req.inode());
  if (!attr.ok()) return reply_error(attr.status());
  auto vol = ns_->volume_by_id(attr->volume_id());
  if (!vol.ok()) return reply_error(vol.status());
  uint64_t total = 0, free = 0;
  for (ChunkServer* cs : registry_.alive_in_region(vol->region())) {
    total += cs->total_bytes;
    free += cs->free_bytes();
  }
  // What the volume may still take: its size less what it holds, and no more than its
  // region's chunkservers can store at its goal.
  uint32_t goal = std::max<uint32_t>(1, vol->goal());
  pb::VolumeInfo info = ns_->volume_info(*vol);
  pb::StatfsResp resp;
  uint64_t region_free = free / goal;
  if (vol->size_bytes() != 0) {
    uint64_t left = vol->size_bytes() > info.logical_bytes() ? vol->size_bytes() - info.logical_bytes() : 0;
    resp.set_total_bytes(vol->size_bytes());
    resp.set_free_bytes(std::min(left, region_free));
  } else {
    resp.set_total_bytes(total / goal);
    resp.set_free_bytes(region_free);
  }
  resp.set_used_bytes(info.logical_bytes());
  uint64_t max_inodes = vol->max_inodes() != 0 ? vol->max_inodes() : (1ull << 40);
  resp.set_files(info.files());
  resp.set_free_files(max_inodes > info.files() ? max_inodes - info.files() : 0);
  return reply_ok(resp);
}

}  // namespace keelfs::master
