#include "master/chunks/location_table.h"

#include <algorithm>
#include <bit>

namespace keelfs::master {
namespace {

constexpr size_t kMinSlots = 1024;
// Chunk ids are handed out in sequence: mixed, so that runs of them spread over the table.
uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  return x ^ (x >> 33);
}

}  // namespace

LocationTable::LocationTable(size_t expected_chunks) {
  const size_t want = std::max(kMinSlots, expected_chunks + expected_chunks / 2 + 1);
  slots_.resize(std::bit_ceil(want));
}

size_t LocationTable::home(uint64_t chunk_id) const { return mix(chunk_id) & (slots_.size() - 1); }

size_t LocationTable::find(uint64_t chunk_id) const {
  const size_t mask = slots_.size() - 1;
  size_t i = home(chunk_id);
  while (slots_[i].chunk_id != 0 && slots_[i].chunk_id != chunk_id) i = (i + 1) & mask;
  return i;
}

LocationTable::Slot& LocationTable::slot_for(uint64_t chunk_id) {
  size_t i = find(chunk_id);
  if (slots_[i].chunk_id == chunk_id) return slots_[i];
  if ((used_ + 1) * 10 > slots_.size() * 7) {
    grow();
    i = find(chunk_id);
  }
  slots_[i] = Slot{};
  slots_[i].chunk_id = chunk_id;
  ++used_;
  return slots_[i];
}

void LocationTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.size() * 2, Slot{});
  for (const Slot& s : old)
    if (s.chunk_id != 0) slots_[find(s.chunk_id)] = s;
  ++generation_;
}

std::vector<LocationTable::Holder> LocationTable::holders_of(const Slot& s) const {
  std::vector<Holder> out;
  for (Holder h : s.holders)
    if (h != 0) out.push_back(h);
  if (s.holders[kInline - 1] != 0) {
    auto it = overflow_.find(s.chunk_id);
    if (it != overflow_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

bool LocationTable::holds(const Slot& s, Holder holder) const {
  if (std::find(std::begin(s.holders), std::end(s.holders), holder) != std::end(s.holders)) return true;
  if (s.holders[kInline - 1] == 0) return false;
  auto it = overflow_.find(s.chunk_id);
  return it != overflow_.end() && std::find(it->second.begin(), it->second.end(), holder) != it->second.end();
}

void LocationTable::put(Slot& s, const std::vector<Holder>& holders) {
  for (int i = 0; i < kInline; ++i) s.holders[i] = i < static_cast<int>(holders.size()) ? holders[i] : 0;
  if (holders.size() > kInline)
    overflow_[s.chunk_id].assign(holders.begin() + kInline, holders.end());
  else
    overflow_.erase(s.chunk_id);
}

void LocationTable::add(uint64_t chunk_id, Holder holder, const IsCurrent& is_current) {
  Slot& s = slot_for(chunk_id);
  std::vector<Holder> holders = holders_of(s);
  std::erase_if(holders, [&](Holder h) { return h != holder && !is_current(h); });
  if (std::find(holders.begin(), holders.end(), holder) == holders.end()) holders.push_back(holder);
  put(s, holders);
}

void LocationTable::set(uint64_t chunk_id, const std::vector<Holder>& holders) { put(slot_for(chunk_id), holders); }

void LocationTable::remove(uint64_t chunk_id, Holder holder) {
  size_t i = find(chunk_id);
  if (slots_[i].chunk_id != chunk_id) return;
  std::vector<Holder> holders = holders_of(slots_[i]);
  if (std::erase(holders, holder) != 0) put(slots_[i], holders);
}

std::vector<LocationTable::Holder> LocationTable::get(uint64_t chunk_id) const {
  size_t i = find(chunk_id);
  if (slots_[i].chunk_id != chunk_id) return {};
  return holders_of(slots_[i]);
}

void LocationTable::erase(uint64_t chunk_id) {
  size_t i = find(chunk_id);
  if (slots_[i].chunk_id != chunk_id) return;
  overflow_.erase(chunk_id);
  clear_slot(i);
}

// Backward-shift deletion: the entries after the hole that would not be found past it move
// into it, so no lookup ever stops at a hole too early (no tombstones to clean up).
void LocationTable::clear_slot(size_t i) {
  const size_t mask = slots_.size() - 1;
  slots_[i] = Slot{};
  --used_;
  for (size_t j = (i + 1) & mask; slots_[j].chunk_id != 0; j = (j + 1) & mask) {
    const size_t k = home(slots_[j].chunk_id);
    // Slot j's entry may move to hole i unless its home lies cyclically in (i, j].
    const bool home_between = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (home_between) continue;
    slots_[i] = slots_[j];
    slots_[j] = Slot{};
    i = j;
  }
}

std::pair<size_t, size_t> LocationTable::next_slice(Sweep& sweep, size_t max) const {
  if (sweep.generation != generation_) sweep = start_sweep();
  const size_t first = std::min(sweep.next, slots_.size());
  sweep.next = std::min(slots_.size(), first + max);
  return {first, sweep.next};
}

bool LocationTable::drop_holder(Holder holder, Sweep& sweep, size_t max, std::vector<uint64_t>* affected) {
  const auto [first, end] = next_slice(sweep, max);
  for (size_t i = first; i < end; ++i) {
    Slot& s = slots_[i];
    if (s.chunk_id == 0 || !holds(s, holder)) continue;
    std::vector<Holder> holders = holders_of(s);
    std::erase(holders, holder);
    put(s, holders);
    affected->push_back(s.chunk_id);
  }
  return end < slots_.size();
}

bool LocationTable::scan(Sweep& sweep, size_t max,
                         const std::function<void(uint64_t, const std::vector<Holder>&)>& fn) const {
  const auto [first, end] = next_slice(sweep, max);
  for (size_t i = first; i < end; ++i)
    if (slots_[i].chunk_id != 0) fn(slots_[i].chunk_id, holders_of(slots_[i]));
  return end < slots_.size();
}

size_t LocationTable::memory_bytes() const {
  size_t bytes = slots_.capacity() * sizeof(Slot);
  for (const auto& [id, v] : overflow_) bytes += 64 + v.capacity() * sizeof(Holder);
  return bytes;
}

}  // namespace keelfs::master
