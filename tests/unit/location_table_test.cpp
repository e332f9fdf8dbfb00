// LocationTable: the master's compact map of chunk copies, checked against a std::map.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include "master/chunks/heal_queue.h"
#include "master/chunks/location_table.h"

using namespace keelfs::master;
using Holders = std::vector<LocationTable::Holder>;

namespace {

Holders sorted(Holders h) {
  std::sort(h.begin(), h.end());
  return h;
}

}  // namespace

TEST_CASE("location table: adds, removes, erases and grows like a map, five copies and more included") {
  LocationTable table(0);  // starts small: grows several times
  std::map<uint64_t, std::set<LocationTable::Holder>> want;
  std::mt19937_64 rng(42);
  auto all_current = [](LocationTable::Holder) { return true; };
  const uint64_t generation = table.generation();
  for (int step = 0; step < 200000; ++step) {
    const uint64_t chunk = 1 + rng() % 5000;
    const auto holder = static_cast<LocationTable::Holder>(1 + rng() % 7);
    switch (rng() % 4) {
      case 0:
      case 1:
        table.add(chunk, holder, all_current);
        want[chunk].insert(holder);
        break;
      case 2:
        table.remove(chunk, holder);
        if (want.count(chunk)) want[chunk].erase(holder);
        break;
      case 3:
        if (rng() % 8 == 0) {
          table.erase(chunk);
          want.erase(chunk);
        }
        break;
    }
  }
  REQUIRE(table.generation() > generation);
  REQUIRE(table.size() == want.size());
  for (uint64_t chunk = 1; chunk <= 5000; ++chunk) {
    auto it = want.find(chunk);
    Holders expected = it == want.end() ? Holders{} : Holders(it->second.begin(), it->second.end());
    REQUIRE(sorted(table.get(chunk)) == expected);
  }
  // Every chunk is visited once by a scan in slices.
  size_t visited = 0;
  LocationTable::Sweep sweep = table.start_sweep();
  bool more = true;
  while (more)
    more = table.scan(sweep, 100, [&](uint64_t chunk, const Holders& holders) {
      ++visited;
      REQUIRE(want.count(chunk));
      REQUIRE(sorted(holders) == Holders(want[chunk].begin(), want[chunk].end()));
    });
  REQUIRE(visited == want.size());
}

TEST_CASE("location table: adding a copy drops the holders that are no longer current") {
  LocationTable table;
  table.set(7, {1, 2});
  table.add(7, 3, [](LocationTable::Holder h) { return h != 1; });  // incarnation 1 died
  REQUIRE(sorted(table.get(7)) == Holders{2, 3});
}

TEST_CASE("location table: a lost holder's sweep takes it from every chunk and names each chunk once") {
  LocationTable table;
  for (uint64_t chunk = 1; chunk <= 3000; ++chunk) table.set(chunk, chunk % 3 == 0 ? Holders{1, 2} : Holders{2, 3});
  std::vector<uint64_t> affected;
  LocationTable::Sweep sweep = table.start_sweep();
  while (table.drop_holder(1, sweep, 500, &affected)) {
  }
  REQUIRE(affected.size() == 1000);
  REQUIRE(std::set<uint64_t>(affected.begin(), affected.end()).size() == 1000);
  for (uint64_t chunk : affected) REQUIRE(table.get(chunk) == Holders{2});
  REQUIRE(table.get(1) == Holders{2, 3});
  // A few tens of bytes per chunk: 24-byte slots, the table at least a third full.
  REQUIRE(table.memory_bytes() / table.size() <= 72);
}

TEST_CASE("location table: a sweep that spans a growth of the table starts again and misses no chunk") {
  LocationTable table(0);
  for (uint64_t chunk = 1; chunk <= 500; ++chunk) table.set(chunk, {1});
  std::set<uint64_t> seen;
  auto note = [&](uint64_t chunk, const Holders&) { seen.insert(chunk); };
  LocationTable::Sweep sweep = table.start_sweep();
  REQUIRE(table.scan(sweep, 64, note));
  const uint64_t generation = table.generation();
  for (uint64_t chunk = 501; chunk <= 5000; ++chunk) table.set(chunk, {1});  // grows: slots renumbered
  REQUIRE(table.generation() > generation);
  while (table.scan(sweep, 64, note)) {
  }
  REQUIRE(seen.size() == 5000);
}

TEST_CASE("heal queue: most endangered first, in order within an urgency") {
  HealQueue q;
  q.push(1, HealQueue::kCheck);
  q.push(2, HealQueue::kUnderGoal);
  q.push(3, HealQueue::kOneCopyLeft);
  q.push(4, HealQueue::kUnderGoal);
  REQUIRE(q.size() == 4);
  std::vector<uint64_t> order;
  while (auto id = q.pop()) order.push_back(*id);
  REQUIRE(order == std::vector<uint64_t>{3, 2, 4, 1});
  REQUIRE(q.empty());
}
