#include "master/store.h"

#include <filesystem>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_buffer_manager.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "common/async.h"
#include "common/crypto.h"

namespace keelfs::master {
namespace {

enum Cf { kInodes = 1, kDentries, kExtents, kChunks, kVolumes, kXattrs, kCounters, kUsage, kOps, kPackFiles, kDirUsage, kNumCfs };
const char* kCfNames[] = {"default", "inodes",   "dentries", "extents", "chunks",     "volumes",
                          "xattrs",  "counters", "usage",    "ops",     "pack_files", "dir_usage"};

std::string be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}
uint64_t from_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::string key2(uint64_t a, uint64_t b) { return be64(a) + be64(b); }
std::string key_name(uint64_t a, const std::string& name) { return be64(a) + name; }

// A directory's figures on disk, and a change of them: six signed 64-bit little-endian
// numbers (files, dirs, logical bytes, chunks, chunk bytes, packed bytes). A change is
// written as a RocksDB merge operand that the figures add up, so that moving a directory's
// figures costs no read.
constexpr size_t kFiguresSize = 6 * 8;

std::string encode_figures(const DirDelta& d) {
  std::string out(kFiguresSize, '\0');
  const int64_t v[6] = {d.files, d.dirs, d.logical_bytes, d.chunks, d.chunk_bytes, d.packed_bytes};
  for (int i = 0; i < 6; ++i)
    for (int b = 0; b < 8; ++b) out[i * 8 + b] = static_cast<char>((static_cast<uint64_t>(v[i]) >> (8 * b)) & 0xff);
  return out;
}

DirDelta decode_figures(const rocksdb::Slice& in) {
  if (in.size() != kFiguresSize) return {};
  int64_t v[6];
  for (int i = 0; i < 6; ++i) {
    uint64_t x = 0;
    for (int b = 7; b >= 0; --b) x = (x << 8) | static_cast<unsigned char>(in[i * 8 + b]);
    v[i] = static_cast<int64_t>(x);
  }
  return DirDelta{v[0], v[1], v[2], v[3], v[4], v[5]};
}

class FiguresMerge : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    DirDelta sum = existing ? decode_figures(*existing) : DirDelta{};
    sum += decode_figures(value);
    *new_value = encode_figures(sum);
    return true;
  }
  const char* Name() const override { return "keelfs.DirFigures"; }
};

Status from_rocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  return error(Code::kIOError, fmt::format("metadata store: {}: {}", what, s.ToString()));
}

// An iterator over the keys of one inode (those starting with its big-endian number):
// RocksDB stops at the end of that range instead of walking on through the deletion
// markers of removed entries that follow it.
class InodeScan {
 public:
  InodeScan(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint64_t ino) : upper_(be64(ino + 1)), bound_(upper_) {
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &bound_;
    it_.reset(db->NewIterator(ro, cf));
  }
  rocksdb::Iterator* operator->() const { return it_.get(); }

