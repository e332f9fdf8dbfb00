#include "client/client.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "client/pack_cache.h"
#include "client/packer.h"
#include "common/async.h"
#include "common/auth.h"
#include "common/chunk_io.h"
#include "common/crypto.h"
#include "common/rpc.h"
#include "common/util.h"

namespace keelfs::client {
namespace {

// FSCK walks a whole volume and HEALTH reads every chunk record, with at most half of the
// master's thread (docs/decisions.md, "Work that grows with the cluster runs in slices"):
// they take as long as the cluster is big, far longer than any other request.
std::chrono::steady_clock::duration call_timeout(uint16_t type) {
  if (type == pb::FSCK || type == pb::HEALTH) return std::chrono::hours(1);
  return kDefaultCallTimeout;
}

constexpr uint64_t kChunkSize = 64ull << 20;
constexpr int kMaxAttempts = 6;

// Errors after which asking the master again (new chain, new version, new ticket) helps.
bool worth_retry(const Status& st) {
  return st.is(Code::kUnavailable) || st.is(Code::kTimeout) || st.is(Code::kStaleVersion) ||
         st.is(Code::kPermissionDenied) || st.is(Code::kIOError) || st.is(Code::kNotFound);
}

}  // namespace

struct Client::Impl {
  struct Lease {
    pb::ChunkInfo info;  // replicas = the write chain
    uint64_t generation = 0;
  };
  // What this client holds of one file. Shared by the coroutines working on it, so that
  // a flush or a new write never pulls it from under a write still in flight.
  struct FileState {
    std::map<uint64_t, Lease> leases;        // chunk index -> write lease
    std::map<uint64_t, uint64_t> dirty_len;  // chunk index -> chunk length this client wrote up to
    uint64_t pending_size = 0;               // file end this client wrote, not yet at the master
    std::optional<pb::ChunkLocateResp> located;

    // Write-back: bytes accepted from the application and not yet on the chunkservers.
    uint64_t buf_offset = 0;
    std::string buf;                                   // one contiguous run, still in memory
    std::vector<std::pair<uint64_t, uint64_t>> sending;  // [offset, end) of runs on their way
    uint64_t sending_bytes = 0;
    Status error;  // the first write-back failure, not yet reported
    // Bytes this client accepted for the file were lost (a write-back or an fsync failed).
    // Every later fsync and close of the file reports it, never a success, until its last
    // handle here is released (for a file never opened here: for the client's life).
    Status lost;
    uint32_t handles = 0;  // opens (and creates with open) not yet released
    std::map<uint64_t, pb::ChunkInfo> unsynced;  // chunk index -> chain: flushed, not yet fsynced
    std::optional<pb::ChunkInfo> unsynced_pack;  // the pack its content went to, not yet fsynced
    // The file's size at the master as this client last heard it (open, create, its own
    // changes), and its volume: a small file whose whole content this client holds is
    // packed (see flush_packed).
    std::optional<uint64_t> master_size;
    uint64_t volume_id = 0;
    std::vector<std::shared_ptr<Event>> waiters;  // woken whenever a run lands

    bool idle() const { return buf.empty() && sending.empty(); }
  };
  using FilePtr = std::shared_ptr<FileState>;

  explicit Impl(ClientOptions o) : opts(std::move(o)), cs_conns(pb::ROLE_CLIENT, opts.name) {}

  ClientOptions opts;
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  ConnectionPtr master;
  ConnectionCache cs_conns;
  KeyedMutex lease_locks;
  PackCache pack_cache;
  Packer packer{[this](uint16_t type, const google::protobuf::MessageLite& req) { return call_master(type, req); },
                cs_conns};
  std::unordered_map<uint64_t, FilePtr> files;
  uint64_t next_generation = 1;

  // Runs `task` on the network thread and waits for its result (the blocking API).
  // REQUIRES: not called on the network thread.
  template <class T>
  T run(awaitable<T> task) {
    std::promise<T> promise;
    auto future = promise.get_future();
    asio::co_spawn(io, wrap(std::move(task), &promise), asio::detached);
    return future.get();
  }
  template <class T>
  static awaitable<void> wrap(awaitable<T> task, std::promise<T>* promise) {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      promise->set_value();
    } else {
      promise->set_value(co_await std::move(task));
    }
  }

  // The master's connection; the master calls back on it (DIR_CHANGED).
  awaitable<Result<ConnectionPtr>> dial_master() {
    co_return co_await dial(
        opts.master, pb::ROLE_CLIENT, opts.name,
        [this](ConnectionPtr, Frame frame) { return serve_master(std::move(frame)); },
        [this](ConnectionPtr, const Status&) { master_closed(); });
  }

  // Dials the master when the connection is gone; the sessions resume on the new
  // connection (or start anew after a master restart) and the admin login is redone.
  // Requests that find the connection gone while another is dialling wait for that dial
  // (one reconnect, one remount) instead of dialling themselves.
  std::shared_ptr<asio::steady_timer> master_dial;

