#include "client-fuse/fuse_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <spdlog/spdlog.h>

namespace keelfs::fuse {
namespace {

constexpr size_t kIoSize = 1 << 20;

Mount& mount_of(fuse_req_t req) { return *static_cast<Mount*>(fuse_req_userdata(req)); }

void reply_status(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : code_to_errno(st.code())); }

mode_t type_bits(pb::FileType t) {
  switch (t) {
    case pb::FT_DIRECTORY: return S_IFDIR;
    case pb::FT_SYMLINK: return S_IFLNK;
    case pb::FT_FIFO: return S_IFIFO;
    case pb::FT_CHARDEV: return S_IFCHR;
    case pb::FT_BLOCKDEV: return S_IFBLK;
    case pb::FT_SOCKET: return S_IFSOCK;
    default: return S_IFREG;
  }
}

pb::FileType file_type(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR: return pb::FT_DIRECTORY;
    case S_IFLNK: return pb::FT_SYMLINK;
    case S_IFIFO: return pb::FT_FIFO;
    case S_IFCHR: return pb::FT_CHARDEV;
    case S_IFBLK: return pb::FT_BLOCKDEV;
    case S_IFSOCK: return pb::FT_SOCKET;
    default: return pb::FT_REGULAR;
  }
}

struct stat to_stat(const Mount& m, const pb::Attr& a) {
  m.told_kernel(a);
  struct stat s = {};
  s.st_ino = m.to_kernel(a.inode());
  s.st_mode = type_bits(a.type()) | a.mode();
  s.st_nlink = a.nlink();
  s.st_uid = a.uid();
  s.st_gid = a.gid();
  s.st_size = static_cast<off_t>(a.size());
  s.st_rdev = a.rdev();
  s.st_blksize = kIoSize;  // programs size their buffers by it: 1 MiB keeps requests large
  s.st_blocks = static_cast<blkcnt_t>((a.size() + 511) / 512);
  s.st_atim = {a.atime_sec(), a.atime_nsec()};
  s.st_mtim = {a.mtime_sec(), a.mtime_nsec()};
  s.st_ctim = {a.ctime_sec(), a.ctime_nsec()};
  return s;
}

// `age`, `name_age`: how old the attributes and the name's answer already are; the kernel
// keeps each for what is left of its timeout.
fuse_entry_param entry_of(const Mount& m, const pb::Attr& attr, double age = 0, double name_age = 0) {
  fuse_entry_param e = {};
  e.ino = m.to_kernel(attr.inode());
  e.generation = 1;
  e.attr = to_stat(m, attr);
  e.attr_timeout = std::max(0.0, m.options().attr_timeout - age);
  e.entry_timeout = std::max(0.0, m.options().entry_timeout - name_age);
  return e;
}

void reply_entry(fuse_req_t req, const Result<pb::Attr>& attr, double age = 0, double name_age = 0) {
  if (!attr.ok()) return reply_status(req, attr.status());
  fuse_entry_param e = entry_of(mount_of(req), *attr, age, name_age);
  fuse_reply_entry(req, &e);
}

void reply_attr(fuse_req_t req, const Result<pb::Attr>& attr) {
  if (!attr.ok()) return reply_status(req, attr.status());
  Mount& m = mount_of(req);
  struct stat s = to_stat(m, *attr);
  fuse_reply_attr(req, &s, m.options().attr_timeout);
}

// ---------------------------------------------------------------- names
//
// Each op_* runs in the loop, copies what it needs out of the request and spawns the
// coroutine that does the work (the do_* next to it). Strings and structs are copied:
// they point into the receive buffer or into libfuse's stack.