 private:
  std::string upper_;
  rocksdb::Slice bound_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

struct MetaStore::Waiter {
  Waiter(asio::any_io_executor ex, uint64_t s) : done(ex), seq(s) {}
  Event done;
  uint64_t seq;
  Status status;
};

// ------------------------------------------------------------------ Batch

Batch::Batch() : wb_(std::make_unique<rocksdb::WriteBatch>()) {}
Batch::~Batch() = default;
Batch& Batch::operator=(Batch&&) = default;

#define CF(i) store_->cfs_[i]
void Batch::put_inode(const pb::InodeRecord& rec) { wb_->Put(CF(kInodes), be64(rec.attr().inode()), rec.SerializeAsString()); }
void Batch::delete_inode(uint64_t ino) { wb_->Delete(CF(kInodes), be64(ino)); }
void Batch::put_dentry(uint64_t parent, const std::string& name, uint64_t child, pb::FileType type) {
  std::string v = be64(child);
  v.push_back(static_cast<char>(type));
  wb_->Put(CF(kDentries), key_name(parent, name), v);
}
void Batch::delete_dentry(uint64_t parent, const std::string& name) { wb_->Delete(CF(kDentries), key_name(parent, name)); }
void Batch::put_extent(uint64_t ino, uint64_t index, const pb::FileExtent& extent) {
  wb_->Put(CF(kExtents), key2(ino, index), extent.SerializeAsString());
}
void Batch::delete_extent(uint64_t ino, uint64_t index) { wb_->Delete(CF(kExtents), key2(ino, index)); }
void Batch::put_chunk(uint64_t chunk_id, const pb::ChunkRecord& rec) {
  wb_->Put(CF(kChunks), be64(chunk_id), rec.SerializeAsString());
  chunk_changes_.emplace_back(chunk_id, rec);
}
void Batch::delete_chunk(uint64_t chunk_id) {
  wb_->Delete(CF(kChunks), be64(chunk_id));
  chunk_changes_.emplace_back(chunk_id, std::nullopt);
}
const std::optional<pb::ChunkRecord>* Batch::chunk_change(uint64_t chunk_id) const {
  for (auto it = chunk_changes_.rbegin(); it != chunk_changes_.rend(); ++it)
    if (it->first == chunk_id) return &it->second;
  return nullptr;
}
void Batch::put_volume(const pb::VolumeRecord& rec) { wb_->Put(CF(kVolumes), rec.name(), rec.SerializeAsString()); }
void Batch::delete_volume(const std::string& name) { wb_->Delete(CF(kVolumes), name); }
void Batch::put_xattr(uint64_t ino, const std::string& name, const std::string& value) {
  wb_->Put(CF(kXattrs), key_name(ino, name), value);
}
void Batch::delete_xattr(uint64_t ino, const std::string& name) { wb_->Delete(CF(kXattrs), key_name(ino, name)); }
void Batch::set_draining(uint64_t cs_id, bool draining) {
  if (draining)
    wb_->Put(CF(kCounters), "draining/" + be64(cs_id), "");
  else
    wb_->Delete(CF(kCounters), "draining/" + be64(cs_id));
}
void Batch::set_removing(uint64_t volume_id, uint64_t root) {
  if (root != 0)
    wb_->Put(CF(kCounters), "removing/" + be64(volume_id), be64(root));
  else
    wb_->Delete(CF(kCounters), "removing/" + be64(volume_id));
}
void Batch::put_pack_file(uint64_t pack_id, uint64_t ino) { wb_->Put(CF(kPackFiles), key2(pack_id, ino), ""); }
void Batch::delete_pack_file(uint64_t pack_id, uint64_t ino) { wb_->Delete(CF(kPackFiles), key2(pack_id, ino)); }
void Batch::set_pack_open(uint64_t chunk_id, bool open) {
  if (open)
    wb_->Put(CF(kCounters), "open-pack/" + be64(chunk_id), "");
  else
    wb_->Delete(CF(kCounters), "open-pack/" + be64(chunk_id));
}
void Batch::put_dir_usage(uint64_t dir, const DirDelta& figures) {
  wb_->Put(CF(kDirUsage), be64(dir), encode_figures(figures));
}
void Batch::set_dir_figures_counted(bool counted) {
  if (counted)
    wb_->Put(CF(kCounters), "dir_figures", be64(kDirFiguresFormat));
  else
    wb_->Delete(CF(kCounters), "dir_figures");
}
void Batch::delete_dir_usage(uint64_t dir) {
  wb_->Delete(CF(kDirUsage), be64(dir));
  deleted_dirs_.insert(dir);
}
bool Batch::empty() const {
  return wb_->Count() == 0 && usage_deltas_.empty() && forgotten_usage_.empty() && dir_deltas_.empty();
}
#undef CF

DirDelta& DirDelta::operator+=(const DirDelta& o) {
  files += o.files;
  dirs += o.dirs;
  logical_bytes += o.logical_bytes;
  chunks += o.chunks;
  chunk_bytes += o.chunk_bytes;
  packed_bytes += o.packed_bytes;
  return *this;
}
DirDelta DirDelta::operator-() const {
  return DirDelta{-files, -dirs, -logical_bytes, -chunks, -chunk_bytes, -packed_bytes};
}
bool DirDelta::zero() const {
  return files == 0 && dirs == 0 && logical_bytes == 0 && chunks == 0 && chunk_bytes == 0 && packed_bytes == 0;
}

void Batch::put_op(const pb::OpId& op, const pb::OpRecord& rec) {
  if (op.client() == 0) return;  // a client that does not name its changes
  wb_->Put(store_->cfs_[kOps], key2(op.client(), op.seq()), rec.SerializeAsString());
}

void Batch::forget_usage(uint64_t volume_id) {
  usage_deltas_.erase(volume_id);
  forgotten_usage_.push_back(volume_id);
}

void Batch::take_freed(std::vector<FreedChunk>* out) {
  if (out && committed_) out->insert(out->end(), freed_.begin(), freed_.end());
  freed_.clear();
}

// ------------------------------------------------------------------ MetaStore

MetaStore::~MetaStore() {
  if (syncer_.joinable()) {
    {
      std::lock_guard lk(sync_mu_);
      stop_syncer_ = true;
    }
    sync_cv_.notify_one();
    syncer_.join();
  }
  if (db_) {
    db_->SyncWAL();
    for (auto* cf : cfs_) db_->DestroyColumnFamilyHandle(cf);
    db_->Close();
  }
}

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::string& dir, asio::any_io_executor ex, size_t cache_mb) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error(Code::kIOError, fmt::format("cannot create metadata dir {}: {}", dir, ec.message()));
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.IncreaseParallelism(2);
  // The WAL is fdatasynced right behind every burst of commits. Writing over a recycled,
  // already-sized log file spares each sync the file-size update in the file system's journal.
  options.recycle_log_file_num = 4;
  // Bounded memory (docs/decisions.md): one LRU block cache for every column family holds
  // data, index and filter blocks, and the memtables are charged to it as well.
  const size_t cache_bytes = std::max<size_t>(cache_mb, 16) << 20;
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(cache_bytes);
  options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(cache_bytes / 4, cache);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.write_buffer_size = 16 << 20;
  // Removing files leaves runs of deletion markers that scans (the healer's sweep, HEALTH,
  // listings) would walk through: files holding many are compacted away early.
  cf_options.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/128 * 1024, /*deletion_trigger=*/16 * 1024));
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (int i = 0; i < kNumCfs; ++i) descs.emplace_back(kCfNames[i], cf_options);
  descs[kDirUsage].options.merge_operator = std::make_shared<FiguresMerge>();
  std::unique_ptr<MetaStore> store(new MetaStore());
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(options, dir, descs, &store->cfs_, &db);
  if (!s.ok()) return error(Code::kIOError, fmt::format("cannot open metadata store {}: {}", dir, s.ToString()));
  store->db_.reset(db);
  store->ex_ = ex;
  RETURN_IF_ERROR(store->load_counters());
  RETURN_IF_ERROR(store->load_chunks());
  store->syncer_ = std::thread([s = store.get()] { s->sync_thread(); });
  return store;
}

