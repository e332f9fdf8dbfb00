// What keelfs-bench's POSIX benchmarks measure and how they print it: per phase, the
// operations done, their rate and latency percentiles; a table for people, JSON for
// scripts; a progress line on stderr while a phase runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace keelfs::bench {

using Clock = std::chrono::steady_clock;

struct PhaseResult {
  std::string name;   // e.g. "create 1024 B"
  std::string unit;   // "files/s", "MB/s"
  uint64_t ops = 0;
  double seconds = 0;
  double rate = 0;    // ops (or MB) per second
  std::vector<double> latency_us;  // sorted; empty when not measured per operation
  std::map<std::string, double> extra;  // e.g. physical bytes per file
  double percentile(double p) const;
};

// Runs fn(i) for i in [0, n) on `threads` threads, timing each call, with a progress line
// on stderr. fn returns 0 or an errno; the first error stops the phase and is returned
// in *error with the index it happened at.
PhaseResult run_phase(const std::string& name, int n, int threads, const std::function<int(int)>& fn, int* error,
                      int* failed_at);

// The results as a table (stdout), or as one JSON document.
void print_table(const std::vector<PhaseResult>& results);
void print_json(const std::vector<PhaseResult>& results, const std::map<std::string, std::string>& about);

}  // namespace keelfs::bench
