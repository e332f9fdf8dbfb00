// StoreSet: all data directories of one chunkserver, and its stable identity.
//
// A chunk lives in exactly one directory; a new chunk goes to the directory with the most
// free space. Every directory keeps the chunkserver id in `<dir>/cs_id` (16 lowercase hex
// digits and a newline): it is created on first start (random, never 0), written to
// directories that lack it, and directories that disagree are refused.
//
// Threading: every method may be called concurrently (the disk pool); the set of
// directories is fixed after open().
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "chunkserver/chunk_store.h"

namespace keelfs {

class StoreSet {
 public:
  // Opens every directory (ChunkStore::open) and loads or creates the chunkserver id.
  // Errors: those of ChunkStore::open; InvalidArgument for no directories, the same
  // directory twice or disagreeing cs_id files; IOError when cs_id cannot be written.
  // Every store's chunk files go through `disk`, which must outlive the set.
  static Result<std::unique_ptr<StoreSet>> open(const std::vector<std::string>& dirs, Disk& disk = real_disk());

  uint64_t cs_id() const { return cs_id_; }
  size_t size() const { return stores_.size(); }
  ChunkStore& store(size_t i) { return *stores_[i]; }

  // The directory holding the chunk, or nullptr.
  ChunkStore* find(uint64_t id);

  // Creates the chunk in the directory with the most free space.
  // Errors: Exists (in any directory), NoSpace, those of ChunkStore::create.
  Status create(uint64_t id, uint32_t version);

  // Per-chunk operations, routed to the chunk's directory (NotFound when none has it).
  Status set_version(uint64_t id, uint32_t old_version, uint32_t new_version, std::optional<uint64_t> truncate_length);
  Status write(uint64_t id, uint32_t version, uint64_t offset, std::string_view data);
  Result<std::string> read(uint64_t id, uint32_t version, uint64_t offset, uint64_t length, uint64_t* chunk_length);
  Status sync(uint64_t id, uint32_t version);
  Status remove(uint64_t id, uint32_t version);

  // Sums over all directories.
  std::vector<ChunkMeta> list() const;
  uint64_t chunk_count() const;
  SpaceInfo space() const;

  // Flushes every index (shutdown). Returns the first error.
  Status flush();

 private:
  StoreSet() = default;
  uint64_t cs_id_ = 0;
  std::vector<std::unique_ptr<ChunkStore>> stores_;
  std::mutex create_mu_;  // a chunk id is checked and created in one step across directories
};

}  // namespace keelfs
