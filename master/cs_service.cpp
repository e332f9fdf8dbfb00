// The master's side of its chunkservers: registration, chunk reports, heartbeats, and the
// calls it makes to them (new chunks, version bumps, deletes).
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/auth.h"
#include "common/util.h"
#include "master/master.h"

namespace keelfs::master {
namespace {

constexpr auto kCsCallTimeout = std::chrono::seconds(15);

awaitable<Status> call_status(ConnectionPtr conn, uint16_t type, const google::protobuf::MessageLite& msg) {
  auto r = co_await conn->call(type, msg, {}, kCsCallTimeout);
  co_return r.ok() ? Status::Ok() : r.status();
}

// A copy at the current version holding fewer bytes than the chunk has (no cut pending,
// which would make it legitimately short): a power loss cut it back to its last sync.
bool lost_bytes(const pb::ChunkReport& copy, const ChunkRef& chunk) {
  return copy.length() < chunk.length && !chunk.pending_cut;
}

}  // namespace

pb::CsHeartbeatResp Master::ended_sessions_reply() {
  const int64_t now = unix_ms();
  pb::CsHeartbeatResp resp;
  resp.set_first_session(first_session_);
  for (auto it = ended_sessions_.begin(); it != ended_sessions_.end();) {
    if (it->second < now) {
      it = ended_sessions_.erase(it);  // every ticket it was given has expired
      continue;
    }
    resp.add_ended_sessions(it->first);
    ++it;
  }
  return resp;
}

awaitable<Reply> Master::serve_chunkserver(ConnectionPtr conn, Frame frame) {
  switch (frame.header.msg_type()) {
    case pb::CS_LOGIN: {
      pb::CsLoginReq req;
      if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
      if (req.cs_id() == 0 || req.address().empty())
        co_return reply_error(error(Code::kInvalidArgument, "login without chunkserver id or address"));
      const std::string subject = chunkserver_subject(req.cs_id(), req.address());
      if (Status st = check_login_proof(config_.cluster_secret, conn->nonces(), subject, req.proof(), "chunkserver login");
          !st.ok()) {
        spdlog::warn("chunkserver {:016x} at {} ({}) refused: {}", req.cs_id(), req.address(), conn->peer(), st.message());
        co_return reply_error(st);
      }
      conn->logged_in_as = subject;
      pb::CsLoginResp resp;
      resp.set_master_proof(master_login_proof(config_.cluster_secret, conn->nonces(), subject));
      co_return reply_ok(resp);
    }
    case pb::CS_REGISTER: {
      pb::CsRegisterReq req;
      if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
      if (req.cs_id() == 0 || req.address().empty())
        co_return reply_error(error(Code::kInvalidArgument, "registration without chunkserver id or address"));
      if (conn->logged_in_as.empty() || conn->logged_in_as != chunkserver_subject(req.cs_id(), req.address())) {
        spdlog::warn("chunkserver {:016x} at {} ({}) refused: registration without a login as it", req.cs_id(),
                     req.address(), conn->peer());
        co_return reply_error(error(Code::kPermissionDenied,
                                    "registration needs CS_LOGIN first, with the same chunkserver id and address"));
      }
      ChunkServer& cs = registry_.register_server(req, conn, unix_ms());
      cs.draining = draining_.count(cs.id) != 0;
      conn->tag = cs.id;
      spdlog::info("chunkserver {:016x} at {} registered (region '{}', {} chunks in first report, {} free)", cs.id,
                   cs.address, cs.region, req.chunks_size(), human_bytes(cs.free_bytes()));
      co_await check_reported_chunks(cs, req.chunks());
      sweep_soon();
      co_return reply_ok(pb::CsRegisterResp());
    }
    case pb::CS_REPORT_CHUNKS: {
      pb::CsReportChunksReq req;
      if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
      ChunkServer* cs = registry_.server(conn->tag);
      if (!cs || cs->conn != conn) co_return reply_error(error(Code::kInvalidArgument, "chunk report before registration"));
      co_await check_reported_chunks(*cs, req.chunks());
      co_return reply_ok(pb::EmptyResp());
    }
    case pb::CS_HEARTBEAT: {
      pb::CsHeartbeatReq req;
      if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
      ChunkServer* cs = registry_.server(conn->tag);
      if (!cs || cs->conn != conn) co_return reply_error(error(Code::kInvalidArgument, "heartbeat before registration"));
      registry_.heartbeat(cs->id, req, unix_ms());
      co_return reply_ok(ended_sessions_reply());
    }
    case pb::CS_REPORT_DAMAGED: {
      pb::CsDamagedReq req;
      if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
      ChunkServer* cs = registry_.server(conn->tag);
      if (!cs || cs->conn != conn) co_return reply_error(error(Code::kInvalidArgument, "report before registration"));
      spdlog::warn("chunk {:016x} v{} on {} is damaged ({})", req.chunk_id(), req.version(), cs->address, req.reason());
      ++damaged_reported_;
      if (registry_.holders(req.chunk_id()).size() <= 1) {
        // Never the last copy: its other blocks may still be all there is.
        if (damaged_last_copy_.insert(req.chunk_id()).second)
          spdlog::error("chunk {:016x} v{}: the damaged copy on {} is the only one left; keeping it (its other blocks "
                        "still read)", req.chunk_id(), req.version(), cs->address);
        co_return reply_ok(pb::EmptyResp());
      }
      spdlog::warn("chunk {:016x}: deleting the damaged copy on {}; healing makes a new one", req.chunk_id(), cs->address);
      registry_.remove_location(req.chunk_id(), cs->id);
      delete_copy(*cs, req.chunk_id(), req.version());
      queue_heal(req.chunk_id(), HealQueue::kUnderGoal);
      co_return reply_ok(pb::EmptyResp());
    }
    default:
      co_return reply_error(error(Code::kNotSupported,
                                  fmt::format("message type {} is not served on the chunkserver port", frame.header.msg_type())));
  }
}

awaitable<void> Master::liveness_loop() {
  int64_t shortest = std::min(config_.cs_timeout_ms, config_.session_timeout_ms);
  auto period = std::chrono::milliseconds(std::clamp<int64_t>(shortest / 4, 50, 1000));
  while (!stopping_) {
    co_await sleep_for(period);
    int64_t now = unix_ms();
    if (now - last_op_prune_ms_ >= kOpPruneEveryMs) {
      op_memory_->prune(now, config_.op_memory_ms);
      last_op_prune_ms_ = now;
    }
    for (uint64_t id : sessions_.expired(now, config_.session_timeout_ms))
      end_session(id, fmt::format("expired: not heard from for more than {} ms", config_.session_timeout_ms));
    for (ChunkServer* cs : registry_.servers()) {
      if (!cs->alive || !cs->conn || now - cs->last_heartbeat_ms <= config_.cs_timeout_ms) continue;
      // Closing the link makes it dead (chunkserver_closed); when the machine wakes up, its
      // master link notices and registers again with its full chunk list.
      cs->conn->close(error(Code::kTimeout, fmt::format("no heartbeat for {} ms", now - cs->last_heartbeat_ms)));
    }
  }
}

void Master::chunkserver_closed(ConnectionPtr conn, const Status& reason) {
  ChunkServer* cs = registry_.server(conn->tag);
  if (!cs || cs->conn != conn) return;
  spdlog::warn("chunkserver {:016x} at {} disconnected: {}", cs->id, cs->address, reason.message());
  registry_.server_lost(cs->id);
  asio::co_spawn(io_, copies_lost(cs->incarnation), asio::detached);
}

awaitable<void> Master::check_reported_chunks(ChunkServer& cs,
                                              const google::protobuf::RepeatedPtrField<pb::ChunkReport>& chunks) {
  // A report can hold a million chunks: checked in slices, between clients' requests. A
  // server that lost its link meanwhile (and may have registered again with a new report)
  // makes the rest of this one void.
  Slicer slicer;
  const ConnectionPtr link = cs.conn;
  auto drain_needs = drain_needs_.find(cs.id);
  for (const pb::ChunkReport& c : chunks) {
    if (slicer.due()) {
      co_await slicer.yield();
      if (cs.conn != link || !cs.alive) co_return;
    }
    auto known = ns_->chunk(c.chunk_id());
    if (!known.ok()) {
      spdlog::error("checking chunk {:016x} from {}: {}", c.chunk_id(), cs.address, known.status().message());
      continue;
    }
    if (!*known) {
      if (unfiled_ids_.count(c.chunk_id())) continue;  // made ahead, not handed out yet
      spdlog::info("chunk {:016x} on {} belongs to no file: deleting it", c.chunk_id(), cs.address);
      delete_copy(cs, c.chunk_id(), c.version());
    } else if (c.version() < (*known)->version && damaged_last_copy_.count(c.chunk_id())) {
      // Older, but maybe whole where the current one is not: not deleted, not served either.
      spdlog::error("chunk {:016x} on {} is stale (version {} < {}), and the only current copy is damaged: the stale "
                    "one is kept on disk, not served", c.chunk_id(), cs.address, c.version(), (*known)->version);
    } else if (c.version() < (*known)->version) {
      spdlog::info("chunk {:016x} on {} is stale (version {} < {}): deleting it", c.chunk_id(), cs.address, c.version(),
                   (*known)->version);
      ++stale_deleted_;
      delete_copy(cs, c.chunk_id(), c.version());
    } else if (c.version() > (*known)->version) {
      // The master died between bumping the copies and recording it: the copy is newer.
      spdlog::warn("chunk {:016x} on {} has version {} > recorded {}: adopting it", c.chunk_id(), cs.address,
                   c.version(), (*known)->version);
      if (ns_->set_chunk_version(c.chunk_id(), c.version(), std::nullopt).ok()) {
        registry_.set_locations(c.chunk_id(), {cs.id});
        queue_heal(c.chunk_id(), HealQueue::kOneCopyLeft);
      }
    } else if (lost_bytes(c, **known) && !registry_.holders(c.chunk_id()).empty()) {
      // Shorter than the bytes recorded in it: the copy lost some (a power loss cut it back
      // to its last sync). Made again from a copy that has them.
      spdlog::warn("chunk {:016x} on {} has {} bytes, {} recorded: it lost bytes; deleting it, healing makes a new one",
                   c.chunk_id(), cs.address, c.length(), (*known)->length);
      ++damaged_reported_;
      delete_copy(cs, c.chunk_id(), c.version());
      queue_heal(c.chunk_id(), HealQueue::kUnderGoal);
    } else {
      if (lost_bytes(c, **known)) {
        spdlog::error("chunk {:016x} on {} has {} bytes, {} recorded, and is its only copy so far: kept", c.chunk_id(),
                      cs.address, c.length(), (*known)->length);
        damaged_last_copy_.insert(c.chunk_id());
      }
      registry_.add_location(c.chunk_id(), cs.id);
      if (drain_needs != drain_needs_.end()) drain_needs->second.insert(c.chunk_id());
      // Back to goal, or over it (copies made while this server was away): a look decides.
      if (registry_.holders(c.chunk_id()).size() != (*known)->goal || drain_needs != drain_needs_.end())
        heal_queue_.push(c.chunk_id(), HealQueue::kCheck);
    }
  }
  wake_healer();
  Status synced = co_await store_->durable();
  if (!synced.ok()) spdlog::error("chunkserver {:016x}'s report: {}", cs.id, synced.to_string());
}

void Master::delete_chunks(const std::vector<FreedChunk>& freed) {
  for (const FreedChunk& f : freed) {
    for (ChunkServer* cs : registry_.holders(f.chunk_id)) delete_copy(*cs, f.chunk_id, 0);
    registry_.forget_chunk(f.chunk_id);
  }
}

void Master::delete_copy(ChunkServer& cs, uint64_t chunk_id, uint32_t version) {
  if (!cs.conn) return;
  pb::ChunkCopy* c = deletions_[cs.id].add_copies();
  c->set_chunk_id(chunk_id);
  c->set_version(version);
  if (!deletions_due_) {
    deletions_due_ = true;
    asio::co_spawn(io_, send_deletions(), asio::detached);
  }
}

// Deletions are background work. They leave in one request per chunkserver, so an `rm -r`
// of many small files costs the chunkservers a handful of requests, not two per file. While
// clients keep changing names they only trickle out (kTricklePerTick copies per chunkserver
// every kTick, as MooseFS limits its deletions), so the chunkservers' unlinking does not
// slow the `rm -r` itself, or what runs right after it, on shared cores and disks; the
// rest leaves at the first pause.
awaitable<void> Master::send_deletions() {
  constexpr auto kTick = std::chrono::milliseconds(20);
  constexpr int kTricklePerTick = 10;  // 500 copies a second per chunkserver
  while (!deletions_.empty()) {
    co_await sleep_for(kTick);
    const bool busy = std::chrono::steady_clock::now() - last_name_change_ < kTick && !stopping_;
    std::map<uint64_t, pb::CsDeleteChunkReq> batches;
    if (busy) {
      for (auto it = deletions_.begin(); it != deletions_.end();) {
        auto* copies = it->second.mutable_copies();
        const int n = std::min(copies->size(), kTricklePerTick);
        auto* out = batches[it->first].mutable_copies();
        for (int i = 0; i < n; ++i) *out->Add() = copies->Get(i);
        copies->DeleteSubrange(0, n);
        it = copies->empty() ? deletions_.erase(it) : std::next(it);
      }
    } else {
      batches = std::move(deletions_);
      deletions_.clear();
    }
    for (auto& [cs_id, req] : batches) {
      ChunkServer* cs = registry_.server(cs_id);
      if (!cs || !cs->conn) continue;  // it reports them again when it registers
      auto run = [](ConnectionPtr conn, std::string address, pb::CsDeleteChunkReq req) -> awaitable<void> {
        Status st = co_await call_status(conn, pb::CS_DELETE_CHUNK, req);
        if (!st.ok()) spdlog::warn("deleting {} chunk copies on {}: {}", req.copies_size(), address, st.message());
      };
      asio::co_spawn(io_, run(cs->conn, cs->address, std::move(req)), asio::detached);
    }
  }
  deletions_due_ = false;
}

awaitable<Result<std::vector<ChunkServer*>>> Master::bump_version(const ChunkRef& chunk,
                                                                  std::optional<uint64_t> truncate) {
  if (!truncate) truncate = chunk.pending_cut;
  std::vector<ChunkServer*> holders = registry_.holders(chunk.chunk_id);
  if (holders.empty())
    co_return error(Code::kUnavailable, fmt::format("chunk {:016x} has no live copy", chunk.chunk_id));
  pb::CsSetVersionReq req;
  req.set_chunk_id(chunk.chunk_id);
  req.set_old_version(chunk.version);
  req.set_new_version(chunk.version + 1);
  if (truncate) {
    req.set_truncate(true);
    req.set_truncate_length(*truncate);
  }
  std::vector<awaitable<Status>> calls;
  for (ChunkServer* cs : holders) calls.push_back(call_status(cs->conn, pb::CS_SET_VERSION, req));
  std::vector<Status> results = co_await when_all(std::move(calls));
  std::vector<ChunkServer*> done;
  std::vector<uint64_t> ids;
  Status first_error;
  for (size_t i = 0; i < holders.size(); ++i) {
    if (results[i].ok()) {
      done.push_back(holders[i]);
      ids.push_back(holders[i]->id);
    } else {
      spdlog::warn("chunk {:016x}: version {} -> {} failed on {}: {}", chunk.chunk_id, chunk.version,
                   chunk.version + 1, holders[i]->address, results[i].message());
      if (first_error.ok()) first_error = results[i];
    }
  }
  if (done.empty())
    co_return error(Code::kUnavailable,
                    fmt::format("chunk {:016x}: no copy took version {}: {}", chunk.chunk_id, chunk.version + 1,
                                first_error.message()));
  CO_RETURN_IF_ERROR(ns_->set_chunk_version(chunk.chunk_id, chunk.version + 1, truncate));
  registry_.set_locations(chunk.chunk_id, ids);
  if (done.size() < std::max<uint32_t>(1, chunk.goal)) queue_heal(chunk.chunk_id, HealQueue::kUnderGoal);
  co_return done;
}

awaitable<std::vector<ChunkServer*>> Master::create_on(uint64_t chunk_id, const std::vector<ChunkServer*>& servers) {
  pb::CsSetVersionReq req;
  req.set_chunk_id(chunk_id);
  req.set_new_version(1);
  req.set_create(true);
  std::vector<awaitable<Status>> calls;
  for (ChunkServer* cs : servers) calls.push_back(call_status(cs->conn, pb::CS_SET_VERSION, req));
  std::vector<Status> results = co_await when_all(std::move(calls));
  std::vector<ChunkServer*> done;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (results[i].ok())
      done.push_back(servers[i]);
    else
      spdlog::warn("creating chunk {:016x} on {} failed: {}", chunk_id, servers[i]->address, results[i].message());
  }
  co_return done;
}

}  // namespace keelfs::master
