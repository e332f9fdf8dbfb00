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

HealQueue::Urgency HealQueue::first_urgency() const {
  for (int u = 0; u < 3; ++u)
    if (!levels_[u].empty()) return static_cast<Urgency>(u);
  return kCheck;
}

}  // namespace keelfs::master