Status MetaStore::load_counters() {
  auto read = [&](const char* name, uint64_t def) -> uint64_t {
    std::string v;
    if (db_->Get({}, cfs_[kCounters], name, &v).ok() && v.size() == 8) return from_be64(v.data());
    return def;
  };
  next_inode_ = read("next_inode", 2);  // inode 1 is never used: FUSE reserves it for the mount root
  next_chunk_ = read("next_chunk", 1);
  next_volume_ = read("next_volume", 1);
  dir_figures_counted_ = read("dir_figures", 0) == kDirFiguresFormat;
  // Ids handed out in the last moments before a power loss may be missing from the WAL
  // (answers do not wait for its sync), while clients and chunkservers still hold them. A
  // restart skips past any such id, so that an inode number or chunk id never means two
  // things.
  constexpr uint64_t kIdGap = 1u << 20;
  if (next_inode_ > 2 || next_chunk_ > 1) {
    next_inode_ += kIdGap;
    next_chunk_ += kIdGap;
    counters_dirty_ = true;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kUsage]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    pb::UsageRecord rec;
    rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
    usage_[from_be64(it->key().data())] = rec;
  }
  return from_rocks(it->status(), "loading usage");
}

Result<uint64_t> MetaStore::durability_epoch(const std::string& boot_id) {
  std::string stored_boot, stored_epoch;
  const bool same_boot = db_->Get({}, cfs_[kCounters], "boot_id", &stored_boot).ok() && stored_boot == boot_id &&
                         db_->Get({}, cfs_[kCounters], "durability_epoch", &stored_epoch).ok() &&
                         stored_epoch.size() == 8;
  if (same_boot) return from_be64(stored_epoch.data());
  const uint64_t epoch = random_u64_nonzero();
  rocksdb::WriteBatch wb;
  wb.Put(cfs_[kCounters], "boot_id", boot_id);
  wb.Put(cfs_[kCounters], "durability_epoch", be64(epoch));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  RETURN_IF_ERROR(from_rocks(db_->Write(wo, &wb), "recording the durability epoch"));
  return epoch;
}

