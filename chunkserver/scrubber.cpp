#include "chunkserver/scrubber.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "chunkserver/store_set.h"
#include "common/async.h"

namespace keelfs {
namespace {
constexpr uint64_t kPiece = 1 << 20;
// Opening and reading a small chunk costs the disk about as much as reading this many
// bytes: the rate charges every piece at least this much, so that a disk of many small
// chunks is not scrubbed a thousand files a second.
constexpr uint64_t kMinCharge = 256 << 10;
}  // namespace

Scrubber::Scrubber(asio::any_io_executor ex, StoreSet& stores, asio::thread_pool& disk_pool, uint64_t bytes_per_sec,
                   std::chrono::seconds pass_every, DamagedFn damaged)
    : ex_(ex),
      stores_(stores),
      pool_(disk_pool),
      rate_(bytes_per_sec),
      pass_every_(pass_every),
      damaged_(std::move(damaged)) {}

void Scrubber::start() {
  if (rate_ == 0) return;
  asio::co_spawn(ex_, run(), asio::detached);
}

awaitable<void> Scrubber::run() {
  while (!stopped_) {
    auto pass_start = std::chrono::steady_clock::now();
    std::vector<ChunkMeta> chunks = co_await run_in_pool(pool_, [this] { return stores_.list(); });
    uint64_t damaged = 0;
    for (const ChunkMeta& c : chunks) {
      if (stopped_) co_return;
      if (!co_await scrub_chunk(c.id, c.version)) ++damaged;
    }
    if (damaged > 0) spdlog::warn("scrub pass: {} of {} chunks damaged", damaged, chunks.size());
    auto next = pass_start + pass_every_;
    if (std::chrono::steady_clock::now() < next) co_await sleep_for(next - std::chrono::steady_clock::now());
  }
}

awaitable<bool> Scrubber::scrub_chunk(uint64_t chunk_id, uint32_t version) {
  for (uint64_t offset = 0;;) {
    auto started = std::chrono::steady_clock::now();
    uint64_t length = 0;
    Result<std::string> data = co_await run_in_pool(pool_, [this, chunk_id, version, offset, &length] {
      return stores_.read(chunk_id, version, offset, kPiece, &length);
    });
    if (!data.ok()) {
      if (data.status().is(Code::kCorruption)) {
        spdlog::warn("scrub: chunk {:016x} v{} is damaged: {}", chunk_id, version, data.status().message());
        damaged_(chunk_id, version, data.status().message());
        co_return false;
      }
      co_return true;  // deleted or moved to a new version meanwhile: nothing to check
    }
    // Pace: this piece may take at most its share of a second at the rate.
    auto share = std::chrono::nanoseconds(std::max<uint64_t>(data->size(), kMinCharge) * 1000000000ull / rate_);
    auto spent = std::chrono::steady_clock::now() - started;
    if (spent < share) co_await sleep_for(share - spent);
    offset += data->size();
    if (data->size() < kPiece || offset >= length) co_return true;
  }
}

}  // namespace keelfs
