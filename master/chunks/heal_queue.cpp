#include "master/chunks/heal_queue.h"

namespace keelfs::master {

std::optional<uint64_t> HealQueue::pop() {
  for (auto& level : levels_) {
    if (level.empty()) continue;
    uint64_t id = level.front();
    level.pop_front();
    return id;
  }
  return std::nullopt;
}

}  // namespace keelfs::master
