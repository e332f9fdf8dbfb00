#include "client/pack_cache.h"

#include <cstring>

namespace keelfs::client {

bool PackCache::get(uint64_t chunk_id, uint64_t offset, size_t len, char* out) {
  const uint64_t block = offset / kBlock * kBlock;
  auto it = blocks_.find({chunk_id, block});
  if (it == blocks_.end()) return false;
  const std::string& bytes = it->second.first;
  if (offset + len > block + bytes.size()) return false;  // read before these bytes were written
  std::memcpy(out, bytes.data() + (offset - block), len);
  lru_.splice(lru_.begin(), lru_, it->second.second);
  return true;
}

void PackCache::put(uint64_t chunk_id, uint64_t block_offset, std::string bytes) {
  const Key key{chunk_id, block_offset};
  auto it = blocks_.find(key);
  if (it != blocks_.end()) {
    it->second.first = std::move(bytes);
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return;
  }
  lru_.push_front(key);
  blocks_.emplace(key, std::make_pair(std::move(bytes), lru_.begin()));
  while (blocks_.size() > max_blocks_) {
    blocks_.erase(lru_.back());
    lru_.pop_back();
  }
}

}  // namespace keelfs::client
