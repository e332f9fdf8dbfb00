// keelfs-bench's benchmarks of any mounted file system, through plain POSIX calls: keelfs,
// MooseFS, a local disk or tmpfs alike (docs/small-files.md shows figures).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace keelfs::bench {

struct SmallfilesArgs {
  std::string path;
  int files = 10000;
  std::vector<uint64_t> sizes = {4096};
  int dirs = 10;
  int threads = 1;
  bool json = false;
  // When PATH is on a keelfs mount: how to ask its master for the volume's physical bytes.
  std::string master = "127.0.0.1:9520";
  std::string secret_file;  // cluster secret or monitoring key (default: $KEELFS_HOME/cluster.secret)
};
// create (create, write, close), stat, read (content checked), rename, unlink of `files`
// files of each size, spread over `dirs` directories, on `threads` threads. 0 on success.
int run_smallfiles(const SmallfilesArgs& args);

struct ThroughputArgs {
  std::string path;
  uint64_t size_mib = 1024;
  int threads = 4;
  bool json = false;
};
// Sequential write (then fsync) and read of one file, then `threads` files written and
// read in parallel, in 1 MiB requests. 0 on success.
int run_throughput(const ThroughputArgs& args);

}  // namespace keelfs::bench
