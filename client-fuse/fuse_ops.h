// The FUSE low-level operations of keelfs-mount: each kernel request becomes one or a few
// calls of the client library. Nothing here talks to a socket directly.
#pragma once

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "client/client.h"

namespace keelfs::fuse {

struct MountOptions {
  double attr_timeout = 1.0;   // seconds the kernel may cache attributes
  double entry_timeout = 1.0;  // seconds the kernel may cache name -> inode
};

// State shared by every request of one mount.
class Mount {
 public:
  Mount(client::Client& client, uint64_t root_inode, MountOptions options)
      : client_(client), root_(root_inode), options_(options) {}

  client::Client& client() { return client_; }
  const MountOptions& options() const { return options_; }
  // FUSE calls the mount's root inode 1; the master knows it by the volume's root inode.
  uint64_t to_master(fuse_ino_t ino) const { return ino == FUSE_ROOT_ID ? root_ : ino; }
  fuse_ino_t to_kernel(uint64_t ino) const { return ino == root_ ? FUSE_ROOT_ID : ino; }

  // Whether the kernel may keep its cached pages at open: the file has not changed since
  // it was last opened here (same size and mtime). Records the new state.
  bool unchanged_since_last_open(uint64_t ino, uint64_t size, int64_t mtime_sec, uint32_t mtime_nsec);
  // Writes through this mount invalidate its cached pages for the next open.
  void forget_cache_state(uint64_t ino);

  // Files this mount took fcntl locks on: only their close needs a trip to the master.
  void note_posix_lock(uint64_t ino);
  bool may_hold_posix_locks(uint64_t ino);

 private:
  struct Seen {
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
  };
  client::Client& client_;
  uint64_t root_;
  MountOptions options_;
  std::mutex mu_;
  std::unordered_map<uint64_t, Seen> seen_;
  std::unordered_map<uint64_t, bool> posix_locked_;
};

// fuse_locks.cpp: flock and fcntl locks, kept by the master.
void op_getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock);
void op_setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep);
void op_flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op);
// close() drops the closing owner's fcntl locks; the last close of a file its flock.
Status release_posix_locks(Mount& m, uint64_t ino, uint64_t owner);
Status release_flock(Mount& m, uint64_t ino, uint64_t owner);

// The operation table; fuse_session_new() gets it with a Mount* as userdata.
const fuse_lowlevel_ops& operations();

}  // namespace keelfs::fuse