  awaitable<Status> ensure_master() {
    if (master && master->is_open()) co_return Status::Ok();
    if (master_dial) {
      auto dialling = master_dial;
      error_code ignored;
      co_await dialling->async_wait(asio::redirect_error(use_awaitable, ignored));  // cancelled when done
      if (master && master->is_open()) co_return Status::Ok();
      co_return error(Code::kUnavailable, fmt::format("master {} unreachable", opts.master));
    }
    master_dial = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, std::chrono::hours(24));
    Status st = co_await dial_and_resume();
    auto done = std::move(master_dial);
    master_dial.reset();
    done->cancel();
    co_return st;
  }

  awaitable<Status> dial_and_resume() {
    auto conn = co_await dial_master();
    if (!conn.ok()) co_return error(Code::kUnavailable, fmt::format("master {} unreachable: {}", opts.master, conn.status().message()));
    master = *conn;
    CO_RETURN_IF_ERROR(co_await remount_all());
    if (!admin_secret.empty()) CO_RETURN_IF_ERROR(co_await login_admin());
    co_return Status::Ok();
  }

  // Sends a request to the master. When the connection breaks under it, the master is
  // dialled again (sessions resumed) for up to opts.master_wait_ms and the request sent
  // again; a namespace change carries its OpId (name_change()), marked as a retry, so
  // that a master that already committed it answers instead of applying it twice.
  awaitable<Result<Frame>> call_master(uint16_t type, const google::protobuf::MessageLite& req,
                                       pb::OpId* op = nullptr) {
    constexpr int kMaxSends = 50;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.master_wait_ms);
    auto waited_enough = [&] { return closing || std::chrono::steady_clock::now() >= give_up; };
    struct Answered {  // the change leaves ops_in_flight however this returns
      Impl* impl;
      pb::OpId* op;
      ~Answered() {
        if (op) impl->ops_in_flight.erase(op->seq());
      }
    } answered{this, op};
    bool sent = false, remounted = false;
    for (int sends = 0;;) {
      Status up = co_await ensure_master();
      if (!up.ok()) {
        if (!up.is(Code::kUnavailable) || waited_enough()) co_return up;
        co_await sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      if (op) {
        op->set_retry(sent);
        op->set_answered_below(ops_in_flight.empty() ? next_op_seq : *ops_in_flight.begin());
      }
      auto r = co_await master->call(type, req, {}, call_timeout(type));
      sent = true;
      ++sends;
      if (r.ok()) {
        if (commits_change(type)) change_answered();
        co_return r;
      }
      // The connection closed under the request (the master restarted or failed over). A
      // named change is sent again until the wait is over; anything else once, as the
      // master cannot tell its second copy from a new request (an APPEND would reserve
      // twice).
      const int max_sends = op ? kMaxSends : 2;
      if (r.status().is(Code::kUnavailable) && !master->is_open() && sends < max_sends && !waited_enough()) continue;
      // The session expired while this client was not heard from (a stopped process).
      if (r.status().is(Code::kNoSession) && !mounts.empty() && !remounted) {
        CO_RETURN_IF_ERROR(co_await remount_all());
        remounted = true;
        continue;
      }
      co_return r;
    }
  }

  // ---- durability across master restarts. A change the master answered is on its disk
  // only once a SYNC covers it; a master that came back in a new durability epoch (its
  // machine rebooted) may have lost the changes no SYNC covered yet, so a SYNC answered
  // after that must not confirm them.
  uint64_t master_incarnation = 0;  // the durability epoch of the current connection (from MOUNT); 0 = unknown
  // Names this client changed since its last SYNC: when a restart may have lost those
  // changes, whoever caches names (the kernel) is told to forget them. Capped: past it,
  // the rest are not remembered (they expire from the kernel's cache by themselves).
  static constexpr size_t kUnsyncedNamesMax = 4096;
  std::vector<std::pair<uint64_t, std::string>> unsynced_names;
  std::function<void(std::vector<std::pair<uint64_t, std::string>>)> on_names_maybe_lost;
  void name_changed(uint64_t dir, const std::string& name) {
    if (unsynced_names.size() < kUnsyncedNamesMax) unsynced_names.emplace_back(dir, name);
  }
  uint64_t change_seq = 0;  // changes answered so far
  uint64_t synced_seq = 0;  // of those, confirmed on the master's disk (or reported lost)
  bool changes_maybe_lost = false;  // the epoch changed while some were not confirmed

  static bool commits_change(uint16_t type) {
    switch (type) {
      case pb::MKDIR: case pb::RMDIR: case pb::CREATE: case pb::UNLINK: case pb::RENAME: case pb::SYMLINK:
      case pb::LINK: case pb::SETATTR: case pb::SETXATTR: case pb::REMOVEXATTR: case pb::CHUNK_FOR_WRITE:
      case pb::WRITE_END: case pb::APPEND: case pb::PACK_COMMIT: case pb::UNPACK_END:
        return true;
      default:
        return false;
    }
  }
  void change_answered() { ++change_seq; }
  // After a SYNC sent when `upto` changes had been answered came back OK: an error, once,
  // when the epoch changed while some changes were not confirmed.
  Status sync_answered(uint64_t upto) {
    synced_seq = std::max(synced_seq, upto);
    if (!changes_maybe_lost) return Status::Ok();
    changes_maybe_lost = false;
    return error(Code::kIOError,
                 "the master restarted before it had this client's latest changes on its disk: they may be lost");
  }
  // A MOUNT answered in another durability epoch than the last: the changes not synced
  // before may be gone, and with them the names they made or removed.
  void master_epoch_is(uint64_t epoch) {
    const bool changed = master_incarnation != 0 && epoch != master_incarnation;
    master_incarnation = epoch;
    if (changed && change_seq > synced_seq) changes_maybe_lost = true;
    if (!changed || unsynced_names.empty()) return;
    spdlog::warn("the master restarted in a new durability epoch (its machine rebooted): this client's {} latest "
                 "name changes may be lost; their cached names are dropped", unsynced_names.size());
    if (on_names_maybe_lost) on_names_maybe_lost(std::move(unsynced_names));
    unsynced_names.clear();
  }

  // ---- named changes (OpId): this client's identity and its changes not answered yet.
  const uint64_t op_client = random_u64_nonzero();
  uint64_t next_op_seq = 1;
  std::set<uint64_t> ops_in_flight;

  // Gives a namespace change its OpId. REQUIRES: the request is then sent with
  // call_master(..., op).
  void name_change(pb::OpId* op) {
    op->set_client(op_client);
    op->set_seq(next_op_seq++);
    ops_in_flight.insert(op->seq());
  }

  // ---- sessions
  struct Mounted {
    MountRequest req;
    uint64_t session = 0;
    uint64_t volume_id = 0;
    uint32_t pack_below = 0;  // files below this size are packed; 0 = none
    uint64_t root = 0;
    uint64_t size_bytes = 0;  // the volume's quota on logical bytes; 0 = none
  };
  std::vector<Mounted> mounts;
  bool heartbeating = false;
  bool closing = false;

  // MOUNT on the current connection, resuming m.session when the master still has it.
  // The secret itself never crosses the wire: MOUNT carries a proof over this connection's
  // nonces, and the answer carries the master's (common/auth.h).
  awaitable<Result<pb::MountResp>> mount_one(Mounted& m) {
    pb::MountSaltReq salt_req;
    salt_req.set_volume(m.req.volume);
    pb::MountSaltResp salt;
    CO_ASSIGN_OR_RETURN(Frame salt_frame, co_await master->call(pb::MOUNT_SALT, salt_req));
    CO_RETURN_IF_ERROR(parse_body(salt_frame, &salt));
    pb::MountReq req;
    req.set_volume(m.req.volume);
    if (!m.req.secret.empty()) req.set_proof(mount_proof(m.req.secret, salt.salt(), master->nonces(), m.req.volume));
    req.set_region(m.req.region);
    req.set_host(host_name());
    req.set_mount_point(m.req.mount_point);
    req.set_pid(static_cast<uint32_t>(getpid()));
    req.set_client_version(kVersion);
    req.set_resume_session(m.session);
    CO_ASSIGN_OR_RETURN(Frame f, co_await master->call(pb::MOUNT, req));
    pb::MountResp resp;
    CO_RETURN_IF_ERROR(parse_body(f, &resp));
    if (Status st = check_master_mount_proof(m.req.secret, salt.salt(), master->nonces(), m.req.volume,
                                             resp.master_proof(), opts.master);
        !st.ok()) {
      master->close(st);
      co_return st;
    }
    if (m.session != 0 && resp.session() != m.session)
      spdlog::warn("volume '{}': session {:x} was gone; mounted again as session {:x} (open files and locks of the old one are lost)",
                   m.req.volume, m.session, resp.session());
    m.session = resp.session();
    master_epoch_is(resp.master_incarnation());
    m.volume_id = resp.volume().id();
    m.pack_below = resp.volume().pack_below();
    m.root = resp.volume().root_inode();
    m.size_bytes = resp.volume().size_bytes();
    co_return resp;
  }

  std::string admin_secret;  // set by admin_login(); logs in again on a new connection

  awaitable<Status> login_admin() {
    pb::AdminLoginReq req;
    req.set_proof(login_proof(admin_secret, master->nonces(), admin_subject()));
    pb::AdminLoginResp resp;
    auto r = co_await master->call_into(pb::ADMIN_LOGIN, req, &resp);
    if (!r.ok()) co_return r.status();
    Status st = check_master_login_proof(admin_secret, master->nonces(), admin_subject(), resp.master_proof(), opts.master);
    if (!st.ok()) master->close(st);
    co_return st;
  }

  awaitable<Status> remount_all() {
    for (Mounted& m : mounts) {
      auto r = co_await mount_one(m);
      if (!r.ok()) co_return error(r.status().code(), fmt::format("mounting volume '{}' again: {}", m.req.volume, r.status().message()));
    }
    co_return Status::Ok();
  }

  awaitable<void> heartbeat_loop(uint32_t period_ms) {
    while (!closing) {
      co_await sleep_for(std::chrono::milliseconds(period_ms));
      if (closing) break;
      auto r = co_await call_master(pb::SESSION_HEARTBEAT, pb::EmptyResp());
      if (!r.ok()) spdlog::warn("session heartbeat: {}", r.status().message());
    }
  }

  awaitable<Status> unmount_all() {
    closing = true;
    Status first;
    if (master && master->is_open()) {
      for (Mounted& m : mounts) {
        pb::UnmountReq req;
        req.set_session(m.session);
        auto r = co_await master->call(pb::UNMOUNT, req);
        if (!r.ok() && first.ok()) first = r.status();
      }
    }
    mounts.clear();
    co_return first;
  }

  template <class Resp>
  awaitable<Result<Resp>> ask(uint16_t type, const google::protobuf::MessageLite& req, pb::OpId* op = nullptr) {
    CO_ASSIGN_OR_RETURN(Frame f, co_await call_master(type, req, op));
    Resp resp;
    CO_RETURN_IF_ERROR(parse_body(f, &resp));
    co_return resp;
  }

  awaitable<Result<pb::Attr>> ask_attr(uint16_t type, const google::protobuf::MessageLite& req, pb::OpId* op = nullptr) {
    CO_ASSIGN_OR_RETURN(pb::AttrResp resp, co_await ask<pb::AttrResp>(type, req, op));
    note_changed(resp);
    if (resp.has_attr()) snapshot_attr(resp.attr());
    pb::Attr attr = resp.attr();
    with_pending_size(&attr);
    co_return attr;
  }

  // A namespace change without a new entry (unlink, rmdir, rename).
  awaitable<Status> ask_change(uint16_t type, const google::protobuf::MessageLite& req, pb::OpId* op = nullptr) {
    CO_ASSIGN_OR_RETURN(pb::AttrResp resp, co_await ask<pb::AttrResp>(type, req, op));
    note_changed(resp);
    co_return Status::Ok();
  }

  // Attributes of directories as this client's own changes left them, and when: the
  // kernel drops its copy of a directory's attributes after every change in it and asks
  // again at once (permission checks); this answers it without a round trip.
  struct RecentAttr {
    pb::Attr attr;
    std::chrono::steady_clock::time_point at;
  };
  std::unordered_map<uint64_t, RecentAttr> recent_dirs;

  void note_changed(const pb::AttrResp& resp) {
    auto now = std::chrono::steady_clock::now();
    if (recent_dirs.size() > 4096) {
      std::erase_if(recent_dirs, [&](const auto& e) { return now - e.second.at > std::chrono::seconds(60); });
    }
    auto changed_dir = [&](const pb::Attr& dir) {
      recent_dirs[dir.inode()] = {dir, now};
      snapshot_attr(dir);
    };
    if (resp.has_parent()) changed_dir(resp.parent());
    if (resp.has_new_parent()) changed_dir(resp.new_parent());
    // An answer about a directory itself (setattr, lookup) is newer than what was kept.
    if (resp.has_attr()) {
      auto it = recent_dirs.find(resp.attr().inode());
      if (it != recent_dirs.end()) it->second = {resp.attr(), now};
    }
  }

  // ---- directory snapshots (the mount's lookups, co_lookup_cached)
  //
  // When lookups of existing names in one directory keep going to the master (a second one
  // within a second), the whole directory, with attributes, is read in one READDIR (up to
  // kSnapshotMax entries) and later lookups of names in it are answered from that snapshot
  // while it is younger than the attribute timeout. This client's own changes are applied
  // to it; other clients' changes to those entries show when it expires, and the kernel is
  // told to keep an answer only for what is left of the timeout: the staleness of the
  // kernel's own attribute cache, no more.
  // The read also asks the master to watch the directory: before another client's change
  // to its names is answered, the master tells this client (DIR_CHANGED), which drops the
  // snapshot. While the watch holds, a name the snapshot lacks does not exist, and the
  // lookup is denied here (a mkdir or create then needs one trip to the master, not two).
  // Without a watch (the master refused it, the connection closed, the listing came from
  // opendir), a missing name is asked of the master: a file another client made and
  // closed must be found at once (close-to-open).
  static constexpr uint32_t kSnapshotMax = 1024;
  using Clock = std::chrono::steady_clock;
  using SnapshotEntries = std::unordered_map<std::string, pb::Attr>;  // name -> attributes
  struct DirSnapshot {
    Clock::time_point at;
    SnapshotEntries entries;
    bool watched = false;
    std::set<std::string> unsure;  // names this client changed without knowing the outcome
  };
  uint64_t snapshot_epoch = 0;  // moves on with every DIR_CHANGED and every lost connection
  CacheStats cache_stats;
  std::unordered_map<uint64_t, DirSnapshot> snapshots;
  std::unordered_map<uint64_t, std::pair<int, Clock::time_point>> lookup_misses;  // dir -> (count, since)
  std::unordered_map<uint64_t, Clock::time_point> last_snapshot;  // dir -> when the last read was sent
  std::unordered_map<uint64_t, Clock::time_point> snapshot_refused;  // too big: not again before then
  std::set<uint64_t> snapshotting;  // reads under way
  // Where each snapshotted inode appears, so a newer attribute replaces the kept one.
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> snapshot_place;

  void note_lookup_miss(uint64_t dir) {
    auto now = Clock::now();
    auto& [count, since] = lookup_misses[dir];
    if (now - since > std::chrono::seconds(1)) {
      count = 0;
      since = now;
    }
    if (++count < 2 || snapshotting.count(dir)) return;
    if (auto r = snapshot_refused.find(dir); r != snapshot_refused.end() && now < r->second) return;
    // At most one read a second per directory, however it changes meanwhile.
    if (auto l = last_snapshot.find(dir); l != last_snapshot.end() && now - l->second < std::chrono::seconds(1)) return;
    if (lookup_misses.size() > 4096) lookup_misses.clear();
    if (last_snapshot.size() > 4096) last_snapshot.clear();
    last_snapshot[dir] = now;
    asio::co_spawn(io, take_snapshot(dir), asio::detached);
  }

  // The master commits a change before it answers it, and answers a READDIR at once: a
  // change whose answer comes before the listing's is in the listing, and one whose answer
  // comes after is applied to the snapshot then (entry_added, entry_removed), which a
  // listing that already holds it does not mind.
  awaitable<void> take_snapshot(uint64_t dir) {
    snapshotting.insert(dir);
    const auto at = Clock::now();
    const uint64_t epoch = snapshot_epoch;
    pb::ReaddirReq req;
    req.set_inode(dir);
    req.set_max_entries(kSnapshotMax);
    req.set_plus(true);
    req.set_watch(true);
    auto listed = co_await ask<pb::ReaddirResp>(pb::READDIR, req);
    snapshotting.erase(dir);
    if (!listed.ok()) co_return;
    if (listed->more()) {
      snapshot_refused[dir] = at + std::chrono::seconds(10);
      co_return;
    }
    // A change told meanwhile may be newer than the listing: then it is kept unwatched.
    install_snapshot(dir, at, listed->entries(), listed->watched() && epoch == snapshot_epoch);
  }

  // A complete listing with attributes, asked for at `at` (a READDIR of the mount's opendir
  // serves as well as take_snapshot's).
  template <class Entries>
  void install_snapshot(uint64_t dir, Clock::time_point at, const Entries& entries, bool watched) {
    if (snapshots.size() >= 256) {  // a bound on memory: a few MB at most
      std::erase_if(snapshots, [&](const auto& e) { return at - e.second.at > std::chrono::seconds(2); });
      if (snapshots.size() >= 256) snapshots.clear();
    }
    if (snapshot_place.size() > 256 * kSnapshotMax) snapshot_place.clear();
    DirSnapshot snap;
    snap.at = at;
    snap.watched = watched;
    for (const pb::DirEntry& e : entries) {
      snap.entries[e.name()] = e.attr();
      snapshot_place[e.attr().inode()] = {dir, e.name()};
    }
    snapshots[dir] = std::move(snap);
    last_snapshot[dir] = at;
  }

  // This client added `name` to `dir` (create, mkdir, symlink, link).
  void entry_added(uint64_t dir, const std::string& name, const pb::Attr& attr) {
    auto it = snapshots.find(dir);
    if (it == snapshots.end()) return;
    it->second.entries[name] = attr;
    it->second.unsure.erase(name);
    snapshot_place[attr.inode()] = {dir, name};
  }

  // After a change that failed, the snapshot's idea of that name is doubtful: forgotten.
  void note_added(uint64_t dir, const std::string& name, const Result<pb::Attr>& attr) {
    name_changed(dir, name);
    if (attr.ok())
      entry_added(dir, name, *attr);
    else
      entry_unsure(dir, name);
  }

  // `name` in `dir` is gone (unlink, rmdir, the old name of a rename).
  void entry_removed(uint64_t dir, const std::string& name) {
    if (auto it = snapshots.find(dir); it != snapshots.end()) it->second.entries.erase(name);
  }

  // After a removal (unlink, rmdir, the old name of a rename): gone when it succeeded,
  // doubtful when it failed.
  void note_removed(uint64_t dir, const std::string& name, bool succeeded) {
    name_changed(dir, name);
    if (succeeded)
      entry_removed(dir, name);
    else
      entry_unsure(dir, name);
  }

  // Whether `name` in `dir` exists, and as what, is not known here (a change that failed,
  // the new name of a rename): lookups of it go to the master again.
  void entry_unsure(uint64_t dir, const std::string& name) {
    auto it = snapshots.find(dir);
    if (it == snapshots.end()) return;
    it->second.entries.erase(name);
    it->second.unsure.insert(name);
  }

  // Another client changed names in `dir` (DIR_CHANGED), or they may have changed unseen.
  void drop_snapshot(uint64_t dir) {
    snapshots.erase(dir);
    ++snapshot_epoch;
    ++cache_stats.dir_changes_heard;
  }

  awaitable<Reply> serve_master(Frame frame) {
    if (frame.header.msg_type() != pb::DIR_CHANGED)
      co_return reply_error(error(Code::kInvalidArgument, fmt::format("a client serves no message type {}", frame.header.msg_type())));
    pb::DirChangedReq req;
    if (Status st = parse_body(frame, &req); !st.ok()) co_return reply_error(st);
    for (uint64_t dir : req.dirs()) drop_snapshot(dir);
    co_return reply_ok(pb::EmptyResp());
  }

  // Watches end with the connection: no snapshot denies names any more.
  void master_closed() {
    ++snapshot_epoch;
    for (auto& [dir, snap] : snapshots) snap.watched = false;
  }

  // The snapshot entry that holds `ino`: its directory's entries and the entry, or null.
  std::pair<SnapshotEntries*, SnapshotEntries::iterator> snapshot_entry(uint64_t ino) {
    auto place = snapshot_place.find(ino);
    if (place == snapshot_place.end()) return {};
    auto dir = snapshots.find(place->second.first);
    if (dir == snapshots.end()) return {};
    auto e = dir->second.entries.find(place->second.second);
    if (e == dir->second.entries.end() || e->second.inode() != ino) return {};
    return {&dir->second.entries, e};
  }

  // A change whose new attributes are not known here (its ctime moves).
  void forget_snapshot_entry(uint64_t ino) {
    auto place = snapshot_place.find(ino);
    if (place == snapshot_place.end()) return;
    if (auto [entries, e] = snapshot_entry(ino); entries) entry_unsure(place->second.first, place->second.second);
  }

  // Newer attributes of an inode replace those a snapshot holds.
  void snapshot_attr(const pb::Attr& attr) {
    if (auto [entries, e] = snapshot_entry(attr.inode()); entries) e->second = attr;
    if (auto it = files.find(attr.inode()); it != files.end()) heard_size(*it->second, attr);
  }
  void heard_size(FileState& fs, const pb::Attr& attr) {
    if (attr.type() != pb::FT_REGULAR) return;
    // Growth the master recorded no longer counts against this client's headroom.
    if (fs.master_size && attr.size() > *fs.master_size)
      if (auto h = headroom.find(attr.volume_id()); h != headroom.end())
        h->second.unrecorded -= std::min(h->second.unrecorded, attr.size() - *fs.master_size);
    fs.master_size = attr.size();
    fs.volume_id = attr.volume_id();
  }
  // What this client knows of a file it opened or created: its size at the master.
  void opened(const pb::Attr& attr) {
    if (attr.type() == pb::FT_REGULAR) heard_size(*file(attr.inode()), attr);
  }

  // The master learns a file's new size at flush(); until then this client knows better.
  void with_pending_size(pb::Attr* attr) {
    auto it = files.find(attr->inode());
    if (it != files.end() && it->second->pending_size > attr->size()) attr->set_size(it->second->pending_size);
  }

  void forget_locations(uint64_t ino) {
    auto it = files.find(ino);
    if (it != files.end()) it->second->located.reset();
  }

  // A closed file's state goes when the next open would rebuild it all: nothing buffered,
  // on its way, waiting for an fsync or failed. (Otherwise a data loader that reads
  // millions of files keeps a state for each.)
  void forget_file_if_clean(uint64_t ino) {
    auto it = files.find(ino);
    if (it == files.end()) return;
    const FileState& fs = *it->second;
    if (fs.idle() && fs.dirty_len.empty() && fs.leases.empty() && fs.unsynced.empty() && !fs.unsynced_pack &&
        fs.error.ok() && fs.lost.ok() && fs.handles == 0 && fs.pending_size == 0 && fs.waiters.empty())
      files.erase(it);
  }

  FilePtr file(uint64_t ino) {
    FilePtr& f = files[ino];
    if (!f) f = std::make_shared<FileState>();
    return f;
  }

  awaitable<Status> ask_status(uint16_t type, const google::protobuf::MessageLite& req) {
    auto r = co_await call_master(type, req);
    co_return r.ok() ? Status::Ok() : r.status();
  }

  // ---------------------------------------------------------------- write path

  // The write lease of a chunk; a new one when none is held or the held one (stale_generation) failed.
  awaitable<Result<Lease>> get_lease(uint64_t ino, uint64_t index, uint64_t stale_generation) {
    auto guard = co_await lease_locks.lock((ino << 24) ^ index);
    FilePtr fs = file(ino);
    auto it = fs->leases.find(index);
    if (it != fs->leases.end() && it->second.generation != stale_generation) co_return it->second;
    pb::ChunkForWriteReq req;
    req.set_inode(ino);
    req.set_index(index);
    CO_ASSIGN_OR_RETURN(pb::ChunkForWriteResp resp, co_await ask<pb::ChunkForWriteResp>(pb::CHUNK_FOR_WRITE, req));
    if (resp.chunk().replicas().empty())
      co_return error(Code::kUnavailable, fmt::format("master gave no chain for chunk {} of inode {}", index, ino));
    if (resp.has_packed()) CO_RETURN_IF_ERROR(co_await unpack(ino, resp));
    Lease lease{resp.chunk(), next_generation++};
    fs->leases[index] = lease;
    co_return lease;
  }

  // A packed file is written in place only in a chunk of its own: its packed bytes are
  // copied to the chunk the master made for it, and then the file moves there.
  awaitable<Status> unpack(uint64_t ino, const pb::ChunkForWriteResp& resp) {
    const pb::ChunkInfo& from = resp.packed();
    std::string bytes(from.extent_length(), '\0');
    CO_RETURN_IF_ERROR(co_await read_piece(&from, Piece{0, 0, bytes.size(), bytes.data()}));
    const pb::ChunkInfo& to = resp.chunk();
    CO_RETURN_IF_ERROR(co_await write_down_chain(cs_conns, to, 0, std::move(bytes)));
    pb::UnpackEndReq end;
    end.set_inode(ino);
    end.set_chunk_id(to.chunk_id());
    end.set_length(from.extent_length());
    end.set_packed_chunk(from.chunk_id());
    end.set_packed_offset(from.extent_offset());
    co_return co_await ask_status(pb::UNPACK_END, end);
  }

  awaitable<Status> write_piece(uint64_t ino, uint64_t index, uint64_t offset, const char* data, size_t len) {
    uint64_t stale = 0;
    Status last;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      if (attempt > 0) co_await sleep_for(std::chrono::milliseconds(100 * attempt));
      auto leased = co_await get_lease(ino, index, stale);
      if (!leased.ok()) {
        // No chunkserver to give a chain yet (a master that just restarted): again, later.
        last = leased.status();
        if (last.is(Code::kUnavailable)) continue;
        co_return last;
      }
      Lease lease = std::move(*leased);
      const pb::ChunkInfo& c = lease.info;
      last = co_await write_down_chain(cs_conns, c, offset, std::string(data, len));
      if (last.ok()) {
        uint64_t& dirty = file(ino)->dirty_len[index];
        dirty = std::max(dirty, offset + len);
        co_return Status::Ok();
      }
      if (!worth_retry(last)) break;
      spdlog::warn("write of chunk {:016x} (inode {}, index {}) failed, asking the master again: {}", c.chunk_id(), ino,
                   index, last.message());
      stale = lease.generation;
    }
    co_return last;
  }

  struct Piece {
    uint64_t index;
    uint64_t offset;  // in the chunk
    size_t len;
    char* buf;
  };

  static std::vector<Piece> split(uint64_t offset, size_t len, size_t io_size, char* buf) {
    std::vector<Piece> pieces;
    while (len > 0) {
      uint64_t index = offset / kChunkSize;
      uint64_t in_chunk = offset % kChunkSize;
      size_t n = std::min<uint64_t>({len, io_size, kChunkSize - in_chunk});
      pieces.push_back(Piece{index, in_chunk, n, buf});
      offset += n;
      len -= n;
      buf += n;
    }
    return pieces;
  }

  // Runs fn over every piece with at most `window` in flight; the first error wins.
  template <class Fn>
  awaitable<Status> for_each_piece(const std::vector<Piece>& pieces, Fn fn) {
    size_t next = 0;
    Status first_error;
    auto worker = [&]() -> awaitable<Status> {
      while (next < pieces.size() && first_error.ok()) {
        const Piece& p = pieces[next++];
        Status st = co_await fn(p);
        if (!st.ok() && first_error.ok()) first_error = st;
      }
      co_return Status::Ok();
    };
    std::vector<awaitable<Status>> workers;
    for (size_t i = 0; i < std::min(opts.window, pieces.size()); ++i) workers.push_back(worker());
    co_await when_all(std::move(workers));
    co_return first_error;
  }

  // Sends [offset, offset + len) through the chains, `window` requests in flight.
  awaitable<Status> write_range(uint64_t ino, uint64_t offset, const char* data, size_t len) {
    auto pieces = split(offset, len, opts.io_size, const_cast<char*>(data));
    co_return co_await for_each_piece(pieces, [&](const Piece& p) {
      return write_piece(ino, p.index, p.offset, p.buf, p.len);
    });
  }

  static awaitable<void> wait_for_change(FilePtr fs) {
    auto ev = std::make_shared<Event>(co_await asio::this_coro::executor);
    fs->waiters.push_back(ev);
    co_await ev->wait();
  }

  static bool overlaps_sending(const FileState& fs, uint64_t begin, uint64_t end) {
    for (auto [b, e] : fs.sending)
      if (b < end && begin < e) return true;
    return false;
  }

  // Starts sending the buffered run. Waits while it would overlap a run still on its way
  // (so writes land in order) or while too much is in flight (back-pressure).
  awaitable<void> launch(uint64_t ino, FilePtr fs) {
    while (!fs->buf.empty()) {
      uint64_t begin = fs->buf_offset, end = begin + fs->buf.size();
      if (!overlaps_sending(*fs, begin, end) && fs->sending_bytes + fs->buf.size() <= opts.max_in_flight) break;
      co_await wait_for_change(fs);
    }
    if (fs->buf.empty()) co_return;  // another coroutine launched it meanwhile
    std::string data = std::move(fs->buf);
    fs->buf.clear();
    uint64_t offset = fs->buf_offset;
    fs->sending.emplace_back(offset, offset + data.size());
    fs->sending_bytes += data.size();
    asio::co_spawn(io, send_run(ino, fs, offset, std::move(data)), asio::detached);
  }

  awaitable<void> send_run(uint64_t ino, FilePtr fs, uint64_t offset, std::string data) {
    Status st = co_await write_range(ino, offset, data.data(), data.size());
    if (!st.ok()) {
      spdlog::error("write-back of inode {} [{}, +{}) failed: {}", ino, offset, data.size(), st.message());
      if (fs->error.ok()) fs->error = st;
    }
    std::erase(fs->sending, std::make_pair(offset, offset + data.size()));
    fs->sending_bytes -= data.size();
    auto waiters = std::move(fs->waiters);
    fs->waiters.clear();
    for (auto& w : waiters) w->notify();
  }

  // Sends whatever is buffered and waits until every run of the file landed.
  awaitable<void> drain(uint64_t ino, FilePtr fs) {
    co_await launch(ino, fs);
    while (!fs->sending.empty()) co_await wait_for_change(fs);
  }

  // ---- quotas at write(): what this client believes its volumes may still take.
  struct Headroom {
    uint64_t left = 0;
    Clock::time_point heard{};  // when the master last said (STATFS)
    uint64_t unrecorded = 0;    // growth this client let through that the master has not recorded yet
  };
  std::map<uint64_t, Headroom> headroom;  // by volume id
  static constexpr auto kHeadroomAge = std::chrono::seconds(1);

  // A write that would take its volume past its size is refused at write() (EDQUOT) rather
  // than at close, after its bytes went out: the client counts down what the master said is
  // left (STATFS, asked again after a second, or when a write would not fit). The master's
  // check when the size is recorded (WRITE_END, PACK_COMMIT) stays the one that holds
  // against other clients writing at once (docs/small-files.md, "Accounting").
  awaitable<Status> take_headroom(const FileState& fs, uint64_t end) {
    const Mounted* m = nullptr;
    for (const Mounted& x : mounts)
      if (x.volume_id == fs.volume_id && fs.volume_id != 0) m = &x;
    if (!m || m->size_bytes == 0) co_return Status::Ok();
    const uint64_t known = std::max(fs.master_size.value_or(0), fs.pending_size);
    if (end <= known) co_return Status::Ok();
    const uint64_t growth = end - known;
    Headroom& h = headroom[m->volume_id];
    const auto now = Clock::now();
    if (now - h.heard > kHeadroomAge || growth > h.left) {
      const uint64_t volume_id = m->volume_id, size_bytes = m->size_bytes;
      pb::StatfsReq req;
      req.set_inode(m->root);
      auto st = co_await ask<pb::StatfsResp>(pb::STATFS, req);
      if (!st.ok()) co_return Status::Ok();  // the master decides at close, as before
      Headroom& fresh = headroom[volume_id];
      const uint64_t used = st->used_bytes() + fresh.unrecorded;
      fresh.left = size_bytes > used ? size_bytes - used : 0;
      fresh.heard = now;
      if (growth > fresh.left)
        co_return error(Code::kQuotaExceeded, fmt::format("the volume's size ({} bytes) would be passed: {} bytes left, "
                                                          "this write adds {}", size_bytes, fresh.left, growth));
      fresh.left -= growth;
      fresh.unrecorded += growth;
      co_return Status::Ok();
    }
    h.left -= growth;
    h.unrecorded += growth;
    co_return Status::Ok();
  }

  awaitable<Status> write(uint64_t ino, uint64_t offset, const char* data, size_t len) {
    FilePtr fs = file(ino);
    if (!fs->error.ok()) co_return fs->error;
    CO_RETURN_IF_ERROR(co_await take_headroom(*fs, offset + len));
    fs->located.reset();
    fs->pending_size = std::max(fs->pending_size, offset + len);
    // Join the buffered run when this write continues it; otherwise send that run first.
    // Re-checked after every wait: another writer of the file may have buffered meanwhile.
    for (;;) {
      if (fs->buf.empty()) {
        fs->buf_offset = offset;
        break;
      }
      if (offset == fs->buf_offset + fs->buf.size()) break;
      co_await launch(ino, fs);
    }
    fs->buf.append(data, len);
    if (fs->buf.size() >= opts.write_behind) co_await launch(ino, fs);
    co_return Status::Ok();
  }

  awaitable<Result<uint64_t>> append(uint64_t ino, const char* data, size_t len) {
    FilePtr fs = file(ino);
    co_await drain(ino, fs);  // this client's earlier writes go first
    pb::AppendReq req;
    req.set_inode(ino);
    req.set_length(len);
    name_change(req.mutable_op());  // sent again after a master restart, it reserves once
    CO_ASSIGN_OR_RETURN(pb::AppendResp resp, co_await ask<pb::AppendResp>(pb::APPEND, req, req.mutable_op()));
    CO_RETURN_IF_ERROR(co_await write_range(ino, resp.offset(), data, len));
    fs->located.reset();
    fs->pending_size = std::max(fs->pending_size, resp.offset() + len);
    co_return resp.offset();
  }

  // CHUNK_SYNC down the chain; with a fresh chain and ticket from the master when the
  // held ones no longer work (expired ticket, a replica gone).
  awaitable<Status> sync_chunk(uint64_t ino, uint64_t index, pb::ChunkInfo info) {
    Status st = co_await sync_down_chain(cs_conns, info);
    if (st.ok() || !worth_retry(st)) co_return st;
    CO_ASSIGN_OR_RETURN(Lease lease, co_await get_lease(ino, index, ~0ull));
    co_return co_await sync_down_chain(cs_conns, lease.info);
  }

  // Makes the file's writes visible to every client: they land on the chunkservers and the
  // master records the new size. With `durable`, every chunk written since the last durable
  // flush is synced to disk on all its replicas first (fsync); without, the bytes may still
  // be in the chunkservers' page cache (close), as on a local file system.
  awaitable<Status> flush(uint64_t ino, bool durable) {
    auto it = files.find(ino);
    if (it == files.end()) co_return Status::Ok();
    FilePtr fs = it->second;
    if (packable(*fs)) co_await flush_packed(ino, fs);
    co_await drain(ino, fs);
    if (!fs->error.ok()) {
      // Those bytes are lost: this and every later flush says so (FileState::lost).
      Status st = std::move(fs->error);
      fs->error = Status::Ok();
      fs->dirty_len.clear();
      fs->leases.clear();
      fs->pending_size = 0;
      fs->unsynced.clear();
      fs->unsynced_pack.reset();
      fs->lost = error(st.code(), fmt::format("writing inode {} failed: {}", ino, st.message()));
    }
    if (!fs->lost.ok()) co_return fs->lost;
    std::map<uint64_t, uint64_t> dirty = std::move(fs->dirty_len);
    std::map<uint64_t, Lease> leases = std::move(fs->leases);
    uint64_t size = fs->pending_size;
    fs->dirty_len.clear();
    fs->leases.clear();
    for (auto& [index, len] : dirty) fs->unsynced[index] = leases[index].info;
    if (durable && !fs->unsynced.empty()) {
      std::map<uint64_t, pb::ChunkInfo> to_sync = std::move(fs->unsynced);
      fs->unsynced.clear();
      std::vector<awaitable<Status>> syncs;
      for (auto& [index, info] : to_sync) syncs.push_back(sync_chunk(ino, index, info));
      for (Status& st : co_await when_all(std::move(syncs)))
        if (!st.ok()) {
          // Never retried into a success: the pages a failed sync covered may be gone.
          fs->lost = error(st.code(), fmt::format("making inode {} durable failed: {}", ino, st.message()));
          co_return fs->lost;
        }
    }
    if (durable && fs->unsynced_pack) {
      pb::ChunkInfo pack = std::move(*fs->unsynced_pack);
      fs->unsynced_pack.reset();
      if (Status st = co_await sync_down_chain(cs_conns, pack); !st.ok()) {
        fs->lost = error(st.code(), fmt::format("making inode {} durable failed: {}", ino, st.message()));
        co_return fs->lost;
      }
    }
    for (auto& [index, len] : dirty) {
      pb::WriteEndReq req;
      req.set_inode(ino);
      req.set_chunk_id(leases[index].info.chunk_id());
      req.set_chunk_length(len);
      req.set_file_size(size);
      CO_ASSIGN_OR_RETURN(pb::AttrResp ended, co_await ask<pb::AttrResp>(pb::WRITE_END, req));
      snapshot_attr(ended.attr());
    }
    // The master has the size now; a later write starts counting afresh.
    if (!dirty.empty() && fs->idle() && fs->dirty_len.empty() && fs->pending_size == size) fs->pending_size = 0;
    if (!dirty.empty()) fs->located.reset();
    co_return Status::Ok();
  }

  // ---------------------------------------------------------------- packed small files

  uint32_t pack_below(uint64_t volume_id) const {
    for (const Mounted& m : mounts)
      if (m.volume_id == volume_id) return m.pack_below;
    return 0;
  }

  // A small file whose whole content this client holds in one buffered run, none of it on
  // its way yet: it goes into a pack instead of a chunk of its own.
  bool packable(const FileState& fs) const {
    if (fs.buf.empty() || fs.buf_offset != 0 || !fs.sending.empty() || !fs.leases.empty() || !fs.dirty_len.empty() ||
        !fs.error.ok() || !fs.master_size)
      return false;
    if (fs.buf.size() < *fs.master_size || fs.pending_size > fs.buf.size()) return false;  // not all of it
    return fs.buf.size() < pack_below(fs.volume_id);
  }

  // Sends the buffered run into this client's pack and commits it as the file's content
  // (one master request). When another client changed the file meanwhile, the run is
  // written the ordinary way instead, and the flush records it as it records any write.
  awaitable<void> flush_packed(uint64_t ino, FilePtr fs) {
    std::string data = std::move(fs->buf);
    fs->buf.clear();
    const uint64_t size = data.size();
    fs->sending.emplace_back(0, size);  // later writes and flushes of the file wait for it
    fs->sending_bytes += size;
    auto packed = co_await packer.write_file(fs->volume_id, ino, data, size, *fs->master_size);
    Status st;
    if (packed.ok()) {
      fs->unsynced_pack = packed->pack;
      snapshot_attr(packed->attr);
      fs->located.reset();
    } else if (packed.status().is(Code::kBusy) || packed.status().is(Code::kNotSupported)) {
      st = co_await write_range(ino, 0, data.data(), size);
    } else {
      st = packed.status();
    }
    if (!st.ok()) {
      spdlog::error("write-back of inode {} [0, +{}) failed: {}", ino, size, st.message());
      if (fs->error.ok()) fs->error = st;
    }
    std::erase(fs->sending, std::make_pair(uint64_t{0}, size));
    fs->sending_bytes -= size;
    // The master has the size now (unless the run went the ordinary way: WRITE_END tells it).
    if (packed.ok() && fs->idle() && fs->dirty_len.empty() && fs->pending_size <= size) fs->pending_size = 0;
    auto waiters = std::move(fs->waiters);
    fs->waiters.clear();
    for (auto& w : waiters) w->notify();
  }

  // ---------------------------------------------------------------- read path

  awaitable<Result<pb::ChunkLocateResp>> locate(uint64_t ino) {
    pb::ChunkLocateReq req;
    req.set_inode(ino);
    co_return co_await ask<pb::ChunkLocateResp>(pb::CHUNK_LOCATE, req);
  }

  awaitable<Status> read_piece(const pb::ChunkInfo* c, Piece p) {
    if (!c || c->chunk_id() == 0) {
      std::memset(p.buf, 0, p.len);
      co_return Status::Ok();
    }
    if (c->extent_length() > 0) co_return co_await read_packed(c, p);
    CO_ASSIGN_OR_RETURN(std::string bytes, co_await read_from_copies(cs_conns, *c, p.offset, p.len));
    size_t got = std::min(bytes.size(), p.len);
    std::memcpy(p.buf, bytes.data(), got);
    std::memset(p.buf + got, 0, p.len - got);  // past the chunk's written end: zeros
    co_return Status::Ok();
  }

  // A packed file's bytes [0, extent_length) are at extent_offset in its pack; past them it
  // reads as zeros. A piece inside one block of the pack comes from the pack cache, or
  // brings the whole block there.
  awaitable<Status> read_packed(const pb::ChunkInfo* c, Piece p) {
    const uint64_t held = c->extent_length() > p.offset ? c->extent_length() - p.offset : 0;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(p.len, held));
    std::memset(p.buf + n, 0, p.len - n);
    if (n == 0) co_return Status::Ok();
    const uint64_t at = c->extent_offset() + p.offset;
    const uint64_t block = at / PackCache::kBlock * PackCache::kBlock;
    if (at + n <= block + PackCache::kBlock) {
      if (pack_cache.get(c->chunk_id(), at, n, p.buf)) co_return Status::Ok();
      CO_ASSIGN_OR_RETURN(std::string bytes, co_await read_from_copies(cs_conns, *c, block, PackCache::kBlock));
      pack_cache.put(c->chunk_id(), block, std::move(bytes));
      if (pack_cache.get(c->chunk_id(), at, n, p.buf)) co_return Status::Ok();
    }
    CO_ASSIGN_OR_RETURN(std::string bytes, co_await read_from_copies(cs_conns, *c, at, n));
    if (bytes.size() < n)
      co_return error(Code::kIOError, fmt::format("pack {:016x} holds {} bytes at {}, not the {} its file has",
                                                  c->chunk_id(), bytes.size(), at, n));
    std::memcpy(p.buf, bytes.data(), n);
    co_return Status::Ok();
  }

  awaitable<Result<size_t>> read(uint64_t ino, uint64_t offset, size_t len, char* out) {
    FilePtr fs = file(ino);
    if (!fs->idle()) co_await drain(ino, fs);  // read this client's own writes
    for (int attempt = 0;; ++attempt) {
      if (!fs->located) {
        CO_ASSIGN_OR_RETURN(pb::ChunkLocateResp located, co_await locate(ino));
        fs->located = std::move(located);
      }
      pb::ChunkLocateResp located = *fs->located;
      uint64_t size = std::max(located.attr().size(), fs->pending_size);
      if (offset >= size) co_return size_t{0};
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, size - offset));
      std::map<uint64_t, const pb::ChunkInfo*> by_index;
      for (const auto& c : located.chunks()) by_index[c.index()] = &c;
      auto pieces = split(offset, n, opts.io_size, out);
      Status result = co_await for_each_piece(pieces, [&](const Piece& p) {
        auto it = by_index.find(p.index);
        return read_piece(it == by_index.end() ? nullptr : it->second, p);
      });
      if (result.ok()) co_return n;
      // Versions or tickets may have moved on: locate again once.
      fs->located.reset();
      if (attempt >= 2 || !worth_retry(result)) co_return result;
    }
  }
};

