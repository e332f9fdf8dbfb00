#include "chunkserver/chunk_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chunkserver/store_set.h"
#include "common/async.h"
#include "common/crc32c.h"
#include "common/ticket.h"
#include "common/util.h"
#include "keelfs.pb.h"

namespace keelfs {

// The outcome of a request forwarded down the chain, awaited by the request that sent it.
struct ChunkService::Forward {
  explicit Forward(asio::any_io_executor ex) : done(ex) {}
  Event done;
  Status status;
};

ChunkService::ChunkService(asio::any_io_executor ex, StoreSet& stores, asio::thread_pool& disk_pool,
                           std::string cluster_secret, uint64_t replication_bytes_per_sec)
    : ex_(ex),
      stores_(stores),
      pool_(disk_pool),
      secret_(std::move(cluster_secret)),
      address_("?"),
      downstream_(pb::ROLE_CHUNKSERVER, "chunkserver"),
      replication_rate_(replication_bytes_per_sec) {}

ChunkService::~ChunkService() = default;

void ChunkService::set_address(std::string address) { address_ = std::move(address); }

RequestHandler ChunkService::data_handler() {
  return [this](ConnectionPtr conn, Frame frame) { return handle_data(std::move(conn), std::move(frame)); };
}

RequestHandler ChunkService::master_handler() {
  return [this](ConnectionPtr conn, Frame frame) { return handle_master(std::move(conn), std::move(frame)); };
}

void ChunkService::shutdown() { downstream_.close_all(); }

Status ChunkService::local_error(const Status& st) const {
  return error(st.code(), fmt::format("chunkserver {}: {}", address_, st.message()));
}

awaitable<Reply> ChunkService::handle_data(ConnectionPtr, Frame frame) {
  switch (frame.header.msg_type()) {
    case pb::CHUNK_READ: co_return co_await chunk_read(std::move(frame));
    case pb::CHUNK_WRITE: co_return co_await chunk_write(std::move(frame));
    case pb::CHUNK_SYNC: co_return co_await chunk_sync(std::move(frame));
    default:
      co_return reply_error(error(Code::kNotSupported, fmt::format("chunkserver {}: message type {} is not served on "
                                                                   "the data port",
                                                                   address_, frame.header.msg_type())));
  }
}

awaitable<Reply> ChunkService::handle_master(ConnectionPtr, Frame frame) {
  switch (frame.header.msg_type()) {
    case pb::CS_SET_VERSION: co_return co_await set_version(std::move(frame));
    case pb::CS_DELETE_CHUNK: co_return co_await delete_chunk(std::move(frame));
    case pb::CS_REPLICATE: co_return co_await replicate(std::move(frame));
    default:
      co_return reply_error(error(Code::kNotSupported, fmt::format("chunkserver {}: message type {} is not served on "
                                                                   "the master link",
                                                                   address_, frame.header.msg_type())));
  }
}

namespace {

// Counts a client's disk task while it runs (the network thread's coroutines only).
struct DiskTask {
  explicit DiskTask(int& n) : n_(n) { ++n_; }
  ~DiskTask() { --n_; }
  DiskTask(const DiskTask&) = delete;
  DiskTask& operator=(const DiskTask&) = delete;

