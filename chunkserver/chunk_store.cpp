#include "chunkserver/chunk_store.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "common/crc32c.h"

namespace keelfs {
namespace {

// Chunk files kept open per data directory: a hot small file (a dataset read epoch after
// epoch) is read without opening it again, when its directory entry and inode may have
// left the kernel's caches (two disk reads before the data). An eighth of the open-files
// limit, at most 4096 (keelfs-chunkserver raises its soft limit to the hard one).
size_t fd_cache_capacity() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 4096;
  return std::clamp<size_t>(rl.rlim_cur / 8, 64, 4096);
}

uint64_t block_count(uint64_t length) { return (length + kBlockSize - 1) / kBlockSize; }

std::string errno_text(int err) { return std::strerror(err); }

Status io_error(const std::string& what, int err) {
  return error(Code::kIOError, fmt::format("{}: {}", what, errno_text(err)));
}

std::string index_key(uint64_t id) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(id >> (56 - 8 * i));
  return k;
}

uint64_t decode_key(std::string_view k) {
  uint64_t id = 0;
  for (char c : k) id = (id << 8) | static_cast<unsigned char>(c);
  return id;
}

template <class T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

template <class T>
T get_le(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Reads up to len bytes at off; stops early only at end of file. *got = bytes read.
Status pread_full(Disk& disk, int fd, char* buf, size_t len, uint64_t off, size_t* got) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = disk.pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("pread", errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  *got = done;
  return Status::Ok();
}

Status pwrite_full(Disk& disk, int fd, const char* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = disk.pwrite(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == ENOSPC ? error(Code::kNoSpace, "pwrite: no space left on device") : io_error("pwrite", errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status fsync_dir(Disk& disk, const std::string& path) {
  int fd = disk.open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) return io_error("open " + path, errno);
  int rc = disk.fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return io_error("fsync " + path, err);
  return Status::Ok();
}

// An open chunk file; closed when the last user lets go.
struct File {
  explicit File(int f) : fd(f) {}
  ~File() { ::close(fd); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int fd;
};
using FilePtr = std::shared_ptr<File>;

// LRU of open chunk files, so a stream of 1 MiB writes does not reopen its file each time.
// A user keeps its FilePtr while it works; eviction only drops the cache's reference.
class FdCache {
 public:
  explicit FdCache(size_t capacity) : capacity_(capacity) {}

  FilePtr get(uint64_t id) {
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  void put(uint64_t id, FilePtr file) {
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it != map_.end()) {
      it->second->second = std::move(file);
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.emplace_front(id, std::move(file));
    map_[id] = lru_.begin();
    while (lru_.size() > capacity_) {
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

  void erase(uint64_t id) {
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return;
    lru_.erase(it->second);
    map_.erase(it);
  }

 private:
  std::mutex mu_;
  size_t capacity_;
  std::list<std::pair<uint64_t, FilePtr>> lru_;
  std::unordered_map<uint64_t, std::list<std::pair<uint64_t, FilePtr>>::iterator> map_;
};

// The in-memory state of one chunk. `mu` is held shared to read, exclusive to change.
struct Entry {
  std::shared_mutex mu;
  uint32_t version = 0;
  uint64_t length = 0;
  std::vector<uint32_t> crcs;
  // What the last sync made durable, and the lowest offset written since (ChunkRecord).
  uint64_t synced_length = 0;
  uint32_t synced_tail_crc = 0;
  uint64_t dirty_from = ChunkRecord::kClean;
  uint64_t writes = 0;  // writes so far: a sync knows whether one came while it synced
  std::atomic<bool> removed{false};
  std::atomic<bool> dir_synced{true};  // false until the folder holding a new file is fsynced
  // A sync of this copy failed: the kernel may have dropped pages it never wrote, and a
  // second fdatasync would report success for them ("fsyncgate"). The copy is never used
  // again; it waits for the master to delete it.
  std::atomic<bool> untrusted{false};
};

using EntryPtr = std::shared_ptr<Entry>;

// The CRC of a chunk's last block (0 for an empty chunk): with the length, what a sync records.
uint32_t last_crc(const std::vector<uint32_t>& crcs) { return crcs.empty() ? 0 : crcs.back(); }

Status not_found(uint64_t id) { return error(Code::kNotFound, fmt::format("chunk {:016x} not found", id)); }

// OK when the entry still exists and is at `version`.
// REQUIRES: e.mu held (shared or exclusive).
Status check_current(const Entry& e, uint64_t id, uint32_t version) {
  if (e.removed) return not_found(id);
  if (e.untrusted)
    return error(Code::kIOError, fmt::format("chunk {:016x} v{}: a sync of this copy failed, so it is no longer trusted",
                                             id, e.version));
  if (e.version != version)
    return error(Code::kStaleVersion, fmt::format("chunk {:016x} has version {}, not {}", id, e.version, version));
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------- ChunkRecord

std::string ChunkRecord::encode() const {
  std::string out;
  out.reserve(12 + 4 * crcs.size());
  put_le<uint32_t>(out, version);
  put_le<uint64_t>(out, length);
  for (uint32_t c : crcs) put_le<uint32_t>(out, c);
  put_le<uint64_t>(out, synced_length);
  put_le<uint32_t>(out, synced_tail_crc);
  put_le<uint64_t>(out, dirty_from);
  return out;
}

Result<ChunkRecord> ChunkRecord::decode(std::string_view bytes) {
  if (bytes.size() < 12) return error(Code::kCorruption, fmt::format("index record of {} bytes is too short", bytes.size()));
  ChunkRecord r;
  r.version = get_le<uint32_t>(bytes.data());
  r.length = get_le<uint64_t>(bytes.data() + 4);
  if (r.length > kChunkSize) return error(Code::kCorruption, fmt::format("index record length {} exceeds a chunk", r.length));
  uint64_t n = block_count(r.length);
  constexpr size_t kSyncedFields = 20;
  if (bytes.size() != 12 + 4 * n && bytes.size() != 12 + 4 * n + kSyncedFields)
    return error(Code::kCorruption, fmt::format("index record of {} bytes, expected {} for length {}", bytes.size(),
                                                12 + 4 * n + kSyncedFields, r.length));
  r.crcs.resize(n);
  for (uint64_t i = 0; i < n; ++i) r.crcs[i] = get_le<uint32_t>(bytes.data() + 12 + 4 * i);
  if (bytes.size() == 12 + 4 * n) {  // written before the synced fields: taken as synced
    r.synced_length = r.length;
    r.synced_tail_crc = last_crc(r.crcs);
    return r;
  }
  const char* tail = bytes.data() + 12 + 4 * n;
  r.synced_length = get_le<uint64_t>(tail);
  r.synced_tail_crc = get_le<uint32_t>(tail + 8);
  r.dirty_from = get_le<uint64_t>(tail + 12);
  if (r.synced_length > kChunkSize)
    return error(Code::kCorruption, fmt::format("index record synced length {} exceeds a chunk", r.synced_length));
  return r;
}

// ---------------------------------------------------------------- Impl

struct ChunkStore::Impl {
  std::string dir;
  Disk* disk = &real_disk();  // every call on the chunk files goes through it
  std::unique_ptr<rocksdb::DB> db;
  std::atomic<bool> stopping{false};
  std::thread orphan_sweep;  // see remove_orphan_files()
  mutable std::mutex map_mu;
  std::unordered_map<uint64_t, EntryPtr> map;
  FdCache files{fd_cache_capacity()};

  std::string subdir(uint64_t id) const { return fmt::format("{}/chunks/{:02x}", dir, id & 0xff); }
  std::string path(uint64_t id, uint32_t version) const {
    return fmt::format("{}/chunks/{:02x}/chunk_{:016x}_{:08x}.dat", dir, id & 0xff, id, version);
  }

  EntryPtr lookup(uint64_t id) const {
    std::lock_guard lk(map_mu);
    auto it = map.find(id);
    return it == map.end() ? nullptr : it->second;
  }

  // Drops the chunk from memory (the caller handles the index and the file).
  void forget(uint64_t id, Entry* e) {
    e->removed = true;
    files.erase(id);
    std::lock_guard lk(map_mu);
    auto it = map.find(id);
    if (it != map.end() && it->second.get() == e) map.erase(it);
  }

  // A call failed after the copy's file may have changed: the copy is never used again
  // (it waits for the master to delete it). REQUIRES: e.mu held exclusively.
  Status give_up(uint64_t id, Entry& e, const char* call, int err) {
    e.untrusted = true;
    spdlog::error("chunk {:016x} v{} in {}: {} failed: {}; the copy is no longer trusted", id, e.version, dir, call,
                  errno_text(err));
    return io_error(fmt::format("{} chunk {:016x} v{} (the copy is no longer trusted)", call, id, e.version), err);
  }

  Status put_record(uint64_t id, const Entry& e, bool sync) {
    ChunkRecord r;
    r.version = e.version;
    r.length = e.length;
    r.crcs = e.crcs;
    r.synced_length = e.synced_length;
    r.synced_tail_crc = e.synced_tail_crc;
    r.dirty_from = e.dirty_from;
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    auto s = db->Put(wo, index_key(id), r.encode());
    if (!s.ok()) return error(Code::kIOError, fmt::format("index put for chunk {:016x}: {}", id, s.ToString()));
    return Status::Ok();
  }

  // The chunk's file under another version's name, if there is one: a version change
  // (rename, then index) cut short by a crash.
  std::optional<std::string> file_of_other_version(uint64_t id, uint32_t version) const {
    const std::string prefix = fmt::format("chunk_{:016x}_", id);
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(subdir(id), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(prefix, 0) == 0 && name.size() == prefix.size() + 12 && name.ends_with(".dat") &&
          entry.path().string() != path(id, version))
        return entry.path().string();
    }
    return std::nullopt;
  }

  // REQUIRES: e.mu held (shared or exclusive), !e.removed.
  // The chunk's open file. A file found under another version's name (a version change a
  // crash cut short between its rename and its index write) is renamed back to the
  // index's version: the bytes are the copy's. A file missing altogether (a removal lost in
  // a crash) drops the chunk from the index: NotFound.
  Result<FilePtr> file(uint64_t id, Entry& e) {
    if (FilePtr f = files.get(id)) return f;
    std::string p = path(id, e.version);
    int fd = disk->open(p.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT) {
      if (auto other = file_of_other_version(id, e.version)) {
        spdlog::warn("chunk {:016x}: {} holds it, the index says version {}: a version change was cut short; renamed back",
                     id, *other, e.version);
        if (disk->rename(other->c_str(), p.c_str()) == 0 && fsync_dir(*disk, subdir(id)).ok())
          fd = disk->open(p.c_str(), O_RDWR | O_CLOEXEC, 0);
        else
          errno = ENOENT;
      } else {
        errno = ENOENT;
      }
    }
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) {
        spdlog::error("chunk {:016x} version {}: file {} is missing; dropping the chunk from the index", id, e.version, p);
        (void)db->Delete(rocksdb::WriteOptions(), index_key(id));
        forget(id, &e);
        return error(Code::kNotFound, fmt::format("chunk {:016x}: file is missing", id));
      }
      return io_error("open " + p, err);
    }
    auto f = std::make_shared<File>(fd);
    files.put(id, f);
    return f;
  }

  // Chunk files the index does not know: removals a crash cut short between the index
  // delete and the unlink. A chunk being created is in the map before its file exists, so
  // a file whose chunk is not in the map is never one in the making. Runs once, beside the
  // serving (start-up reads only the index).
  void remove_orphan_files() {
    size_t removed = 0;
    for (unsigned i = 0; i < 256 && !stopping; ++i) {
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(fmt::format("{}/chunks/{:02x}", dir, i), ec)) {
        if (stopping) break;
        unsigned long long id = 0;
        unsigned version = 0;
        const std::string name = entry.path().filename().string();
        if (std::sscanf(name.c_str(), "chunk_%16llx_%8x.dat", &id, &version) != 2) continue;
        if (lookup(id)) continue;
        if (disk->unlink(entry.path().c_str()) == 0) ++removed;
      }
    }
    if (removed > 0) spdlog::warn("data directory {}: removed {} chunk files the index does not know", dir, removed);
  }

  // Reads the `len` bytes at `offset` into `out` (missing bytes, a short file, read as
  // zeros) and returns their CRC32C.
  Result<uint32_t> read_crc(int fd, uint64_t offset, size_t len, char* out) {
    size_t got = 0;
    RETURN_IF_ERROR(pread_full(*disk, fd, out, len, offset, &got));
    if (got < len) std::memset(out + got, 0, len - got);
    return crc32c(out, len);
  }

  // At start-up, a copy written since its last sync: the blocks written since are read
  // against the index. When they do not match (a power loss took bytes whose record had
  // reached the disk: see ChunkRecord) and only appends came after the sync, the copy is
  // cut back to what the sync made durable; the master then finds it shorter than it
  // should be and makes it again from another copy. Anything else is left for reads and
  // the scrubber to find damaged. Costs one read of the bytes written and not synced.
  void check_unsynced(uint64_t id, Entry& e) {
    auto f = file(id, e);
    if (!f.ok()) return;  // missing: file() dropped it
    const int fd = (*f)->fd;
    std::string buf(kBlockSize, '\0');
    auto reads_as = [&](uint64_t offset, size_t len, uint32_t crc) {
      auto got = read_crc(fd, offset, len, buf.data());
      return got.ok() && *got == crc;
    };
    bool whole = true;
    for (uint64_t b = std::min(e.dirty_from, e.length) / kBlockSize; b < e.crcs.size() && whole; ++b) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockSize, e.length - b * kBlockSize));
      whole = reads_as(b * kBlockSize, n, e.crcs[b]);
    }
    if (whole) return;
    const uint64_t synced = e.synced_length;
    const uint64_t tail = synced == 0 ? 0 : (synced - 1) / kBlockSize * kBlockSize;
    if (e.dirty_from < synced || synced > e.length ||
        (synced > 0 && !reads_as(tail, static_cast<size_t>(synced - tail), e.synced_tail_crc))) {
      spdlog::error("chunk {:016x} v{} in {}: bytes written since its last sync do not match the index, and the copy "
                    "cannot be cut back to that sync; left for the scrubber", id, e.version, dir);
      return;
    }
    if (disk->ftruncate(fd, static_cast<off_t>(synced)) != 0 || disk->fdatasync(fd) != 0) {
      e.untrusted = true;
      spdlog::error("chunk {:016x} v{} in {}: cutting back to its last sync failed: {}; the copy is no longer trusted", id,
                    e.version, dir, errno_text(errno));
      return;
    }
    spdlog::warn("chunk {:016x} v{} in {}: {} bytes written after its last sync did not all reach the disk (a power "
                 "loss): cut back to the {} bytes that sync made durable", id, e.version, dir, e.length - synced, synced);
    e.length = synced;
    e.crcs.resize(block_count(synced));
    if (!e.crcs.empty()) e.crcs.back() = e.synced_tail_crc;
    e.dirty_from = ChunkRecord::kClean;
    if (Status st = put_record(id, e, true); !st.ok()) {
      e.untrusted = true;
      spdlog::error("chunk {:016x}: {}; the copy is no longer trusted", id, st.message());
    }
  }

  // Reads the first `len` bytes of block b (the bytes the stored CRC covers) and verifies
  // them against expected_crc. Missing bytes (short file) read as zeros.
  Status read_block(uint64_t id, const Entry& e, int fd, uint64_t b, size_t len, uint32_t expected_crc, char* out) {
    ASSIGN_OR_RETURN(uint32_t crc, read_crc(fd, b * kBlockSize, len, out));
    if (crc != expected_crc) {
      spdlog::error("chunk {:016x} version {} block {}: CRC mismatch in {} (index {:08x}, data {:08x})", id, e.version,
                    b, dir, expected_crc, crc);
      return error(Code::kCorruption,
                   fmt::format("chunk {:016x} version {} block {}: CRC mismatch", id, e.version, b));
    }
    return Status::Ok();
  }
};

ChunkStore::ChunkStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ChunkStore::~ChunkStore() {
  if (impl_ && impl_->orphan_sweep.joinable()) {
    impl_->stopping = true;
    impl_->orphan_sweep.join();
  }
  if (impl_ && impl_->db) {
    Status st = flush();
    if (!st.ok()) spdlog::warn("closing index of {}: {}", impl_->dir, st.to_string());
    (void)impl_->db->Close();
  }
}

const std::string& ChunkStore::dir() const { return impl_->dir; }

std::string ChunkStore::chunk_path(uint64_t id, uint32_t version) const { return impl_->path(id, version); }

Result<std::unique_ptr<ChunkStore>> ChunkStore::open(const std::string& dir, Disk& disk) {
  namespace fs = std::filesystem;
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->disk = &disk;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return error(Code::kIOError, fmt::format("data directory {}: {}", dir, ec.message()));
  if (!fs::is_directory(dir, ec)) return error(Code::kIOError, fmt::format("data directory {} is not a directory", dir));
  for (unsigned i = 0; i < 256; ++i) {
    std::string sub = fmt::format("{}/chunks/{:02x}", dir, i);
    fs::create_directories(sub, ec);
    if (ec) return error(Code::kIOError, fmt::format("data directory {}: cannot create {}: {}", dir, sub, ec.message()));
  }

  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 3;
  options.max_log_file_size = 8 << 20;
  options.write_buffer_size = 16 << 20;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir + "/index", &raw);
  if (!s.ok()) return error(Code::kIOError, fmt::format("data directory {}: cannot open index: {}", dir, s.ToString()));
  impl->db.reset(raw);

  uint64_t bytes = 0;
  std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto key = it->key();
    if (key.size() != 8)
      return error(Code::kCorruption, fmt::format("data directory {}: index key of {} bytes", dir, key.size()));
    uint64_t id = decode_key(std::string_view(key.data(), key.size()));
    auto rec = ChunkRecord::decode(std::string_view(it->value().data(), it->value().size()));
    if (!rec.ok())
      return error(Code::kCorruption, fmt::format("data directory {}: chunk {:016x}: {}", dir, id, rec.status().message()));
    auto e = std::make_shared<Entry>();
    e->version = rec->version;
    e->length = rec->length;
    e->crcs = std::move(rec->crcs);
    e->synced_length = rec->synced_length;
    e->synced_tail_crc = rec->synced_tail_crc;
    e->dirty_from = rec->dirty_from;
    bytes += e->length;
    impl->map.emplace(id, std::move(e));
  }
  if (!it->status().ok())
    return error(Code::kIOError, fmt::format("data directory {}: reading index: {}", dir, it->status().ToString()));
  it.reset();
  // Collected first: a check may drop a chunk (its file missing) from the map.
  std::vector<std::pair<uint64_t, EntryPtr>> dirty;
  for (auto& [id, e] : impl->map)
    if (e->dirty_from != ChunkRecord::kClean) dirty.emplace_back(id, e);
  for (auto& [id, e] : dirty) impl->check_unsynced(id, *e);
  spdlog::info("data directory {}: {} chunks, {} bytes", dir, impl->map.size(), bytes);
  Impl* self = impl.get();
  self->orphan_sweep = std::thread([self] { self->remove_orphan_files(); });
  return std::unique_ptr<ChunkStore>(new ChunkStore(std::move(impl)));
}

