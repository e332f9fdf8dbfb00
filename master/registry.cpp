#include "master/registry.h"

#include <algorithm>

namespace keelfs::master {

ChunkServer& Registry::register_server(const pb::CsRegisterReq& req, ConnectionPtr conn, int64_t now_ms) {
  ChunkServer& cs = servers_[req.cs_id()];
  if (cs.conn && cs.conn != conn) cs.conn->close(error(Code::kUnavailable, "replaced by a new registration"));
  // Locations from the previous registration are stale: the new report rebuilds them.
  for (auto& [chunk, ids] : locations_) std::erase(ids, req.cs_id());
  cs.id = req.cs_id();
  cs.address = req.address();
  cs.region = req.region();
  cs.zone = req.zone();
  cs.host = req.host();
  cs.total_bytes = req.total_bytes();
  cs.used_bytes = req.used_bytes();
  cs.chunks = 0;
  cs.last_heartbeat_ms = now_ms;
  cs.alive = true;
  cs.conn = std::move(conn);
  return cs;
}

void Registry::server_lost(uint64_t cs_id) {
  auto it = servers_.find(cs_id);
  if (it == servers_.end()) return;
  it->second.alive = false;
  it->second.conn.reset();
  for (auto& [chunk, ids] : locations_) std::erase(ids, cs_id);
}

void Registry::heartbeat(uint64_t cs_id, const pb::CsHeartbeatReq& req, int64_t now_ms) {
  auto it = servers_.find(cs_id);
  if (it == servers_.end()) return;
  it->second.total_bytes = req.total_bytes();
  it->second.used_bytes = req.used_bytes();
  it->second.chunks = req.chunks();
  it->second.last_heartbeat_ms = now_ms;
}

ChunkServer* Registry::server(uint64_t cs_id) {
  auto it = servers_.find(cs_id);
  return it == servers_.end() ? nullptr : &it->second;
}

std::vector<ChunkServer*> Registry::servers() {
  std::vector<ChunkServer*> out;
  for (auto& [id, cs] : servers_) out.push_back(&cs);
  return out;
}

std::vector<ChunkServer*> Registry::alive_in_region(const std::string& region) {
  std::vector<ChunkServer*> out;
  for (auto& [id, cs] : servers_)
    if (cs.alive && cs.region == region) out.push_back(&cs);
  return out;
}

void Registry::add_location(uint64_t chunk_id, uint64_t cs_id) {
  auto& ids = locations_[chunk_id];
  if (std::find(ids.begin(), ids.end(), cs_id) == ids.end()) ids.push_back(cs_id);
}

void Registry::set_locations(uint64_t chunk_id, const std::vector<uint64_t>& cs_ids) { locations_[chunk_id] = cs_ids; }

void Registry::forget_chunk(uint64_t chunk_id) { locations_.erase(chunk_id); }

void Registry::remove_location(uint64_t chunk_id, uint64_t cs_id) {
  auto it = locations_.find(chunk_id);
  if (it != locations_.end()) std::erase(it->second, cs_id);
}

std::vector<ChunkServer*> Registry::holders(uint64_t chunk_id) {
  std::vector<ChunkServer*> out;
  auto it = locations_.find(chunk_id);
  if (it == locations_.end()) return out;
  for (uint64_t id : it->second) {
    ChunkServer* cs = server(id);
    if (cs && cs->alive) out.push_back(cs);
  }
  return out;
}

std::vector<ChunkServer*> place_chunk(Registry& registry, const std::string& region, uint32_t goal,
                                      uint64_t reserve_bytes) {
  std::vector<ChunkServer*> candidates;
  for (ChunkServer* cs : registry.alive_in_region(region))
    if (cs->free_bytes() > reserve_bytes && !cs->draining) candidates.push_back(cs);
  // Most free space first; ties broken by id so placement is deterministic in tests.
  std::sort(candidates.begin(), candidates.end(), [](ChunkServer* a, ChunkServer* b) {
    if (a->free_bytes() / (1 << 30) != b->free_bytes() / (1 << 30)) return a->free_bytes() > b->free_bytes();
    if (a->chunks != b->chunks) return a->chunks < b->chunks;
    return a->id < b->id;
  });
  std::vector<ChunkServer*> chosen;
  auto used_host = [&](ChunkServer* c) {
    return std::any_of(chosen.begin(), chosen.end(), [&](ChunkServer* x) { return x->host == c->host; });
  };
  auto used_zone = [&](ChunkServer* c) {
    return !c->zone.empty() &&
           std::any_of(chosen.begin(), chosen.end(), [&](ChunkServer* x) { return x->zone == c->zone; });
  };
  // Pass 1: new host and zone; pass 2: new zone; pass 3: anything not chosen yet.
  for (int pass = 0; pass < 3 && chosen.size() < goal; ++pass) {
    for (ChunkServer* cs : candidates) {
      if (chosen.size() >= goal) break;
      if (std::find(chosen.begin(), chosen.end(), cs) != chosen.end()) continue;
      if (pass == 0 && (used_host(cs) || used_zone(cs))) continue;
      if (pass == 1 && used_zone(cs)) continue;
      chosen.push_back(cs);
    }
  }
  // Count the new chunk at once so consecutive placements spread over equal servers.
  for (ChunkServer* cs : chosen) ++cs->chunks;
  return chosen;
}

ChunkServer* place_copy(Registry& registry, const std::string& region, const std::vector<ChunkServer*>& holders,
                        uint64_t reserve_bytes, const std::function<bool(const ChunkServer&)>& usable) {
  auto holds = [&](ChunkServer* c) { return std::find(holders.begin(), holders.end(), c) != holders.end(); };
  auto host_taken = [&](ChunkServer* c) {
    return std::any_of(holders.begin(), holders.end(), [&](ChunkServer* h) { return h->host == c->host; });
  };
  auto zone_taken = [&](ChunkServer* c) {
    return !c->zone.empty() &&
           std::any_of(holders.begin(), holders.end(), [&](ChunkServer* h) { return h->zone == c->zone; });
  };
  ChunkServer* best = nullptr;
  int best_rank = 3;
  for (ChunkServer* cs : registry.alive_in_region(region)) {
    if (holds(cs) || cs->draining || cs->free_bytes() <= reserve_bytes || !usable(*cs)) continue;
    int rank = host_taken(cs) ? 2 : zone_taken(cs) ? 1 : 0;
    if (!best || rank < best_rank || (rank == best_rank && cs->free_bytes() > best->free_bytes())) {
      best = cs;
      best_rank = rank;
    }
  }
  return best;
}

}  // namespace keelfs::master