// ------------------------------------------------------------------ public API

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() {
  impl_->run([](Impl* impl) -> awaitable<int> {
    Status st = co_await impl->unmount_all();
    if (!st.ok()) spdlog::warn("unmount: {}", st.message());
    if (impl->master) impl->master->close(error(Code::kUnavailable, "client closing"));
    impl->cs_conns.close_all();
    co_return 0;
  }(impl_.get()));
  impl_->work.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  impl->work.emplace(impl->io.get_executor());
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  std::unique_ptr<Client> client(new Client(std::move(impl)));
  Status st = raw->run([](Impl* impl) -> awaitable<Status> {
    auto conn = co_await impl->dial_master();
    if (!conn.ok())
      co_return error(Code::kUnavailable, fmt::format("cannot reach master at {}: {}", impl->opts.master, conn.status().message()));
    impl->master = *conn;
    co_return Status::Ok();
  }(raw));
  if (!st.ok()) return st;
  return client;
}

Result<std::string> find_volume_secret(const std::string& volume, const std::string& secret_file) {
  if (!secret_file.empty()) return read_secret_file(secret_file);
  if (const char* s = std::getenv("KEELFS_SECRET"); s && *s) return std::string(s);
  if (const char* f = std::getenv("KEELFS_SECRET_FILE"); f && *f) return read_secret_file(f);
  if (const char* home = std::getenv("KEELFS_HOME"); home && *home) {
    std::string path = std::string(home) + "/" + volume + ".secret";
    if (access(path.c_str(), F_OK) == 0) return read_secret_file(path);
  }
  return std::string();
}

