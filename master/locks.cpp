#include "master/locks.h"

#include <fmt/format.h>

namespace keelfs::master {
namespace {

constexpr uint64_t kToEnd = ~0ull;

bool overlaps(uint64_t a_start, uint64_t a_end, uint64_t b_start, uint64_t b_end) {
  return a_start <= b_end && b_start <= a_end;
}

}  // namespace

const LockTable::Lock* LockTable::conflict(uint64_t session, const pb::LockReq& req) const {
  auto it = locks_.find({req.inode(), req.kind()});
  if (it == locks_.end()) return nullptr;
  bool flock = req.kind() == pb::LK_FLOCK;
  for (const Lock& l : it->second) {
    if (l.session == session && l.owner == req.owner()) continue;
    if (!flock && !overlaps(l.start, l.end, req.start(), req.end())) continue;
    if (l.type == pb::LT_WRITE || req.type() == pb::LT_WRITE) return &l;
  }
  return nullptr;
}

Status LockTable::set(uint64_t session, const pb::LockReq& req) {
  bool flock = req.kind() == pb::LK_FLOCK;
  uint64_t start = flock ? 0 : req.start(), end = flock ? kToEnd : req.end();
  if (start > end) return error(Code::kInvalidArgument, "lock range ends before it starts");
  if (req.type() != pb::LT_UNLOCK) {
    if (const Lock* c = conflict(session, req))
      return error(Code::kWouldBlock, fmt::format("inode {} is locked by another owner (pid {})", req.inode(), c->pid));
  }
  std::vector<Lock>& list = locks_[{req.inode(), req.kind()}];
  // The owner's own locks over [start, end] give way to the new one (POSIX splits them).
  std::vector<Lock> kept;
  for (const Lock& l : list) {
    if (l.session != session || l.owner != req.owner() || !overlaps(l.start, l.end, start, end)) {
      kept.push_back(l);
      continue;
    }
    if (l.start < start) {
      Lock left = l;
      left.end = start - 1;
      kept.push_back(left);
    }
    if (l.end > end) {
      Lock right = l;
      right.start = end + 1;
      kept.push_back(right);
    }
  }
  if (req.type() != pb::LT_UNLOCK) kept.push_back(Lock{session, req.owner(), req.type(), start, end, req.pid()});
  if (kept.empty())
    locks_.erase({req.inode(), req.kind()});
  else
    list = std::move(kept);
  return Status::Ok();
}

pb::LockResp LockTable::test(uint64_t session, const pb::LockReq& req) const {
  pb::LockResp resp;
  if (const Lock* c = conflict(session, req)) {
    resp.set_type(c->type);
    resp.set_start(c->start);
    resp.set_end(c->end);
    resp.set_pid(c->pid);
  }
  return resp;
}

void LockTable::release_session(uint64_t session) {
  for (auto it = locks_.begin(); it != locks_.end();) {
    std::erase_if(it->second, [&](const Lock& l) { return l.session == session; });
    it = it->second.empty() ? locks_.erase(it) : std::next(it);
  }
}

size_t LockTable::count() const {
  size_t n = 0;
  for (auto& [key, list] : locks_) n += list.size();
  return n;
}

}  // namespace keelfs::master
