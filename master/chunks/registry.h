// Registry: the chunkservers the master knows and where every chunk's copies are.
// Nothing here is persisted: chunkservers report their chunks when they register, and the
// master rebuilds the map from those reports (as GFS and MooseFS do).
//
// Each registration of a server is a new *incarnation*: copies are recorded under it
// (LocationTable), and only the copies of a live server's current incarnation count. So a
// server that dies or registers again loses its old copies at once, without a sweep over
// every chunk on the master's thread; its new report adds them back.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/rpc.h"
#include "keelfs.pb.h"
#include "master/chunks/location_table.h"

namespace keelfs::master {

struct ChunkServer {
  uint64_t id = 0;
  LocationTable::Holder incarnation = 0;  // of its latest registration
  std::string address;  // data service, host:port
  std::string region;
  std::string zone;
  std::string host;
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t chunks = 0;
  int64_t last_heartbeat_ms = 0;
  bool alive = false;
  bool draining = false;    // gets no new chunks; its copies are moved off (keelfs cs drain)
  ConnectionPtr conn;  // the link it registered on; the master calls it there

  uint64_t free_bytes() const { return total_bytes > used_bytes ? total_bytes - used_bytes : 0; }
};

class Registry {
 public:
  // Sizes the location table for about this many chunks (at start-up, before any report).
  void expect_chunks(size_t n) { locations_ = LocationTable(n); }
  // A (re-)registering chunkserver; a previous link of the same id is replaced, and the
  // copies it reported before stop counting.
  ChunkServer& register_server(const pb::CsRegisterReq& req, ConnectionPtr conn, int64_t now_ms);
  // The link closed: the server's copies stop counting.
  void server_lost(uint64_t cs_id);
  void heartbeat(uint64_t cs_id, const pb::CsHeartbeatReq& req, int64_t now_ms);

  ChunkServer* server(uint64_t cs_id);
  std::vector<ChunkServer*> servers();
  std::vector<ChunkServer*> alive_in_region(const std::string& region);

  void add_location(uint64_t chunk_id, uint64_t cs_id);
  void set_locations(uint64_t chunk_id, const std::vector<uint64_t>& cs_ids);
  void forget_chunk(uint64_t chunk_id);
  void remove_location(uint64_t chunk_id, uint64_t cs_id);
  // Alive servers holding a current copy.
  std::vector<ChunkServer*> holders(uint64_t chunk_id);
  // The server whose current, live incarnation this is, or nullptr.
  ChunkServer* by_incarnation(LocationTable::Holder incarnation);
  LocationTable& locations() { return locations_; }

 private:
  bool is_current(LocationTable::Holder incarnation) { return by_incarnation(incarnation) != nullptr; }

  std::map<uint64_t, ChunkServer> servers_;
  std::vector<uint64_t> incarnations_{0};  // incarnation -> server id (0 is none)
  LocationTable locations_;
};

}  // namespace keelfs::master
