#include "master/chunks/range_locks.h"

#include <algorithm>

namespace keelfs::master {

awaitable<RangeLocks::Guard> RangeLocks::lock(uint64_t chunk_id, uint64_t begin, uint64_t end) {
  auto ex = co_await asio::this_coro::executor;
  Chunk& c = chunks_[chunk_id];  // element references survive rehashing
  Range r{begin, std::max(end, begin + 1), next_token_++, nullptr};
  auto blocks = [&](const Range& other) { return overlap(r, other); };
  if (std::none_of(c.held.begin(), c.held.end(), blocks) && std::none_of(c.waiting.begin(), c.waiting.end(), blocks)) {
    c.held.push_back(r);
    co_return Guard(this, chunk_id, r.token);
  }
  r.granted = std::make_shared<Event>(ex);
  std::shared_ptr<Event> granted = r.granted;
  c.waiting.push_back(r);
  co_await granted->wait();  // unlock() moved it to held
  co_return Guard(this, chunk_id, r.token);
}

void RangeLocks::unlock(uint64_t chunk_id, uint64_t token) {
  auto it = chunks_.find(chunk_id);
  if (it == chunks_.end()) return;
  Chunk& c = it->second;
  std::erase_if(c.held, [&](const Range& r) { return r.token == token; });
  grant(c);
  if (c.held.empty() && c.waiting.empty()) chunks_.erase(it);
}

void RangeLocks::grant(Chunk& c) {
  std::vector<Range> still;
  for (Range& w : c.waiting) {
    auto blocks = [&](const Range& other) { return overlap(w, other); };
    if (std::any_of(c.held.begin(), c.held.end(), blocks) || std::any_of(still.begin(), still.end(), blocks)) {
      still.push_back(w);
      continue;
    }
    c.held.push_back(w);
    w.granted->notify();
  }
  c.waiting.assign(still.begin(), still.end());
}

size_t RangeLocks::held() const {
  size_t n = 0;
  for (const auto& [id, c] : chunks_) n += c.held.size();
  return n;
}

}  // namespace keelfs::master