Status MetaStore::load_chunks() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kChunks]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    pb::ChunkRecord rec;
    rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
    if (rec.has_pending_cut()) pending_cuts_.insert(from_be64(it->key().data()));
    ++chunks_at_open_;
  }
  return from_rocks(it->status(), "loading chunks");
}

uint64_t MetaStore::allocate_inode() {
  counters_dirty_ = true;
  return next_inode_++;
}
uint64_t MetaStore::allocate_chunk_id() {
  counters_dirty_ = true;
  return next_chunk_++;
}
uint64_t MetaStore::allocate_volume_id() {
  counters_dirty_ = true;
  return next_volume_++;
}
pb::UsageRecord MetaStore::usage_of(uint64_t volume_id) const {
  auto it = usage_.find(volume_id);
  return it == usage_.end() ? pb::UsageRecord() : it->second;
}

void MetaStore::add_pending_counters(rocksdb::WriteBatch* wb) {
  if (!counters_dirty_) return;
  wb->Put(cfs_[kCounters], "next_inode", be64(next_inode_));
  wb->Put(cfs_[kCounters], "next_chunk", be64(next_chunk_));
  wb->Put(cfs_[kCounters], "next_volume", be64(next_volume_));
}

namespace {
// A counter moved by a delta, never below zero (a count that would go negative is a bug
// elsewhere; fsck reports the difference).
uint64_t moved(uint64_t value, int64_t delta) {
  if (delta < 0 && static_cast<uint64_t>(-delta) > value) return 0;
  return value + static_cast<uint64_t>(delta);
}
}  // namespace

std::map<uint64_t, pb::UsageRecord> MetaStore::apply_usage(Batch& batch) {
  std::map<uint64_t, pb::UsageRecord> out;
  for (auto& [id, d] : batch.usage_deltas_) {
    pb::UsageRecord u = usage_of(id);
    u.set_logical_bytes(moved(u.logical_bytes(), d.logical_bytes));
    u.set_files(moved(u.files(), d.files));
    u.set_chunks(moved(u.chunks(), d.chunks));
    u.set_chunk_bytes(moved(u.chunk_bytes(), d.chunk_bytes));
    u.set_pack_bytes(moved(u.pack_bytes(), d.pack_bytes));
    u.set_packed_bytes(moved(u.packed_bytes(), d.packed_bytes));
    batch.wb_->Put(cfs_[kUsage], be64(id), u.SerializeAsString());
    out[id] = std::move(u);
  }
  for (uint64_t id : batch.forgotten_usage_) batch.wb_->Delete(cfs_[kUsage], be64(id));
  return out;
}