std::string host_region(const std::string& region) {
  if (!region.empty()) return region;
  if (const char* r = std::getenv("KEELFS_REGION"); r && *r) return r;
  std::ifstream in("/etc/keelfs/region");
  std::string line;
  if (in && std::getline(in, line) && !line.empty()) return line;
  return "default";
}

Result<pb::MountResp> Client::mount(const MountRequest& request) {
  return impl_->run([](Impl* impl, MountRequest request) -> awaitable<Result<pb::MountResp>> {
    CO_RETURN_IF_ERROR(co_await impl->ensure_master());
    Impl::Mounted m;
    m.req = std::move(request);
    CO_ASSIGN_OR_RETURN(pb::MountResp resp, co_await impl->mount_one(m));
    std::erase_if(impl->mounts, [&](const Impl::Mounted& x) { return x.req.volume == m.req.volume; });
    impl->mounts.push_back(std::move(m));
    if (!impl->heartbeating) {
      impl->heartbeating = true;
      asio::co_spawn(impl->io, impl->heartbeat_loop(std::max<uint32_t>(resp.heartbeat_ms(), 100)), asio::detached);
    }
    co_return resp;
  }(impl_.get(), request));
}

Status Client::unmount() { return impl_->run(impl_->unmount_all()); }

Status Client::admin_login(const std::string& cluster_secret) {
  return impl_->run([](Impl* impl, std::string secret) -> awaitable<Status> {
    impl->admin_secret = std::move(secret);
    if (!impl->master || !impl->master->is_open()) co_return co_await impl->ensure_master();  // logs in
    co_return co_await impl->login_admin();
  }(impl_.get(), cluster_secret));
}

