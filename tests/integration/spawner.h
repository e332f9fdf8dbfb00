// Starts the tests' processes from a helper forked before any test runs.
//
// Why: a test thread may hold a file open on a FUSE mount when the test starts a process
// (a chunkserver or master restarted in the middle of a workload). Forked from the test,
// the child would inherit that file: kept open, the mount never sees its release (the
// file stays held at the master); closed at exec, the close sends FLUSH to a mount that
// may be waiting for the very master being started. The helper holds no such file.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace keelfs::test {

// Runs argv with stdout to `out` and stderr to `err` (appended), nothing else open, and
// SIGKILL when the test process dies. Returns its pid; aborts the test binary if the
// helper is gone.
pid_t spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err);
// waitpid() through the helper (which is the processes' parent): the pid when it exited
// (its status in *status), 0 with `no_hang` while it runs.
pid_t wait_spawned(pid_t pid, int* status, bool no_hang);

}  // namespace keelfs::test