Status MetaStore::apply_dir_usage(Batch& batch) {
  // Sum what each directory receives, from its own deltas and from those below it.
  std::map<uint64_t, DirDelta> totals;
  for (const auto& [dir, delta] : batch.dir_deltas_) {
    if (dir == 0 || delta.zero()) continue;
    uint64_t ino = dir;
    for (int depth = 0;; ++depth) {
      if (depth > 100000) return error(Code::kCorruption, fmt::format("directory {}'s parent chain does not end", dir));
      auto rec = get_inode(ino);
      if (!rec.ok()) {
        if (rec.status().code() == Code::kNotFound) break;  // a directory made in this batch has no figures yet
        return rec.status();
      }
      totals[ino] += delta;
      if (rec->parent() == ino || rec->parent() == 0) break;  // the volume's root
      ino = rec->parent();
    }
  }
  for (const auto& [dir, d] : totals)
    if (!batch.deleted_dirs_.count(dir)) batch.wb_->Merge(cfs_[kDirUsage], be64(dir), encode_figures(d));
  batch.dir_deltas_.clear();
  return Status::Ok();
}

Result<DirDelta> MetaStore::get_dir_usage(uint64_t dir) {
  std::string v;
  auto s = db_->Get({}, cfs_[kDirUsage], be64(dir), &v);
  if (s.IsNotFound()) return DirDelta{};
  RETURN_IF_ERROR(from_rocks(s, "reading directory figures"));
  if (v.size() != kFiguresSize)
    return error(Code::kCorruption, fmt::format("directory {}'s figures are {} bytes, not {}", dir, v.size(), kFiguresSize));
  DirDelta d = decode_figures(v);
  for (int64_t* x : {&d.files, &d.dirs, &d.logical_bytes, &d.chunks, &d.chunk_bytes, &d.packed_bytes})
    *x = std::max<int64_t>(*x, 0);
  return d;
}

Batch MetaStore::batch() {
  Batch b;
  b.store_ = this;
  return b;
}

Status MetaStore::commit(Batch& batch) {
  if (!sync_error_.ok())
    return error(Code::kIOError, fmt::format("the metadata log could not be synced ({}): this master takes no more "
                                             "changes; restart it, it recovers from what is on disk",
                                             sync_error_.message()));
  if (batch.empty() && !counters_dirty_) return Status::Ok();
  if (commit_fault_) RETURN_IF_ERROR(commit_fault_());
  add_pending_counters(batch.wb_.get());
  const bool moves_dirs = !batch.dir_deltas_.empty();
  RETURN_IF_ERROR(apply_dir_usage(batch));
  std::map<uint64_t, pb::UsageRecord> usage = apply_usage(batch);
  rocksdb::WriteOptions wo;
  wo.sync = false;  // the syncer thread syncs the WAL for many commits at once
  RETURN_IF_ERROR(from_rocks(db_->Write(wo, batch.wb_.get()), "write"));
  // Committed: now, and only now, memory follows.
  ++committed_seq_;
  if (moves_dirs) ++dir_usage_commits_;
  counters_dirty_ = false;
  batch.wb_->Clear();
  for (auto& [id, u] : usage) usage_[id] = std::move(u);
  for (uint64_t id : batch.forgotten_usage_) usage_.erase(id);
  batch.usage_deltas_.clear();
  batch.forgotten_usage_.clear();
  batch.committed_ = true;
  for (auto& [id, rec] : batch.chunk_changes_) {
    if (rec && rec->has_pending_cut())
      pending_cuts_.insert(id);
    else
      pending_cuts_.erase(id);
  }
  batch.chunk_changes_.clear();
  bool wake;
  {
    std::lock_guard lk(sync_mu_);
    sync_wanted_ = committed_seq_;
    wake = syncer_idle_;  // while it gathers or syncs, it sees sync_wanted_ by itself
    syncer_idle_ = false;
  }
  if (wake) sync_cv_.notify_one();
  return Status::Ok();
}

