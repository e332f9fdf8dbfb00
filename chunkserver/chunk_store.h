// ChunkStore: the chunks of ONE data directory.
//
// Layout (docs/formats.md, "Chunkserver data directory", describes it byte by byte):
//
//   <dir>/cs_id                                   the chunkserver id (see server_id.h)
//   <dir>/index/                                  RocksDB: chunk id -> ChunkRecord
//   <dir>/chunks/XX/chunk_<016x id>_<08x ver>.dat chunk data only, no header;
//                                                 XX = low byte of the id, lowercase hex
//
// The index is the truth about which chunks exist, their version, length and the CRC32C
// of every 64 KiB block. open() loads it into memory and never lists or stats chunk
// files, so start-up costs one index scan, not one syscall per chunk.
//
// Threading: every method may be called concurrently from any thread (the disk pool).
// Operations on one chunk are serialized by a per-chunk lock (reads share it).
//
// Durability (docs/decisions.md, "Chunkserver durability"): write() returns once the
// bytes are in the page cache and the index update is in the RocksDB WAL buffer. sync()
// makes everything written to that chunk so far durable. create() is made durable by the
// first sync() of the chunk; set_version() and remove() are durable when they return
// (set_version) or best-effort (remove: a lost removal is healed on first access).
// A copy whose appended bytes a power loss took after their index record reached the disk
// is cut back to its last sync by open() (ChunkRecord).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chunkserver/disk.h"
#include "common/status.h"

namespace keelfs {

constexpr uint64_t kChunkSize = 64ull << 20;  // a chunk holds at most this many bytes
constexpr uint32_t kBlockSize = 64u << 10;    // each block has its own CRC32C

// One chunk as the master sees it (CS_REGISTER / CS_REPORT_CHUNKS).
struct ChunkMeta {
  uint64_t id = 0;
  uint32_t version = 0;
  uint64_t length = 0;
};

struct SpaceInfo {
  uint64_t total_bytes = 0;  // usable by us: used + available (excludes root-reserved blocks)
  uint64_t used_bytes = 0;   // used on the filesystem, by anyone
  uint64_t free_bytes = 0;   // available to us
};

// The index value of one chunk. Encoding (little-endian): u32 version, u64 length,
// then ceil(length / kBlockSize) x u32 CRC32C, then u64 synced_length, u32
// synced_tail_crc, u64 dirty_from (records written before those existed end after the
// CRCs and read as clean). The CRC of the last block covers only the bytes below `length`.
//
// The index is one RocksDB per data directory, so syncing one chunk makes every chunk's
// latest record durable, possibly ahead of that chunk's data: after a power loss a record
// may describe bytes that never reached the disk. The synced fields say what the last
// sync of the chunk made durable, so that start-up can cut such a copy back to it
// (ChunkStore::open).
struct ChunkRecord {
  static constexpr uint64_t kClean = ~0ull;  // dirty_from: nothing written since the last sync

  uint32_t version = 0;
  uint64_t length = 0;
  std::vector<uint32_t> crcs;
  uint64_t synced_length = 0;    // the length at the last sync
  uint32_t synced_tail_crc = 0;  // then: CRC32C of the last block's bytes below synced_length
  uint64_t dirty_from = kClean;  // the lowest offset written since the last sync

  std::string encode() const;
  static Result<ChunkRecord> decode(std::string_view bytes);
};

class ChunkStore {
 public:
  // Opens (creating when missing) the data directory `dir`: the chunk sub-folders and the
  // index, then loads the index. Every call on chunk files goes through `disk`, which must
  // outlive the store. Errors: IOError (cannot create/open), Corruption (an index record
  // does not decode).
  static Result<std::unique_ptr<ChunkStore>> open(const std::string& dir, Disk& disk = real_disk());

  // Syncs and closes the index.
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  const std::string& dir() const;

  // Makes a new empty chunk. Errors: Exists when the id is present (any version).
  Status create(uint64_t id, uint32_t version);

  // Moves the chunk from old_version to new_version (renames its file) and, when
  // truncate_length is set, cuts or zero-extends it to that length. Durable on return.
  // Idempotent: when the chunk already has new_version (and the requested length) it is OK.
  // Errors: NotFound, StaleVersion (current version != old_version), InvalidArgument
  // (truncate_length > kChunkSize), Corruption (the block cut in two fails its CRC).
  Status set_version(uint64_t id, uint32_t old_version, uint32_t new_version,
                     std::optional<uint64_t> truncate_length = std::nullopt);

  // Writes `data` at `offset`, extending the chunk (a gap reads as zeros; writing no bytes
  // extends nothing). Blocks only
  // partly covered are read back to recompute their CRC (and their old CRC verified).
  // Errors: NotFound, StaleVersion, InvalidArgument (offset + size > kChunkSize),
  // Corruption (a partly covered block fails its CRC), IOError, NoSpace. A failed write
  // past the chunk's end leaves the copy as it was (the error of the disk); one into bytes
  // it had leaves the copy untrusted: IOError, and so is every later call on it (it waits
  // for the master to delete it).
  Status write(uint64_t id, uint32_t version, uint64_t offset, std::string_view data);

  // Reads [offset, offset + length) clipped at the chunk's length (empty at or past the
  // end). Every covering block is read whole and its CRC verified. `chunk_length`, when
  // given, receives the chunk's length. Errors: NotFound, StaleVersion, Corruption (names
  // the chunk and block; one log line), IOError.
  Result<std::string> read(uint64_t id, uint32_t version, uint64_t offset, uint64_t length,
                           uint64_t* chunk_length = nullptr);

  // Makes the chunk's data and every index update so far durable (fdatasync of the chunk
  // file, fsync of its folder the first time, RocksDB SyncWAL). Errors: NotFound,
  // StaleVersion, IOError.
  Status sync(uint64_t id, uint32_t version);

  // Deletes the chunk. version 0 = whatever version it has.
  // Errors: NotFound, StaleVersion (version != 0 and differs).
  Status remove(uint64_t id, uint32_t version);

  // The chunk's metadata. Errors: NotFound.
  Result<ChunkMeta> stat(uint64_t id) const;
  bool contains(uint64_t id) const;

  // Every chunk, in no particular order.
  std::vector<ChunkMeta> list() const;
  uint64_t chunk_count() const;
  // statvfs of the data directory's filesystem. Errors: IOError.
  Result<SpaceInfo> space() const;

  // Where the chunk's data lives (tests, tools).
  std::string chunk_path(uint64_t id, uint32_t version) const;

  // Flushes the index memtable and syncs its WAL (shutdown).
  Status flush();

 private:
  struct Impl;
  explicit ChunkStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keelfs
