#include "common/run_loop.h"

#include <sched.h>

#include <CLI/CLI.hpp>

namespace keelfs {

void run_io(asio::io_context& io, std::chrono::microseconds poll) {
  if (poll.count() <= 0) {
    io.run();
    return;
  }
  auto worked = std::chrono::steady_clock::now();
  while (!io.stopped()) {
    if (io.poll() > 0) {
      worked = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - worked < poll) {
      sched_yield();  // whatever else this CPU has to run goes first
    } else {
      io.run_one();  // blocks until something happens
      worked = std::chrono::steady_clock::now();
    }
  }
}

void add_poll_option(CLI::App& app, int* poll_us) {
  *poll_us = 50;
  app.add_option("--poll-us", *poll_us,
                 "after each request, keep polling the sockets this long before sleeping (0 = never): a "
                 "client's next request is taken without a wake-up")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

}  // namespace keelfs
