#include "master/chunks/registry.h"

#include <algorithm>

namespace keelfs::master {

ChunkServer& Registry::register_server(const pb::CsRegisterReq& req, ConnectionPtr conn, int64_t now_ms) {
  ChunkServer& cs = servers_[req.cs_id()];
  if (cs.conn && cs.conn != conn) cs.conn->close(error(Code::kUnavailable, "replaced by a new registration"));
  // Copies of the previous registration stop counting: the new report adds them back.
  cs.incarnation = static_cast<LocationTable::Holder>(incarnations_.size());
  incarnations_.push_back(req.cs_id());
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

ChunkServer* Registry::by_incarnation(LocationTable::Holder incarnation) {
  if (incarnation == 0 || incarnation >= incarnations_.size()) return nullptr;
  ChunkServer* cs = server(incarnations_[incarnation]);
  return cs && cs->alive && cs->incarnation == incarnation ? cs : nullptr;
}

void Registry::add_location(uint64_t chunk_id, uint64_t cs_id) {
  ChunkServer* cs = server(cs_id);
  if (!cs) return;
  locations_.add(chunk_id, cs->incarnation, [this](LocationTable::Holder h) { return is_current(h); });
}

void Registry::set_locations(uint64_t chunk_id, const std::vector<uint64_t>& cs_ids) {
  std::vector<LocationTable::Holder> holders;
  for (uint64_t id : cs_ids)
    if (ChunkServer* cs = server(id)) holders.push_back(cs->incarnation);
  locations_.set(chunk_id, holders);
}

void Registry::forget_chunk(uint64_t chunk_id) { locations_.erase(chunk_id); }

void Registry::remove_location(uint64_t chunk_id, uint64_t cs_id) {
  if (ChunkServer* cs = server(cs_id)) locations_.remove(chunk_id, cs->incarnation);
}

std::vector<ChunkServer*> Registry::holders(uint64_t chunk_id) {
  std::vector<ChunkServer*> out;
  for (LocationTable::Holder h : locations_.get(chunk_id))
    if (ChunkServer* cs = by_incarnation(h)) out.push_back(cs);
  return out;
}

}  // namespace keelfs::master
