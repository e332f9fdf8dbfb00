#include "chunkserver/master_link.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chunkserver/store_set.h"
#include "common/async.h"
#include "common/auth.h"
#include "common/util.h"
#include "keelfs.pb.h"

namespace keelfs {
namespace {

void add_reports(const std::vector<ChunkMeta>& chunks, size_t begin, size_t end,
                 google::protobuf::RepeatedPtrField<pb::ChunkReport>* out) {
  out->Reserve(static_cast<int>(end - begin));
  for (size_t i = begin; i < end; ++i) {
    pb::ChunkReport* r = out->Add();
    r->set_chunk_id(chunks[i].id);
    r->set_version(chunks[i].version);
    r->set_length(chunks[i].length);
  }
}

}  // namespace

MasterLink::MasterLink(asio::any_io_executor ex, StoreSet& stores, asio::thread_pool& disk_pool,
                       RequestHandler master_requests, MasterLinkOptions options)
    : ex_(ex),
      stores_(stores),
      pool_(disk_pool),
      handler_(std::move(master_requests)),
      opts_(std::move(options)),
      timer_(ex) {}

MasterLink::~MasterLink() = default;

void MasterLink::start() { asio::co_spawn(ex_, run(), asio::detached); }

void MasterLink::stop() {
  stopped_ = true;
  timer_.cancel();
  if (conn_) conn_->close(error(Code::kUnavailable, "chunkserver stopping"));
  conn_.reset();
}

awaitable<void> MasterLink::sleep(std::chrono::milliseconds d) {
  timer_.expires_after(d);
  error_code ec;
  co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<Status> MasterLink::log_in(ConnectionPtr conn) {
  const std::string subject = chunkserver_subject(stores_.cs_id(), opts_.address);
  pb::CsLoginReq req;
  req.set_cs_id(stores_.cs_id());
  req.set_address(opts_.address);
  req.set_proof(login_proof(opts_.cluster_secret, conn->nonces(), subject));
  pb::CsLoginResp resp;
  auto r = co_await conn->call_into(pb::CS_LOGIN, req, &resp);
  if (!r.ok()) co_return r.status();
  CO_RETURN_IF_ERROR(check_master_login_proof(opts_.cluster_secret, conn->nonces(), subject, resp.master_proof(),
                                              opts_.master_address));
  conn->logged_in_as = "master";
  co_return Status::Ok();
}

awaitable<Reply> MasterLink::serve_master(ConnectionPtr conn, Frame frame) {
  if (conn->logged_in_as.empty()) {
    spdlog::warn("refused message type {} from {}: the master has not proved itself on this connection",
                 frame.header.msg_type(), conn->peer());
    co_return reply_error(error(Code::kPermissionDenied, "the master has not proved itself on this connection"));
  }
  co_return co_await handler_(std::move(conn), std::move(frame));
}

awaitable<Status> MasterLink::register_with(ConnectionPtr conn) {
  Status logged_in = co_await log_in(conn);
  if (!logged_in.ok()) co_return logged_in;
  struct Snapshot {
    std::vector<ChunkMeta> chunks;
    SpaceInfo space;
  };
  Snapshot snap = co_await run_in_pool(pool_, [this] { return Snapshot{stores_.list(), stores_.space()}; });
  const auto& chunks = snap.chunks;

  pb::CsRegisterReq reg;
  reg.set_cs_id(stores_.cs_id());
  reg.set_address(opts_.address);
  reg.set_region(opts_.region);
  reg.set_zone(opts_.zone);
  reg.set_host(opts_.host);
  reg.set_total_bytes(snap.space.total_bytes);
  reg.set_used_bytes(snap.space.used_bytes);
  size_t pos = std::min(chunks.size(), kReportBatch);
  add_reports(chunks, 0, pos, reg.mutable_chunks());
  reg.set_last_batch(pos == chunks.size());
  pb::CsRegisterResp reg_resp;
  auto r = co_await conn->call_into(pb::CS_REGISTER, reg, &reg_resp);
  if (!r.ok()) co_return r.status();

  while (pos < chunks.size()) {
    size_t end = std::min(chunks.size(), pos + kReportBatch);
    pb::CsReportChunksReq rep;
    add_reports(chunks, pos, end, rep.mutable_chunks());
    rep.set_last_batch(end == chunks.size());
    auto rr = co_await conn->call(pb::CS_REPORT_CHUNKS, rep);
    if (!rr.ok()) co_return rr.status();
    pos = end;
  }
  spdlog::info("registered with master {} as chunkserver {:016x} ({}, region {}): {} chunks", opts_.master_address,
               stores_.cs_id(), opts_.address, opts_.region, chunks.size());
  co_return Status::Ok();
}

awaitable<void> MasterLink::run() {
  bool down_logged = false;
  while (!stopped_) {
    auto dialed = co_await dial(opts_.master_address, pb::ROLE_CHUNKSERVER, opts_.address,
                                [this](ConnectionPtr c, Frame f) { return serve_master(std::move(c), std::move(f)); });
    if (stopped_) {
      if (dialed.ok()) (*dialed)->close(error(Code::kUnavailable, "chunkserver stopping"));
      break;
    }
    if (!dialed.ok()) {
      if (!down_logged) {
        spdlog::warn("master {} unreachable: {}; retrying every {} ms", opts_.master_address,
                     dialed.status().message(), opts_.retry.count());
        down_logged = true;
      } else {
        spdlog::debug("master {} still unreachable: {}", opts_.master_address, dialed.status().message());
      }
      co_await sleep(opts_.retry);
      continue;
    }
    conn_ = *dialed;
    Status st = co_await register_with(conn_);
    if (stopped_) break;
    if (!st.ok()) {
      if (!down_logged) {
        spdlog::warn("registration with master {} failed: {}; retrying every {} ms", opts_.master_address,
                     st.to_string(), opts_.retry.count());
        down_logged = true;
      }
      conn_->close(st);
      conn_.reset();
      co_await sleep(opts_.retry);
      continue;
    }
    down_logged = false;
    registered_ = true;

    while (!stopped_ && conn_ && conn_->is_open()) {
      co_await sleep(opts_.heartbeat);
      if (stopped_ || !conn_ || !conn_->is_open()) break;
      SpaceInfo space = co_await run_in_pool(pool_, [this] { return stores_.space(); });
      pb::CsHeartbeatReq hb;
      hb.set_total_bytes(space.total_bytes);
      hb.set_used_bytes(space.used_bytes);
      hb.set_chunks(stores_.chunk_count());
      auto hr = co_await conn_->call(pb::CS_HEARTBEAT, hb, {}, std::max(opts_.heartbeat * 10, std::chrono::milliseconds(10000)));
      if (!hr.ok() && conn_ && conn_->is_open() && !hr.status().is(Code::kTimeout)) {
        // The master answered with an error (e.g. it forgot us after a restart): register again.
        spdlog::warn("heartbeat to master {} refused: {}; registering again", opts_.master_address,
                     hr.status().to_string());
        conn_->close(hr.status());
        break;
      }
      if (!hr.ok() && hr.status().is(Code::kTimeout)) {
        spdlog::warn("heartbeat to master {}: {}; reconnecting", opts_.master_address, hr.status().message());
        conn_->close(hr.status());
        break;
      }
      pb::CsHeartbeatResp answer;
      if (hr.ok() && parse_body(*hr, &answer).ok() && opts_.on_heartbeat_answer) opts_.on_heartbeat_answer(answer);
    }
    registered_ = false;
    if (stopped_) break;
    spdlog::warn("lost connection to master {}; retrying every {} ms", opts_.master_address, opts_.retry.count());
    down_logged = true;
    conn_.reset();
    co_await sleep(opts_.retry);
  }
  conn_.reset();
}

void MasterLink::report_damaged(uint64_t chunk_id, uint32_t version, const std::string& reason) {
  if (!conn_ || !registered_) return;
  auto send = [](ConnectionPtr conn, pb::CsDamagedReq req) -> awaitable<void> {
    auto r = co_await conn->call(pb::CS_REPORT_DAMAGED, req);
    if (!r.ok()) spdlog::warn("reporting damaged chunk {:016x}: {}", req.chunk_id(), r.status().message());
  };
  pb::CsDamagedReq req;
  req.set_chunk_id(chunk_id);
  req.set_version(version);
  req.set_reason(reason);
  asio::co_spawn(ex_, send(conn_, std::move(req)), asio::detached);
}

}  // namespace keelfs
