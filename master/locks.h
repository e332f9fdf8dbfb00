// LockTable: flock and fcntl locks, kept by the master so that they hold between mounts.
// A lock belongs to (session, owner): the session is the client's connection to the
// master, the owner the kernel's lock owner on that client. When a session ends, all its
// locks go (a dead pod never keeps a file locked). Locks live in memory only: after a
// master restart, clients hold none (as after a reboot of a local file system's host).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/status.h"
#include "keelfs.pb.h"

namespace keelfs::master {

class LockTable {
 public:
  // Takes, changes or releases a lock. WouldBlock when another owner holds a conflicting one.
  Status set(uint64_t session, const pb::LockReq& req);
  // The first lock of another owner that conflicts with `req` (type LT_UNLOCK if none).
  pb::LockResp test(uint64_t session, const pb::LockReq& req) const;
  // Drops every lock of the session.
  void release_session(uint64_t session);
  size_t count() const;

 private:
  struct Lock {
    uint64_t session;
    uint64_t owner;
    pb::LockType type;
    uint64_t start;
    uint64_t end;  // inclusive
    uint32_t pid;
  };
  using Key = std::pair<uint64_t, int>;  // inode, kind
  const Lock* conflict(uint64_t session, const pb::LockReq& req) const;
  std::map<Key, std::vector<Lock>> locks_;
};

}  // namespace keelfs::master
