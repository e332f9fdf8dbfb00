// MasterLink: the chunkserver's connection to the master.
//
//   dial (ROLE_CHUNKSERVER) -> CS_REGISTER {cs_id, address, region, zone, host, space,
//   first batch of chunks, last_batch} -> CS_REPORT_CHUNKS for the remaining batches
//   (kReportBatch chunks each) -> CS_HEARTBEAT {space, chunk count} every heartbeat, whose
//   answer names the client sessions that have ended (their tickets are refused).
//
// The same connection serves the master's requests (CS_SET_VERSION, CS_DELETE_CHUNK)
// with the handler given at construction. When the connection fails or closes the link
// logs once, redials every second forever and registers again with the full chunk list.
//
// Threading: lives on the network executor; listing chunks and statvfs run on the disk pool.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/rpc.h"

namespace keelfs {
namespace pb {
class CsHeartbeatResp;
}

class StoreSet;

constexpr size_t kReportBatch = 50000;

struct MasterLinkOptions {
  std::string master_address;  // host:port of the master's chunkserver port
  std::string address;         // our advertised data address, host:port
  std::string region = "default";
  std::string zone;
  std::string host;
  std::string cluster_secret;  // proves the login, and checks the master's proof
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds retry{1000};
  // Called with each heartbeat's answer (on the network executor).
  std::function<void(const pb::CsHeartbeatResp&)> on_heartbeat_answer;
};

class MasterLink {
 public:
  // REQUIRES: stores and disk_pool outlive the link.
  MasterLink(asio::any_io_executor ex, StoreSet& stores, asio::thread_pool& disk_pool, RequestHandler master_requests,
             MasterLinkOptions options);
  ~MasterLink();

  // Starts connecting in the background.
  void start();
  // Closes the connection and ends the loop (no further redials).
  void stop();

  // True while registered with the master.
  bool registered() const { return registered_; }

  // Tells the master (in the background) that our copy of the chunk failed its CRC check:
  // it deletes the copy and has it made again from a good one. Dropped while the master
  // is unreachable (the scrubber finds the copy again on its next pass).
  void report_damaged(uint64_t chunk_id, uint32_t version, const std::string& reason);

 private:
  awaitable<void> run();
  // CS_LOGIN: proves the cluster secret, and checks that the master proves it too.
  awaitable<Status> log_in(ConnectionPtr conn);
  awaitable<Status> register_with(ConnectionPtr conn);
  // The master's requests, obeyed only once it has proved itself on that connection.
  awaitable<Reply> serve_master(ConnectionPtr conn, Frame frame);
  awaitable<void> sleep(std::chrono::milliseconds d);

  asio::any_io_executor ex_;
  StoreSet& stores_;
  asio::thread_pool& pool_;
  RequestHandler handler_;
  MasterLinkOptions opts_;
  asio::steady_timer timer_;
  ConnectionPtr conn_;
  bool stopped_ = false;
  bool registered_ = false;
};

}  // namespace keelfs
