// keelfs-test-powercut-fs BACKING MOUNTPOINT ACK_FILE [fuse options]: a pass-through file
// system for the crash tests that keeps every written byte in memory until the file is
// fsynced, and drops every byte not yet fsynced when it receives SIGUSR1: a power cut under
// whatever runs on it. After each cut it writes the number of cuts so far to ACK_FILE.
// SIGUSR2 makes every fsync until the next cut answer at once without making anything
// durable (it writes "held" to ACK_FILE): the cut that follows comes before any sync
// could have finished, which lets a test put a cut exactly between an answer and its sync.
//
// What it models, and what not (docs/security.md, "Crash testing"):
// - data written and not fsynced (fsync or fdatasync of that file) is lost at a cut;
// - names (create, rename, unlink, mkdir) reach the backing directory at once: a cut never
//   undoes them, which is kinder than some disks;
// - a truncate first writes the file's unsynced bytes through, then cuts: it is as
//   durable as an fsync of the file.
// Mounted with direct_io and no attribute caching, so the kernel keeps no copy of its own.
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::string g_backing;
std::string g_ack_file;

// A file's bytes written and not yet fsynced: non-overlapping extents by offset.
struct Unsynced {
  std::map<uint64_t, std::string> extents;
  uint64_t end() const { return extents.empty() ? 0 : extents.rbegin()->first + extents.rbegin()->second.size(); }

  void put(uint64_t off, const char* data, size_t n) {
    const uint64_t end = off + n;
    // Cut what the new extent covers out of the old ones.
    auto it = extents.lower_bound(off);
    if (it != extents.begin()) {
      auto prev = std::prev(it);
      const uint64_t prev_end = prev->first + prev->second.size();
      if (prev_end > off) {
        if (prev_end > end) extents[end] = prev->second.substr(end - prev->first);
        prev->second.resize(off - prev->first);
      }
    }
    while (it != extents.end() && it->first < end) {
      const uint64_t e = it->first + it->second.size();
      if (e > end) extents[end] = it->second.substr(end - it->first);
      it = extents.erase(it);
    }
    extents[off] = std::string(data, n);
  }
};

std::mutex g_mu;
std::unordered_map<ino_t, Unsynced> g_unsynced;  // by the backing file's inode
bool g_syncs_held = false;                       // SIGUSR2 until the next cut

std::string backing(const char* path) { return g_backing + path; }

ino_t ino_of(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// Writes the file's unsynced bytes through to the backing file. REQUIRES: g_mu held.
int write_through(int fd) {
  auto it = g_unsynced.find(ino_of(fd));
  if (it == g_unsynced.end()) return 0;
  for (auto& [off, bytes] : it->second.extents) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w = pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(off + done));
      if (w < 0) return -errno;
      done += static_cast<size_t>(w);
    }
  }
  g_unsynced.erase(it);
  return 0;
}

int fs_getattr(const char* path, struct stat* st, fuse_file_info*) {
  if (lstat(backing(path).c_str(), st) != 0) return -errno;
  if (S_ISREG(st->st_mode)) {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_unsynced.find(st->st_ino);
    if (it != g_unsynced.end()) st->st_size = std::max<off_t>(st->st_size, static_cast<off_t>(it->second.end()));
  }
  return 0;
}

int fs_open_common(const char* path, fuse_file_info* fi, bool create, mode_t mode) {
  // Always read-write and never O_APPEND underneath: unsynced bytes are written through
  // with pwrite at fsync, and reads merge the backing file with them.
  int flags = (fi->flags & ~(O_ACCMODE | O_APPEND)) | O_RDWR;
  int fd = create ? open(backing(path).c_str(), flags | O_CREAT, mode) : open(backing(path).c_str(), flags);
  if (fd < 0) return -errno;
  if (fi->flags & O_TRUNC) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_unsynced.erase(ino_of(fd));
  }
  fi->fh = static_cast<uint64_t>(fd);
  fi->direct_io = 1;
  return 0;
}

int fs_open(const char* path, fuse_file_info* fi) { return fs_open_common(path, fi, false, 0); }
int fs_create(const char* path, mode_t mode, fuse_file_info* fi) { return fs_open_common(path, fi, true, mode); }