awaitable<void> do_lookup(fuse_req_t req, uint64_t parent, std::string name) {
  Mount& m = mount_of(req);
  double age = 0, name_age = 0;
  auto attr =
      co_await m.client().co_lookup_cached(parent, std::move(name), m.options().entry_timeout, &age, &name_age);
  if (!attr.ok() && attr.status().is(Code::kNotFound)) {
    // A negative entry, cached for the entry timeout like a positive one.
    fuse_entry_param e = {};
    e.entry_timeout = std::max(0.0, m.options().entry_timeout - name_age);
    fuse_reply_entry(req, &e);
    co_return;
  }
  reply_entry(req, attr, age, name_age);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Mount& m = mount_of(req);
  m.note_lookup(fuse_req_ctx(req)->pid, m.to_master(parent));
  m.spawn(do_lookup(req, m.to_master(parent), name));
}

awaitable<void> do_getattr(fuse_req_t req, uint64_t ino) {
  Mount& m = mount_of(req);
  // After a change in a directory the kernel asks for its attributes again at once; the
  // answer to that change already carried them. The kernel may keep them only for what is
  // left of the attribute timeout, so nothing is cached longer than it would be anyway.
  double age = 0;
  auto attr = co_await m.client().co_getattr_recent(ino, m.options().attr_timeout, &age);
  if (!attr.ok()) {
    reply_status(req, attr.status());
    co_return;
  }
  struct stat s = to_stat(m, *attr);
  fuse_reply_attr(req, &s, std::max(0.0, m.options().attr_timeout - age));
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Mount& m = mount_of(req);
  m.spawn(do_getattr(req, m.to_master(ino)));
}

awaitable<void> do_setattr(fuse_req_t req, pb::SetattrReq r) {
  reply_attr(req, co_await mount_of(req).client().co_setattr(std::move(r)));
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Mount& m = mount_of(req);
  pb::SetattrReq r;
  r.set_inode(m.to_master(ino));
  uint32_t mask = 0;
  if (to_set & FUSE_SET_ATTR_MODE) {
    mask |= pb::SET_MODE;
    r.set_mode(attr->st_mode & 07777);
  }
  if (to_set & FUSE_SET_ATTR_UID) {
    mask |= pb::SET_UID;
    r.set_uid(attr->st_uid);
  }
  if (to_set & FUSE_SET_ATTR_GID) {
    mask |= pb::SET_GID;
    r.set_gid(attr->st_gid);
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    mask |= pb::SET_SIZE;
    r.set_size(attr->st_size);
    m.forget_cache_state(r.inode());
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    mask |= pb::SET_ATIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    mask |= pb::SET_ATIME;
    r.set_atime_sec(attr->st_atim.tv_sec);
    r.set_atime_nsec(attr->st_atim.tv_nsec);
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    mask |= pb::SET_MTIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    mask |= pb::SET_MTIME;
    r.set_mtime_sec(attr->st_mtim.tv_sec);
    r.set_mtime_nsec(attr->st_mtim.tv_nsec);
  }
  if (to_set & FUSE_SET_ATTR_CTIME) {
    mask |= pb::SET_CTIME;
    r.set_ctime_sec(attr->st_ctim.tv_sec);
    r.set_ctime_nsec(attr->st_ctim.tv_nsec);
  }
  r.set_mask(mask);
  m.spawn(do_setattr(req, std::move(r)));
}

