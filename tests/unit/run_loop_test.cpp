// common/run_loop: a server's io_context, blocking or polling for a moment after work.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "common/run_loop.h"

using namespace keelfs;
using namespace std::chrono_literals;

namespace {

// Runs the same work under run_io(poll): handlers posted at once, one posted from another
// thread after the poll window has long passed (the loop must be blocked then, and wake
// up), a timer; run_io returns once the io_context is stopped.
void runs_everything_and_stops(std::chrono::microseconds poll) {
  asio::io_context io(1);
  int ran = 0;
  for (int i = 0; i < 100; ++i) asio::post(io, [&] { ++ran; });
  asio::steady_timer timer(io);
  bool fired = false;
  timer.expires_after(20ms);
  timer.async_wait([&](const error_code& ec) { fired = !ec; });
  auto guard = asio::make_work_guard(io);
  std::atomic<bool> late_ran{false};
  std::thread other([&] {
    std::this_thread::sleep_for(50ms);
    asio::post(io, [&] {
      late_ran = true;
      io.stop();
    });
  });
  auto start = std::chrono::steady_clock::now();
  run_io(io, poll);
  other.join();
  REQUIRE(ran == 100);
  REQUIRE(fired);
  REQUIRE(late_ran);
  REQUIRE(io.stopped());
  REQUIRE(std::chrono::steady_clock::now() - start >= 50ms);
}

}  // namespace

TEST_CASE("run_io runs posted work, timers and work from other threads until stopped, polling or not", "[common]") {
  SECTION("blocking at once") { runs_everything_and_stops(0us); }
  SECTION("polling 50 us after work") { runs_everything_and_stops(50us); }
  SECTION("polling longer than the whole run") { runs_everything_and_stops(1s); }
}
