#include "chunkserver/store_set.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace keelfs {
namespace {

// Reads <dir>/cs_id: 0 when absent.
Result<uint64_t> read_cs_id(const std::string& dir) {
  std::string path = dir + "/cs_id";
  std::ifstream in(path);
  if (!in) return uint64_t{0};
  std::string text;
  in >> text;
  uint64_t id = 0;
  try {
    size_t used = 0;
    id = std::stoull(text, &used, 16);
    if (used != text.size() || text.size() != 16) id = 0;
  } catch (...) {
    id = 0;
  }
  if (id == 0) return error(Code::kInvalidArgument, fmt::format("{} does not hold a chunkserver id", path));
  return id;
}

// Writes <dir>/cs_id durably: temporary file, fsync, rename, fsync of the directory.
Status write_cs_id(const std::string& dir, uint64_t id) {
  std::string path = dir + "/cs_id", tmp = path + ".tmp";
  std::string text = fmt::format("{:016x}\n", id);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return error(Code::kIOError, fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return error(Code::kIOError, fmt::format("cannot write {}: {}", path, std::strerror(ok ? errno : err)));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<StoreSet>> StoreSet::open(const std::vector<std::string>& dirs, Disk& disk) {
  if (dirs.empty()) return error(Code::kInvalidArgument, "no data directory given");
  std::unique_ptr<StoreSet> set(new StoreSet());
  std::set<std::string> seen;
  for (const auto& d : dirs) {
    std::error_code ec;
    auto canon = std::filesystem::weakly_canonical(d, ec);
    if (!seen.insert(ec ? d : canon.string()).second)
      return error(Code::kInvalidArgument, fmt::format("data directory {} is given twice", d));
  }
  for (const auto& d : dirs) {
    auto store = ChunkStore::open(d, disk);
    if (!store.ok()) return store.status();
    set->stores_.push_back(std::move(store).value());
  }

  uint64_t id = 0;
  std::string id_dir;
  for (const auto& s : set->stores_) {
    ASSIGN_OR_RETURN(uint64_t found, read_cs_id(s->dir()));
    if (found == 0) continue;
    if (id != 0 && found != id)
      return error(Code::kInvalidArgument,
                   fmt::format("data directories {} and {} belong to different chunkservers ({:016x} and {:016x})",
                               id_dir, s->dir(), id, found));
    id = found;
    id_dir = s->dir();
  }
  if (id == 0) {
    std::random_device rd;
    std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(::getpid()));
    while (id == 0) id = gen();
    spdlog::info("new chunkserver id {:016x}", id);
  }
  for (const auto& s : set->stores_) {
    ASSIGN_OR_RETURN(uint64_t found, read_cs_id(s->dir()));
    if (found == 0) RETURN_IF_ERROR(write_cs_id(s->dir(), id));
  }
  set->cs_id_ = id;
  return set;
}

ChunkStore* StoreSet::find(uint64_t id) {
  for (auto& s : stores_)
    if (s->contains(id)) return s.get();
  return nullptr;
}

Status StoreSet::create(uint64_t id, uint32_t version) {
  std::lock_guard lk(create_mu_);
  if (ChunkStore* s = find(id)) {
    auto meta = s->stat(id);
    return error(Code::kExists, fmt::format("chunk {:016x} exists (version {})", id, meta.ok() ? meta->version : 0));
  }
  ChunkStore* best = nullptr;
  uint64_t best_free = 0;
  for (auto& s : stores_) {
    auto sp = s->space();
    if (!sp.ok()) {
      spdlog::warn("data directory {}: {}", s->dir(), sp.status().to_string());
      continue;
    }
    if (!best || sp->free_bytes > best_free) {
      best = s.get();
      best_free = sp->free_bytes;
    }
  }
  if (!best) return error(Code::kIOError, "no usable data directory");
  if (best_free < kBlockSize) return error(Code::kNoSpace, fmt::format("no free space for chunk {:016x}", id));
  return best->create(id, version);
}

namespace {

Status not_found(uint64_t id) { return error(Code::kNotFound, fmt::format("chunk {:016x} not found", id)); }

}  // namespace

Status StoreSet::set_version(uint64_t id, uint32_t old_version, uint32_t new_version,
                             std::optional<uint64_t> truncate_length) {
  ChunkStore* s = find(id);
  return s ? s->set_version(id, old_version, new_version, truncate_length) : not_found(id);
}

Status StoreSet::write(uint64_t id, uint32_t version, uint64_t offset, std::string_view data) {
  ChunkStore* s = find(id);
  return s ? s->write(id, version, offset, data) : not_found(id);
}

Result<std::string> StoreSet::read(uint64_t id, uint32_t version, uint64_t offset, uint64_t length,
                                   uint64_t* chunk_length) {
  ChunkStore* s = find(id);
  if (!s) return not_found(id);
  return s->read(id, version, offset, length, chunk_length);
}

Status StoreSet::sync(uint64_t id, uint32_t version) {
  ChunkStore* s = find(id);
  return s ? s->sync(id, version) : not_found(id);
}

Status StoreSet::remove(uint64_t id, uint32_t version) {
  ChunkStore* s = find(id);
  return s ? s->remove(id, version) : not_found(id);
}

std::vector<ChunkMeta> StoreSet::list() const {
  std::vector<ChunkMeta> out;
  for (const auto& s : stores_) {
    auto part = s->list();
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

uint64_t StoreSet::chunk_count() const {
  uint64_t n = 0;
  for (const auto& s : stores_) n += s->chunk_count();
  return n;
}

SpaceInfo StoreSet::space() const {
  SpaceInfo total;
  for (const auto& s : stores_) {
    auto sp = s->space();
    if (!sp.ok()) continue;
    total.total_bytes += sp->total_bytes;
    total.used_bytes += sp->used_bytes;
    total.free_bytes += sp->free_bytes;
  }
  return total;
}

Status StoreSet::flush() {
  Status first;
  for (auto& s : stores_) {
    Status st = s->flush();
    if (!st.ok() && first.ok()) first = st;
  }
  return first;
}

}  // namespace keelfs