awaitable<void> do_create_node(fuse_req_t req, pb::CreateReq r) {
  reply_entry(req, co_await mount_of(req).client().co_create(std::move(r)));
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Mount& m = mount_of(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  pb::CreateReq r;
  r.set_parent(m.to_master(parent));
  r.set_name(name);
  r.set_type(file_type(mode));
  r.set_mode(mode & 07777);
  r.set_uid(ctx->uid);
  r.set_gid(ctx->gid);
  r.set_rdev(static_cast<uint32_t>(rdev));
  r.set_exclusive(true);
  m.spawn(do_create_node(req, std::move(r)));
}

awaitable<void> do_mkdir(fuse_req_t req, uint64_t parent, std::string name, uint32_t mode, uint32_t uid, uint32_t gid) {
  reply_entry(req, co_await mount_of(req).client().co_mkdir(parent, std::move(name), mode, uid, gid));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Mount& m = mount_of(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  m.spawn(do_mkdir(req, m.to_master(parent), name, mode & 07777, ctx->uid, ctx->gid));
}

awaitable<void> do_unlink(fuse_req_t req, uint64_t parent, std::string name) {
  reply_status(req, co_await mount_of(req).client().co_unlink(parent, std::move(name)));
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Mount& m = mount_of(req);
  m.spawn(do_unlink(req, m.to_master(parent), name));
}

awaitable<void> do_rmdir(fuse_req_t req, uint64_t parent, std::string name) {
  reply_status(req, co_await mount_of(req).client().co_rmdir(parent, std::move(name)));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Mount& m = mount_of(req);
  m.spawn(do_rmdir(req, m.to_master(parent), name));
}

awaitable<void> do_symlink(fuse_req_t req, std::string target, uint64_t parent, std::string name, uint32_t uid,
                           uint32_t gid) {
  reply_entry(req, co_await mount_of(req).client().co_symlink(parent, std::move(name), std::move(target), uid, gid));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Mount& m = mount_of(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  m.spawn(do_symlink(req, target, m.to_master(parent), name, ctx->uid, ctx->gid));
}

awaitable<void> do_readlink(fuse_req_t req, uint64_t ino) {
  auto target = co_await mount_of(req).client().co_readlink(ino);
  if (!target.ok()) {
    reply_status(req, target.status());
    co_return;
  }
  fuse_reply_readlink(req, target->c_str());
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Mount& m = mount_of(req);
  m.spawn(do_readlink(req, m.to_master(ino)));
}

awaitable<void> do_link(fuse_req_t req, uint64_t ino, uint64_t new_parent, std::string new_name) {
  reply_entry(req, co_await mount_of(req).client().co_link(ino, new_parent, std::move(new_name)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Mount& m = mount_of(req);
  m.spawn(do_link(req, m.to_master(ino), m.to_master(new_parent), new_name));
}

awaitable<void> do_rename(fuse_req_t req, uint64_t parent, std::string name, uint64_t new_parent,
                          std::string new_name, uint32_t flags) {
  reply_status(req, co_await mount_of(req).client().co_rename(parent, std::move(name), new_parent,
                                                               std::move(new_name), flags));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent, const char* new_name,
               unsigned int flags) {
  Mount& m = mount_of(req);
  uint32_t f = 0;
  if (flags & RENAME_NOREPLACE) f |= pb::RF_NOREPLACE;
  if (flags & RENAME_EXCHANGE) f |= pb::RF_EXCHANGE;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);
  m.spawn(do_rename(req, m.to_master(parent), name, m.to_master(new_parent), new_name, f));
}

// ---------------------------------------------------------------- files

// O_TRUNC: size 0 and new mtime/ctime even when the file was empty already, as POSIX says.
awaitable<Result<pb::Attr>> truncate_to_zero(Mount& m, uint64_t ino) {
  m.forget_cache_state(ino);
  pb::SetattrReq r;
  r.set_inode(ino);
  r.set_mask(pb::SET_SIZE);
  r.set_size(0);
  co_return co_await m.client().co_setattr(std::move(r));
}

// O_APPEND handles append at the end of the file as the master knows it (the kernel's idea
// of the size may be stale when another mount appended), and bypass the page cache, which
// would hold the bytes at the kernel's offset.
void mark_append(fuse_file_info* fi) {
  if (!(fi->flags & O_APPEND)) return;
  fi->fh = kAppendHandle;
  fi->direct_io = 1;
}

awaitable<void> do_open(fuse_req_t req, uint64_t id, fuse_file_info fi) {
  Mount& m = mount_of(req);
  // The session holds the file until op_release, so an unlink meanwhile does not free it.
  // Close-to-open: open() also replaces the cached chunk locations and size.
  auto attr = co_await m.client().co_open(id);
  if (!attr.ok()) {
    reply_status(req, attr.status());
    co_return;
  }
  // With FUSE_CAP_ATOMIC_O_TRUNC the kernel leaves O_TRUNC of an existing file to us.
  if ((fi.flags & O_TRUNC) && attr->type() == pb::FT_REGULAR) {
    attr = co_await truncate_to_zero(m, id);
    if (!attr.ok()) {
      m.client().release(id);
      reply_status(req, attr.status());
      co_return;
    }
  }
  fi.keep_cache = m.unchanged_since_last_open(*attr) ? 1 : 0;
  m.refresh_kernel_attr_if_changed(*attr);
  mark_append(&fi);
  if ((fi.flags & O_ACCMODE) == O_RDONLY && fi.fh != kAppendHandle && !m.may_hold_posix_locks(id)) {
    fi.noflush = 1;
    fi.fh = kNoFlushHandle;
  }
  // -ENOENT: the open was interrupted and the kernel will send no release for it.
  if (fuse_reply_open(req, &fi) == -ENOENT) m.client().release(id);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Mount& m = mount_of(req);
  m.spawn(do_open(req, m.to_master(ino), *fi));
}

awaitable<void> do_create(fuse_req_t req, pb::CreateReq r, fuse_file_info fi) {
  Mount& m = mount_of(req);
  bool created = false;
  auto attr = co_await m.client().co_create(std::move(r), &created);
  if (!attr.ok()) {
    reply_status(req, attr.status());
    co_return;
  }
  fuse_entry_param e = entry_of(m, *attr);
  m.unchanged_since_last_open(*attr);
  if (created) m.note_without_capability(attr->inode(), m.capability_generation());  // new: no attributes yet
  mark_append(&fi);
  if (fuse_reply_create(req, &e, &fi) == -ENOENT) m.client().release(attr->inode());
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Mount& m = mount_of(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  pb::CreateReq r;
  r.set_parent(m.to_master(parent));
  r.set_name(name);
  r.set_type(pb::FT_REGULAR);
  r.set_mode(mode & 07777);
  r.set_uid(ctx->uid);
  r.set_gid(ctx->gid);
  r.set_exclusive(fi->flags & O_EXCL);
  r.set_truncate(fi->flags & O_TRUNC);
  r.set_open(true);  // held until op_release, as by op_open
  m.spawn(do_create(req, std::move(r), *fi));
}

// Replies of at least this many bytes are copied into the kernel by the reply thread.
constexpr size_t kReplyOffThread = 256 << 10;

awaitable<void> do_read(fuse_req_t req, uint64_t ino, size_t size, uint64_t off) {
  Mount& m = mount_of(req);
  auto buf = std::make_shared<std::unique_ptr<char[]>>(new char[size]);
  auto n = co_await m.client().co_read(ino, off, size, buf->get());
  if (!n.ok()) {
    reply_status(req, n.status());
    co_return;
  }
  if (*n < kReplyOffThread) {
    fuse_reply_buf(req, buf->get(), *n);
    co_return;
  }
  m.reply_off_thread([req, buf, len = *n] { fuse_reply_buf(req, buf->get(), len); });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Mount& m = mount_of(req);
  m.spawn(do_read(req, m.to_master(ino), size, static_cast<uint64_t>(off)));
}

awaitable<void> do_write(fuse_req_t req, uint64_t ino, uint64_t off, bool append, RequestBytes bytes) {
  Mount& m = mount_of(req);
  Status st;
  if (append) {
    st = (co_await m.client().co_append(ino, bytes.data, bytes.size)).status();
  } else {
    st = co_await m.client().co_write(ino, off, bytes.data, bytes.size);
  }
  if (!st.ok()) {
    reply_status(req, st);
    co_return;
  }
  fuse_reply_write(req, bytes.size);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  Mount& m = mount_of(req);
  uint64_t id = m.to_master(ino);
  m.forget_cache_state(id);
  RequestBytes bytes = m.hold_request_bytes(buf, size);
  if (!bytes.data) return (void)fuse_reply_err(req, ENOMEM);
  m.spawn(do_write(req, id, static_cast<uint64_t>(off), fi->fh == kAppendHandle, std::move(bytes)));
}

awaitable<void> do_flush(fuse_req_t req, uint64_t ino, uint64_t lock_owner) {
  Mount& m = mount_of(req);
  Status st = co_await m.client().co_flush(ino);
  Status unlocked = co_await release_posix_locks(m, ino, lock_owner);
  reply_status(req, st.ok() ? unlocked : st);
}

void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Mount& m = mount_of(req);
  m.spawn(do_flush(req, m.to_master(ino), fi->lock_owner));
}

awaitable<void> do_release(fuse_req_t req, uint64_t ino, bool flock_release, uint64_t lock_owner, bool no_flush) {
  Mount& m = mount_of(req);
  Status st = co_await m.client().co_flush(ino);
  if (flock_release) {
    Status unlocked = co_await release_flock(m, ino, lock_owner);
    if (st.ok()) st = unlocked;
  }
  if (no_flush) {
    for (uint64_t owner : m.take_owners_without_flush(ino)) {
      Status unlocked = co_await release_posix_locks(m, ino, owner);
      if (st.ok()) st = unlocked;
    }
  }
  // Last: an orphan (unlinked while open) is freed here, after its data was flushed.
  m.client().release(ino);
  reply_status(req, st);
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Mount& m = mount_of(req);
  m.spawn(do_release(req, m.to_master(ino), fi->flock_release, fi->lock_owner, fi->fh == kNoFlushHandle));
}

awaitable<void> do_fsync(fuse_req_t req, uint64_t ino) {
  reply_status(req, co_await mount_of(req).client().co_fsync(ino));
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Mount& m = mount_of(req);
  m.spawn(do_fsync(req, m.to_master(ino)));
}

// Copies through this mount's client: read from one file, write (buffered) to the other.
// The kernel would otherwise do the same through user space page by page.
awaitable<void> do_copy_file_range(fuse_req_t req, uint64_t in, uint64_t off_in, uint64_t out, uint64_t off_out,
                                   size_t len) {
  Mount& m = mount_of(req);
  std::vector<char> buf(std::min<size_t>(len, 8u << 20));
  size_t copied = 0;
  while (copied < len) {
    auto n = co_await m.client().co_read(in, off_in + copied, std::min(buf.size(), len - copied), buf.data());
    if (!n.ok()) {
      reply_status(req, n.status());
      co_return;
    }
    if (*n == 0) break;
    Status st = co_await m.client().co_write(out, off_out + copied, buf.data(), *n);
    if (!st.ok()) {
      reply_status(req, st);
      co_return;
    }
    copied += *n;
  }
  fuse_reply_write(req, copied);
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*, fuse_ino_t ino_out,
                        off_t off_out, fuse_file_info*, size_t len, int flags) {
  Mount& m = mount_of(req);
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);
  uint64_t out = m.to_master(ino_out);
  m.forget_cache_state(out);
  m.spawn(do_copy_file_range(req, m.to_master(ino_in), static_cast<uint64_t>(off_in), out,
                             static_cast<uint64_t>(off_out), len));
}

awaitable<void> do_fallocate(fuse_req_t req, uint64_t ino, uint64_t end) {
  Mount& m = mount_of(req);
  auto attr = co_await m.client().co_getattr(ino);
  if (!attr.ok()) {
    reply_status(req, attr.status());
    co_return;
  }
  if (end <= attr->size()) {
    fuse_reply_err(req, 0);
    co_return;
  }
  pb::SetattrReq r;
  r.set_inode(ino);
  r.set_mask(pb::SET_SIZE);
  r.set_size(end);
  reply_status(req, (co_await m.client().co_setattr(std::move(r))).status());
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info*) {
  Mount& m = mount_of(req);
  if (mode != 0) return (void)fuse_reply_err(req, EOPNOTSUPP);  // no hole punching yet
  m.spawn(do_fallocate(req, m.to_master(ino), static_cast<uint64_t>(offset) + static_cast<uint64_t>(length)));
}

// ---------------------------------------------------------------- directories

// A directory listing taken at opendir, so offsets stay stable while the directory changes.
struct DirHandle {
  std::vector<pb::DirEntry> entries;
};

awaitable<void> do_opendir(fuse_req_t req, uint64_t id, fuse_file_info fi) {
  auto entries = co_await mount_of(req).client().co_readdir_all(id, true);
  if (!entries.ok()) {
    reply_status(req, entries.status());
    co_return;
  }
  auto handle = std::make_unique<DirHandle>();
  handle->entries.reserve(entries->size() + 2);
  pb::DirEntry dot, dotdot;
  dot.set_name(".");
  dot.set_inode(id);
  dot.set_type(pb::FT_DIRECTORY);
  dotdot.set_name("..");
  dotdot.set_inode(id);  // the kernel resolves ".." itself; any inode number does here
  dotdot.set_type(pb::FT_DIRECTORY);
  handle->entries.push_back(std::move(dot));
  handle->entries.push_back(std::move(dotdot));
  for (auto& e : *entries) handle->entries.push_back(std::move(e));
  fi.fh = reinterpret_cast<uint64_t>(handle.get());
  // -ENOENT: interrupted, no releasedir will come.
  if (fuse_reply_open(req, &fi) != -ENOENT) handle.release();
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Mount& m = mount_of(req);
  m.spawn(do_opendir(req, m.to_master(ino), *fi));
}

// Answered in line: the listing is in the handle. An entry of a READDIRPLUS batch without
// an inode number (ino 0) is a name only: the kernel makes no inode of it.
void readdir_common(fuse_req_t req, uint64_t dir, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  Mount& m = mount_of(req);
  auto* handle = reinterpret_cast<DirHandle*>(fi->fh);
  const pid_t tid = fuse_req_ctx(req)->pid;
  const bool with_attrs = plus && m.wants_attrs_in_listings(tid);
  m.note_listing(tid, dir);
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < handle->entries.size(); ++i) {
    const pb::DirEntry& e = handle->entries[i];
    size_t n;
    if (plus) {
      fuse_entry_param p = {};
      if (with_attrs && e.has_attr() && e.name() != "." && e.name() != "..") {
        p.ino = m.to_kernel(e.inode());
        p.generation = 1;
        p.attr = to_stat(m, e.attr());
        p.attr_timeout = m.options().attr_timeout;
        p.entry_timeout = m.options().entry_timeout;
      } else {
        p.attr.st_ino = m.to_kernel(e.inode());
        p.attr.st_mode = type_bits(e.type());
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name().c_str(), &p, static_cast<off_t>(i + 1));
    } else {
      struct stat s = {};
      s.st_ino = m.to_kernel(e.inode());
      s.st_mode = type_bits(e.type());
      n = fuse_add_direntry(req, buf.data() + used, size - used, e.name().c_str(), &s, static_cast<off_t>(i + 1));
    }
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  readdir_common(req, mount_of(req).to_master(ino), size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  readdir_common(req, mount_of(req).to_master(ino), size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

awaitable<void> do_fsyncdir(fuse_req_t req) { reply_status(req, co_await mount_of(req).client().co_sync_metadata()); }

void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  // Namespace changes are answered before the master's WAL sync: wait for it.
  mount_of(req).spawn(do_fsyncdir(req));
}

// ---------------------------------------------------------------- the rest

awaitable<void> do_statfs(fuse_req_t req, uint64_t ino) {
  auto st = co_await mount_of(req).client().co_statfs(ino);
  if (!st.ok()) {
    reply_status(req, st.status());
    co_return;
  }
  struct statvfs v = {};
  constexpr uint64_t kFrag = 4096;
  v.f_bsize = kIoSize;
  v.f_frsize = kFrag;
  uint64_t total = std::max(st->total_bytes(), st->used_bytes() + st->free_bytes());
  v.f_blocks = total / kFrag;
  v.f_bfree = st->free_bytes() / kFrag;
  v.f_bavail = v.f_bfree;
  v.f_files = st->files() + st->free_files();
  v.f_ffree = st->free_files();
  v.f_favail = v.f_ffree;
  v.f_namemax = 255;
  fuse_reply_statfs(req, &v);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  Mount& m = mount_of(req);
  m.spawn(do_statfs(req, m.to_master(ino)));
}

awaitable<void> do_setxattr(fuse_req_t req, uint64_t ino, std::string name, std::string value, uint32_t flags) {
  reply_status(req, co_await mount_of(req).client().co_setxattr(ino, std::move(name), std::move(value), flags));
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  Mount& m = mount_of(req);
  if (std::strcmp(name, Mount::kCapabilityXattr) == 0) m.forget_capability(m.to_master(ino));
  uint32_t f = 0;
  if (flags & XATTR_CREATE) f |= 1;
  if (flags & XATTR_REPLACE) f |= 2;
  m.spawn(do_setxattr(req, m.to_master(ino), name, std::string(value, size), f));
}

awaitable<void> do_getxattr(fuse_req_t req, uint64_t ino, std::string name, size_t size) {
  Mount& m = mount_of(req);
  bool capability = name == Mount::kCapabilityXattr;
  uint64_t asked_at = m.capability_generation();
  auto value = co_await m.client().co_getxattr(ino, std::move(name));
  if (!value.ok()) {
    if (capability && value.status().is(Code::kNoData)) m.note_without_capability(ino, asked_at);
    reply_status(req, value.status());
  } else if (size == 0) {
    fuse_reply_xattr(req, value->size());
  } else if (value->size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value->data(), value->size());
  }
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Mount& m = mount_of(req);
  if (std::strcmp(name, Mount::kCapabilityXattr) == 0 && m.known_without_capability(m.to_master(ino)))
    return (void)fuse_reply_err(req, ENODATA);
  m.spawn(do_getxattr(req, m.to_master(ino), name, size));
}

awaitable<void> do_listxattr(fuse_req_t req, uint64_t ino, size_t size) {
  auto names = co_await mount_of(req).client().co_listxattr(ino);
  if (!names.ok()) {
    reply_status(req, names.status());
    co_return;
  }
  std::string all;
  for (auto& n : *names) all.append(n).push_back('\0');
  if (size == 0) {
    fuse_reply_xattr(req, all.size());
  } else if (all.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, all.data(), all.size());
  }
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Mount& m = mount_of(req);
  m.spawn(do_listxattr(req, m.to_master(ino), size));
}

awaitable<void> do_removexattr(fuse_req_t req, uint64_t ino, std::string name) {
  reply_status(req, co_await mount_of(req).client().co_removexattr(ino, std::move(name)));
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Mount& m = mount_of(req);
  if (std::strcmp(name, Mount::kCapabilityXattr) == 0) m.forget_capability(m.to_master(ino));
  m.spawn(do_removexattr(req, m.to_master(ino), name));
}

void op_init(void*, fuse_conn_info* conn) {
  conn->max_write = kIoSize;
  conn->max_read = kIoSize;
  conn->max_readahead = kIoSize;
  conn->want |= conn->capable & (FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS |
                                 FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  // The kernel asks for attributes with the first batch of a listing and with the rest only
  // when something looks its entries up (ls -l): a plain listing instantiates no inodes.
  conn->want |= conn->capable & FUSE_CAP_READDIRPLUS_AUTO;
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops = {};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.readlink = op_readlink;
  ops.link = op_link;
  ops.rename = op_rename;
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.fallocate = op_fallocate;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.copy_file_range = op_copy_file_range;
  ops.getlk = op_getlk;
  ops.setlk = op_setlk;
  ops.flock = op_flock;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& operations() {
  static const fuse_lowlevel_ops ops = make_ops();
  return ops;
}

}  // namespace keelfs::fuse
