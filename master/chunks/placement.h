// Placement: which chunkservers get a new chunk, and where one more copy of a chunk goes.
// Both spread copies over hosts first, then zones, then anything with room; neither
// changes anything but the servers' chunk counts (place_chunk).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "master/chunks/registry.h"

namespace keelfs::master {

// Chooses up to `goal` alive chunkservers of `region` for a new chunk, in chain order:
// distinct hosts (then zones) first, more free space first, never a full one.
std::vector<ChunkServer*> place_chunk(Registry& registry, const std::string& region, uint32_t goal,
                                      uint64_t reserve_bytes);
// Chooses where one more copy of a chunk goes (healing): an alive server of `region`
// holding none, on a host (then zone) none of `holders` is on, most free space first;
// `usable` filters out servers already busy. nullptr when there is none.
ChunkServer* place_copy(Registry& registry, const std::string& region, const std::vector<ChunkServer*>& holders,
                        uint64_t reserve_bytes, const std::function<bool(const ChunkServer&)>& usable);

}  // namespace keelfs::master
