// PackCache: blocks of pack chunks this client read lately (docs/small-files.md). The bytes
// of a pack never change once written: files are appended at new offsets, a rewritten
// file goes to a new place, compaction writes a new pack. So the block read for one small
// file serves the files packed next to it, and a dataset read in the order it was written
// costs one chunkserver read per block instead of one per file. Bounded (LRU); used on the
// client's own thread only.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <utility>

namespace keelfs::client {

class PackCache {
 public:
  static constexpr uint64_t kBlock = 64 * 1024;  // the chunkservers' CRC block: read whole anyway

  explicit PackCache(size_t max_blocks = 128) : max_blocks_(max_blocks) {}
  // Copies bytes [offset, offset + len) of the chunk to `out` when a block held covers
  // them all. REQUIRES: they lie within one block.
  bool get(uint64_t chunk_id, uint64_t offset, size_t len, char* out);
  // The bytes of the chunk from block_offset on, as a chunkserver returned them (a short
  // block: the chunk ended there then).
  void put(uint64_t chunk_id, uint64_t block_offset, std::string bytes);

 private:
  using Key = std::pair<uint64_t, uint64_t>;  // chunk id, block offset
  size_t max_blocks_;
  std::list<Key> lru_;  // most recent first
  std::map<Key, std::pair<std::string, std::list<Key>::iterator>> blocks_;
};

}  // namespace keelfs::client
