#include "chunkserver/disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <fmt/format.h>

namespace keelfs {

int Disk::open(const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); }
ssize_t Disk::pread(int fd, void* buf, size_t n, off_t offset) { return ::pread(fd, buf, n, offset); }
ssize_t Disk::pwrite(int fd, const void* buf, size_t n, off_t offset) { return ::pwrite(fd, buf, n, offset); }
int Disk::fdatasync(int fd) { return ::fdatasync(fd); }
int Disk::fsync(int fd) { return ::fsync(fd); }
int Disk::ftruncate(int fd, off_t length) { return ::ftruncate(fd, length); }
int Disk::rename(const char* from, const char* to) { return ::rename(from, to); }
int Disk::unlink(const char* path) { return ::unlink(path); }

Disk& real_disk() {
  static Disk disk;
  return disk;
}

namespace {

struct OpName {
  const char* name;
  DiskOp op;
};
constexpr OpName kOps[] = {{"open", DiskOp::kOpen},           {"pread", DiskOp::kPread},
                           {"pwrite", DiskOp::kPwrite},       {"fdatasync", DiskOp::kFdatasync},
                           {"fsync", DiskOp::kFsync},         {"ftruncate", DiskOp::kFtruncate},
                           {"rename", DiskOp::kRename},       {"unlink", DiskOp::kUnlink}};

struct ErrName {
  const char* name;
  int err;
};
constexpr ErrName kErrors[] = {{"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EROFS", EROFS}, {"EDQUOT", EDQUOT}, {"short", 0}};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

Result<DiskFault> parse_disk_fault(const std::string& rule) {
  auto bad = [&](const std::string& why) {
    return error(Code::kInvalidArgument,
                 fmt::format("disk fault '{}': {} (expected OP:ERROR[:skip=N][:count=N], e.g. pwrite:ENOSPC:skip=20)",
                             rule, why));
  };
  std::vector<std::string> parts = split(rule, ':');
  if (parts.size() < 2) return bad("too few fields");
  DiskFault f;
  bool op_known = false, err_known = false;
  for (const OpName& o : kOps)
    if (parts[0] == o.name) f.op = o.op, op_known = true;
  if (!op_known) return bad(fmt::format("unknown call '{}'", parts[0]));
  for (const ErrName& e : kErrors)
    if (parts[1] == e.name) f.err = e.err, err_known = true;
  if (!err_known) return bad(fmt::format("unknown error '{}'", parts[1]));
  if (f.err == 0 && f.op != DiskOp::kPread && f.op != DiskOp::kPwrite) return bad("only pread and pwrite can be short");
  for (size_t i = 2; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.rfind("skip=", 0) == 0 && parse_u64(p.substr(5), &f.skip)) continue;
    if (p.rfind("count=", 0) == 0 && parse_u64(p.substr(6), &f.count)) continue;
    return bad(fmt::format("unknown option '{}'", p));
  }
  return f;
}

FaultyDisk::FaultyDisk(std::vector<DiskFault> faults) {
  for (const DiskFault& f : faults) rules_.push_back(Rule{f, 0});
}

std::optional<int> FaultyDisk::fault_for(DiskOp op) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Rule& r : rules_) {
    if (r.fault.op != op) continue;
    uint64_t n = r.seen++;
    if (n < r.fault.skip) continue;
    if (r.fault.count != 0 && n >= r.fault.skip + r.fault.count) continue;
    ++injected_;
    return r.fault.err;
  }
  return std::nullopt;
}

bool FaultyDisk::fails(DiskOp op) {
  std::optional<int> err = fault_for(op);
  if (!err || *err == 0) return false;
  errno = *err;
  return true;
}

int FaultyDisk::open(const char* path, int flags, mode_t mode) {
  return fails(DiskOp::kOpen) ? -1 : Disk::open(path, flags, mode);
}

ssize_t FaultyDisk::pread(int fd, void* buf, size_t n, off_t offset) {
  if (auto err = fault_for(DiskOp::kPread)) {
    if (*err != 0) {
      errno = *err;
      return -1;
    }
    return Disk::pread(fd, buf, n > 1 ? n / 2 : n, offset);
  }
  return Disk::pread(fd, buf, n, offset);
}

ssize_t FaultyDisk::pwrite(int fd, const void* buf, size_t n, off_t offset) {
  if (auto err = fault_for(DiskOp::kPwrite)) {
    if (*err != 0) {
      errno = *err;
      return -1;
    }
    return Disk::pwrite(fd, buf, n > 1 ? n / 2 : n, offset);
  }
  return Disk::pwrite(fd, buf, n, offset);
}

int FaultyDisk::fdatasync(int fd) {
  return fails(DiskOp::kFdatasync) ? -1 : Disk::fdatasync(fd);
}

int FaultyDisk::fsync(int fd) {
  return fails(DiskOp::kFsync) ? -1 : Disk::fsync(fd);
}

int FaultyDisk::ftruncate(int fd, off_t length) {
  return fails(DiskOp::kFtruncate) ? -1 : Disk::ftruncate(fd, length);
}

int FaultyDisk::rename(const char* from, const char* to) {
  return fails(DiskOp::kRename) ? -1 : Disk::rename(from, to);
}

int FaultyDisk::unlink(const char* path) {
  return fails(DiskOp::kUnlink) ? -1 : Disk::unlink(path);
}

}  // namespace keelfs
