#include "master/chunks/placement.h"

#include <algorithm>

namespace keelfs::master {

std::vector<ChunkServer*> place_chunk(Registry& registry, const std::string& region, uint32_t goal,
                                      uint64_t reserve_bytes) {
  std::vector<ChunkServer*> candidates;
  for (ChunkServer* cs : registry.alive_in_region(region))
    if (cs->free_bytes() > reserve_bytes && !cs->draining) candidates.push_back(cs);
  // Most free space first; ties broken by id so placement is deterministic in tests.
  std::sort(candidates.begin(), candidates.end(), [](ChunkServer* a, ChunkServer* b) {
    if (a->free_bytes() / (1 << 30) != b->free_bytes() / (1 << 30)) return a->free_bytes() > b->free_bytes();
    if (a->chunks != b->chunks) return a->chunks < b->chunks;
    return a->id < b->id;
  });
  std::vector<ChunkServer*> chosen;
  auto used_host = [&](ChunkServer* c) {
    return std::any_of(chosen.begin(), chosen.end(), [&](ChunkServer* x) { return x->host == c->host; });
  };
  auto used_zone = [&](ChunkServer* c) {
    return !c->zone.empty() &&
           std::any_of(chosen.begin(), chosen.end(), [&](ChunkServer* x) { return x->zone == c->zone; });
  };
  // Pass 1: new host and zone; pass 2: new zone; pass 3: anything not chosen yet.
  for (int pass = 0; pass < 3 && chosen.size() < goal; ++pass) {
    for (ChunkServer* cs : candidates) {
      if (chosen.size() >= goal) break;
      if (std::find(chosen.begin(), chosen.end(), cs) != chosen.end()) continue;
      if (pass == 0 && (used_host(cs) || used_zone(cs))) continue;
      if (pass == 1 && used_zone(cs)) continue;
      chosen.push_back(cs);
    }
  }
  // Count the new chunk at once so consecutive placements spread over equal servers.
  for (ChunkServer* cs : chosen) ++cs->chunks;
  return chosen;
}

ChunkServer* place_copy(Registry& registry, const std::string& region, const std::vector<ChunkServer*>& holders,
                        uint64_t reserve_bytes, const std::function<bool(const ChunkServer&)>& usable) {
  auto holds = [&](ChunkServer* c) { return std::find(holders.begin(), holders.end(), c) != holders.end(); };
  auto host_taken = [&](ChunkServer* c) {
    return std::any_of(holders.begin(), holders.end(), [&](ChunkServer* h) { return h->host == c->host; });
  };
  auto zone_taken = [&](ChunkServer* c) {
    return !c->zone.empty() &&
           std::any_of(holders.begin(), holders.end(), [&](ChunkServer* h) { return h->zone == c->zone; });
  };
  ChunkServer* best = nullptr;
  int best_rank = 3;
  for (ChunkServer* cs : registry.alive_in_region(region)) {
    if (holds(cs) || cs->draining || cs->free_bytes() <= reserve_bytes || !usable(*cs)) continue;
    int rank = host_taken(cs) ? 2 : zone_taken(cs) ? 1 : 0;
    if (!best || rank < best_rank || (rank == best_rank && cs->free_bytes() > best->free_bytes())) {
      best = cs;
      best_rank = rank;
    }
  }
  return best;
}

}  // namespace keelfs::master
