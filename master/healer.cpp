// The replication planner: keeps every chunk at its goal. Once a second it looks at every
// chunk's live, current copies against its goal, in slices that give the master's thread
// back to clients every couple of milliseconds:
//   - under goal: one more copy is made, most endangered chunks first (1 copy left before
//     2), at most `replications_per_cs` copies in and out of any chunkserver at a time;
//     the chunkservers themselves cap the bytes per second (--replication-rate);
//   - over goal: copies go, from the fullest servers first, never the last one;
//   - copies on a draining chunkserver do not count: they are copied elsewhere, and the
//     server is "safe to remove" when no chunk needs its copy any more.
// A copy is made under a new version: the planner bumps the chunk's version on its
// holders first (a writer still holding the old version is refused and asks the master
// again), the target pulls that version from a holder, and the copy counts only if the
// version has not moved on meanwhile.
// A chunk a client is writing is left alone until its writer ends (WRITE_END) or has not
// asked for it again for kWriterHold: every copy bumps the version and so refuses the
// writer, whose new lease bumps it again and drops the copy. Healing a chunk under a
// steady writer would go round that loop until the writer ran out of retries (as MooseFS
// does, a locked chunk waits for its writer).
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/ticket.h"
#include "common/util.h"
#include "master/master.h"

namespace keelfs::master {
namespace {

constexpr auto kReplicateTimeout = std::chrono::minutes(10);
constexpr auto kWriterHold = std::chrono::seconds(30);

struct UnderGoal {
  uint32_t copies;  // valid ones, when the pass looked
  uint64_t chunk_id;
  uint64_t volume_id;
};

}  // namespace

awaitable<void> Master::heal_loop() {
  // Chunkservers report their chunks when they (re-)register: give them one liveness
  // timeout after the master starts before counting copies.
  co_await sleep_for(std::chrono::milliseconds(config_.cs_timeout_ms));
  while (!stopping_) {
    co_await heal_pass();
    co_await sleep_for(std::chrono::milliseconds(config_.heal_interval_ms));
  }
}

// One look at every chunk, in slices (the thread goes back to the clients every couple of
// milliseconds), then copies for the chunks under goal, most endangered first. A chunk's
// copies are looked up again when its copy is started: the pass is not a snapshot.
awaitable<void> Master::heal_pass() {
  finish_pending_cuts();
  Slicer slicer;
  const auto now = std::chrono::steady_clock::now();
  // What is left in writing_ is written now: its writer asked within kWriterHold.
  std::erase_if(writing_, [&](const auto& w) { return now - w.second >= kWriterHold; });
  uint64_t waiting_for_writers = 0;
  std::vector<UnderGoal> under;
  std::map<uint64_t, uint64_t> drain_left;  // cs id -> chunks that still need its copy
  auto look = [&](uint64_t id, const pb::ChunkRecord& rec) {
    std::vector<ChunkServer*> holders = registry_.holders(id);
    // Copies on a draining server do not count towards the goal: they are on their way out.
    std::vector<ChunkServer*> valid;
    for (ChunkServer* h : holders)
      if (!h->draining) valid.push_back(h);
    uint32_t goal = std::max<uint32_t>(1, rec.goal());
    for (ChunkServer* h : holders)
      if (h->draining && valid.size() < goal) ++drain_left[h->id];
    if (holders.empty() || healing_.count(id)) return;  // missing ones: nothing to copy from
    if (valid.size() != goal && writing_.count(id)) {
      ++waiting_for_writers;
      return;
    }
    if (valid.size() < goal) {
      under.push_back({static_cast<uint32_t>(valid.size()), id, rec.volume_id()});
    } else if (valid.size() > goal) {
      // The fullest servers give up their copies first.
      std::sort(valid.begin(), valid.end(),
                [](ChunkServer* a, ChunkServer* b) { return a->free_bytes() < b->free_bytes(); });
      for (size_t i = 0; i < valid.size() - goal; ++i) {
        spdlog::info("chunk {:016x}: {} copies over goal {}: deleting the one on {}", id, valid.size(), goal,
                     valid[i]->address);
        delete_copy(*valid[i], id, rec.version());
        registry_.remove_location(id, valid[i]->id);
      }
    }
  };
  for (uint64_t next = 0;;) {
    next = store_->for_each_chunk_from(next, kScanSlice, look);
    if (next == 0) break;
    if (slicer.due()) co_await slicer.yield();
  }
  waiting_for_writers_ = waiting_for_writers;
  for (ChunkServer* cs : registry_.servers()) cs->drain_left = drain_left[cs->id];
  std::stable_sort(under.begin(), under.end(), [](const UnderGoal& a, const UnderGoal& b) { return a.copies < b.copies; });
  const int limit = config_.replications_per_cs;
  for (const UnderGoal& u : under) {
    if (slicer.due()) co_await slicer.yield();
    if (healing_.count(u.chunk_id)) continue;
    auto rec = store_->get_chunk(u.chunk_id);
    if (!rec.ok() || !*rec) continue;  // its file went meanwhile
    auto vol = ns_->volume_by_id(u.volume_id);
    if (!vol.ok()) continue;
    std::vector<ChunkServer*> holders = registry_.holders(u.chunk_id);
    ChunkServer* source = nullptr;
    for (ChunkServer* h : holders)
      if (copies_out_[h->id] < limit && (!source || copies_out_[h->id] < copies_out_[source->id])) source = h;
    if (!source) continue;
    ChunkServer* target = place_copy(registry_, vol->region(), holders, config_.cs_reserve_bytes,
                                     [&](const ChunkServer& cs) { return copies_in_[cs.id] < limit; });
    if (!target) continue;
    healing_.insert(u.chunk_id);
    ++copies_out_[source->id];
    ++copies_in_[target->id];
    asio::co_spawn(io_, heal_chunk(u.chunk_id, source->id, target->id), asio::detached);
  }
}

// Truncates whose cut could not be made when they committed (no live copy then, or a
// master that died half-way): made as soon as the chunk's servers are back.
void Master::finish_pending_cuts() {
  for (uint64_t id : store_->chunks_with_pending_cut()) {
    if (cutting_.count(id) || registry_.holders(id).empty()) continue;
    auto rec = store_->get_chunk(id);
    if (!rec.ok() || !*rec) continue;
    cutting_.insert(id);
    asio::co_spawn(io_, finish_pending_cut(id, (*rec)->inode(), (*rec)->index()), asio::detached);
  }
}

awaitable<void> Master::finish_pending_cut(uint64_t chunk_id, uint64_t ino, uint64_t index) {
  Status st = co_await finish_cut(ino, index);
  if (st.ok())
    spdlog::info("chunk {:016x}: the cut a truncate left pending is made", chunk_id);
  else
    spdlog::warn("chunk {:016x}: pending cut: {}", chunk_id, st.message());
  cutting_.erase(chunk_id);
}

awaitable<void> Master::heal_chunk(uint64_t chunk_id, uint64_t source_id, uint64_t target_id) {
  Status st = co_await copy_chunk(chunk_id, source_id, target_id);
  if (!st.ok()) spdlog::warn("healing chunk {:016x}: {}", chunk_id, st.message());
  healing_.erase(chunk_id);
  --copies_out_[source_id];
  --copies_in_[target_id];
}

awaitable<Status> Master::copy_chunk(uint64_t chunk_id, uint64_t source_id, uint64_t target_id) {
  CO_ASSIGN_OR_RETURN(auto rec, store_->get_chunk(chunk_id));
  if (!rec) co_return Status::Ok();  // its file went meanwhile
  uint32_t version = 0;
  {
    // As a new writer would: the version moves on, so that a writer still on the old one
    // is refused by the chunkservers and asks the master again.
    auto guard = co_await chunk_locks_.lock(chunk_lock_key(rec->inode(), rec->index()));
    CO_ASSIGN_OR_RETURN(auto ref, ns_->chunk(chunk_id));
    if (!ref) co_return Status::Ok();
    CO_RETURN_IF_ERROR((co_await bump_version(*ref, std::nullopt)).status());
    version = ref->version + 1;
    CO_RETURN_IF_ERROR(co_await store_->durable());
  }
  std::vector<ChunkServer*> holders = registry_.holders(chunk_id);
  ChunkServer* source = registry_.server(source_id);
  if (std::find(holders.begin(), holders.end(), source) == holders.end())
    source = holders.empty() ? nullptr : holders.front();
  ChunkServer* target = registry_.server(target_id);
  if (!source) co_return error(Code::kUnavailable, "no live copy left to copy from");
  if (!target || !target->alive || !target->conn) co_return error(Code::kUnavailable, "the target chunkserver is gone");

  pb::CsReplicateReq req;
  req.set_chunk_id(chunk_id);
  req.set_version(version);
  req.set_source(source->address);
  pb::Ticket* t = req.mutable_ticket();
  t->set_chunk_id(chunk_id);
  t->set_version(version);
  t->set_rights(kRightRead);
  t->set_expires_unix_ms(unix_ms() + config_.ticket_ttl_ms);
  sign_ticket(config_.cluster_secret, t);
  const std::string from = source->address, to = target->address;
  auto r = co_await target->conn->call(pb::CS_REPLICATE, req, {}, kReplicateTimeout);
  if (!r.ok()) co_return error(r.status().code(), fmt::format("copy {} -> {}: {}", from, to, r.status().message()));

  CO_ASSIGN_OR_RETURN(auto now, ns_->chunk(chunk_id));
  target = registry_.server(target_id);
  if (!now || now->version != version || !target || !target->alive) {
    if (target) delete_copy(*target, chunk_id, version);
    co_return error(Code::kStaleVersion, fmt::format("chunk changed or went while it was copied to {}; copy dropped", to));
  }
  registry_.add_location(chunk_id, target_id);
  spdlog::info("chunk {:016x} v{} healed: copied {} -> {}", chunk_id, version, from, to);
  co_return Status::Ok();
}

}  // namespace keelfs::master