Status ChunkStore::create(uint64_t id, uint32_t version) {
  auto e = std::make_shared<Entry>();
  e->version = version;
  e->dir_synced = false;
  std::unique_lock elk(e->mu);
  {
    std::lock_guard lk(impl_->map_mu);
    auto [it, inserted] = impl_->map.emplace(id, e);
    if (!inserted) return error(Code::kExists, fmt::format("chunk {:016x} exists (version {})", id, it->second->version));
  }
  // O_TRUNC: a file with this exact name that the index does not know is a leftover of a crash.
  std::string p = impl_->path(id, version);
  int fd = impl_->disk->open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    impl_->forget(id, e.get());
    return err == ENOSPC ? error(Code::kNoSpace, "create " + p + ": no space left on device") : io_error("create " + p, err);
  }
  auto f = std::make_shared<File>(fd);
  if (Status st = impl_->put_record(id, *e, false); !st.ok()) {
    impl_->disk->unlink(p.c_str());
    impl_->forget(id, e.get());
    return st;
  }
  impl_->files.put(id, std::move(f));
  return Status::Ok();
}

Status ChunkStore::set_version(uint64_t id, uint32_t old_version, uint32_t new_version,
                               std::optional<uint64_t> truncate_length) {
  if (truncate_length && *truncate_length > kChunkSize)
    return error(Code::kInvalidArgument, fmt::format("truncate of chunk {:016x} to {} exceeds a chunk", id, *truncate_length));
  EntryPtr e = impl_->lookup(id);
  if (!e) return not_found(id);
  std::unique_lock lk(e->mu);
  if (e->removed) return not_found(id);
  if (e->untrusted)
    return error(Code::kIOError, fmt::format("chunk {:016x} v{}: a sync of this copy failed, so it is no longer trusted",
                                             id, e->version));
  if (e->version == new_version && (!truncate_length || *truncate_length == e->length)) return Status::Ok();
  if (e->version != old_version)
    return error(Code::kStaleVersion,
                 fmt::format("chunk {:016x} has version {}, not {}", id, e->version, old_version));
  ASSIGN_OR_RETURN(FilePtr f, impl_->file(id, *e));

  if (truncate_length && *truncate_length != e->length) {
    const uint64_t old_len = e->length, new_len = *truncate_length;
    std::vector<uint32_t> crcs = e->crcs;
    crcs.resize(block_count(new_len));
    std::string buf(kBlockSize, '\0');
    if (new_len < old_len) {
      if (new_len % kBlockSize != 0) {
        uint64_t b = new_len / kBlockSize;
        size_t old_block = static_cast<size_t>(std::min<uint64_t>(kBlockSize, old_len - b * kBlockSize));
        RETURN_IF_ERROR(impl_->read_block(id, *e, f->fd, b, old_block, e->crcs[b], buf.data()));
        crcs[b] = crc32c(buf.data(), new_len - b * kBlockSize);
      }
    } else {
      // Cut any bytes past the index's length (left by a crash) so the new tail reads as zeros.
      if (impl_->disk->ftruncate(f->fd, static_cast<off_t>(old_len)) != 0) return io_error("ftruncate", errno);
      for (uint64_t b = old_len / kBlockSize; b < crcs.size(); ++b) {
        uint64_t bs = b * kBlockSize;
        size_t len = static_cast<size_t>(std::min<uint64_t>(kBlockSize, new_len - bs));
        std::fill(buf.begin(), buf.end(), '\0');
        if (bs < old_len) RETURN_IF_ERROR(impl_->read_block(id, *e, f->fd, b, old_len - bs, e->crcs[b], buf.data()));
        crcs[b] = crc32c(buf.data(), len);
      }
    }
    // From here the file may differ from what the index says: a failure leaves a copy
    // that is not trusted again (and a failed fdatasync is never retried: "fsyncgate").
    if (impl_->disk->ftruncate(f->fd, static_cast<off_t>(new_len)) != 0) return impl_->give_up(id, *e, "ftruncate", errno);
    if (impl_->disk->fdatasync(f->fd) != 0) return impl_->give_up(id, *e, "fdatasync", errno);
    e->length = new_len;
    e->crcs = std::move(crcs);
    // The fdatasync made every byte of the file durable, earlier writes included.
    e->synced_length = new_len;
    e->synced_tail_crc = last_crc(e->crcs);
    e->dirty_from = ChunkRecord::kClean;
  }

  Status result;
  if (new_version != e->version) {
    std::string from = impl_->path(id, e->version), to = impl_->path(id, new_version);
    if (impl_->disk->rename(from.c_str(), to.c_str()) != 0) {
      result = io_error(fmt::format("rename {} to {}", from, to), errno);
    } else {
      e->version = new_version;
      result = fsync_dir(*impl_->disk, impl_->subdir(id));
      if (result.ok()) e->dir_synced = true;
    }
  }
  Status st = impl_->put_record(id, *e, true);
  if (!result.ok()) return result;
  return st;
}

