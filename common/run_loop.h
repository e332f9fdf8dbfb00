// Running a server's io_context: blocking in the reactor, or polling it for a moment after
// each piece of work first.
#pragma once

#include <chrono>

#include "common/asio.h"

namespace CLI {
class App;
}

namespace keelfs {

// Runs `io` until it is stopped. After work, it keeps polling (running what is ready,
// looking at the sockets without blocking, yielding the CPU in between) for `poll` before it
// blocks in the reactor again: a client working through files sends its next request a few
// µs after its answer, and a server still polling takes it without the kernel waking it,
// which costs 20–40 µs on the other CPU of a virtual machine. poll 0: block at once, as
// io.run() does. The cost is up to `poll` of one CPU after each piece of work.
void run_io(asio::io_context& io, std::chrono::microseconds poll);

// The servers' --poll-us flag (50 by default) for run_io.
void add_poll_option(CLI::App& app, int* poll_us);

}  // namespace keelfs
