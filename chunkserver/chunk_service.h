// ChunkService: the chunkserver's request handlers.
//
// Data port (data_handler), from clients and upstream chunkservers:
//   CHUNK_READ   ChunkReadReq  -> ChunkReadResp{chunk_length}, payload = the bytes
//                (clipped at the chunk's end; length > kMaxPayload is InvalidArgument)
//   CHUNK_WRITE  ChunkWriteReq + payload -> ChunkWriteResp
//                Writes locally (disk pool) and, at the same time, forwards the same
//                request with chain[1..] to chain[0]; OK only when both succeeded.
//   CHUNK_SYNC   ChunkSyncReq  -> EmptyResp; syncs locally and down the chain likewise.
// Every CHUNK_* request first needs a valid ticket (read right for READ, write right for
// WRITE/SYNC): otherwise PermissionDenied. An error names the chunkserver it happened on
// ("chunkserver 10.0.0.2:9522: StaleVersion ...").
//
// Master link (master_handler), only from the master's connection:
//   CS_SET_VERSION  CsSetVersionReq -> EmptyResp (create, or bump version / truncate)
//   CS_DELETE_CHUNK CsDeleteChunkReq -> EmptyResp (idempotent: a missing chunk is OK;
//                   StaleVersion when a different version is present)
//   CS_REPLICATE    CsReplicateReq -> EmptyResp: pulls a chunk from another chunkserver,
//                   CRC-checked, at most `replication_bytes_per_sec` over all copies.
// The data port refuses the master's messages and vice versa (NotSupported).
//
// Threading: handlers run on the network executor (one thread); disk work goes to the
// disk pool through run_in_pool.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_set>

#include "common/rpc.h"

namespace keelfs::pb {
class CsReplicateReq;
}

namespace keelfs {
namespace pb {
class CsHeartbeatResp;
class Ticket;
}  // namespace pb


class StoreSet;

class ChunkService {
 public:
  // REQUIRES: stores and disk_pool outlive the service and every request it serves.
  ChunkService(asio::any_io_executor ex, StoreSet& stores, asio::thread_pool& disk_pool, std::string cluster_secret,
               uint64_t replication_bytes_per_sec = 0);
  ~ChunkService();

  // The advertised data address (host:port), used in error messages and logs.
  void set_address(std::string address);
  // Called (on the network thread) when a read finds a copy damaged.
  using DamagedFn = std::function<void(uint64_t chunk_id, uint32_t version, const std::string& reason)>;
  void on_damaged(DamagedFn fn) { damaged_ = std::move(fn); }
  // The master's word on which client sessions have ended (a heartbeat's answer): their
  // tickets are refused from now on. Until the first answer, no ticket is refused for it.
  void set_ended_sessions(const pb::CsHeartbeatResp& ended);

  RequestHandler data_handler();
  RequestHandler master_handler();

  awaitable<Reply> handle_data(ConnectionPtr conn, Frame frame);
  awaitable<Reply> handle_master(ConnectionPtr conn, Frame frame);

  // Closes the connections to downstream chunkservers.
  void shutdown();

 private:
  struct Forward;
  awaitable<Reply> chunk_read(Frame frame);
  awaitable<Reply> chunk_write(Frame frame);
  awaitable<Reply> chunk_sync(Frame frame);
  awaitable<Reply> set_version(Frame frame);
  awaitable<Reply> delete_chunk(Frame frame);
  awaitable<Reply> replicate(Frame frame);
  awaitable<Status> copy_from(const pb::CsReplicateReq& req);
  // Waits until copying `bytes` more keeps replication under its rate.
  awaitable<void> pace_replication(uint64_t bytes);
  // Sends one request to `address` and stores the outcome in *fwd.
  awaitable<void> forward(std::shared_ptr<Forward> fwd, uint16_t type, std::string address,
                          std::shared_ptr<const google::protobuf::MessageLite> request, std::string payload);
  Status local_error(const Status& st) const;
  // PermissionDenied when the ticket belongs to a client session that has ended.
  Status check_session(const pb::Ticket& ticket) const;

  asio::any_io_executor ex_;
  StoreSet& stores_;
  asio::thread_pool& pool_;
  std::string secret_;
  std::string address_;
  ConnectionCache downstream_;
  uint64_t replication_rate_;  // bytes per second over all copies; 0 = no limit
  DamagedFn damaged_;
  uint64_t first_session_ = 0;                  // sessions below it have ended
  std::unordered_set<uint64_t> ended_sessions_;  // and these
  std::chrono::steady_clock::time_point replication_clock_{};
  int client_disk_tasks_ = 0;  // client reads, writes and syncs on the disk pool right now
};

}  // namespace keelfs
