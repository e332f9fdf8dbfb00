#include "bench/report.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace keelfs::bench {

double PhaseResult::percentile(double p) const {
  if (latency_us.empty()) return 0;
  return latency_us[std::min(latency_us.size() - 1, static_cast<size_t>(p * static_cast<double>(latency_us.size())))];
}

PhaseResult run_phase(const std::string& name, int n, int threads, const std::function<int(int)>& fn, int* error,
                      int* failed_at) {
  std::atomic<int> next{0}, done{0};
  std::atomic<int> first_error{0};
  std::atomic<int> error_index{-1};
  std::mutex mu;
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(n));
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t)
    pool.emplace_back([&] {
      std::vector<double> mine;
      for (int i; first_error == 0 && (i = next++) < n;) {
        const auto t = Clock::now();
        int err = fn(i);
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
        ++done;
        if (err != 0) {
          int expected = 0;
          if (first_error.compare_exchange_strong(expected, err)) error_index = i;
        }
      }
      std::lock_guard lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  // The progress line: on a terminal only, so that logs and pipes stay clean.
  const bool tty = isatty(STDERR_FILENO);
  std::atomic<bool> finished{false};
  std::thread progress([&] {
    for (int tick = 1; !finished; ++tick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // short: the phase waits for it at its end
      if (!tty || finished || tick % 25 != 0) continue;
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(stderr, "\r  %-24s %9d / %d  %8.0f/s  %6.1f s ", name.c_str(), done.load(), n, done / std::max(s, 1e-9),
                   s);
      std::fflush(stderr);
    }
  });
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  finished = true;
  progress.join();
  if (tty) std::fprintf(stderr, "\r%*s\r", 72, "");
  PhaseResult r;
  r.name = name;
  r.unit = "ops/s";
  r.ops = static_cast<uint64_t>(done.load());
  r.seconds = seconds;
  r.rate = static_cast<double>(r.ops) / std::max(r.seconds, 1e-9);
  std::sort(latencies.begin(), latencies.end());
  r.latency_us = std::move(latencies);
  *error = first_error;
  *failed_at = error_index;
  return r;
}

void print_table(const std::vector<PhaseResult>& results) {
  std::printf("%-26s %10s %9s %10s %10s %10s %10s %10s\n", "phase", "ops", "seconds", "rate", "p50 us", "p90 us",
              "p99 us", "max us");
  for (const PhaseResult& r : results) {
    std::string rate = fmt::format("{:.0f} {}", r.rate, r.unit);
    if (r.latency_us.empty())
      std::printf("%-26s %10llu %9.2f %10s\n", r.name.c_str(), static_cast<unsigned long long>(r.ops), r.seconds,
                  rate.c_str());
    else
      std::printf("%-26s %10llu %9.2f %10s %10.0f %10.0f %10.0f %10.0f\n", r.name.c_str(),
                  static_cast<unsigned long long>(r.ops), r.seconds, rate.c_str(), r.percentile(0.5), r.percentile(0.9),
                  r.percentile(0.99), r.latency_us.back());
    for (const auto& [key, value] : r.extra) std::printf("  %-24s %.0f\n", key.c_str(), value);
  }
}

void print_json(const std::vector<PhaseResult>& results, const std::map<std::string, std::string>& about) {
  nlohmann::json phases = nlohmann::json::array();
  for (const PhaseResult& r : results) {
    nlohmann::json p{{"phase", r.name}, {"ops", r.ops}, {"seconds", r.seconds}, {"rate", r.rate}, {"unit", r.unit}};
    if (!r.latency_us.empty())
      p["latency_us"] = {{"p50", r.percentile(0.5)},
                         {"p90", r.percentile(0.9)},
                         {"p99", r.percentile(0.99)},
                         {"max", r.latency_us.back()}};
    for (const auto& [key, value] : r.extra) p[key] = value;
    phases.push_back(std::move(p));
  }
  nlohmann::json out = about;
  out["phases"] = std::move(phases);
  std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace keelfs::bench
