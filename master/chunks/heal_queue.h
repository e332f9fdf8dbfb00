// HealQueue: the chunks the healer is to look at, most endangered first.
//
// Events put chunks here (a chunkserver lost, drained or back, a version bump that left a
// copy behind, a goal change, a damage report, a new chunk made on fewer servers than its
// goal), and the slow consistency sweep puts in whatever it finds off goal. The healer
// takes them out in order and looks at each afresh: the urgency given here is only a
// guess made when the event happened. A chunk may be in the queue more than once; looking
// at it twice costs a record read, and a dedup set would cost memory per chunk.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>

namespace keelfs::master {

class HealQueue {
 public:
  enum Urgency {
    kOneCopyLeft = 0,  // one copy, or none that counts, is all there is
    kUnderGoal = 1,    // fewer copies than the goal
    kCheck = 2,        // anything else worth a look (over goal, copies back, goal changed)
  };
  void push(uint64_t chunk_id, Urgency urgency) { levels_[urgency].push_back(chunk_id); }
  // The most urgent chunk, first in first out within an urgency.
  std::optional<uint64_t> pop();
  // The urgency of the chunk pop() would return (kCheck when empty).
  Urgency first_urgency() const;
  size_t size() const { return levels_[0].size() + levels_[1].size() + levels_[2].size(); }
  bool empty() const { return size() == 0; }

 private:
  std::array<std::deque<uint64_t>, 3> levels_;
};

}  // namespace keelfs::master
