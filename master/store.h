// MetaStore: the master's metadata in RocksDB, the one source of truth.
//
// Column families (keys big-endian so that RocksDB's order is numeric order; the byte
// layout is in docs/formats.md):
//   inodes      ino                      -> InodeRecord
//   dentries    parent ino | name        -> child ino (8) | FileType (1)
//   extents     ino | chunk index        -> FileExtent
//   chunks      chunk id                 -> ChunkRecord
//   volumes     name                     -> VolumeRecord
//   xattrs      ino | name               -> value
//   counters    name                     -> u64 (next inode, next chunk id, next volume id);
//               "draining/" cs id (8)   -> "" (chunkservers being drained)
//               "removing/" volume id (8) -> root ino (8) (removed volumes' trees being deleted)
//               "open-pack/" chunk id (8) -> "" (pack chunks a session still appends to)
//               "dir_figures"           -> be64(2) (every directory's figures are counted,
//                                          in the format of kDirFiguresFormat)
//   usage       volume id                -> UsageRecord
//   ops         client (8) | seq (8)     -> OpRecord (changes committed, for retries)
//   pack_files  pack id | ino            -> "" (the files packed in a pack chunk)
//   dir_usage   directory ino            -> DirDelta, 6 x i64 (figures of its whole subtree)
//
// Every mutation is one Batch written atomically. commit() makes it visible at once and
// writes it to the WAL in the operating system's page cache, so a crash of the master
// process loses nothing committed. A syncer thread fdatasyncs the WAL right behind the
// commits, one sync covering every commit made while the previous one ran (group commit);
// durable() waits until everything committed so far is synced (docs/decisions.md,
// "Metadata durability").
//
// Threading: all calls from the master's single network thread; only the WAL sync runs on
// the syncer thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/asio.h"
#include "common/status.h"
#include "master_records.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace keelfs::master {

struct Dentry {
  std::string name;
  uint64_t inode = 0;
  pb::FileType type = pb::FT_NONE;
};

// A chunk whose last owner let go: the caller deletes it from its chunkservers, once the
// change that freed it is committed.
struct FreedChunk {
  uint64_t chunk_id;
  uint32_t version;
};

// How one change moves a volume's usage counters (signed: a change may add or take away).
struct UsageDelta {
  int64_t logical_bytes = 0;
  int64_t files = 0;
  int64_t chunks = 0;
  int64_t chunk_bytes = 0;
  int64_t pack_bytes = 0;
  int64_t packed_bytes = 0;
};

// The format of the directories' figures (formats.md, `dir_usage`); a store whose
// "dir_figures" counter names another has them counted again at start-up.
constexpr uint64_t kDirFiguresFormat = 2;

// The figures of a directory's subtree (everything below it, at any depth), or how one
// change moves them, and so those of every directory above it.
struct DirDelta {
  int64_t files = 0;          // inodes other than directories
  int64_t dirs = 0;           // directories below it (not itself)
  int64_t logical_bytes = 0;  // sizes of its regular files
  int64_t chunks = 0;         // chunks of the files' own (packs not counted)
  int64_t chunk_bytes = 0;    // lengths of those chunks (one copy)
  int64_t packed_bytes = 0;   // bytes of the files' extents in packs (one copy)

  DirDelta& operator+=(const DirDelta& o);
  DirDelta operator-() const;
  bool zero() const;
};

class MetaStore;

