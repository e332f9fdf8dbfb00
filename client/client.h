// Client: the library every keelfs program uses to reach a cluster (the CLI today; the
// FUSE mount and the S3 gateway are thin layers over it). One session to the master, a
// cache of chunk locations, reads straight from a chunkserver (falling over to another
// replica on error or CRC mismatch), writes through the replication chain.
//
// Two ways to call each operation, one implementation: the coroutine methods (co_*) run on
// the client's own network thread (executor()) and are what a program living on that
// thread awaits (keelfs-mount serves FUSE requests there, so a request costs no thread
// hand-over). The blocking methods run the coroutine there and wait for it; they may be
// called from many threads at once, but never from the client's own thread.
//
// Writes are write-back: write() buffers the bytes and sends them through the chains in
// the background; flush() waits until they landed on every replica and records the new
// size at the master; fsync() also makes them durable on disk first. A write-back failure is returned by the next
// flush() (the FUSE mount's fsync and close) and by later writes, never dropped.
// Reads through the same Client see its own writes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <functional>
#include <utility>
#include <vector>

#include "common/asio.h"
#include "common/status.h"
#include "keelfs.pb.h"

namespace keelfs::client {

struct ClientOptions {
  std::string master = "127.0.0.1:9520";
  std::string name = "keelfs-client";  // shown in the master's logs
  size_t io_size = 1 << 20;            // bytes per chunkserver request
  size_t window = 16;                  // requests in flight per read or write call
  size_t write_behind = 4 << 20;       // a buffered run of this size starts on its way
  size_t max_in_flight = 64 << 20;     // write-back bytes on their way per file
  // When the master's connection breaks under a request, the request waits this long for
  // the master to come back (a restart, a failover) and is sent again, then fails.
  int64_t master_wait_ms = 30 * 1000;
};

inline constexpr const char* kVersion = "0.1.0";

// What a client tells the master when it attaches to (mounts) a volume.
struct MountRequest {
  std::string volume;
  std::string secret;       // the volume's secret, as `keelfs volume create` printed it
  std::string region;       // this host's region (see host_region())
  std::string mount_point;  // shown by `keelfs session ls`
};

// The volume's secret: read from `secret_file` when one is given, else $KEELFS_SECRET,
// else the file named by $KEELFS_SECRET_FILE, else $KEELFS_HOME/<volume>.secret. Empty
// when there is none (the master then refuses the mount and says so).
Result<std::string> find_volume_secret(const std::string& volume, const std::string& secret_file);
// This host's region: `region` when given, else $KEELFS_REGION, else the first line of
// /etc/keelfs/region, else "default".
std::string host_region(const std::string& region);

// How often the directory snapshots answered lookups (for tests and diagnostics).
// A volume just created: its secret was made by this client and is shown only now.
struct CreatedVolume {
  pb::VolumeInfo info;
  std::string secret;
};

struct CacheStats {
  uint64_t snapshot_hits = 0;      // names found in a snapshot
  uint64_t snapshot_denials = 0;   // missing names denied by a watched snapshot
  uint64_t dir_changes_heard = 0;  // snapshots dropped because another client changed names
  uint64_t files_held = 0;         // files this client keeps state for (write-back, locations)
};

class Client {
 public:
  // Connects to the master; Unavailable (naming the address) when it cannot.
  static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);
  ~Client();

  // ---- sessions
  // Attaches this client to a volume (a session at the master, checked against the
  // volume's secret and region). A client may mount several volumes; it reaches only the
  // volumes it mounted. While mounted it sends heartbeats, and when the connection to the
  // master breaks it dials again and resumes its sessions by itself.
  Result<pb::MountResp> mount(const MountRequest& req);
  // Ends every session at once (a clean unmount). The destructor does it too.
  Status unmount();

  // ---- volumes and admin
  // Proves the cluster secret to the master: this client may then create, resize and
  // remove volumes and drain chunkservers. Done again by itself after a reconnect.
  Status admin_login(const std::string& cluster_secret);
  // Makes the volume's secret here and sends the master only its keys (common/auth.h).
  Result<CreatedVolume> volume_create(pb::VolumeCreateReq req);
  Result<pb::VolumeInfo> volume_resize(const std::string& name, uint64_t size_bytes, uint64_t max_inodes);
  Status volume_remove(const std::string& name);
  Result<std::vector<pb::VolumeInfo>> volume_list();
  Result<std::vector<pb::SessionInfo>> session_list(const std::string& volume);
  Result<std::vector<pb::CsInfo>> cs_list();
  Status cs_drain(const std::string& address, bool drain);
  Result<pb::HealthResp> health();
  CacheStats cache_stats();
  Result<pb::FsckResp> fsck(const std::string& volume);