awaitable<Status> MetaStore::durable() {
  if (durable_seq_ >= committed_seq_ || !sync_error_.ok()) co_return sync_error_;
  auto w = std::make_shared<Waiter>(co_await asio::this_coro::executor, committed_seq_);
  waiters_.push_back(w);
  {
    std::lock_guard lk(sync_mu_);
    sync_urgent_ = true;
  }
  sync_cv_.notify_one();
  co_await w->done.wait();
  co_return w->status;
}

// The syncer thread: syncs the WAL whenever commits are ahead of the last sync, and tells
// the master's thread how far each sync reached. Unless someone waits in durable(), a sync
// starts no sooner than kSyncGather after the previous one: on a busy master that is one
// sync per few milliseconds instead of one per request, which leaves the CPU (each sync
// costs tens of microseconds of kernel time) to the requests.
void MetaStore::sync_thread() {
  constexpr auto kSyncGather = std::chrono::milliseconds(2);
  uint64_t done = 0;
  auto last_sync = std::chrono::steady_clock::now() - kSyncGather;
  for (;;) {
    uint64_t target;
    {
      std::unique_lock lk(sync_mu_);
      syncer_idle_ = sync_wanted_ <= done;
      sync_cv_.wait(lk, [&] { return stop_syncer_ || sync_wanted_ > done; });
      syncer_idle_ = false;
      if (sync_wanted_ <= done) return;  // stopping, nothing left to sync
      sync_cv_.wait_until(lk, last_sync + kSyncGather, [&] { return stop_syncer_ || sync_urgent_; });
      sync_urgent_ = false;
      target = sync_wanted_;
    }
    last_sync = std::chrono::steady_clock::now();
    Status st = failing_syncs_.load() > 0 && failing_syncs_.fetch_sub(1) > 0
                    ? error(Code::kIOError, "WAL sync: Input/output error (injected)")
                    : from_rocks(db_->SyncWAL(), "WAL sync");
    done = target;
    asio::post(ex_, [this, target, st] { synced(target, st); });
  }
}

void MetaStore::synced(uint64_t seq, Status st) {
  if (!st.ok() && sync_error_.ok()) {
    spdlog::critical("{}: no change is accepted from now on; restart the master", st.message());
    sync_error_ = st;
  }
  durable_seq_ = std::max(durable_seq_, seq);
  std::vector<std::shared_ptr<Waiter>> still;
  for (auto& w : waiters_) {
    if (w->seq <= durable_seq_ || !sync_error_.ok()) {
      w->status = sync_error_;
      w->done.notify();
    } else {
      still.push_back(w);
    }
  }
  waiters_.swap(still);
}

// ------------------------------------------------------------------ reads

Result<pb::InodeRecord> MetaStore::get_inode(uint64_t ino) {
  std::string v;
  auto s = db_->Get({}, cfs_[kInodes], be64(ino), &v);
  if (s.IsNotFound()) return error(Code::kNotFound, fmt::format("inode {} does not exist", ino));
  RETURN_IF_ERROR(from_rocks(s, "reading inode"));
  pb::InodeRecord rec;
  if (!rec.ParseFromString(v)) return error(Code::kCorruption, fmt::format("inode {} record does not parse", ino));
  return rec;
}

Result<std::optional<Dentry>> MetaStore::get_dentry(uint64_t parent, const std::string& name) {
  std::string v;
  auto s = db_->Get({}, cfs_[kDentries], key_name(parent, name), &v);
  if (s.IsNotFound()) return std::optional<Dentry>();
  RETURN_IF_ERROR(from_rocks(s, "reading directory entry"));
  if (v.size() != 9) return error(Code::kCorruption, fmt::format("entry '{}' in directory {} is damaged", name, parent));
  return std::optional<Dentry>(Dentry{name, from_be64(v.data()), static_cast<pb::FileType>(v[8])});
}

