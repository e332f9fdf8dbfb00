// keelfs-mount's FUSE side: the low-level operations and the loop that serves them.
//
// Threading: everything runs on the client's network thread (client::Client::executor()).
// The loop (Mount::serve) reads a request from /dev/fuse when it is readable and hands it
// to libfuse, which calls an operation below; the operation copies what it needs out of
// the request (names, attributes, the bytes of a WRITE live in the receive buffer, which
// the next request reuses) and starts a coroutine that awaits the client's coroutine API
// and replies. An operation never blocks the thread, so one thread serves every request
// and no request is handed from thread to thread. Nothing here talks to a socket directly.
#pragma once

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "client/client.h"
#include "common/asio.h"

namespace keelfs::fuse {

struct MountOptions {
  double attr_timeout = 1.0;   // seconds the kernel may cache attributes
  double entry_timeout = 1.0;  // seconds the kernel may cache name -> inode
  // After the last answer, read /dev/fuse (and the sockets) without sleeping for this long
  // (0: never): the master's answer and a program's next request are then taken without
  // the kernel waking this thread (Mount::loop).
  int poll_us = 50;
};

// Bytes of one request that outlive its receive buffer (see Mount::hold_request_bytes).
struct RequestBytes {
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> owner;
  const char* data = nullptr;
  size_t size = 0;
};

// fuse_file_info::fh of an open file: how it was opened.
constexpr uint64_t kAppendHandle = 1;  // O_APPEND: every write goes to the end (direct I/O)
// An open for reading only: nothing of it to flush at close, so the kernel sends no FLUSH
// (one trip less per small file read). Not when this mount holds fcntl locks on the
// file: closing any descriptor must release them, and FLUSH is where that happens.
constexpr uint64_t kNoFlushHandle = 2;

// State shared by every request of one mount.
// REQUIRES: used on the client's thread only (serve() excepted).
class Mount {
 public:
  // Registers itself with the client for names whose change a master restart may have
  // lost (forget_names).
  Mount(client::Client& client, uint64_t root_inode, MountOptions options);

  // Serves `se` on the client's thread until the file system is unmounted or SIGINT,
  // SIGTERM or SIGHUP arrives, then waits for the requests still running. Blocks the
  // calling thread. Returns 0, or a negative errno when reading the device failed.
  // REQUIRES: se is mounted; not called on the client's thread.
  int serve(fuse_session* se);

  // Runs one request's coroutine on the client's thread; serve() waits for it to end.
  void spawn(awaitable<void> request);
  // Runs `reply` (a fuse_reply_* of a large buffer) on the reply thread: copying a MiB
  // into the kernel's page cache would otherwise take the client's thread from the
  // network for as long as the network took to bring it. serve() waits for it too.
  void reply_off_thread(std::function<void()> reply);
  // The session is ending: a request that waits (a blocking lock) stops waiting.
  bool exiting() const;

  // Keeps `len` bytes at `data`, which point into the request being processed, for a
  // coroutine that runs after the next request was received: takes over the whole
  // receive buffer when they lie in it (the loop gets a fresh one), else copies them.
  // The result's data is null when memory ran out.
  RequestBytes hold_request_bytes(const char* data, size_t len);

  client::Client& client() { return client_; }
  // Tells the kernel to drop its cached lookups of these (master directory inode, name)
  // pairs, from the reply thread: the kernel may wait for a directory lock that a request
  // being answered on the client's thread holds.
  void forget_names(std::vector<std::pair<uint64_t, std::string>> names);
  const MountOptions& options() const { return options_; }
  // FUSE calls the mount's root inode 1; the master knows it by the volume's root inode.
  uint64_t to_master(fuse_ino_t ino) const { return ino == FUSE_ROOT_ID ? root_ : ino; }
  fuse_ino_t to_kernel(uint64_t ino) const { return ino == root_ ? FUSE_ROOT_ID : ino; }

  // Whether the kernel may keep its cached pages at open: the file has not changed since
  // it was last opened here (same size and mtime). Records the new state.
  bool unchanged_since_last_open(const pb::Attr& a);
  // Writes through this mount invalidate its cached pages for the next open.
  void forget_cache_state(uint64_t ino) { seen_.erase(ino); }

  // The kernel asks for security.capability before every write (to drop a file's
  // capabilities), a trip to the master per write call. This mount remembers for
  // attr_timeout seconds, like the kernel's own attributes (its setuid check is as
  // stale), that a file has none: learned from the master's answer, from an O_EXCL
  // create, and forgotten when this mount sets or removes that attribute.
  static constexpr const char* kCapabilityXattr = "security.capability";
  // An answer counts only if no set or remove went out since the question (`asked_at`).
  bool known_without_capability(uint64_t ino);
  uint64_t capability_generation() const { return capability_generation_; }
  void note_without_capability(uint64_t ino, uint64_t asked_at);
  void forget_capability(uint64_t ino) {
    no_capability_.erase(ino);
    ++capability_generation_;
  }

