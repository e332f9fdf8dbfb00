// SessionTable: the mounts (and other clients) attached to volumes.
//
// A session is one client's attachment to one volume: MOUNT creates it after checking the
// volume's secret and region; the files it holds open and the locks it takes belong to
// it. A session lives on its own, apart from the connection that made it: when a
// connection breaks, its sessions wait (for the session timeout) for the client to dial
// again and resume them with their open files and locks. A session whose client is not
// heard from for the timeout — no request, no heartbeat — expires: its locks and open
// files are released. UNMOUNT ends a session at once.
//
// Sessions live in the master's memory only; after a master restart clients mount again.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace keelfs::master {

struct Session {
  uint64_t id = 0;
  uint64_t volume_id = 0;
  std::string volume;
  std::string host;
  std::string mount_point;
  uint32_t pid = 0;
  std::string region;
  std::string client_version;
  std::string peer;  // address of the connection that carries it
  int64_t since_ms = 0;
  int64_t last_heard_ms = 0;
  uint64_t conn_id = 0;  // 0 while no connection carries it
};

class SessionTable {
 public:
  explicit SessionTable(uint64_t first_id) : next_id_(first_id) {}

  // Adds a session (its id is assigned here) carried by connection `conn_id`.
  Session& add(Session s);
  Session* find(uint64_t id);
  // The session through which connection `conn_id` reaches volume `volume_id`, if any.
  Session* of(uint64_t conn_id, uint64_t volume_id);
  // Moves an existing session onto connection `conn_id` (a client that dialled again).
  void attach(Session& s, uint64_t conn_id, const std::string& peer, int64_t now_ms);
  // Every request on a connection counts as a heartbeat of all its sessions.
  void heard_from(uint64_t conn_id, int64_t now_ms);
  // The connection closed: its sessions stay, without a connection, until they expire.
  void detach_connection(uint64_t conn_id);
  // Sessions not heard from for `timeout_ms`.
  std::vector<uint64_t> expired(int64_t now_ms, int64_t timeout_ms) const;
  void remove(uint64_t id);
  // Every session, or those of one volume; by id.
  std::vector<const Session*> list(uint64_t volume_id = 0) const;

 private:
  uint64_t next_id_;
  std::map<uint64_t, Session> sessions_;
  std::unordered_map<uint64_t, std::vector<uint64_t>> by_conn_;  // connection -> session ids
};

}  // namespace keelfs::master