Status MetaStore::list_dentries(uint64_t parent, const std::string& after, size_t max, std::vector<Dentry>* out,
                                bool* more) {
  std::string prefix = be64(parent);
  InodeScan it(db_.get(), cfs_[kDentries], parent);
  *more = false;
  for (it->Seek(prefix + after); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string name(it->key().data() + 8, it->key().size() - 8);
    if (!after.empty() && name == after) continue;
    if (out->size() >= max) {
      *more = true;
      break;
    }
    auto v = it->value();
    if (v.size() != 9) return error(Code::kCorruption, fmt::format("entry '{}' in directory {} is damaged", name, parent));
    out->push_back(Dentry{std::move(name), from_be64(v.data()), static_cast<pb::FileType>(v[8])});
  }
  return from_rocks(it->status(), "listing directory");
}

Result<bool> MetaStore::dir_is_empty(uint64_t ino) {
  std::string prefix = be64(ino);
  InodeScan it(db_.get(), cfs_[kDentries], ino);
  it->Seek(prefix);
  bool empty = !(it->Valid() && it->key().starts_with(prefix));
  RETURN_IF_ERROR(from_rocks(it->status(), "listing directory"));
  return empty;
}

Result<std::optional<pb::FileExtent>> MetaStore::get_extent(uint64_t ino, uint64_t index) {
  std::string v;
  auto s = db_->Get({}, cfs_[kExtents], key2(ino, index), &v);
  if (s.IsNotFound()) return std::optional<pb::FileExtent>();
  RETURN_IF_ERROR(from_rocks(s, "reading extent"));
  pb::FileExtent e;
  e.ParseFromString(v);
  return std::optional<pb::FileExtent>(e);
}

Status MetaStore::list_extents(uint64_t ino, uint64_t first, uint64_t count,
                               const std::function<void(uint64_t, const pb::FileExtent&)>& fn) {
  std::string prefix = be64(ino);
  InodeScan it(db_.get(), cfs_[kExtents], ino);
  for (it->Seek(key2(ino, first)); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    uint64_t index = from_be64(it->key().data() + 8);
    if (count != 0 && index >= first + count) break;
    pb::FileExtent e;
    e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
    fn(index, e);
  }
  return from_rocks(it->status(), "listing extents");
}

Result<std::optional<pb::ChunkRecord>> MetaStore::get_chunk(uint64_t chunk_id) {
  std::string v;
  auto s = db_->Get({}, cfs_[kChunks], be64(chunk_id), &v);
  if (s.IsNotFound()) return std::optional<pb::ChunkRecord>();
  RETURN_IF_ERROR(from_rocks(s, "reading chunk record"));
  pb::ChunkRecord rec;
  if (!rec.ParseFromString(v)) return error(Code::kCorruption, fmt::format("chunk record {:016x} does not parse", chunk_id));
  return std::optional<pb::ChunkRecord>(std::move(rec));
}

Result<std::optional<pb::OpRecord>> MetaStore::get_op(const pb::OpId& op) {
  std::string v;
  auto s = db_->Get({}, cfs_[kOps], key2(op.client(), op.seq()), &v);
  if (s.IsNotFound()) return std::optional<pb::OpRecord>();
  RETURN_IF_ERROR(from_rocks(s, "reading operation record"));
  pb::OpRecord rec;
  if (!rec.ParseFromString(v)) return error(Code::kCorruption, "operation record does not parse");
  return std::optional<pb::OpRecord>(std::move(rec));
}

Status MetaStore::for_each_record(
    const std::function<void(const std::string&, const std::string&, const std::string&)>& fn) {
  for (int cf = 1; cf < kNumCfs; ++cf) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[cf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) fn(kCfNames[cf], it->key().ToString(), it->value().ToString());
    RETURN_IF_ERROR(from_rocks(it->status(), "listing records"));
  }
  return Status::Ok();
}

Status MetaStore::forget_ops(uint64_t client, uint64_t below) {
  rocksdb::WriteOptions wo;
  return from_rocks(db_->DeleteRange(wo, cfs_[kOps], key2(client, 0), key2(client, below)), "forgetting operations");
}