Result<CreatedVolume> Client::volume_create(pb::VolumeCreateReq req) {
  CreatedVolume out;
  out.secret = random_secret();
  VolumeKeys keys = volume_keys(out.secret, random_salt());
  req.set_salt(keys.salt);
  req.set_stored_key(keys.stored_key);
  req.set_server_key(keys.server_key);
  auto r = impl_->run(impl_->ask<pb::VolumeCreateResp>(pb::VOLUME_CREATE, req));
  if (!r.ok()) return r.status();
  out.info = r->volume();
  return out;
}

Result<pb::VolumeInfo> Client::volume_resize(const std::string& name, uint64_t size_bytes, uint64_t max_inodes) {
  pb::VolumeResizeReq req;
  req.set_name(name);
  req.set_size_bytes(size_bytes);
  req.set_max_inodes(max_inodes);
  auto r = impl_->run(impl_->ask<pb::VolumeCreateResp>(pb::VOLUME_RESIZE, req));
  if (!r.ok()) return r.status();
  return r->volume();
}

Status Client::volume_remove(const std::string& name) {
  pb::VolumeRemoveReq req;
  req.set_name(name);
  return impl_->run(impl_->ask_status(pb::VOLUME_REMOVE, req));
}

Result<std::vector<pb::SessionInfo>> Client::session_list(const std::string& volume) {
  pb::SessionListReq req;
  req.set_volume(volume);
  auto r = impl_->run(impl_->ask<pb::SessionListResp>(pb::SESSION_LIST, req));
  if (!r.ok()) return r.status();
  return std::vector<pb::SessionInfo>(r->sessions().begin(), r->sessions().end());
}

