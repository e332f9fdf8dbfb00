// Where a client's or admin's request enters the master: one case per message type.
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/auth.h"
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
    case pb::MOUNT_SALT: {
      PARSE_OR_REPLY(pb::MountSaltReq, req);
      auto vol = ns_->find_volume(req.volume());
      if (!vol.ok()) co_return reply_error(vol.status());
      pb::MountSaltResp resp;
      resp.set_salt(vol->secret_salt());
      co_return reply_ok(resp);
    }
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
      // Proved with the cluster secret: an admin. With the monitoring key: a reader. The
      // answer proves the master holds the same key.
      pb::AdminLoginResp resp;
      Status st = check_login_proof(config_.cluster_secret, conn->nonces(), admin_subject(), req.proof(), "admin login");
      if (st.ok()) {
        admin_conns_.insert(conn->tag);
        resp.set_master_proof(master_login_proof(config_.cluster_secret, conn->nonces(), admin_subject()));
        co_return reply_ok(resp);
      }
      const std::string reader_key = monitor_key(config_.cluster_secret);
      if (check_login_proof(reader_key, conn->nonces(), admin_subject(), req.proof(), "admin login").ok()) {
        monitor_conns_.insert(conn->tag);
        resp.set_master_proof(master_login_proof(reader_key, conn->nonces(), admin_subject()));
        resp.set_read_only(true);
        co_return reply_ok(resp);
      }
      spdlog::warn("admin login from {} ({}) refused: {}", conn->peer_name(), conn->peer(), st.message());
      co_return reply_error(st);
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
    case pb::DU: {
      PARSE_OR_REPLY(pb::DuReq, req);
      SESSION_OR_REPLY(session, req.inode());
      auto figures = ns_->du(req.inode());
      if (!figures.ok()) co_return reply_error(figures.status());
      co_return reply_ok(*figures);
    }
    case pb::SETATTR: {
      PARSE_OR_REPLY(pb::SetattrReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return attr_reply(co_await setattr(req));
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
      co_return reply_ok(open_reply(session, *attr));
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
      op_memory_->heard(req.op(), unix_ms());
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
      op_memory_->heard(req.op(), unix_ms());
      co_return status_reply(ns_->removexattr(req.inode(), req.name(), req.op()));
    }
    case pb::STATFS: {
      PARSE_OR_REPLY(pb::StatfsReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return statfs(req);
    }
    case pb::CHUNK_FOR_WRITE: {
      PARSE_OR_REPLY(pb::ChunkForWriteReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return co_await chunk_for_write(session, req);
    }
    case pb::PACK_OPEN: {
      PARSE_OR_REPLY(pb::PackOpenReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return co_await pack_open(session, req);
    }
    case pb::PACK_COMMIT: {
      PARSE_OR_REPLY(pb::PackCommitReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return attr_reply(pack_commit(session, req));
    }
    case pb::UNPACK_END: {
      PARSE_OR_REPLY(pb::UnpackEndReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return status_reply(unpack_end(req));
    }
    case pb::CHUNK_LOCATE: {
      PARSE_OR_REPLY(pb::ChunkLocateReq, req);
      SESSION_OR_REPLY(session, req.inode());
      co_return co_await chunk_locate(session, req);
    }
    case pb::APPEND: {
      PARSE_OR_REPLY(pb::AppendReq, req);
      SESSION_OR_REPLY(session, req.inode());
      if (Status st = co_await finish_cut_at_end(req.inode()); !st.ok()) co_return reply_error(st);
      op_memory_->heard(req.op(), unix_ms());
      auto offset = ns_->reserve_append(req.inode(), req.length(), req.op());
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
      const pb::VolumeInfo& info = *created;
      spdlog::info("volume '{}' created (id {}, region {}, goal {}, size {}, inodes {})", info.name(), info.id(),
                   info.region(), info.goal(), info.size_bytes() ? human_bytes(info.size_bytes()) : "unlimited",
                   info.max_inodes() ? std::to_string(info.max_inodes()) : "unlimited");
      pb::VolumeCreateResp resp;
      *resp.mutable_volume() = info;
      co_return co_await durable(reply_ok(resp));
    }
    case pb::VOLUME_LIST: {
      if (Status st = check_reader(conn); !st.ok()) co_return reply_error(st);
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
      if (Status st = check_reader(conn); !st.ok()) co_return reply_error(st);
      co_return session_list(req);
    }
    case pb::CS_LIST:
      if (Status st = check_reader(conn); !st.ok()) co_return reply_error(st);
      co_return cs_list();
    case pb::FSCK: {
      PARSE_OR_REPLY(pb::FsckReq, req);
      if (Status st = check_reader(conn); !st.ok()) co_return reply_error(st);
      co_return co_await fsck(req);
    }
    case pb::CS_DRAIN: {
      PARSE_OR_REPLY(pb::CsDrainReq, req);
      if (Status st = check_admin(conn); !st.ok()) co_return reply_error(st);
      co_return co_await cs_drain(req);
    }
    case pb::HEALTH:
      if (Status st = check_reader(conn); !st.ok()) co_return reply_error(st);
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

awaitable<Reply> Master::durable(Reply reply) {
  Status st = co_await store_->durable();
  if (!st.ok()) co_return reply_error(st);
  co_return reply;
}

}  // namespace keelfs::master
