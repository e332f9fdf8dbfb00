// Disk: every system call the chunk store makes on the chunk files of a data directory,
// behind one small interface, so that tests can make any of them fail the way a failing
// disk does (docs/decisions.md, "A disk layer that tests can break").
//
// The real disk calls the kernel. A FaultyDisk fails the calls its rules pick, with an
// errno (EIO, ENOSPC, …) or, for pread and pwrite, by moving only half the bytes (a
// short transfer, which the callers must continue). `keelfs-chunkserver --disk-fault RULE`
// puts one in front of every data directory of a real chunkserver.
//
// The chunk index (RocksDB) does its own I/O and is not behind this interface.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace keelfs {

enum class DiskOp { kOpen, kPread, kPwrite, kFdatasync, kFsync, kFtruncate, kRename, kUnlink };

// The calls return what the system calls return (-1 with errno set on failure).
class Disk {
 public:
  virtual ~Disk() = default;
  virtual int open(const char* path, int flags, mode_t mode);
  virtual ssize_t pread(int fd, void* buf, size_t n, off_t offset);
  virtual ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset);
  virtual int fdatasync(int fd);
  virtual int fsync(int fd);
  virtual int ftruncate(int fd, off_t length);
  virtual int rename(const char* from, const char* to);
  virtual int unlink(const char* path);
};

// The kernel, for every store that is given no other disk.
Disk& real_disk();

// One rule of a FaultyDisk: the calls of `op` after the first `skip` fail, `count` of
// them (0: every one from then on).
struct DiskFault {
  DiskOp op = DiskOp::kPwrite;
  int err = 5;  // EIO; 0 = a short transfer (pread, pwrite)
  uint64_t skip = 0;
  uint64_t count = 1;
};
// "OP:ERROR[:skip=N][:count=N]": OP is open, pread, pwrite, fdatasync, fsync, ftruncate,
// rename or unlink; ERROR is EIO, ENOSPC, EROFS, EDQUOT or `short`. Example:
// "pwrite:ENOSPC:skip=20:count=0" (the disk fills up after 20 writes).
Result<DiskFault> parse_disk_fault(const std::string& rule);

class FaultyDisk : public Disk {
 public:
  explicit FaultyDisk(std::vector<DiskFault> faults);
  int open(const char* path, int flags, mode_t mode) override;
  ssize_t pread(int fd, void* buf, size_t n, off_t offset) override;
  ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) override;
  int fdatasync(int fd) override;
  int fsync(int fd) override;
  int ftruncate(int fd, off_t length) override;
  int rename(const char* from, const char* to) override;
  int unlink(const char* path) override;

  // Calls failed (or shortened) so far.
  uint64_t injected() const { return injected_.load(); }

 private:
  // The errno this call fails with (0: shorten it), or nothing: let it through.
  std::optional<int> fault_for(DiskOp op);
  // For calls that cannot be short: true (errno set) when this one fails.
  bool fails(DiskOp op);

  std::mutex mu_;
  struct Rule {
    DiskFault fault;
    uint64_t seen = 0;  // matching calls so far
  };
  std::vector<Rule> rules_;
  std::atomic<uint64_t> injected_{0};
};

}  // namespace keelfs