Result<std::vector<pb::VolumeInfo>> Client::volume_list() {
  auto r = impl_->run(impl_->ask<pb::VolumeListResp>(pb::VOLUME_LIST, pb::VolumeListReq()));
  if (!r.ok()) return r.status();
  return std::vector<pb::VolumeInfo>(r->volumes().begin(), r->volumes().end());
}

asio::any_io_executor Client::executor() { return impl_->io.get_executor(); }

awaitable<Result<std::vector<pb::CsInfo>>> Client::co_cs_list() {
  pb::CsListReq req;
  CO_ASSIGN_OR_RETURN(pb::CsListResp resp, co_await impl_->ask<pb::CsListResp>(pb::CS_LIST, req));
  co_return std::vector<pb::CsInfo>(resp.servers().begin(), resp.servers().end());
}

Result<pb::FsckResp> Client::fsck(const std::string& volume) {
  pb::FsckReq req;
  req.set_volume(volume);
  return impl_->run(impl_->ask<pb::FsckResp>(pb::FSCK, req));
}

Result<pb::DuResp> Client::du(uint64_t ino) {
  pb::DuReq req;
  req.set_inode(ino);
  return impl_->run(impl_->ask<pb::DuResp>(pb::DU, req));
}

Status Client::cs_drain(const std::string& address, bool drain) {
  pb::CsDrainReq req;
  req.set_address(address);
  req.set_drain(drain);
  return impl_->run(impl_->ask_status(pb::CS_DRAIN, req));
}

awaitable<Result<pb::HealthResp>> Client::co_health() {
  pb::HealthReq req;
  co_return co_await impl_->ask<pb::HealthResp>(pb::HEALTH, req);
}

// ---- namespace

awaitable<Result<pb::Attr>> Client::co_lookup(uint64_t parent, std::string name) {
  pb::LookupReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  co_return co_await impl_->ask_attr(pb::LOOKUP, req);
}

awaitable<Result<pb::Attr>> Client::co_lookup_cached(uint64_t parent, std::string name, double max_age, double* age,
                                                     double* name_age) {
  *age = 0;
  *name_age = 0;
  auto it = impl_->snapshots.find(parent);
  if (it != impl_->snapshots.end()) {
    Impl::DirSnapshot& snap = it->second;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - snap.at).count();
    auto e = snap.entries.find(name);
    if (e != snap.entries.end()) {
      // A file of several names is asked of the master: a change through another name
      // (unlink, rename over it) moves its link count.
      if (seconds < max_age && (e->second.nlink() <= 1 || e->second.type() == pb::FT_DIRECTORY)) {
        *age = seconds;
        *name_age = snap.watched ? 0 : seconds;
        ++impl_->cache_stats.snapshot_hits;
        pb::Attr attr = e->second;
        impl_->with_pending_size(&attr);
        co_return attr;
      }
      // A watched directory's subdirectory: the name is exact, its attributes come already
      // expired (the kernel asks for them when it needs them; an rmdir or a path walk
      // does not). Files' attributes (their size) are not handed out stale.
      if (snap.watched && e->second.type() == pb::FT_DIRECTORY) {
        *age = max_age;
        ++impl_->cache_stats.snapshot_hits;
        co_return e->second;
      }
    } else if (snap.watched && !snap.unsure.count(name)) {
      ++impl_->cache_stats.snapshot_denials;
      co_return error(Code::kNotFound, fmt::format("no '{}' in directory {}", name, parent));
    }
    // Names stay right while watched; attributes only for the attribute timeout.
    if (seconds >= max_age && !snap.watched) impl_->snapshots.erase(it);
  }
  auto found = co_await co_lookup(parent, std::move(name));
  if (max_age > 0 && (found.ok() || found.status().is(Code::kNotFound))) impl_->note_lookup_miss(parent);
  co_return found;
}