Status ChunkStore::write(uint64_t id, uint32_t version, uint64_t offset, std::string_view data) {
  if (offset > kChunkSize || data.size() > kChunkSize - offset)
    return error(Code::kInvalidArgument, fmt::format("write of {} bytes at {} to chunk {:016x} exceeds {} bytes",
                                                     data.size(), offset, id, kChunkSize));
  EntryPtr e = impl_->lookup(id);
  if (!e) return not_found(id);
  std::unique_lock lk(e->mu);
  RETURN_IF_ERROR(check_current(*e, id, version));
  if (data.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(FilePtr f, impl_->file(id, *e));

  const uint64_t old_len = e->length;
  const uint64_t end = offset + data.size();
  const uint64_t new_len = std::max(old_len, end);
  // Blocks from `first` to `last` get new CRCs: those the data touches and, when the write
  // starts past the end, the gap (zeros) and the old last block it extends.
  const uint64_t first = std::min(offset, old_len) / kBlockSize;
  const uint64_t last = (end - 1) / kBlockSize;
  std::vector<uint32_t> crcs(last - first + 1);
  std::string buf;
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t bs = b * kBlockSize;
    const uint64_t be = std::min<uint64_t>(bs + kBlockSize, new_len);
    if (bs >= offset && be <= end) {
      crcs[b - first] = crc32c(data.data() + (bs - offset), be - bs);
      continue;
    }
    if (offset == old_len && bs < old_len && old_len < be && end >= be) {
      // An append to a partly filled block (small files packed one after the other, small
      // sequential writes): the block's CRC is extended, its bytes are not read again.
      crcs[b - first] = crc32c_extend(e->crcs[b], data.data(), be - old_len);
      continue;
    }
    buf.assign(be - bs, '\0');
    if (bs < old_len) {
      size_t old_block = static_cast<size_t>(std::min<uint64_t>(kBlockSize, old_len - bs));
      RETURN_IF_ERROR(impl_->read_block(id, *e, f->fd, b, old_block, e->crcs[b], buf.data()));
    }
    uint64_t os = std::max(bs, offset), oe = std::min(be, end);
    if (os < oe) std::memcpy(buf.data() + (os - bs), data.data() + (os - offset), oe - os);
    crcs[b - first] = crc32c(buf.data(), buf.size());
  }

  // A gap must read as zeros: cut bytes past the index's length that a crash may have left.
  if (offset > old_len && impl_->disk->ftruncate(f->fd, static_cast<off_t>(old_len)) != 0)
    return io_error("ftruncate", errno);
  if (Status written = pwrite_full(*impl_->disk, f->fd, data.data(), data.size(), offset); !written.ok()) {
    // Bytes past the index's length are nobody's: cut them and the copy is as it was. A
    // write into bytes the index covers may have changed some of them: the copy is out.
    if (offset < old_len || impl_->disk->ftruncate(f->fd, static_cast<off_t>(old_len)) != 0) {
      e->untrusted = true;
      spdlog::error("chunk {:016x} v{} in {}: a write failed part-way ({}); the copy is no longer trusted", id, version,
                    impl_->dir, written.message());
      return error(Code::kIOError, fmt::format("{} (the copy is no longer trusted)", written.message()));
    }
    return written;
  }

  e->length = new_len;
  e->crcs.resize(block_count(new_len));
  std::copy(crcs.begin(), crcs.end(), e->crcs.begin() + static_cast<ptrdiff_t>(first));
  e->dirty_from = std::min(e->dirty_from, std::min(offset, old_len));
  ++e->writes;
  return impl_->put_record(id, *e, false);
}

