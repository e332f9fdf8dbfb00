// LocationTable: where every chunk's copies are, in the master's memory — the one thing
// kept per chunk in RAM (chunk records themselves live in RocksDB).
//
// A copy is named by the *incarnation* of the chunkserver that reported it: a number the
// registry hands out at each registration and never again. A copy whose incarnation is
// not current (its server died or registered anew) simply stops counting, so losing or
// re-registering a server costs nothing here at once; stale numbers are dropped when the
// chunk is next touched, or by a sliced sweep (drop_holder).
//
// Compact on purpose: open addressing with linear probing, 24 bytes a slot (the chunk id
// and four copies inline; a fifth and later copy goes to a side map), kept at most 70 %
// full: about 35 bytes per chunk, against about 90 for a std::unordered_map of vectors.
// The table grows by doubling, rarely (its size is set at start-up from the number of
// chunk records); growing is the one step that touches every slot at once.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace keelfs::master {

class LocationTable {
 public:
  using Holder = uint32_t;  // a chunkserver incarnation; 0 is never one
  // Which incarnations still count (the registry's view); stale ones are dropped on the way.
  using IsCurrent = std::function<bool(Holder)>;

  explicit LocationTable(size_t expected_chunks = 0);

  // Adds a copy of the chunk (no-op if there). Stale holders of the chunk are dropped.
  void add(uint64_t chunk_id, Holder holder, const IsCurrent& is_current);
  // The chunk's copies are exactly these.
  void set(uint64_t chunk_id, const std::vector<Holder>& holders);
  void remove(uint64_t chunk_id, Holder holder);
  // The chunk is gone.
  void erase(uint64_t chunk_id);
  // Every holder recorded for the chunk, stale ones included (the caller filters).
  std::vector<Holder> get(uint64_t chunk_id) const;

  // Where a sweep over the table in slices stands. The table renumbers its slots when it
  // grows: a sweep that spans a growth starts again from the first slot.
  struct Sweep {
    size_t next = 0;
    uint64_t generation = 0;
  };
  Sweep start_sweep() const { return {0, generation_}; }
  // Removes `holder` from the chunks in the sweep's next `max` slots and appends the ids of
  // those that held it to *affected. False once the sweep has passed the last slot.
  bool drop_holder(Holder holder, Sweep& sweep, size_t max, std::vector<uint64_t>* affected);
  // Calls fn for each chunk in the sweep's next `max` slots with its holders; returns like
  // drop_holder.
  bool scan(Sweep& sweep, size_t max, const std::function<void(uint64_t chunk_id, const std::vector<Holder>&)>& fn) const;
  // Moves on each time the table grows (slot numbers then change).
  uint64_t generation() const { return generation_; }

  size_t size() const { return used_; }
  size_t memory_bytes() const;

 private:
  static constexpr int kInline = 4;
  struct Slot {
    uint64_t chunk_id = 0;  // 0: empty
    Holder holders[kInline] = {};  // 0: none; filled from the front
  };
  size_t home(uint64_t chunk_id) const;
  // The slot of the chunk, or of the empty slot where it would go.
  size_t find(uint64_t chunk_id) const;
  Slot& slot_for(uint64_t chunk_id);  // finds or inserts
  void grow();
  void put(Slot& s, const std::vector<Holder>& holders);
  std::vector<Holder> holders_of(const Slot& s) const;
  bool holds(const Slot& s, Holder holder) const;
  void clear_slot(size_t i);
  // The slots [first, end) of the sweep's next slice; moves the sweep on (or back to the
  // start after a growth).
  std::pair<size_t, size_t> next_slice(Sweep& sweep, size_t max) const;

  std::vector<Slot> slots_;
  size_t used_ = 0;
  uint64_t generation_ = 0;
  std::unordered_map<uint64_t, std::vector<Holder>> overflow_;  // copies past the fourth
};

}  // namespace keelfs::master
