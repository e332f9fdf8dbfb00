// Compaction of pack chunks (docs/small-files.md). A sealed pack whose live bytes fell below
// --compact-below of its length has its files' bytes copied into a new pack, and each file
// is moved there if its bytes are still where they were copied from; the old pack is freed
// with its last file. One pack at a time, at most --compact-bytes-per-s, reading and
// writing the chunkservers as a client would; the commits go in slices.
//
// Readers never see an error or a wrong byte: a file's extent switches in the same commit
// that makes the copy its data, and a reader still holding the old pack's locations finds
// its copies gone only after that commit, and locates the file again (a retry it makes for
// any vanished copy).
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/chunk_io.h"
#include "common/ticket.h"
#include "master/chunks/owners.h"
#include "master/master.h"

namespace keelfs::master {
namespace {

constexpr size_t kReadSpan = 1 << 20;     // bytes of the old pack read at once
constexpr size_t kMovesPerCommit = 1024;  // files moved in one commit
constexpr size_t kFilesPerPage = 1024;    // files listed at once

}  // namespace

void Master::consider_compaction(uint64_t chunk_id, const pb::ChunkRecord& rec) {
  if (!rec.pack() || rec.open_session() != 0 || rec.length() == 0 || config_.compact_below <= 0) return;
  if (static_cast<double>(rec.live_bytes()) >= config_.compact_below * static_cast<double>(rec.length())) return;
  compact_queue_.insert(chunk_id);
}

awaitable<void> Master::compact_loop() {
  while (!stopping_) {
    if (compact_queue_.empty()) {
      co_await sleep_for(std::chrono::seconds(1));
      continue;
    }
    const uint64_t id = *compact_queue_.begin();
    compact_queue_.erase(compact_queue_.begin());
    if (Status st = co_await compact_pack(id); !st.ok())
      spdlog::warn("compaction of pack {:016x}: {} (tried again at the next sweep)", id, st.message());
  }
}

awaitable<Status> Master::compact_pack(uint64_t pack_id) {
  CO_ASSIGN_OR_RETURN(auto rec, store_->get_chunk(pack_id));
  if (!rec || !rec->pack() || rec->open_session() != 0 || rec->live_extents() == 0) co_return Status::Ok();
  // Its files, by where their bytes are.
  std::vector<PackedFile> files;
  Slicer slicer;
  for (bool more = true; more;) {
    const uint64_t after = files.empty() ? 0 : files.back().inode;
    CO_ASSIGN_OR_RETURN(auto page, ns_->pack_files(pack_id, after, kFilesPerPage, &more));
    if (page.empty()) break;
    files.insert(files.end(), page.begin(), page.end());
    if (slicer.due()) co_await slicer.yield();
  }
  if (files.empty()) co_return Status::Ok();
  std::sort(files.begin(), files.end(), [](const PackedFile& a, const PackedFile& b) { return a.offset < b.offset; });

  CO_ASSIGN_OR_RETURN(pb::VolumeRecord vol, ns_->volume_by_id(rec->volume_id()));
  CO_ASSIGN_OR_RETURN(NewChunk made, co_await chunk_for(vol, rec->goal()));
  if (Status st = ns_->add_pack(made.chunk_id, vol.id(), rec->goal(), kCompactorSession); !st.ok()) {
    drop_copies(made);
    co_return st;
  }
  pb::ChunkInfo target;
  hand_out(made, &target, /*session=*/0);
  pb::ChunkInfo source;
  source.set_chunk_id(pack_id);
  source.set_version(rec->version());
  fill_replicas(&source, kRightRead, /*session=*/0);

  // Copies the files in offset order into the new pack, reading the old one a span at a
  // time, and moves them a slice at a time.
  std::vector<PackMove> moves;
  std::vector<FreedChunk> freed;
  uint64_t written = 0;
  Status result;
  for (size_t i = 0; i < files.size() && result.ok();) {
    const uint64_t span_begin = files[i].offset;
    size_t j = i;
    while (j < files.size() && files[j].offset + files[j].length - span_begin <= kReadSpan) ++j;
    if (j == i) ++j;  // one file longer than a span
    const uint64_t span_end = files[j - 1].offset + files[j - 1].length;
    auto span = co_await read_from_copies(*data_conns_, source, span_begin, span_end - span_begin);
    if (!span.ok()) {
      result = span.status();
      break;
    }
    span->resize(span_end - span_begin, '\0');  // past a copy's end: zeros, as for any reader
    std::string run;
    for (size_t k = i; k < j; ++k) {
      moves.push_back({files[k].inode, files[k].offset, written + run.size(), files[k].length});
      run.append(*span, files[k].offset - span_begin, files[k].length);
    }
    const size_t run_size = run.size();
    result = co_await write_down_chain(*data_conns_, target, written, std::move(run));
    written += run_size;
    i = j;
    co_await sleep_for(std::chrono::nanoseconds(run_size * 1000000000ull / config_.compact_bytes_per_s));
  }
  if (result.ok()) result = co_await sync_down_chain(*data_conns_, target);
  for (size_t m = 0; result.ok() && m < moves.size(); m += kMovesPerCommit) {
    std::vector<PackMove> slice(moves.begin() + m, moves.begin() + std::min(moves.size(), m + kMovesPerCommit));
    result = ns_->move_packed(pack_id, made.chunk_id, slice, &freed);
    delete_chunks(freed);
    freed.clear();
    if (slicer.due()) co_await slicer.yield();
  }
  // The new pack takes no more files; if none moved (a failure), it goes.
  writing_.erase(made.chunk_id);
  if (Status st = ns_->seal_pack(made.chunk_id, &freed); !st.ok() && result.ok()) result = st;
  delete_chunks(freed);
  if (result.ok()) {
    ++packs_compacted_;
    spdlog::info("pack {:016x} compacted into {:016x}: {} files, {} live of {} bytes", pack_id, made.chunk_id,
                 files.size(), written, rec->length());
  }
  co_return result;
}

}  // namespace keelfs::master