Result<std::string> ChunkStore::read(uint64_t id, uint32_t version, uint64_t offset, uint64_t length,
                                     uint64_t* chunk_length) {
  EntryPtr e = impl_->lookup(id);
  if (!e) return not_found(id);
  std::shared_lock lk(e->mu);
  RETURN_IF_ERROR(check_current(*e, id, version));
  const uint64_t len = e->length;
  if (chunk_length) *chunk_length = len;
  if (offset >= len || length == 0) return std::string();
  const uint64_t end = offset + std::min(length, len - offset);
  ASSIGN_OR_RETURN(FilePtr f, impl_->file(id, *e));

  const uint64_t first = offset / kBlockSize, last = (end - 1) / kBlockSize;
  const uint64_t rs = first * kBlockSize, re = std::min<uint64_t>((last + 1) * kBlockSize, len);
  std::string buf(re - rs, '\0');
  size_t got = 0;
  RETURN_IF_ERROR(pread_full(*impl_->disk, f->fd, buf.data(), buf.size(), rs, &got));
  // A short file leaves zeros, which the CRCs then judge.
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t bs = b * kBlockSize;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockSize, len - bs));
    uint32_t crc = crc32c(buf.data() + (bs - rs), n);
    if (crc != e->crcs[b]) {
      spdlog::error("chunk {:016x} version {} block {}: CRC mismatch in {} (index {:08x}, data {:08x})", id, version, b,
                    impl_->dir, e->crcs[b], crc);
      return error(Code::kCorruption, fmt::format("chunk {:016x} version {} block {}: CRC mismatch", id, version, b));
    }
  }
  if (offset == rs && end == re) return buf;
  return buf.substr(offset - rs, end - offset);
}