int fs_read(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  const int fd = static_cast<int>(fi->fh);
  std::lock_guard<std::mutex> lock(g_mu);
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  auto it = g_unsynced.find(st.st_ino);
  uint64_t size_now = static_cast<uint64_t>(st.st_size);
  if (it != g_unsynced.end()) size_now = std::max<uint64_t>(size_now, it->second.end());
  if (static_cast<uint64_t>(off) >= size_now) return 0;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, size_now - static_cast<uint64_t>(off)));
  std::memset(buf, 0, n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, buf + got, n - got, off + static_cast<off_t>(got));
    if (r < 0) return -errno;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  if (it != g_unsynced.end()) {
    const uint64_t begin = static_cast<uint64_t>(off), end = begin + n;
    for (auto& [eoff, bytes] : it->second.extents) {
      const uint64_t eend = eoff + bytes.size();
      if (eend <= begin || eoff >= end) continue;
      const uint64_t from = std::max(begin, eoff), to = std::min(end, eend);
      std::memcpy(buf + (from - begin), bytes.data() + (from - eoff), to - from);
    }
  }
  return static_cast<int>(n);
}

int fs_write(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_unsynced[ino_of(static_cast<int>(fi->fh))].put(static_cast<uint64_t>(off), buf, size);
  return static_cast<int>(size);
}

int fs_fsync(const char*, int datasync, fuse_file_info* fi) {
  const int fd = static_cast<int>(fi->fh);
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_syncs_held) return 0;
  if (int rc = write_through(fd); rc != 0) return rc;
  return (datasync ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : -errno;
}

int fs_truncate(const char* path, off_t size, fuse_file_info* fi) {
  int fd = fi ? static_cast<int>(fi->fh) : open(backing(path).c_str(), O_RDWR);
  if (fd < 0) return -errno;
  int rc = 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    rc = write_through(fd);
  }
  if (rc == 0 && ftruncate(fd, size) != 0) rc = -errno;
  if (!fi) close(fd);
  return rc;
}

int fs_release(const char*, fuse_file_info* fi) {
  close(static_cast<int>(fi->fh));  // unsynced bytes stay, as in a page cache
  return 0;
}

int fs_unlink(const char* path) {
  struct stat st;
  if (lstat(backing(path).c_str(), &st) != 0) return -errno;
  if (unlink(backing(path).c_str()) != 0) return -errno;
  if (st.st_nlink <= 1) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_unsynced.erase(st.st_ino);
  }
  return 0;
}

int fs_rename(const char* from, const char* to, unsigned int flags) {
  if (flags != 0) return -EINVAL;
  struct stat replaced;
  const bool replacing = lstat(backing(to).c_str(), &replaced) == 0 && S_ISREG(replaced.st_mode);
  if (rename(backing(from).c_str(), backing(to).c_str()) != 0) return -errno;
  if (replacing && replaced.st_nlink <= 1) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_unsynced.erase(replaced.st_ino);
  }
  return 0;
}

