// Scrubber: reads every chunk of this chunkserver in the background, at a bounded rate,
// checking every block's CRC; a copy that fails is reported (MasterLink::report_damaged)
// so that the master deletes it and has it made again from a good copy.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/asio.h"

namespace keelfs {

class StoreSet;

class Scrubber {
 public:
  using DamagedFn = std::function<void(uint64_t chunk_id, uint32_t version, const std::string& reason)>;
  // bytes_per_sec 0 = off; a pass over all chunks starts at most every `pass_every`.
  // REQUIRES: stores and disk_pool outlive the scrubber.
  Scrubber(asio::any_io_executor ex, StoreSet& stores, asio::thread_pool& disk_pool, uint64_t bytes_per_sec,
           std::chrono::seconds pass_every, DamagedFn damaged);
  void start();
  void stop() { stopped_ = true; }

 private:
  awaitable<void> run();
  // Reads one chunk through; false when it was damaged.
  awaitable<bool> scrub_chunk(uint64_t chunk_id, uint32_t version);

  asio::any_io_executor ex_;
  StoreSet& stores_;
  asio::thread_pool& pool_;
  uint64_t rate_;
  std::chrono::seconds pass_every_;
  DamagedFn damaged_;
  bool stopped_ = false;
};

}  // namespace keelfs