Status ChunkStore::sync(uint64_t id, uint32_t version) {
  EntryPtr e = impl_->lookup(id);
  if (!e) return not_found(id);
  std::shared_lock lk(e->mu);
  RETURN_IF_ERROR(check_current(*e, id, version));
  ASSIGN_OR_RETURN(FilePtr f, impl_->file(id, *e));
  // What this sync makes durable: everything written before it starts.
  const uint64_t writes = e->writes, length = e->length;
  const uint32_t tail_crc = last_crc(e->crcs);
  const bool was_dirty = e->dirty_from != ChunkRecord::kClean;
  int rc = impl_->disk->fdatasync(f->fd);
  if (rc != 0) {
    // Never retried through this file: the copy is out (the caller reports it damaged).
    e->untrusted = true;
    return io_error(fmt::format("fdatasync chunk {:016x} v{} (the copy is no longer trusted)", id, version), errno);
  }
  if (!e->dir_synced) {
    // Nor is a failed fsync of the folder: the file's name may never reach the disk.
    if (Status st = fsync_dir(*impl_->disk, impl_->subdir(id)); !st.ok()) {
      e->untrusted = true;
      return error(Code::kIOError, fmt::format("{} for chunk {:016x} v{} (the copy is no longer trusted)", st.message(),
                                               id, version));
    }
    e->dir_synced = true;
  }
  if (was_dirty) {
    lk.unlock();
    std::unique_lock ex(e->mu);
    if (e->removed || e->untrusted || e->version != version) return check_current(*e, id, version);
    e->synced_length = length;
    e->synced_tail_crc = tail_crc;
    // A write that came meanwhile keeps the copy dirty from where it was (conservative).
    if (e->writes == writes) e->dirty_from = ChunkRecord::kClean;
    RETURN_IF_ERROR(impl_->put_record(id, *e, false));
  }
  auto s = impl_->db->SyncWAL();
  if (!s.ok()) return error(Code::kIOError, fmt::format("index sync for chunk {:016x}: {}", id, s.ToString()));
  return Status::Ok();
}