 private:
  int& n_;
};

// Reads up to this size are done on the network thread when no other client request is
// on the disk pool: the hand-over to a pool thread and back costs two thread wake-ups,
// more than reading a few blocks (a small file's read is mostly that hand-over). Under
// load the pool takes them, so that reads still run side by side.
constexpr uint64_t kInlineReadMax = 64 << 10;

}  // namespace

void ChunkService::set_ended_sessions(const pb::CsHeartbeatResp& ended) {
  first_session_ = ended.first_session();
  ended_sessions_ = {ended.ended_sessions().begin(), ended.ended_sessions().end()};
}

Status ChunkService::check_session(const pb::Ticket& ticket) const {
  const uint64_t session = ticket.session();
  if (session == 0) return Status::Ok();  // the master's own (healing, compaction)
  if (session < first_session_ || ended_sessions_.count(session))
    return error(Code::kPermissionDenied, fmt::format("ticket for chunk {:016x} was given to session {:x}, which has "
                                                      "ended (unmounted, expired or evicted): mount again",
                                                      ticket.chunk_id(), session));
  return Status::Ok();
}

awaitable<Reply> ChunkService::chunk_read(Frame frame) {
  pb::ChunkReadReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
  if (Status st = check_ticket(secret_, req.ticket(), req.chunk_id(), req.version(), kRightRead, unix_ms()); !st.ok())
    co_return reply_error(local_error(st));
  if (Status st = check_session(req.ticket()); !st.ok()) co_return reply_error(local_error(st));
  if (req.length() > kMaxPayload)
    co_return reply_error(local_error(
        error(Code::kInvalidArgument, fmt::format("read of {} bytes exceeds the {} byte limit", req.length(), kMaxPayload))));
  struct Out {
    Result<std::string> data = std::string();
    uint64_t chunk_length = 0;
  };
  auto read = [this, &req] {
    Out o;
    o.data = stores_.read(req.chunk_id(), req.version(), req.offset(), req.length(), &o.chunk_length);
    return o;
  };
  Out out;
  if (req.length() <= kInlineReadMax && client_disk_tasks_ == 0) {
    out = read();
  } else {
    DiskTask busy(client_disk_tasks_);
    out = co_await run_in_pool(pool_, read);
  }
  if (!out.data.ok()) {
    spdlog::debug("read chunk {:016x} v{}: {}", req.chunk_id(), req.version(), out.data.status().to_string());
    if (out.data.status().is(Code::kCorruption) && damaged_)
      damaged_(req.chunk_id(), req.version(), out.data.status().message());
    co_return reply_error(local_error(out.data.status()));
  }
  pb::ChunkReadResp resp;
  resp.set_chunk_length(out.chunk_length);
  resp.set_payload_crc(crc32c(out.data->data(), out.data->size()));
  co_return reply_ok(resp, std::move(out.data).value());
}

awaitable<void> ChunkService::forward(std::shared_ptr<Forward> fwd, uint16_t type, std::string address,
                                      std::shared_ptr<const google::protobuf::MessageLite> request,
                                      std::string payload) {
  auto conn = co_await downstream_.get(address);
  if (!conn.ok()) {
    fwd->status = conn.status();
  } else {
    auto r = co_await (*conn)->call(type, *request, std::move(payload));
    if (!r.ok()) fwd->status = r.status();
  }
  // Errors from a downstream chunkserver already name it; connection errors do not.
  if (!fwd->status.ok() && fwd->status.message().rfind("chunkserver ", 0) != 0)
    fwd->status = error(fwd->status.code(), fmt::format("chunkserver {}: {}", address, fwd->status.message()));
  fwd->done.notify();
}

awaitable<Reply> ChunkService::chunk_write(Frame frame) {
  pb::ChunkWriteReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
  if (Status st = check_ticket(secret_, req.ticket(), req.chunk_id(), req.version(), kRightWrite, unix_ms()); !st.ok())
    co_return reply_error(local_error(st));
  if (Status st = check_session(req.ticket()); !st.ok()) co_return reply_error(local_error(st));
  if (Status st = check_chain(secret_, req.ticket(), address_, {req.chain().begin(), req.chain().end()}, req.hop());
      !st.ok())
    co_return reply_error(local_error(st));

  std::shared_ptr<Forward> fwd;
  if (req.chain_size() > 0) {
    auto down = std::make_shared<pb::ChunkWriteReq>(req);
    down->mutable_chain()->erase(down->mutable_chain()->begin());
    down->set_hop(hop_proof(secret_, req.ticket(), static_cast<uint32_t>(req.ticket().chain_size() - req.chain_size())));
    fwd = std::make_shared<Forward>(ex_);
    asio::co_spawn(ex_, forward(fwd, pb::CHUNK_WRITE, req.chain(0), down, frame.payload), asio::detached);
  }
  const std::string& data = frame.payload;
  Status local;
  {
    DiskTask busy(client_disk_tasks_);
    local = co_await run_in_pool(
        pool_, [this, &req, &data] { return stores_.write(req.chunk_id(), req.version(), req.offset(), data); });
  }
  if (fwd) co_await fwd->done.wait();

  if (!local.ok()) {
    if (local.is(Code::kIOError) || local.is(Code::kNoSpace) || local.is(Code::kCorruption))
      spdlog::warn("write chunk {:016x} v{} at {} ({} bytes): {}", req.chunk_id(), req.version(), req.offset(),
                   data.size(), local.to_string());
    // A copy the disk failed under is out, as after a failed sync: the master deletes it
    // (unless it is the last) and heals from another.
    if (local.is(Code::kIOError) && damaged_) damaged_(req.chunk_id(), req.version(), local.message());
    co_return reply_error(local_error(local));
  }
  if (fwd && !fwd->status.ok()) {
    spdlog::warn("write chunk {:016x} v{} down the chain: {}", req.chunk_id(), req.version(), fwd->status.to_string());
    co_return reply_error(fwd->status);
  }
  co_return reply_ok(pb::ChunkWriteResp());
}

awaitable<Reply> ChunkService::chunk_sync(Frame frame) {
  pb::ChunkSyncReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
  if (Status st = check_ticket(secret_, req.ticket(), req.chunk_id(), req.version(), kRightWrite, unix_ms()); !st.ok())
    co_return reply_error(local_error(st));
  if (Status st = check_session(req.ticket()); !st.ok()) co_return reply_error(local_error(st));
  if (Status st = check_chain(secret_, req.ticket(), address_, {req.chain().begin(), req.chain().end()}, req.hop());
      !st.ok())
    co_return reply_error(local_error(st));

  std::shared_ptr<Forward> fwd;
  if (req.chain_size() > 0) {
    auto down = std::make_shared<pb::ChunkSyncReq>(req);
    down->mutable_chain()->erase(down->mutable_chain()->begin());
    down->set_hop(hop_proof(secret_, req.ticket(), static_cast<uint32_t>(req.ticket().chain_size() - req.chain_size())));
    fwd = std::make_shared<Forward>(ex_);
    asio::co_spawn(ex_, forward(fwd, pb::CHUNK_SYNC, req.chain(0), down, {}), asio::detached);
  }
  Status local;
  {
    DiskTask busy(client_disk_tasks_);
    local = co_await run_in_pool(pool_, [this, &req] { return stores_.sync(req.chunk_id(), req.version()); });
  }
  if (fwd) co_await fwd->done.wait();

  if (!local.ok()) {
    if (local.is(Code::kIOError)) {
      spdlog::warn("sync chunk {:016x} v{}: {}", req.chunk_id(), req.version(), local.to_string());
      // A copy whose sync failed is out: the master deletes it and heals from another.
      if (damaged_) damaged_(req.chunk_id(), req.version(), local.message());
    }
    co_return reply_error(local_error(local));
  }
  if (fwd && !fwd->status.ok()) {
    spdlog::warn("sync chunk {:016x} v{} down the chain: {}", req.chunk_id(), req.version(), fwd->status.to_string());
    co_return reply_error(fwd->status);
  }
  co_return reply_ok(pb::EmptyResp());
}

awaitable<Reply> ChunkService::set_version(Frame frame) {
  pb::CsSetVersionReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
  Status st = co_await run_in_pool(pool_, [this, &req] {
    if (req.create()) return stores_.create(req.chunk_id(), req.new_version());
    std::optional<uint64_t> truncate;
    if (req.truncate()) truncate = req.truncate_length();
    return stores_.set_version(req.chunk_id(), req.old_version(), req.new_version(), truncate);
  });
  if (!st.ok()) {
    spdlog::info("master: {} chunk {:016x} v{} -> v{}: {}", req.create() ? "create" : "set version", req.chunk_id(),
                 req.old_version(), req.new_version(), st.to_string());
    co_return reply_error(local_error(st));
  }
  spdlog::debug("master: {} chunk {:016x} v{} -> v{}{}", req.create() ? "created" : "set version", req.chunk_id(),
                req.old_version(), req.new_version(),
                req.truncate() ? fmt::format(" length {}", req.truncate_length()) : std::string());
  co_return reply_ok(pb::EmptyResp());
}

awaitable<Reply> ChunkService::delete_chunk(Frame frame) {
  pb::CsDeleteChunkReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
  // One pool task for the whole batch; the first failure is the answer, the rest are logged.
  Status first = co_await run_in_pool(pool_, [this, &req] {
    Status failed;
    for (const pb::ChunkCopy& c : req.copies()) {
      Status st = stores_.remove(c.chunk_id(), c.version());
      if (st.ok() || st.is(Code::kNotFound)) {
        spdlog::debug("master: deleted chunk {:016x} v{}", c.chunk_id(), c.version());
        continue;
      }
      spdlog::info("master: delete chunk {:016x} v{}: {}", c.chunk_id(), c.version(), st.to_string());
      if (failed.ok()) failed = st;
    }
    return failed;
  });
  if (!first.ok()) co_return reply_error(local_error(first));
  co_return reply_ok(pb::EmptyResp());
}

awaitable<void> ChunkService::pace_replication(uint64_t bytes) {
  if (replication_rate_ == 0) co_return;
  // A virtual clock: each copied byte moves it on by 1/rate; copying waits while it is
  // ahead of real time, so all copies together stay at the rate and bursts do not pile up.
  auto now = std::chrono::steady_clock::now();
  if (replication_clock_ < now) replication_clock_ = now;
  replication_clock_ += std::chrono::nanoseconds(bytes * 1000000000ull / replication_rate_);
  if (replication_clock_ > now + std::chrono::milliseconds(1)) co_await sleep_for(replication_clock_ - now);
}

awaitable<Status> ChunkService::copy_from(const pb::CsReplicateReq& req) {
  constexpr uint32_t kPiece = 1 << 20;
  CO_ASSIGN_OR_RETURN(ConnectionPtr source, co_await downstream_.get(req.source()));
  uint64_t chunk_id = req.chunk_id();
  uint32_t version = req.version();
  CO_RETURN_IF_ERROR(co_await run_in_pool(pool_, [this, chunk_id, version] {
    if (stores_.find(chunk_id) != nullptr) {
      Status st = stores_.remove(chunk_id, 0);  // a stale copy of ours goes first
      if (!st.ok() && !st.is(Code::kNotFound)) return st;
    }
    return stores_.create(chunk_id, version);
  }));
  for (uint64_t offset = 0;;) {
    co_await pace_replication(kPiece);
    pb::ChunkReadReq read;
    read.set_chunk_id(chunk_id);
    read.set_version(version);
    read.set_offset(offset);
    read.set_length(kPiece);
    *read.mutable_ticket() = req.ticket();
    CO_ASSIGN_OR_RETURN(Frame f, co_await source->call(pb::CHUNK_READ, read));
    pb::ChunkReadResp resp;
    CO_RETURN_IF_ERROR(parse_body(f, &resp));
    const std::string& data = f.payload;
    if (crc32c(data.data(), data.size()) != resp.payload_crc())
      co_return error(Code::kCorruption, fmt::format("chunk {:016x} at {} from {}: CRC mismatch in transit", chunk_id,
                                                     offset, req.source()));
    if (!data.empty())
      CO_RETURN_IF_ERROR(co_await run_in_pool(
          pool_, [this, chunk_id, version, offset, &data] { return stores_.write(chunk_id, version, offset, data); }));
    offset += data.size();
    if (data.size() < kPiece || offset >= resp.chunk_length()) break;
  }
  co_return co_await run_in_pool(pool_, [this, chunk_id, version] { return stores_.sync(chunk_id, version); });
}

awaitable<Reply> ChunkService::replicate(Frame frame) {
  pb::CsReplicateReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
  Status st = co_await copy_from(req);
  if (!st.ok()) {
    spdlog::warn("replicating chunk {:016x} v{} from {}: {}", req.chunk_id(), req.version(), req.source(), st.to_string());
    uint64_t chunk_id = req.chunk_id();
    uint32_t version = req.version();
    (void)co_await run_in_pool(pool_, [this, chunk_id, version] { return stores_.remove(chunk_id, version); });
    co_return reply_error(local_error(st));
  }
  spdlog::info("chunk {:016x} v{} copied from {}", req.chunk_id(), req.version(), req.source());
  co_return reply_ok(pb::EmptyResp());
}

}  // namespace keelfs