// The writes of one mutation, with everything that follows from it: usage deltas and
// chunks freed. Nothing is visible, counted or released before MetaStore::commit()
// succeeds; a batch that is dropped or fails to commit leaves no trace.
class Batch {
 public:
  Batch();
  Batch(Batch&&) = default;
  Batch& operator=(Batch&&);  // in store.cpp, where rocksdb::WriteBatch is complete
  ~Batch();
  void put_inode(const pb::InodeRecord& rec);
  void delete_inode(uint64_t ino);
  void put_dentry(uint64_t parent, const std::string& name, uint64_t child, pb::FileType type);
  void delete_dentry(uint64_t parent, const std::string& name);
  void put_extent(uint64_t ino, uint64_t index, const pb::FileExtent& extent);
  void delete_extent(uint64_t ino, uint64_t index);
  void put_chunk(uint64_t chunk_id, const pb::ChunkRecord& rec);
  void delete_chunk(uint64_t chunk_id);
  // The chunk's record as this batch left it so far: nullptr when the batch has not
  // touched it, else the record (or none, deleted). A change that touches one chunk twice
  // (two owners of a packed chunk let go at once) reads its own first write here.
  const std::optional<pb::ChunkRecord>* chunk_change(uint64_t chunk_id) const;
  void put_volume(const pb::VolumeRecord& rec);
  void delete_volume(const std::string& name);
  void put_xattr(uint64_t ino, const std::string& name, const std::string& value);
  void delete_xattr(uint64_t ino, const std::string& name);
  // Chunkservers being drained, by id (kept with the counters).
  void set_draining(uint64_t cs_id, bool draining);
  // A removed volume whose tree (below `root`) is still being deleted (kept with the
  // counters); cleared with root 0.
  void set_removing(uint64_t volume_id, uint64_t root);
  // A pack chunk some session appends to (kept with the counters, so that a restart,
  // which ends every session, finds and seals them).
  void set_pack_open(uint64_t chunk_id, bool open);
  // File `ino` has its bytes in pack `pack_id` (its one packed extent).
  void put_pack_file(uint64_t pack_id, uint64_t ino);
  void delete_pack_file(uint64_t pack_id, uint64_t ino);
  // Remembers that the change named `op` is this batch (no-op for op.client() == 0).
  void put_op(const pb::OpId& op, const pb::OpRecord& rec);
  // The volume's usage moves by this much when the batch commits.
  UsageDelta& usage(uint64_t volume_id) { return usage_deltas_[volume_id]; }
  // The volume is gone: its usage record goes with the batch.
  void forget_usage(uint64_t volume_id);
  // The figures of directory `dir` and of every directory above it move by this much when
  // the batch commits (dir 0: no directory's).
  DirDelta& dir_usage(uint64_t dir) { return dir_deltas_[dir]; }
  // The directory is deleted: its figures go, and no delta of this batch writes them again.
  void delete_dir_usage(uint64_t dir);
  // A removed volume's tree: no directory's figures move (they are all going).
  void skip_dir_usage() { dir_deltas_.clear(); }
  // Sets a directory's figures outright (counting them from the tree, once per store).
  void put_dir_usage(uint64_t dir, const DirDelta& figures);
  // Every directory's figures are counted (MetaStore::dir_figures_counted); false: not.
  void set_dir_figures_counted(bool counted);
  // The chunk is to be deleted from its chunkservers once the batch has committed.
  void free_chunk(FreedChunk chunk) { freed_.push_back(chunk); }
  // Appends the chunks this (committed) batch freed to *out (when given).
  // REQUIRES: MetaStore::commit() of this batch succeeded.
  void take_freed(std::vector<FreedChunk>* out);
  bool empty() const;

 private:
  friend class MetaStore;
  MetaStore* store_ = nullptr;  // set by MetaStore::batch()
  std::unique_ptr<rocksdb::WriteBatch> wb_;
  // Chunk records put (a record) or deleted (none), in order.
  std::vector<std::pair<uint64_t, std::optional<pb::ChunkRecord>>> chunk_changes_;
  std::map<uint64_t, UsageDelta> usage_deltas_;
  std::vector<uint64_t> forgotten_usage_;
  std::map<uint64_t, DirDelta> dir_deltas_;
  std::set<uint64_t> deleted_dirs_;
  std::vector<FreedChunk> freed_;
  bool committed_ = false;
};

