#include "master/sessions.h"

#include <algorithm>

namespace keelfs::master {

Session& SessionTable::add(Session s) {
  s.id = next_id_++;
  Session& stored = sessions_[s.id] = std::move(s);
  if (stored.conn_id != 0) by_conn_[stored.conn_id].push_back(stored.id);
  return stored;
}

Session* SessionTable::find(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

Session* SessionTable::of(uint64_t conn_id, uint64_t volume_id) {
  auto it = by_conn_.find(conn_id);
  if (it == by_conn_.end()) return nullptr;
  for (uint64_t id : it->second) {
    Session* s = find(id);
    if (s && s->volume_id == volume_id) return s;
  }
  return nullptr;
}

void SessionTable::attach(Session& s, uint64_t conn_id, const std::string& peer, int64_t now_ms) {
  if (s.conn_id != 0) std::erase(by_conn_[s.conn_id], s.id);
  s.conn_id = conn_id;
  s.peer = peer;
  s.last_heard_ms = now_ms;
  by_conn_[conn_id].push_back(s.id);
}

void SessionTable::heard_from(uint64_t conn_id, int64_t now_ms) {
  auto it = by_conn_.find(conn_id);
  if (it == by_conn_.end()) return;
  for (uint64_t id : it->second)
    if (Session* s = find(id)) s->last_heard_ms = now_ms;
}

void SessionTable::detach_connection(uint64_t conn_id) {
  auto it = by_conn_.find(conn_id);
  if (it == by_conn_.end()) return;
  for (uint64_t id : it->second)
    if (Session* s = find(id)) s->conn_id = 0;
  by_conn_.erase(it);
}

std::vector<uint64_t> SessionTable::expired(int64_t now_ms, int64_t timeout_ms) const {
  std::vector<uint64_t> out;
  for (auto& [id, s] : sessions_)
    if (now_ms - s.last_heard_ms > timeout_ms) out.push_back(id);
  return out;
}

void SessionTable::remove(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  if (it->second.conn_id != 0) {
    auto& ids = by_conn_[it->second.conn_id];
    std::erase(ids, id);
    if (ids.empty()) by_conn_.erase(it->second.conn_id);
  }
  sessions_.erase(it);
}

std::vector<const Session*> SessionTable::list(uint64_t volume_id) const {
  std::vector<const Session*> out;
  for (auto& [id, s] : sessions_)
    if (volume_id == 0 || s.volume_id == volume_id) out.push_back(&s);
  return out;
}

}  // namespace keelfs::master