awaitable<Result<pb::Attr>> Client::co_getattr(uint64_t ino) {
  pb::GetattrReq req;
  req.set_inode(ino);
  co_return co_await impl_->ask_attr(pb::GETATTR, req);
}

awaitable<Result<pb::Attr>> Client::co_getattr_recent(uint64_t ino, double max_age, double* age) {
  *age = 0;
  auto it = impl_->recent_dirs.find(ino);
  if (it != impl_->recent_dirs.end()) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.at).count();
    if (seconds < max_age) {
      *age = seconds;
      co_return it->second.attr;
    }
    impl_->recent_dirs.erase(it);
  }
  co_return co_await co_getattr(ino);
}

awaitable<Result<pb::Attr>> Client::co_open(uint64_t ino) {
  pb::OpenReq req;
  req.set_inode(ino);
  CO_ASSIGN_OR_RETURN(pb::ChunkLocateResp resp, co_await impl_->ask<pb::ChunkLocateResp>(pb::OPEN, req));
  Impl::FilePtr fs = impl_->file(ino);
  ++fs->handles;
  // Close-to-open: what was cached goes; the answer's locations serve the reads that
  // follow, unless this client has writes in flight whose chunks the answer may predate.
  fs->located.reset();
  if (resp.all_chunks() && fs->idle() && fs->dirty_len.empty()) fs->located = resp;
  impl_->snapshot_attr(resp.attr());
  pb::Attr attr = resp.attr();
  impl_->with_pending_size(&attr);
  co_return attr;
}

void Client::release(uint64_t ino) {
  auto send = [](Impl* impl, uint64_t ino) -> awaitable<void> {
    if (auto it = impl->files.find(ino); it != impl->files.end() && it->second->handles > 0) {
      Impl::FileState& fs = *it->second;
      if (--fs.handles == 0) fs.lost = Status::Ok();  // reported to every close; a new open starts afresh
    }
    impl->forget_file_if_clean(ino);
    pb::OpenReq req;
    req.set_inode(ino);
    Status st = co_await impl->ask_status(pb::RELEASE, req);
    if (!st.ok()) spdlog::warn("release of inode {}: {}", ino, st.message());
  };
  asio::co_spawn(impl_->io, send(impl_.get(), ino), asio::detached);
}

awaitable<Result<pb::Attr>> Client::co_resolve(uint64_t root, std::string path) {
  CO_ASSIGN_OR_RETURN(pb::Attr attr, co_await co_getattr(root));
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    auto next = co_await co_lookup(attr.inode(), part);
    if (!next.ok()) {
      if (next.status().is(Code::kNotFound)) co_return error(Code::kNotFound, fmt::format("'{}' does not exist", path));
      co_return next.status();
    }
    attr = *next;
  }
  co_return attr;
}

awaitable<Result<pb::Attr>> Client::co_mkdir(uint64_t parent, std::string name, uint32_t mode, uint32_t uid,
                                             uint32_t gid) {
  pb::MkdirReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  req.set_mode(mode);
  req.set_uid(uid);
  req.set_gid(gid);
  impl_->name_change(req.mutable_op());
  auto attr = co_await impl_->ask_attr(pb::MKDIR, req, req.mutable_op());
  impl_->note_added(parent, req.name(), attr);
  co_return attr;
}

awaitable<Result<pb::Attr>> Client::co_create(pb::CreateReq req, bool* created) {
  impl_->name_change(req.mutable_op());
  auto asked = co_await impl_->ask<pb::AttrResp>(pb::CREATE, req, req.mutable_op());
  impl_->name_changed(req.parent(), req.name());
  if (!asked.ok()) impl_->entry_unsure(req.parent(), req.name());
  CO_ASSIGN_OR_RETURN(pb::AttrResp resp, std::move(asked));
  impl_->note_changed(resp);
  impl_->entry_added(req.parent(), req.name(), resp.attr());
  impl_->opened(resp.attr());
  if (req.open()) ++impl_->file(resp.attr().inode())->handles;
  if (created) *created = resp.created();
  pb::Attr attr = resp.attr();
  impl_->with_pending_size(&attr);
  co_return attr;
}

awaitable<Result<pb::Attr>> Client::co_symlink(uint64_t parent, std::string name, std::string target, uint32_t uid,
                                               uint32_t gid) {
  pb::SymlinkReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  req.set_target(std::move(target));
  req.set_uid(uid);
  req.set_gid(gid);
  impl_->name_change(req.mutable_op());
  auto attr = co_await impl_->ask_attr(pb::SYMLINK, req, req.mutable_op());
  impl_->note_added(parent, req.name(), attr);
  co_return attr;
}

awaitable<Result<std::string>> Client::co_readlink(uint64_t ino) {
  pb::ReadlinkReq req;
  req.set_inode(ino);
  CO_ASSIGN_OR_RETURN(pb::ReadlinkResp resp, co_await impl_->ask<pb::ReadlinkResp>(pb::READLINK, req));
  co_return std::move(*resp.mutable_target());
}

awaitable<Result<pb::Attr>> Client::co_link(uint64_t ino, uint64_t new_parent, std::string new_name) {
  pb::LinkReq req;
  req.set_inode(ino);
  req.set_new_parent(new_parent);
  req.set_new_name(std::move(new_name));
  impl_->name_change(req.mutable_op());
  auto attr = co_await impl_->ask_attr(pb::LINK, req, req.mutable_op());
  impl_->note_added(new_parent, req.new_name(), attr);
  co_return attr;
}

awaitable<Status> Client::co_unlink(uint64_t parent, std::string name) {
  pb::UnlinkReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  impl_->name_change(req.mutable_op());
  Status st = co_await impl_->ask_change(pb::UNLINK, req, req.mutable_op());
  impl_->note_removed(parent, req.name(), st.ok());
  co_return st;
}

awaitable<Status> Client::co_rmdir(uint64_t parent, std::string name) {
  pb::UnlinkReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  impl_->name_change(req.mutable_op());
  Status st = co_await impl_->ask_change(pb::RMDIR, req, req.mutable_op());
  impl_->note_removed(parent, req.name(), st.ok());
  co_return st;
}

awaitable<Status> Client::co_rename(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name,
                                    uint32_t flags) {
  pb::RenameReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  req.set_new_parent(new_parent);
  req.set_new_name(std::move(new_name));
  req.set_flags(flags);
  impl_->name_change(req.mutable_op());
  auto resp = co_await impl_->ask<pb::AttrResp>(pb::RENAME, req, req.mutable_op());
  // The entry that moved (a directory, perhaps) changed too, and which one it was is not
  // known here: keep only what the answer brings.
  impl_->recent_dirs.clear();
  // RENAME_EXCHANGE leaves both names in place, holding each other's entry.
  impl_->note_removed(req.parent(), req.name(), resp.ok() && !(flags & pb::RF_EXCHANGE));
  impl_->name_changed(req.new_parent(), req.new_name());
  impl_->entry_unsure(req.new_parent(), req.new_name());
  if (!resp.ok()) co_return resp.status();
  impl_->note_changed(*resp);
  co_return Status::Ok();
}

awaitable<Result<pb::ReaddirResp>> Client::co_readdir(uint64_t ino, std::string after, uint32_t max_entries,
                                                      bool plus) {
  pb::ReaddirReq req;
  req.set_inode(ino);
  req.set_after(std::move(after));
  req.set_max_entries(max_entries);
  req.set_plus(plus);
  co_return co_await impl_->ask<pb::ReaddirResp>(pb::READDIR, req);
}

awaitable<Result<std::vector<pb::DirEntry>>> Client::co_readdir_all(uint64_t ino, bool plus) {
  std::vector<pb::DirEntry> out;
  std::string after;
  const auto at = std::chrono::steady_clock::now();
  int pages = 0;
  for (;;) {
    CO_ASSIGN_OR_RETURN(pb::ReaddirResp page, co_await co_readdir(ino, after, 1000, plus));
    ++pages;
    for (auto& e : *page.mutable_entries()) out.push_back(std::move(e));
    if (!page.more() || page.entries().empty()) break;
    after = out.back().name();
  }
  // One page with attributes is a whole directory as of one moment: lookups may use it.
  if (plus && pages == 1) impl_->install_snapshot(ino, at, out, false);
  co_return out;
}

awaitable<Result<pb::Attr>> Client::co_setattr(pb::SetattrReq req) {
  // Setting the size applies to what this client wrote too: flush it first.
  if (req.mask() & pb::SET_SIZE) CO_RETURN_IF_ERROR(co_await impl_->flush(req.inode(), false));
  auto attr = co_await impl_->ask_attr(pb::SETATTR, req);
  impl_->forget_locations(req.inode());
  co_return attr;
}