class MetaStore {
 public:
  ~MetaStore();
  // Opens (creating when missing) the store in `dir`.
  // `ex` is the master's executor: durable() waiters are woken there.
  // `cache_mb`: RocksDB's block cache, which also holds the index and filter blocks and is
  // charged for the memtables, so that the store's memory stays within about that much.
  static Result<std::unique_ptr<MetaStore>> open(const std::string& dir, asio::any_io_executor ex,
                                                 size_t cache_mb = kDefaultCacheMb);
  static constexpr size_t kDefaultCacheMb = 256;

  Batch batch();
  // Applies the batch atomically, with its usage deltas and the id counters moved since the
  // last commit. Visible to reads at once; durable after durable(). On error nothing of
  // the batch is applied, in RocksDB or in memory.
  Status commit(Batch& batch);
  // Tests inject failures here: when set, every commit first asks it, and a non-OK answer
  // fails that commit as a failed write would.
  void set_commit_fault(std::function<Status()> fault) { commit_fault_ = std::move(fault); }
  // The durability epoch: the same for every start of the master on one boot of its
  // machine (`boot_id`), new after a reboot. Whatever an earlier start on the same boot
  // answered is in the WAL, on disk or in the kernel's page cache, and this start has read
  // it back; after a reboot (a power loss) the WAL's unsynced tail may be gone. Recorded,
  // synced, in the counters.
  Result<uint64_t> durability_epoch(const std::string& boot_id);
  // Testing only: the next `n` WAL syncs fail, as a failing disk's would.
  void fail_next_syncs(int n) { failing_syncs_ = n; }
  // Waits until every commit made so far is synced to disk. The error of a failed sync
  // sticks: nothing is reported durable after it, and commit() takes no more changes
  // (a retried sync could report success for pages the kernel dropped; a restart recovers
  // from what is on disk).
  awaitable<Status> durable();

  // ---- reads
  Result<pb::InodeRecord> get_inode(uint64_t ino);
  Result<std::optional<Dentry>> get_dentry(uint64_t parent, const std::string& name);
  // Entries of `parent` with names strictly after `after`, at most `max`.
  Status list_dentries(uint64_t parent, const std::string& after, size_t max, std::vector<Dentry>* out, bool* more);
  Result<bool> dir_is_empty(uint64_t ino);
  Result<std::optional<pb::FileExtent>> get_extent(uint64_t ino, uint64_t index);
  // Extents with index in [first, first + count); count 0 = all.
  Status list_extents(uint64_t ino, uint64_t first, uint64_t count,
                      const std::function<void(uint64_t index, const pb::FileExtent&)>& fn);
  Result<std::optional<pb::ChunkRecord>> get_chunk(uint64_t chunk_id);
  Result<std::optional<pb::VolumeRecord>> get_volume(const std::string& name);
  std::vector<pb::VolumeRecord> list_volumes();
  std::vector<uint64_t> list_draining();
  // Removed volumes whose trees are still being deleted: (volume id, root inode).
  std::vector<std::pair<uint64_t, uint64_t>> list_removing();
  // Files packed in the pack with inode numbers above `after`, at most `max`, in order.
  Status list_pack_files(uint64_t pack_id, uint64_t after, size_t max, std::vector<uint64_t>* out, bool* more);
  // Pack chunks left open (Batch::set_pack_open).
  std::vector<uint64_t> list_open_packs();
  // Up to `max` chunk records with id >= first, in id order; returns the id to go on from,
  // 0 when none is left. Sliced scans (the healer's sweep, HEALTH) yield between calls.
  // Records are read from RocksDB: only chunk locations stay in memory (docs/decisions.md,
  // "Bounded memory"). REQUIRES: fn does not commit.
  uint64_t for_each_chunk_from(uint64_t first, size_t max,
                               const std::function<void(uint64_t chunk_id, const pb::ChunkRecord&)>& fn);
  // Every record of every column family in key order, with the family's name: for tests
  // that compare the whole store before and after, and for diagnostics.
  Status for_each_record(const std::function<void(const std::string& cf, const std::string& key,
                                                  const std::string& value)>& fn);
  // The committed change named `op`, if it was.
  Result<std::optional<pb::OpRecord>> get_op(const pb::OpId& op);
  // Forgets the client's changes with seq below `below` (UINT64_MAX: all of them). Its own
  // write, not part of any change: losing it to a crash only keeps records longer.
  Status forget_ops(uint64_t client, uint64_t below);
  // Every client that has changes remembered (at start-up).
  std::vector<uint64_t> op_clients();
  // Chunks whose truncate cut is not made on their chunkservers yet (ChunkRecord.pending_cut).
  std::vector<uint64_t> chunks_with_pending_cut() const { return {pending_cuts_.begin(), pending_cuts_.end()}; }
  bool has_pending_cuts() const { return !pending_cuts_.empty(); }
  // How many chunk records the store held when it was opened.
  size_t chunks_at_open() const { return chunks_at_open_; }
  // RocksDB's memory right now: block cache, memtables, readers' pinned blocks.
  uint64_t memory_bytes();
  Result<std::optional<std::string>> get_xattr(uint64_t ino, const std::string& name);
  // A directory's figures as committed (all zero when it has none yet). A figure below
  // zero, a bug elsewhere, reads as zero (fsck then reports the difference).
  Result<DirDelta> get_dir_usage(uint64_t dir);
  // Moves with every commit that changes some directory's figures (FSCK compares them only
  // when none changed while it walked).
  uint64_t dir_usage_commits() const { return dir_usage_commits_; }
  // False for a store written before directories had figures, until they are counted
  // (Namespace::count_dir_figures), as it was when the store was opened.
  bool dir_figures_counted() const { return dir_figures_counted_; }
  Status list_xattrs(uint64_t ino, std::vector<std::string>* names);