std::vector<uint64_t> MetaStore::op_clients() {
  std::vector<uint64_t> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kOps]));
  for (it->SeekToFirst(); it->Valid() && it->key().size() == 16;) {
    const uint64_t client = from_be64(it->key().data());
    out.push_back(client);
    if (client == UINT64_MAX) break;
    it->Seek(be64(client + 1));
  }
  return out;
}

Result<std::optional<pb::VolumeRecord>> MetaStore::get_volume(const std::string& name) {
  std::string v;
  auto s = db_->Get({}, cfs_[kVolumes], name, &v);
  if (s.IsNotFound()) return std::optional<pb::VolumeRecord>();
  RETURN_IF_ERROR(from_rocks(s, "reading volume"));
  pb::VolumeRecord rec;
  rec.ParseFromString(v);
  return std::optional<pb::VolumeRecord>(rec);
}

std::vector<uint64_t> MetaStore::ids_under(const std::string& prefix) {
  std::vector<uint64_t> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kCounters]));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    if (it->key().size() == prefix.size() + 8) out.push_back(from_be64(it->key().data() + prefix.size()));
  return out;
}

std::vector<uint64_t> MetaStore::list_draining() { return ids_under("draining/"); }

Status MetaStore::list_pack_files(uint64_t pack_id, uint64_t after, size_t max, std::vector<uint64_t>* out, bool* more) {
  InodeScan it(db_.get(), cfs_[kPackFiles], pack_id);
  *more = false;
  for (it->Seek(key2(pack_id, after + 1)); it->Valid(); it->Next()) {
    if (it->key().size() != 16) continue;
    if (out->size() >= max) {
      *more = true;
      break;
    }
    out->push_back(from_be64(it->key().data() + 8));
  }
  return from_rocks(it->status(), "listing a pack's files");
}

std::vector<uint64_t> MetaStore::list_open_packs() { return ids_under("open-pack/"); }

std::vector<std::pair<uint64_t, uint64_t>> MetaStore::list_removing() {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  const std::string prefix = "removing/";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kCounters]));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    if (it->key().size() == prefix.size() + 8 && it->value().size() == 8)
      out.emplace_back(from_be64(it->key().data() + prefix.size()), from_be64(it->value().data()));
  return out;
}

std::vector<pb::VolumeRecord> MetaStore::list_volumes() {
  std::vector<pb::VolumeRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kVolumes]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    pb::VolumeRecord rec;
    rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
    out.push_back(rec);
  }
  return out;
}

uint64_t MetaStore::for_each_chunk_from(uint64_t first, size_t max,
                                        const std::function<void(uint64_t, const pb::ChunkRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, cfs_[kChunks]));
  size_t n = 0;
  for (it->Seek(be64(first)); it->Valid() && n < max; it->Next(), ++n) {
    pb::ChunkRecord rec;
    rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
    fn(from_be64(it->key().data()), rec);
  }
  if (!it->status().ok()) spdlog::error("scanning chunk records: {}", it->status().ToString());
  return it->Valid() ? from_be64(it->key().data()) : 0;
}

uint64_t MetaStore::memory_bytes() {
  // One block cache serves every column family, and the memtables are charged to it.
  uint64_t total = 0, v = 0;
  if (db_->GetIntProperty(cfs_[0], "rocksdb.block-cache-usage", &v)) total += v;
  for (auto* cf : cfs_)
    if (db_->GetIntProperty(cf, "rocksdb.estimate-table-readers-mem", &v)) total += v;
  return total;
}

Result<std::optional<std::string>> MetaStore::get_xattr(uint64_t ino, const std::string& name) {
  std::string v;
  auto s = db_->Get({}, cfs_[kXattrs], key_name(ino, name), &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(from_rocks(s, "reading xattr"));
  return std::optional<std::string>(std::move(v));
}

Status MetaStore::list_xattrs(uint64_t ino, std::vector<std::string>* names) {
  std::string prefix = be64(ino);
  InodeScan it(db_.get(), cfs_[kXattrs], ino);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    names->emplace_back(it->key().data() + 8, it->key().size() - 8);
  return from_rocks(it->status(), "listing xattrs");
}

}  // namespace keelfs::master