awaitable<Status> Client::co_setxattr(uint64_t ino, std::string name, std::string value, uint32_t flags) {
  pb::SetxattrReq req;
  req.set_inode(ino);
  req.set_name(std::move(name));
  req.set_value(std::move(value));
  req.set_flags(flags);
  impl_->recent_dirs.erase(ino);  // its ctime moves
  impl_->forget_snapshot_entry(ino);
  impl_->name_change(req.mutable_op());
  auto r = co_await impl_->call_master(pb::SETXATTR, req, req.mutable_op());
  co_return r.ok() ? Status::Ok() : r.status();
}

awaitable<Result<std::string>> Client::co_getxattr(uint64_t ino, std::string name) {
  pb::GetxattrReq req;
  req.set_inode(ino);
  req.set_name(std::move(name));
  CO_ASSIGN_OR_RETURN(pb::GetxattrResp resp, co_await impl_->ask<pb::GetxattrResp>(pb::GETXATTR, req));
  co_return std::move(*resp.mutable_value());
}

awaitable<Result<std::vector<std::string>>> Client::co_listxattr(uint64_t ino) {
  pb::ListxattrReq req;
  req.set_inode(ino);
  CO_ASSIGN_OR_RETURN(pb::ListxattrResp resp, co_await impl_->ask<pb::ListxattrResp>(pb::LISTXATTR, req));
  co_return std::vector<std::string>(resp.names().begin(), resp.names().end());
}

awaitable<Status> Client::co_removexattr(uint64_t ino, std::string name) {
  pb::GetxattrReq req;
  req.set_inode(ino);
  req.set_name(std::move(name));
  impl_->recent_dirs.erase(ino);  // its ctime moves
  impl_->forget_snapshot_entry(ino);
  impl_->name_change(req.mutable_op());
  auto r = co_await impl_->call_master(pb::REMOVEXATTR, req, req.mutable_op());
  co_return r.ok() ? Status::Ok() : r.status();
}

awaitable<Result<pb::StatfsResp>> Client::co_statfs(uint64_t ino) {
  pb::StatfsReq req;
  req.set_inode(ino);
  co_return co_await impl_->ask<pb::StatfsResp>(pb::STATFS, req);
}

// ---- data

awaitable<Result<size_t>> Client::co_read(uint64_t ino, uint64_t offset, size_t len, char* out) {
  return impl_->read(ino, offset, len, out);
}

awaitable<Status> Client::co_write(uint64_t ino, uint64_t offset, const char* data, size_t len) {
  return impl_->write(ino, offset, data, len);
}

awaitable<Result<uint64_t>> Client::co_append(uint64_t ino, const char* data, size_t len) {
  return impl_->append(ino, data, len);
}

awaitable<Status> Client::co_flush(uint64_t ino) { return impl_->flush(ino, false); }

awaitable<Status> Client::co_fsync(uint64_t ino) {
  CO_RETURN_IF_ERROR(co_await impl_->flush(ino, true));
  co_return co_await co_sync_metadata();
}

awaitable<Status> Client::co_sync_metadata() {
  pb::EmptyReq req;  // lives in this frame while ask_status reads it
  const uint64_t upto = impl_->change_seq;
  const size_t names = impl_->unsynced_names.size();
  CO_RETURN_IF_ERROR(co_await impl_->ask_status(pb::SYNC, req));
  // The names changed before the SYNC was sent are on the master's disk now (unless the
  // epoch changed meanwhile, which took them already).
  auto& un = impl_->unsynced_names;
  un.erase(un.begin(), un.begin() + static_cast<ptrdiff_t>(std::min(names, un.size())));
  co_return impl_->sync_answered(upto);
}

awaitable<Status> Client::co_flush_all() {
  std::vector<uint64_t> inodes;
  for (auto& [ino, state] : impl_->files)
    if (!state->dirty_len.empty() || !state->idle() || !state->error.ok() || !state->unsynced.empty())
      inodes.push_back(ino);
  Status first;
  for (uint64_t ino : inodes) {
    Status st = co_await impl_->flush(ino, true);
    // A file deleted after its last close has nothing left to keep.
    if (st.is(Code::kNotFound)) continue;
    if (!st.ok() && first.ok()) first = st;
  }
  if (Status st = co_await co_sync_metadata(); !st.ok() && first.ok()) first = st;
  co_return first;
}

awaitable<void> Client::co_invalidate(uint64_t ino) {
  impl_->forget_locations(ino);
  co_return;
}

awaitable<Result<pb::ChunkLocateResp>> Client::co_locate(uint64_t ino) { return impl_->locate(ino); }

// ---- locks

awaitable<Status> Client::co_lock(pb::LockReq req) { co_return co_await impl_->ask_status(pb::LOCK, req); }

awaitable<Result<pb::LockResp>> Client::co_test_lock(pb::LockReq req) {
  co_return co_await impl_->ask<pb::LockResp>(pb::GETLK, req);
}

// ---- the blocking API: each runs its coroutine on the client's thread and waits

Result<std::vector<pb::CsInfo>> Client::cs_list() { return impl_->run(co_cs_list()); }
Result<pb::HealthResp> Client::health() { return impl_->run(co_health()); }
CacheStats Client::cache_stats() {
  return impl_->run([](Impl* impl) -> awaitable<CacheStats> {
    CacheStats stats = impl->cache_stats;
    stats.files_held = impl->files.size();
    co_return stats;
  }(impl_.get()));
}
Result<pb::Attr> Client::lookup_cached(uint64_t parent, const std::string& name, double max_age) {
  return impl_->run([](Client* c, uint64_t parent, std::string name, double max_age) -> awaitable<Result<pb::Attr>> {
    double age = 0, name_age = 0;
    co_return co_await c->co_lookup_cached(parent, std::move(name), max_age, &age, &name_age);
  }(this, parent, name, max_age));
}

Result<pb::Attr> Client::lookup(uint64_t parent, const std::string& name) { return impl_->run(co_lookup(parent, name)); }
Result<pb::Attr> Client::getattr(uint64_t ino) { return impl_->run(co_getattr(ino)); }
Result<pb::Attr> Client::open(uint64_t ino) { return impl_->run(co_open(ino)); }
Result<pb::Attr> Client::resolve(uint64_t root, const std::string& path) { return impl_->run(co_resolve(root, path)); }
Result<pb::Attr> Client::mkdir(uint64_t parent, const std::string& name, uint32_t mode, uint32_t uid, uint32_t gid) {
  return impl_->run(co_mkdir(parent, name, mode, uid, gid));
}
Result<pb::Attr> Client::create(const pb::CreateReq& req) { return impl_->run(co_create(req)); }
Result<pb::Attr> Client::symlink(uint64_t parent, const std::string& name, const std::string& target, uint32_t uid,
                                 uint32_t gid) {
  return impl_->run(co_symlink(parent, name, target, uid, gid));
}
Result<std::string> Client::readlink(uint64_t ino) { return impl_->run(co_readlink(ino)); }
Result<pb::Attr> Client::link(uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  return impl_->run(co_link(ino, new_parent, new_name));
}
Status Client::unlink(uint64_t parent, const std::string& name) { return impl_->run(co_unlink(parent, name)); }
Status Client::rmdir(uint64_t parent, const std::string& name) { return impl_->run(co_rmdir(parent, name)); }
Status Client::rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                      uint32_t flags) {
  return impl_->run(co_rename(parent, name, new_parent, new_name, flags));
}
Result<pb::ReaddirResp> Client::readdir(uint64_t ino, const std::string& after, uint32_t max_entries, bool plus) {
  return impl_->run(co_readdir(ino, after, max_entries, plus));
}
Result<std::vector<pb::DirEntry>> Client::readdir_all(uint64_t ino, bool plus) {
  return impl_->run(co_readdir_all(ino, plus));
}
Result<pb::Attr> Client::setattr(const pb::SetattrReq& req) { return impl_->run(co_setattr(req)); }
Status Client::setxattr(uint64_t ino, const std::string& name, const std::string& value, uint32_t flags) {
  return impl_->run(co_setxattr(ino, name, value, flags));
}
Result<std::string> Client::getxattr(uint64_t ino, const std::string& name) {
  return impl_->run(co_getxattr(ino, name));
}
Result<std::vector<std::string>> Client::listxattr(uint64_t ino) { return impl_->run(co_listxattr(ino)); }
Status Client::removexattr(uint64_t ino, const std::string& name) { return impl_->run(co_removexattr(ino, name)); }
Result<pb::StatfsResp> Client::statfs(uint64_t ino) { return impl_->run(co_statfs(ino)); }

Result<size_t> Client::read(uint64_t ino, uint64_t offset, size_t len, char* out) {
  return impl_->run(co_read(ino, offset, len, out));
}
Status Client::write(uint64_t ino, uint64_t offset, const char* data, size_t len) {
  return impl_->run(co_write(ino, offset, data, len));
}
Result<uint64_t> Client::append(uint64_t ino, const char* data, size_t len) {
  return impl_->run(co_append(ino, data, len));
}
Status Client::flush(uint64_t ino) { return impl_->run(co_flush(ino)); }
Status Client::fsync(uint64_t ino) { return impl_->run(co_fsync(ino)); }
Status Client::flush_all() { return impl_->run(co_flush_all()); }
void Client::invalidate(uint64_t ino) { impl_->run(co_invalidate(ino)); }
void Client::on_names_maybe_lost(std::function<void(std::vector<std::pair<uint64_t, std::string>>)> fn) {
  impl_->on_names_maybe_lost = std::move(fn);
}
Result<pb::ChunkLocateResp> Client::locate(uint64_t ino) { return impl_->run(co_locate(ino)); }

Status Client::lock(const pb::LockReq& req) { return impl_->run(co_lock(req)); }
Result<pb::LockResp> Client::test_lock(const pb::LockReq& req) { return impl_->run(co_test_lock(req)); }

}  // namespace keelfs::client