Status ChunkStore::remove(uint64_t id, uint32_t version) {
  EntryPtr e = impl_->lookup(id);
  if (!e) return not_found(id);
  std::unique_lock lk(e->mu);
  if (e->removed) return not_found(id);
  if (version != 0 && e->version != version)
    return error(Code::kStaleVersion, fmt::format("chunk {:016x} has version {}, not {}", id, e->version, version));
  // Index first: a crash in between leaves an orphan file (wasted space), never an index
  // entry without data.
  auto s = impl_->db->Delete(rocksdb::WriteOptions(), index_key(id));
  if (!s.ok()) return error(Code::kIOError, fmt::format("index delete for chunk {:016x}: {}", id, s.ToString()));
  std::string p = impl_->path(id, e->version);
  impl_->forget(id, e.get());
  if (impl_->disk->unlink(p.c_str()) != 0 && errno != ENOENT) spdlog::warn("chunk {:016x}: unlink {}: {}", id, p, errno_text(errno));
  return Status::Ok();
}

Result<ChunkMeta> ChunkStore::stat(uint64_t id) const {
  EntryPtr e = impl_->lookup(id);
  if (!e) return not_found(id);
  std::shared_lock lk(e->mu);
  if (e->removed) return not_found(id);
  return ChunkMeta{id, e->version, e->length};
}