  // ---- counters and usage. Ids are written with the next commit; an id allocated by a
  // change that then fails is skipped, never handed out twice.
  uint64_t allocate_inode();
  uint64_t allocate_chunk_id();
  uint64_t allocate_volume_id();
  // The volume's usage as committed (Batch::usage() changes it).
  pb::UsageRecord usage_of(uint64_t volume_id) const;

 private:
  MetaStore() = default;
  Status load_counters();
  Status load_chunks();
  // The ids of the counters' keys `prefix` + be64(id) (draining servers, open packs).
  std::vector<uint64_t> ids_under(const std::string& prefix);
  void add_pending_counters(rocksdb::WriteBatch* wb);
  // The usage records `batch` leaves behind, written into it.
  std::map<uint64_t, pb::UsageRecord> apply_usage(Batch& batch);
  // Writes into `batch` the directory figures its deltas leave behind: each delta moves its
  // directory and every directory above it, up to the volume's root.
  Status apply_dir_usage(Batch& batch);
  void sync_thread();
  void synced(uint64_t seq, Status st);

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  uint64_t next_inode_ = 0, next_chunk_ = 0, next_volume_ = 0;
  bool counters_dirty_ = false;
  std::map<uint64_t, pb::UsageRecord> usage_;  // as committed
  size_t chunks_at_open_ = 0;
  uint64_t dir_usage_commits_ = 0;
  bool dir_figures_counted_ = false;
  std::set<uint64_t> pending_cuts_;             // ids of those with a pending_cut
  std::function<Status()> commit_fault_;
  std::atomic<int> failing_syncs_{0};

  // group commit; committed_seq_, durable_seq_, sync_error_ and waiters_ belong to the
  // master's thread, the rest is shared with the syncer thread under sync_mu_.
  asio::any_io_executor ex_;
  uint64_t committed_seq_ = 0;
  uint64_t durable_seq_ = 0;
  Status sync_error_;
  struct Waiter;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t sync_wanted_ = 0;  // the highest commit the syncer has to cover
  bool sync_urgent_ = false;  // someone waits in durable(): sync without gathering
  bool syncer_idle_ = false;  // the syncer waits for a commit (only then does commit() wake it)
  bool stop_syncer_ = false;
  std::thread syncer_;
  friend class Batch;
};

}  // namespace keelfs::master
