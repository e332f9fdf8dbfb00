// New chunks (new_chunk), and spare chunks: new chunks made on their chunkservers ahead of
// need. Creating a chunk costs a round trip to every server of its chain plus a file
// creation there; a new file's first write (CHUNK_FOR_WRITE) takes a spare instead and
// waits for none of that.
//
// A spare has an id and copies at version 1 but no chunk record: it belongs to no file
// until chunk_for_write hands it out. Spares live only in memory; after a restart the
// chunkservers report them as chunks of no file, and they are deleted like any orphan.
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/async.h"
#include "master/chunks/placement.h"
#include "master/master.h"

namespace keelfs::master {
namespace {
constexpr size_t kSpareStock = 32;  // spares kept per (region, goal)
constexpr size_t kSpareLow = 16;    // below this a refill starts
constexpr size_t kSpareBatch = 8;   // chunks a refill creates at once
}  // namespace

std::optional<Master::NewChunk> Master::take_spare(const std::string& region, uint32_t goal) {
  const SpareKey key{region, goal};
  std::deque<NewChunk>& stock = spares_[key];
  std::optional<NewChunk> found;
  while (!stock.empty() && !found) {
    NewChunk s = std::move(stock.front());
    stock.pop_front();
    unfiled_ids_.erase(s.chunk_id);
    if (fit_for_new_chunk(s)) {
      found = std::move(s);
    } else {
      drop_spare(s);
    }
  }
  if (stock.size() < kSpareLow && !stopping_ && refilling_.insert(key).second)
    asio::co_spawn(io_, refill_spares(key), asio::detached);
  return found;
}

// Every server of the spare still takes new chunks: alive, not draining, not full.
bool Master::fit_for_new_chunk(const NewChunk& s) {
  if (s.servers.empty()) return false;
  for (uint64_t id : s.servers) {
    ChunkServer* cs = registry_.server(id);
    if (!cs || !cs->alive || cs->draining || cs->free_bytes() <= config_.cs_reserve_bytes) return false;
  }
  return true;
}

uint64_t Master::spares_on(uint64_t cs_id) const {
  uint64_t n = 0;
  for (const auto& [key, stock] : spares_)
    for (const NewChunk& s : stock) n += std::count(s.servers.begin(), s.servers.end(), cs_id);
  return n;
}

void Master::drop_spare(const NewChunk& s) {
  for (uint64_t id : s.servers)
    if (ChunkServer* cs = registry_.server(id); cs && cs->alive) delete_copy(*cs, s.chunk_id, 1);
}

awaitable<void> Master::refill_spares(SpareKey key) {
  while (!stopping_ && spares_[key].size() < kSpareStock) {
    size_t n = std::min(kSpareBatch, kSpareStock - spares_[key].size());
    std::vector<awaitable<Result<NewChunk>>> makes;
    for (size_t i = 0; i < n; ++i) makes.push_back(new_chunk(key));
    bool any = false;
    for (auto& made : co_await when_all(std::move(makes))) {
      if (!made.ok()) continue;
      any = true;
      if (stopping_) continue;
      spares_[key].push_back(std::move(*made));
    }
    if (!any) break;  // no server takes new chunks now; chunk_for_write places its own
  }
  refilling_.erase(key);
}

awaitable<Result<Master::NewChunk>> Master::new_chunk(SpareKey key) {
  auto chosen = place_chunk(registry_, key.first, key.second, config_.cs_reserve_bytes);
  // None registered (a master just restarted, before its chunkservers dialled in again) is
  // a wait, which the client rides out; servers that are all full is ENOSPC.
  if (chosen.empty() && registry_.alive_in_region(key.first).empty())
    co_return error(Code::kUnavailable, fmt::format("no chunkserver of region '{}' is registered", key.first));
  if (chosen.empty())
    co_return error(Code::kNoSpace, fmt::format("no chunkserver with free space in region '{}'", key.first));
  NewChunk c;
  c.chunk_id = store_->allocate_chunk_id();
  Batch counters = store_->batch();  // the id is written before any server holds it
  CO_RETURN_IF_ERROR(store_->commit(counters));
  unfiled_ids_.insert(c.chunk_id);  // from now on a chunk report of it is no orphan
  for (ChunkServer* cs : co_await create_on(c.chunk_id, chosen)) c.servers.push_back(cs->id);
  if (c.servers.empty()) {
    unfiled_ids_.erase(c.chunk_id);
    co_return error(Code::kUnavailable, fmt::format("no chunkserver could create chunk {:016x}", c.chunk_id));
  }
  co_return c;
}

}  // namespace keelfs::master