int fs_mkdir(const char* path, mode_t mode) { return mkdir(backing(path).c_str(), mode) == 0 ? 0 : -errno; }
int fs_rmdir(const char* path) { return rmdir(backing(path).c_str()) == 0 ? 0 : -errno; }
int fs_link(const char* from, const char* to) { return link(backing(from).c_str(), backing(to).c_str()) == 0 ? 0 : -errno; }
int fs_symlink(const char* target, const char* path) { return symlink(target, backing(path).c_str()) == 0 ? 0 : -errno; }
int fs_readlink(const char* path, char* buf, size_t size) {
  ssize_t n = readlink(backing(path).c_str(), buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = '\0';
  return 0;
}
int fs_chmod(const char* path, mode_t mode, fuse_file_info*) { return chmod(backing(path).c_str(), mode) == 0 ? 0 : -errno; }
int fs_chown(const char* path, uid_t uid, gid_t gid, fuse_file_info*) {
  return lchown(backing(path).c_str(), uid, gid) == 0 ? 0 : -errno;
}
int fs_utimens(const char* path, const struct timespec tv[2], fuse_file_info*) {
  return utimensat(AT_FDCWD, backing(path).c_str(), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}
int fs_statfs(const char* path, struct statvfs* st) { return statvfs(backing(path).c_str(), st) == 0 ? 0 : -errno; }
int fs_access(const char* path, int mask) { return access(backing(path).c_str(), mask) == 0 ? 0 : -errno; }
int fs_fallocate(const char*, int, off_t, off_t, fuse_file_info*) { return -EOPNOTSUPP; }

int fs_opendir(const char* path, fuse_file_info* fi) {
  DIR* d = opendir(backing(path).c_str());
  if (!d) return -errno;
  fi->fh = reinterpret_cast<uint64_t>(d);
  return 0;
}
int fs_readdir(const char*, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info* fi, fuse_readdir_flags) {
  DIR* d = reinterpret_cast<DIR*>(fi->fh);
  rewinddir(d);
  while (dirent* e = readdir(d)) fill(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  return 0;
}
int fs_releasedir(const char*, fuse_file_info* fi) {
  closedir(reinterpret_cast<DIR*>(fi->fh));
  return 0;
}
int fs_fsyncdir(const char* path, int, fuse_file_info*) {
  int fd = open(backing(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

void* fs_init(fuse_conn_info*, fuse_config* cfg) {
  cfg->use_ino = 1;
  cfg->direct_io = 1;
  cfg->attr_timeout = 0;
  cfg->entry_timeout = 0;
  cfg->negative_timeout = 0;
  return nullptr;
}

// The power cuts (SIGUSR1) and held syncs (SIGUSR2): blocked in every thread, taken here.
void signal_loop(sigset_t set) {
  for (unsigned cuts = 0;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    if (sig == SIGUSR2) {
      {
        std::lock_guard<std::mutex> lock(g_mu);
        g_syncs_held = true;
      }
      fprintf(stderr, "syncs held until the next power cut\n");
      std::ofstream(g_ack_file) << "held\n";
      continue;
    }
    size_t files = 0, bytes = 0;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      for (auto& [ino, u] : g_unsynced) {
        ++files;
        for (auto& [off, b] : u.extents) bytes += b.size();
      }
      g_unsynced.clear();
      g_syncs_held = false;
    }
    ++cuts;
    fprintf(stderr, "power cut %u: dropped %zu unsynced bytes of %zu files\n", cuts, bytes, files);
    std::ofstream(g_ack_file) << cuts << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s BACKING MOUNTPOINT ACK_FILE [fuse options]\n", argv[0]);
    return 2;
  }
  char resolved[PATH_MAX];
  if (!realpath(argv[1], resolved)) {
    perror(argv[1]);
    return 1;
  }
  g_backing = resolved;
  g_ack_file = argv[3];
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(signal_loop, set).detach();

  fuse_operations ops{};
  ops.getattr = fs_getattr;
  ops.open = fs_open;
  ops.create = fs_create;
  ops.read = fs_read;
  ops.write = fs_write;
  ops.fsync = fs_fsync;
  ops.truncate = fs_truncate;
  ops.release = fs_release;
  ops.unlink = fs_unlink;
  ops.rename = fs_rename;
  ops.mkdir = fs_mkdir;
  ops.rmdir = fs_rmdir;
  ops.link = fs_link;
  ops.symlink = fs_symlink;
  ops.readlink = fs_readlink;
  ops.chmod = fs_chmod;
  ops.chown = fs_chown;
  ops.utimens = fs_utimens;
  ops.statfs = fs_statfs;
  ops.access = fs_access;
  ops.fallocate = fs_fallocate;
  ops.opendir = fs_opendir;
  ops.readdir = fs_readdir;
  ops.releasedir = fs_releasedir;
  ops.fsyncdir = fs_fsyncdir;
  ops.init = fs_init;
  // argv for fuse: program, mountpoint, the rest.
  std::vector<char*> fuse_argv = {argv[0], argv[2]};
  for (int i = 4; i < argc; ++i) fuse_argv.push_back(argv[i]);
  return fuse_main(static_cast<int>(fuse_argv.size()), fuse_argv.data(), &ops, nullptr);
}