bool ChunkStore::contains(uint64_t id) const { return impl_->lookup(id) != nullptr; }

std::vector<ChunkMeta> ChunkStore::list() const {
  std::vector<std::pair<uint64_t, EntryPtr>> entries;
  {
    std::lock_guard lk(impl_->map_mu);
    entries.assign(impl_->map.begin(), impl_->map.end());
  }
  std::vector<ChunkMeta> out;
  out.reserve(entries.size());
  for (auto& [id, e] : entries) {
    std::shared_lock lk(e->mu);
    if (!e->removed) out.push_back({id, e->version, e->length});
  }
  return out;
}

uint64_t ChunkStore::chunk_count() const {
  std::lock_guard lk(impl_->map_mu);
  return impl_->map.size();
}

Result<SpaceInfo> ChunkStore::space() const {
  struct statvfs sv;
  if (::statvfs(impl_->dir.c_str(), &sv) != 0) return io_error("statvfs " + impl_->dir, errno);
  SpaceInfo s;
  uint64_t frsize = sv.f_frsize;
  s.used_bytes = (sv.f_blocks - sv.f_bfree) * frsize;
  s.free_bytes = sv.f_bavail * frsize;
  s.total_bytes = s.used_bytes + s.free_bytes;
  return s;
}

Status ChunkStore::flush() {
  auto s = impl_->db->Flush(rocksdb::FlushOptions());
  if (s.ok()) s = impl_->db->SyncWAL();
  if (!s.ok()) return error(Code::kIOError, fmt::format("index of {}: {}", impl_->dir, s.ToString()));
  return Status::Ok();
}


}  // namespace keelfs
