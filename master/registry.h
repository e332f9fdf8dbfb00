// Registry: the chunkservers the master knows and where every chunk's copies are.
// Nothing here is persisted: chunkservers report their chunks when they register, and the
// master rebuilds the map from those reports (as GFS and MooseFS do).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/rpc.h"
#include "keelfs.pb.h"

namespace keelfs::master {

struct ChunkServer {
  uint64_t id = 0;
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
  uint64_t drain_left = 0;  // chunks that still need its copy (counted by the healer)
  ConnectionPtr conn;  // the link it registered on; the master calls it there

  uint64_t free_bytes() const { return total_bytes > used_bytes ? total_bytes - used_bytes : 0; }
};

class Registry {
 public:
  // A (re-)registering chunkserver; a previous link of the same id is replaced.
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

 private:
  std::map<uint64_t, ChunkServer> servers_;
  std::unordered_map<uint64_t, std::vector<uint64_t>> locations_;
};

// Chooses up to `goal` alive chunkservers of `region` for a new chunk, in chain order:
// distinct hosts (then zones) first, more free space first, never a full one.
std::vector<ChunkServer*> place_chunk(Registry& registry, const std::string& region, uint32_t goal,
                                      uint64_t reserve_bytes);
// Chooses where one more copy of a chunk goes (healing): an alive server of `region`
// holding none, on a host (then zone) none of `holders` is on, most free space first;
// `usable` filters out servers already busy. nullptr when there is none.
ChunkServer* place_copy(Registry& registry, const std::string& region, const std::vector<ChunkServer*>& holders,
                        uint64_t reserve_bytes, const std::function<bool(const ChunkServer&)>& usable);

}  // namespace keelfs::master