  // ---- namespace
  Result<pb::Attr> lookup(uint64_t parent, const std::string& name);
  // As the mount looks names up: from a directory snapshot when there is one (co_lookup_cached).
  Result<pb::Attr> lookup_cached(uint64_t parent, const std::string& name, double max_age);
  Result<pb::Attr> getattr(uint64_t ino);
  // Holds the file open for this client's session until release(): a file that loses its
  // last name meanwhile stays readable and writable (the mount's open and release; a
  // create with req.open holds the new file the same way). Like invalidate(), it drops
  // the file's cached chunk locations and size (close-to-open).
  Result<pb::Attr> open(uint64_t ino);
  // Sent without waiting for the answer (a close need not wait for it); the master applies
  // it in order with this client's later requests, so a following open or unlink is fine.
  // Safe from any thread, the client's own included.
  void release(uint64_t ino);
  // Resolves "/a/b/c" below `root` (symlinks are not followed).
  Result<pb::Attr> resolve(uint64_t root, const std::string& path);
  Result<pb::Attr> mkdir(uint64_t parent, const std::string& name, uint32_t mode, uint32_t uid = 0, uint32_t gid = 0);
  Result<pb::Attr> create(const pb::CreateReq& req);
  Result<pb::Attr> symlink(uint64_t parent, const std::string& name, const std::string& target, uint32_t uid = 0,
                           uint32_t gid = 0);
  Result<std::string> readlink(uint64_t ino);
  Result<pb::Attr> link(uint64_t ino, uint64_t new_parent, const std::string& new_name);
  Status unlink(uint64_t parent, const std::string& name);
  Status rmdir(uint64_t parent, const std::string& name);
  Status rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                uint32_t flags = 0);
  Result<pb::ReaddirResp> readdir(uint64_t ino, const std::string& after, uint32_t max_entries, bool plus);
  // Every entry of the directory, page by page.
  Result<std::vector<pb::DirEntry>> readdir_all(uint64_t ino, bool plus);
  // Setting SET_SIZE flushes this client's pending writes of the file first.
  Result<pb::Attr> setattr(const pb::SetattrReq& req);
  Status setxattr(uint64_t ino, const std::string& name, const std::string& value, uint32_t flags);
  Result<std::string> getxattr(uint64_t ino, const std::string& name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  Status removexattr(uint64_t ino, const std::string& name);
  Result<pb::StatfsResp> statfs(uint64_t ino);

  // ---- data
  // Reads up to `len` bytes at `offset` into `out`; returns the bytes read (short at EOF).
  // Holes and bytes past a chunk's written length read as zeros.
  Result<size_t> read(uint64_t ino, uint64_t offset, size_t len, char* out);
  // Writes through the replication chain of every chunk touched.
  Status write(uint64_t ino, uint64_t offset, const char* data, size_t len);
  // O_APPEND: writes `len` bytes at the end of the file as the master sees it, so appends
  // from several clients interleave whole and never overwrite each other. Returns the
  // offset they went to. Synchronous: the bytes are on every replica when it returns.
  Result<uint64_t> append(uint64_t ino, const char* data, size_t len);
  // Makes this client's writes of the file visible to every client: landed on every
  // replica (possibly still in the chunkservers' page cache) and the new size recorded at
  // the master. This is close().
  Status flush(uint64_t ino);
  // flush() and durable: every chunk written since the last fsync is synced to disk on all
  // its replicas before the size is recorded. This is fsync().
  Status fsync(uint64_t ino);
  // fsync() of every file with pending or unsynced writes (unmount, shutdown).
  Status flush_all();
  // Forgets cached chunk locations and sizes of the file (another client changed it).
  void invalidate(uint64_t ino);
  // Called on the client's thread with the (directory, name) pairs this client changed and
  // had not synced when the master came back in a new durability epoch (its machine
  // rebooted): those changes may be lost, so a cache of names (the kernel's) must drop them.
  void on_names_maybe_lost(std::function<void(std::vector<std::pair<uint64_t, std::string>>)> fn);
  // Chunks of the file with their replicas (for `keelfs stat`).
  Result<pb::ChunkLocateResp> locate(uint64_t ino);
  // The figures of a file, or of everything below a directory (docs/small-files.md).
  Result<pb::DuResp> du(uint64_t ino);

  // ---- locks (held by this client's session at the master)
  // WouldBlock when another owner holds a conflicting lock.
  Status lock(const pb::LockReq& req);
  Result<pb::LockResp> test_lock(const pb::LockReq& req);

  // ---- the coroutine API: the operations above, as coroutines on the client's thread.
  // REQUIRES: awaited by a coroutine running on executor(). Arguments are copied into the
  // coroutine, except the buffers of read (`out`) and write/append (`data`), which must
  // stay valid until the awaitable completes.
  asio::any_io_executor executor();

  awaitable<Result<std::vector<pb::CsInfo>>> co_cs_list();
  awaitable<Result<pb::HealthResp>> co_health();

  awaitable<Result<pb::Attr>> co_lookup(uint64_t parent, std::string name);
  // co_lookup, answered from a snapshot of the directory when one younger than max_age
  // seconds is held: the mount's lookups. See Impl::take_snapshot. *age tells how old the
  // attributes are, *name_age how old the name's answer is (0 when the master watches the
  // directory for this client: then a directory's entry is answered even when its
  // attributes are older than max_age, with *age = max_age).
  awaitable<Result<pb::Attr>> co_lookup_cached(uint64_t parent, std::string name, double max_age, double* age,
                                               double* name_age);
  awaitable<Result<pb::Attr>> co_getattr(uint64_t ino);
  // A directory's attributes as this client's last change in it left them, when that was
  // less than max_age seconds ago (*age says how long); otherwise co_getattr().
  awaitable<Result<pb::Attr>> co_getattr_recent(uint64_t ino, double max_age, double* age);
  awaitable<Result<pb::Attr>> co_open(uint64_t ino);
  awaitable<Result<pb::Attr>> co_resolve(uint64_t root, std::string path);
  awaitable<Result<pb::Attr>> co_mkdir(uint64_t parent, std::string name, uint32_t mode, uint32_t uid, uint32_t gid);
  // `created` (when given) tells whether a new file was made rather than an existing one opened.
  awaitable<Result<pb::Attr>> co_create(pb::CreateReq req, bool* created = nullptr);
  awaitable<Result<pb::Attr>> co_symlink(uint64_t parent, std::string name, std::string target, uint32_t uid,
                                         uint32_t gid);
  awaitable<Result<std::string>> co_readlink(uint64_t ino);
  awaitable<Result<pb::Attr>> co_link(uint64_t ino, uint64_t new_parent, std::string new_name);
  awaitable<Status> co_unlink(uint64_t parent, std::string name);
  awaitable<Status> co_rmdir(uint64_t parent, std::string name);
  awaitable<Status> co_rename(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name,
                              uint32_t flags);
  awaitable<Result<pb::ReaddirResp>> co_readdir(uint64_t ino, std::string after, uint32_t max_entries, bool plus);
  awaitable<Result<std::vector<pb::DirEntry>>> co_readdir_all(uint64_t ino, bool plus);
  awaitable<Result<pb::Attr>> co_setattr(pb::SetattrReq req);
  awaitable<Status> co_setxattr(uint64_t ino, std::string name, std::string value, uint32_t flags);
  awaitable<Result<std::string>> co_getxattr(uint64_t ino, std::string name);
  awaitable<Result<std::vector<std::string>>> co_listxattr(uint64_t ino);
  awaitable<Status> co_removexattr(uint64_t ino, std::string name);
  awaitable<Result<pb::StatfsResp>> co_statfs(uint64_t ino);

  awaitable<Result<size_t>> co_read(uint64_t ino, uint64_t offset, size_t len, char* out);
  awaitable<Status> co_write(uint64_t ino, uint64_t offset, const char* data, size_t len);
  awaitable<Result<uint64_t>> co_append(uint64_t ino, const char* data, size_t len);
  awaitable<Status> co_flush(uint64_t ino);
  // flush, then the data synced on every replica and every namespace change answered so
  // far on the master's disk.
  awaitable<Status> co_fsync(uint64_t ino);
  // Waits until every change the master answered so far is on its disk (fsyncdir).
  awaitable<Status> co_sync_metadata();
  awaitable<Status> co_flush_all();
  awaitable<void> co_invalidate(uint64_t ino);
  awaitable<Result<pb::ChunkLocateResp>> co_locate(uint64_t ino);

  awaitable<Status> co_lock(pb::LockReq req);
  awaitable<Result<pb::LockResp>> co_test_lock(pb::LockReq req);

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keelfs::client