  // The kernel trusts the size it was given (for reads, up to the attribute timeout), so
  // close-to-open needs it replaced when an open finds the file changed by another mount.
  // Every attribute reply records what the kernel was told (to_stat); an open whose fresh
  // attributes differ drops the kernel's copy (a notification), and the next read past the
  // old end fetches the new size.
  void told_kernel(const pb::Attr& a) const;
  void refresh_kernel_attr_if_changed(const pb::Attr& fresh);

  // A listing's first batch may carry attributes, and the kernel makes an inode of every
  // entry that has them (about 3 µs each, and memory), which a plain listing (ls,
  // os.listdir, os.walk, find) never uses. Entries carry them for threads that looked up
  // names of a directory they had just listed (ls -l, rsync, du, scandir + stat): learned
  // from the lookups that followed a listing without them.
  bool wants_attrs_in_listings(pid_t tid) const;
  void note_listing(pid_t tid, uint64_t dir);
  void note_lookup(pid_t tid, uint64_t parent);

  // Files this mount took fcntl locks on: only their close needs a trip to the master.
  void note_posix_lock(uint64_t ino) { posix_locked_.insert(ino); }
  bool may_hold_posix_locks(uint64_t ino) const { return posix_locked_.count(ino) != 0; }
  // A read-only open gets no FLUSH at close (FOPEN_NOFLUSH), so fcntl locks taken through
  // it are released when the kernel releases it: the owners to release then.
  void note_lock_without_flush(uint64_t ino, uint64_t owner) { owners_without_flush_[ino].insert(owner); }
  std::set<uint64_t> take_owners_without_flush(uint64_t ino) {
    auto node = owners_without_flush_.extract(ino);
    return node.empty() ? std::set<uint64_t>() : std::move(node.mapped());
  }

 private:
  // A file's content as far as caches can tell: size and mtime.
  struct Seen {
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    static Seen of(const pb::Attr& a) { return Seen{a.size(), a.mtime_sec(), a.mtime_nsec()}; }
    bool operator==(const Seen&) const = default;
  };
  awaitable<int> loop();
  enum class Received { kRequest, kNone, kEnded };
  // Reads and processes one request, if /dev/fuse has one. kEnded: the session ended (*rc
  // says why when reading failed).
  Received receive_one(fuse_buf* buf, int* rc);
  void process(fuse_buf* buf);
  // Up to kBatch requests: kNone once the device is empty, kRequest when more may wait.
  Received drain(fuse_buf* buf, int* rc);
  // Reads /dev/fuse, and lets the reactor poll, without sleeping while at most one request
  // runs, until options_.poll_us passed since the last answer; true when a request came.
  awaitable<bool> poll_briefly(fuse_buf* buf, int* rc);

  client::Client& client_;
  asio::thread_pool reply_thread_{1};
  uint64_t root_;
  MountOptions options_;
  fuse_session* se_ = nullptr;
  size_t in_flight_ = 0;           // request coroutines started and not yet ended
  std::function<void()> stop_waiting_;  // while the loop waits for /dev/fuse: wakes it
  fuse_buf* receiving_ = nullptr;  // the loop's receive buffer, while a request is processed
  bool buffer_taken_ = false;      // hold_request_bytes took it: the loop needs a new one
  std::unordered_map<uint64_t, Seen> seen_;
  mutable std::unordered_map<uint64_t, Seen> told_;  // ino -> size and mtime the kernel has
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> no_capability_;  // ino -> known until
  uint64_t capability_generation_ = 0;
  struct Lister {
    uint64_t dir = 0;  // the directory it listed last
    std::chrono::steady_clock::time_point listed_at;
    bool wants_attrs = false;
  };
  std::unordered_map<pid_t, Lister> listers_;  // by thread
  std::unordered_set<uint64_t> posix_locked_;
  std::unordered_map<uint64_t, std::set<uint64_t>> owners_without_flush_;  // ino -> lock owners
};

// fuse_locks.cpp: flock and fcntl locks, kept by the master.
void op_getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock);
void op_setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep);
void op_flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op);
// close() drops the closing owner's fcntl locks; the last close of a file its flock.
awaitable<Status> release_posix_locks(Mount& m, uint64_t ino, uint64_t owner);
awaitable<Status> release_flock(Mount& m, uint64_t ino, uint64_t owner);

// The operation table; fuse_session_new() gets it with a Mount* as userdata.
const fuse_lowlevel_ops& operations();

}  // namespace keelfs::fuse
