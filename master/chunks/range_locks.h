// RangeLocks: what keeps two set-ups of the same bytes of a chunk apart (a writer's
// version bump, a truncate's cut, a healing copy). A lock holds a byte range of one chunk:
// set-ups of disjoint ranges of a chunk (the files packed into one chunk) go on at once,
// overlapping ones take turns, first come first served.
//
// Single-threaded: all calls on the master's executor.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/async.h"

namespace keelfs::master {

class RangeLocks {
 public:
  class Guard {
   public:
    Guard(RangeLocks* locks, uint64_t chunk_id, uint64_t token) : locks_(locks), chunk_id_(chunk_id), token_(token) {}
    Guard(Guard&& o) noexcept : locks_(std::exchange(o.locks_, nullptr)), chunk_id_(o.chunk_id_), token_(o.token_) {}
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (locks_) locks_->unlock(chunk_id_, token_);
    }

   private:
    RangeLocks* locks_;
    uint64_t chunk_id_;
    uint64_t token_;
  };

  // Holds [begin, end) of the chunk once no earlier lock or waiter overlaps it.
  awaitable<Guard> lock(uint64_t chunk_id, uint64_t begin, uint64_t end);
  // Ranges held now, over all chunks (for tests).
  size_t held() const;

 private:
  struct Range {
    uint64_t begin, end, token;
    std::shared_ptr<Event> granted;  // waiters only
  };
  struct Chunk {
    std::vector<Range> held;
    std::deque<Range> waiting;
  };
  static bool overlap(const Range& a, const Range& b) { return a.begin < b.end && b.begin < a.end; }
  void unlock(uint64_t chunk_id, uint64_t token);
  // Moves the waiters that now overlap nothing held (nor an earlier waiter) to held.
  static void grant(Chunk& c);

  std::unordered_map<uint64_t, Chunk> chunks_;
  uint64_t next_token_ = 1;
};

}  // namespace keelfs::master
