// The healer keeps every chunk at its goal. It is driven by events, not by scans:
//   - a chunkserver lost (its copies are swept off the location table in slices, and every
//     chunk that had one is queued), drained or undrained, or back with its report;
//   - a version bump that some copy missed, a goal change, a damage report, a new chunk
//     made on fewer servers than its goal, a copy finished or failed, a writer done;
// each puts the chunks it touches on the HealQueue, most endangered first, and wakes the
// planner (plan_heals), which looks at each queued chunk afresh, in slices that give the
// master's thread back to clients every couple of milliseconds:
//   - under goal: one more copy is made, at most `replications_per_cs` copies in and out of
//     any chunkserver at a time (a chunk whose servers are all busy waits in the queue);
//     the chunkservers themselves cap the bytes per second (--replication-rate);
//   - over goal: copies go, from the fullest servers first, never the last one;
//   - copies on a draining chunkserver do not count: they are copied elsewhere, and the
//     server is "safe to remove" when no chunk needs its copy any more.
// Behind the events, a slow sweep (sweep_loop) reads every chunk record at a bounded rate
// and queues whatever it finds off goal: the safety net for anything an event missed.
//
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
#include "master/chunks/owners.h"
#include "master/chunks/placement.h"
#include "master/master.h"

namespace keelfs::master {
namespace {

constexpr auto kReplicateTimeout = std::chrono::minutes(10);
constexpr auto kWriterHold = std::chrono::seconds(30);
// The planner stops after this many queued chunks in a row that must wait for busy
// servers, until a copy ends or the next tick.
constexpr int kBlockedLooks = 64;
// Chunk records the sweep reads between pauses, and location-table slots a sweep of a
// lost server's copies visits per slice.
constexpr size_t kSweepSlice = 256;
constexpr size_t kTableSlice = 16384;

HealQueue::Urgency urgency_of(size_t valid_copies, uint32_t goal) {
  if (valid_copies <= 1 && goal > 1) return HealQueue::kOneCopyLeft;
  return valid_copies < goal ? HealQueue::kUnderGoal : HealQueue::kCheck;
}

}  // namespace

void Master::queue_heal(uint64_t chunk_id, HealQueue::Urgency urgency) {
  heal_queue_.push(chunk_id, urgency);
  wake_healer();
}

void Master::wake_healer() {
  heal_woken_ = true;
  heal_timer_.cancel();
}

awaitable<void> Master::heal_loop() {
  // Chunkservers report their chunks when they (re-)register: give them one liveness
  // timeout after the master starts before counting copies. Events queue meanwhile.
  co_await sleep_for(std::chrono::milliseconds(config_.cs_timeout_ms));
  asio::co_spawn(io_, sweep_loop(), asio::detached);
  while (!stopping_) {
    finish_pending_cuts();
    requeue_waiting();
    co_await plan_heals();
    if (!heal_woken_) {
      heal_timer_.expires_after(std::chrono::milliseconds(config_.heal_interval_ms));
      error_code ec;
      co_await heal_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    heal_woken_ = false;
  }
}

// Chunks left to their writers whose writer is done or went quiet, and copies that failed
// (retried once per tick), go back on the queue.
void Master::requeue_waiting() {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(writing_, [&](const auto& w) { return now - w.second >= kWriterHold; });
  for (auto it = writer_held_.begin(); it != writer_held_.end();) {
    if (writing_.count(*it)) {
      ++it;
      continue;
    }
    heal_queue_.push(*it, HealQueue::kUnderGoal);
    it = writer_held_.erase(it);
  }
  if (now - last_retry_ >= std::chrono::milliseconds(config_.heal_interval_ms)) {
    for (uint64_t id : heal_retry_) heal_queue_.push(id, HealQueue::kUnderGoal);
    heal_retry_.clear();
    last_retry_ = now;
  }
}

// Whether any copy could start now: some live server may send one and some may take one.
// Without, looking at queued chunks would only put them back (and cost a record read each).
bool Master::copy_slots_free() {
  const int limit = config_.replications_per_cs;
  bool out = false, in = false;
  for (ChunkServer* cs : registry_.servers()) {
    if (!cs->alive) continue;
    out = out || copies_out_[cs->id] < limit;
    in = in || (!cs->draining && copies_in_[cs->id] < limit);
  }
  return out && in;
}

awaitable<void> Master::plan_heals() {
  Slicer slicer;
  for (int blocked = 0; blocked < kBlockedLooks;) {
    // Under-goal chunks wait for a free slot; the rest (trimming extra copies, drain
    // bookkeeping) needs none, but is behind them in the queue.
    if (!copy_slots_free() && heal_queue_.first_urgency() != HealQueue::kCheck) break;
    std::optional<uint64_t> id = heal_queue_.pop();
    if (!id) break;
    if (std::optional<HealQueue::Urgency> later = look_at(*id)) {
      heal_queue_.push(*id, *later);
      ++blocked;
    } else {
      blocked = 0;
    }
    if (slicer.due()) co_await slicer.yield();
  }
}

std::optional<HealQueue::Urgency> Master::look_at(uint64_t id) {
  auto rec = store_->get_chunk(id);
  if (!rec.ok() || !*rec) {  // its file went meanwhile
    for (auto& [cs_id, needs] : drain_needs_) needs.erase(id);
    damaged_last_copy_.erase(id);
    return std::nullopt;
  }
  const uint32_t goal = std::max<uint32_t>(1, (*rec)->goal());
  std::vector<ChunkServer*> holders = registry_.holders(id);
  // Copies on a draining server do not count towards the goal: they are on their way out.
  std::vector<ChunkServer*> valid;
  for (ChunkServer* h : holders)
    if (!h->draining) valid.push_back(h);
  for (auto& [draining_id, needs] : drain_needs_) {
    const uint64_t cs_id = draining_id;  // a lambda may not capture a structured binding (C++17)
    const bool holds = std::any_of(holders.begin(), holders.end(), [&](ChunkServer* h) { return h->id == cs_id; });
    if (holds && valid.size() < goal)
      needs.insert(id);
    else
      needs.erase(id);
  }
  if (holders.empty() || healing_.count(id)) return std::nullopt;  // missing, or a copy on its way
  if (holders.size() > 1) damaged_last_copy_.erase(id);
  if (damaged_last_copy_.count(id)) return std::nullopt;  // nothing to copy from
  // An open pack that lost a copy is sealed rather than waited for: its writer commits
  // again and again (each commit would hold it back anew) and every small file it takes
  // would have fewer copies than its goal. The writer's next commit is refused and it
  // takes a new pack.
  if (valid.size() < goal && writing_.count(id)) seal_pack_of_any_session(id);
  if (valid.size() != goal && writing_.count(id)) {
    writer_held_.insert(id);
    return std::nullopt;
  }
  if (valid.size() > goal) {
    // The fullest servers give up their copies first.
    std::sort(valid.begin(), valid.end(), [](ChunkServer* a, ChunkServer* b) { return a->free_bytes() < b->free_bytes(); });
    for (size_t i = 0; i < valid.size() - goal; ++i) {
      spdlog::info("chunk {:016x}: {} copies over goal {}: deleting the one on {}", id, valid.size(), goal,
                   valid[i]->address);
      delete_copy(*valid[i], id, (*rec)->version());
      registry_.remove_location(id, valid[i]->id);
    }
    return std::nullopt;
  }
  if (valid.size() == goal) return std::nullopt;
  auto vol = ns_->volume_by_id((*rec)->volume_id());
  if (!vol.ok()) return std::nullopt;
  const int limit = config_.replications_per_cs;
  ChunkServer* source = nullptr;
  for (ChunkServer* h : holders)
    if (copies_out_[h->id] < limit && (!source || copies_out_[h->id] < copies_out_[source->id])) source = h;
  ChunkServer* target = place_copy(registry_, vol->region(), holders, config_.cs_reserve_bytes,
                                   [&](const ChunkServer& cs) { return copies_in_[cs.id] < limit; });
  if (!source || !target) {
    // Busy servers: later. No server that could ever take it: the sweep finds it again.
    if (place_copy(registry_, vol->region(), holders, config_.cs_reserve_bytes, [](const ChunkServer&) { return true; }))
      return urgency_of(valid.size(), goal);
    lacked_servers_ = true;
    return std::nullopt;
  }
  healing_.insert(id);
  ++copies_out_[source->id];
  ++copies_in_[target->id];
  asio::co_spawn(io_, heal_chunk(id, source->id, target->id), asio::detached);
  return std::nullopt;
}

// The safety net under the events: every chunk record, at most sweep_chunks_per_s a
// second, a new round no sooner than sweep_every_ms after the last one began and only
// once the queue is empty.
awaitable<void> Master::sweep_loop() {
  const auto pause = std::chrono::microseconds(kSweepSlice * 1000000 / std::max<int64_t>(1, config_.sweep_chunks_per_s));
  while (!stopping_) {
    // While the healer has work queued, the events are doing their job: a round now would
    // only queue the same chunks again.
    while (!heal_queue_.empty() && !stopping_) co_await sleep_for(std::chrono::seconds(1));
    const auto began = std::chrono::steady_clock::now();
    for (uint64_t next = 0; !stopping_;) {
      next = store_->for_each_chunk_from(next, kSweepSlice, [&](uint64_t id, const pb::ChunkRecord& rec) {
        std::vector<ChunkServer*> holders = registry_.holders(id);
        const size_t on_draining = std::count_if(holders.begin(), holders.end(), [](ChunkServer* h) { return h->draining; });
        const size_t valid = holders.size() - on_draining;
        const uint32_t goal = std::max<uint32_t>(1, rec.goal());
        if (!holders.empty() && (valid != goal || on_draining > 0)) heal_queue_.push(id, urgency_of(valid, goal));
        consider_compaction(id, rec);
      });
      if (!heal_queue_.empty()) wake_healer();
      if (next == 0) break;
      co_await sleep_for(pause);
    }
    ++sweeps_done_;
    if (!sweep_again_) {
      sweep_timer_.expires_at(began + std::chrono::milliseconds(config_.sweep_every_ms));
      error_code ec;
      co_await sweep_timer_.async_wait(asio::redirect_error(use_awaitable, ec));  // cut short by sweep_soon()
    }
    sweep_again_ = false;
  }
}

void Master::sweep_soon() {
  if (!lacked_servers_) return;
  lacked_servers_ = false;
  sweep_again_ = true;
  sweep_timer_.cancel();
}

// A chunkserver's link is gone: its copies stopped counting at once (a new incarnation
// replaces it when it comes back); here they leave the location table, slice by slice, and
// each chunk that had one is queued.
awaitable<void> Master::copies_lost(LocationTable::Holder incarnation) {
  LocationTable& table = registry_.locations();
  Slicer slicer;
  std::vector<uint64_t> affected;
  LocationTable::Sweep sweep = table.start_sweep();
  for (bool more = true; more;) {
    affected.clear();
    more = table.drop_holder(incarnation, sweep, kTableSlice, &affected);
    for (uint64_t id : affected)
      heal_queue_.push(id, registry_.holders(id).size() <= 1 ? HealQueue::kOneCopyLeft : HealQueue::kUnderGoal);
    if (!affected.empty()) wake_healer();
    if (more && slicer.due()) co_await slicer.yield();
  }
}

// Drain started or stopped: every chunk with a copy on the server is queued (and, while
// draining, counted as needing that copy until the healer has looked at it).
awaitable<void> Master::drain_scan(uint64_t cs_id) {
  LocationTable& table = registry_.locations();
  Slicer slicer;
  drain_scanning_.insert(cs_id);
  LocationTable::Sweep sweep = table.start_sweep();
  for (bool more = true; more;) {
    ChunkServer* cs = registry_.server(cs_id);
    if (!cs) break;
    const LocationTable::Holder mine = cs->incarnation;
    auto needs = drain_needs_.find(cs_id);
    more = table.scan(sweep, kTableSlice, [&](uint64_t id, const std::vector<LocationTable::Holder>& holders) {
      if (std::find(holders.begin(), holders.end(), mine) == holders.end()) return;
      if (needs != drain_needs_.end()) needs->second.insert(id);
      heal_queue_.push(id, needs != drain_needs_.end() ? HealQueue::kUnderGoal : HealQueue::kCheck);
    });
    wake_healer();
    if (more && slicer.due()) co_await slicer.yield();
  }
  drain_scanning_.erase(cs_id);
}

uint64_t Master::drain_left(const ChunkServer& cs) const {
  if (!cs.draining) return 0;
  if (drain_scanning_.count(cs.id)) return std::max<uint64_t>(cs.chunks, 1);  // not counted yet
  auto it = drain_needs_.find(cs.id);
  return it == drain_needs_.end() ? 0 : it->second.size();
}

// Truncates whose cut could not be made when they committed (no live copy then, or a
// master that died half-way): made as soon as the chunk's servers are back.
void Master::finish_pending_cuts() {
  for (uint64_t id : store_->chunks_with_pending_cut()) {
    if (cutting_.count(id) || registry_.holders(id).empty()) continue;
    auto rec = store_->get_chunk(id);
    if (!rec.ok() || !*rec) continue;
    // A cut is marked only on a file's own chunk: its one owner.
    std::vector<pb::ChunkOwner> owners = owners_of(**rec);
    if (owners.empty()) continue;
    cutting_.insert(id);
    asio::co_spawn(io_, finish_pending_cut(id, owners[0].inode(), owners[0].index()), asio::detached);
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
  healing_.erase(chunk_id);
  --copies_out_[source_id];
  --copies_in_[target_id];
  if (st.ok()) {
    queue_heal(chunk_id, HealQueue::kCheck);  // a goal of 3 may want one more
  } else {
    spdlog::warn("healing chunk {:016x}: {}", chunk_id, st.message());
    heal_retry_.push_back(chunk_id);
    wake_healer();  // the servers it used are free for others
  }
}

awaitable<Status> Master::copy_chunk(uint64_t chunk_id, uint64_t source_id, uint64_t target_id) {
  CO_ASSIGN_OR_RETURN(auto rec, store_->get_chunk(chunk_id));
  if (!rec) co_return Status::Ok();  // its file went meanwhile
  uint32_t version = 0;
  {
    // As a new writer would: the version moves on, so that a writer still on the old one
    // is refused by the chunkservers and asks the master again.
    auto guard = co_await chunk_locks_.lock(chunk_id, 0, kChunkSize);
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
