// flock and fcntl locks through the master, so they exclude each other between mounts.
// A blocking request (F_SETLKW, flock without LOCK_NB) asks again, with a growing pause,
// until it gets the lock, the caller is interrupted or the session ends; the master never
// parks a request. The pause is a timer, so a waiting lock holds no thread.
#include <sys/file.h>

#include <algorithm>
#include <chrono>

#include "client-fuse/fuse_ops.h"
#include "common/async.h"

namespace keelfs::fuse {
namespace {

constexpr uint64_t kToEnd = ~0ull;

Mount& mount_of(fuse_req_t req) { return *static_cast<Mount*>(fuse_req_userdata(req)); }

pb::LockType lock_type(short l_type) {
  if (l_type == F_RDLCK) return pb::LT_READ;
  if (l_type == F_WRLCK) return pb::LT_WRITE;
  return pb::LT_UNLOCK;
}

pb::LockReq posix_req(Mount& m, fuse_ino_t ino, fuse_file_info* fi, const struct flock* lock) {
  pb::LockReq r;
  r.set_inode(m.to_master(ino));
  r.set_owner(fi->lock_owner);
  r.set_kind(pb::LK_POSIX);
  r.set_type(lock_type(lock->l_type));
  r.set_start(static_cast<uint64_t>(lock->l_start));
  r.set_end(lock->l_len == 0 ? kToEnd : static_cast<uint64_t>(lock->l_start + lock->l_len - 1));
  r.set_pid(static_cast<uint32_t>(lock->l_pid));
  return r;
}

// FUSE_INTERRUPT for a waiting lock: cut the pause short.
void wake_on_interrupt(fuse_req_t, void* timer) { static_cast<asio::steady_timer*>(timer)->cancel(); }

// Takes the lock; when `wait`, retries until granted, interrupted or the session ends.
awaitable<void> acquire(fuse_req_t req, pb::LockReq r, bool wait) {
  Mount& m = mount_of(req);
  auto delay = std::chrono::milliseconds(10);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  // libfuse forgets the callback when the request is answered.
  if (wait) fuse_req_interrupt_func(req, wake_on_interrupt, &timer);
  for (;;) {
    Status st = co_await m.client().co_lock(r);
    if (!st.is(Code::kWouldBlock) || !wait) {
      fuse_reply_err(req, st.ok() ? 0 : code_to_errno(st.code()));
      co_return;
    }
    if (fuse_req_interrupted(req) || m.exiting()) {
      fuse_reply_err(req, EINTR);
      co_return;
    }
    timer.expires_after(delay);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (fuse_req_interrupted(req) || m.exiting()) {
      fuse_reply_err(req, EINTR);
      co_return;
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(200));
  }
}

awaitable<void> do_getlk(fuse_req_t req, pb::LockReq r, struct flock lock) {
  auto held = co_await mount_of(req).client().co_test_lock(std::move(r));
  if (!held.ok()) {
    fuse_reply_err(req, code_to_errno(held.status().code()));
    co_return;
  }
  if (held->type() == pb::LT_UNLOCK) {
    lock.l_type = F_UNLCK;
  } else {
    lock.l_type = held->type() == pb::LT_READ ? F_RDLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = static_cast<off_t>(held->start());
    lock.l_len = held->end() == kToEnd ? 0 : static_cast<off_t>(held->end() - held->start() + 1);
    lock.l_pid = static_cast<pid_t>(held->pid());
  }
  fuse_reply_lock(req, &lock);
}

}  // namespace

void op_getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  Mount& m = mount_of(req);
  m.spawn(do_getlk(req, posix_req(m, ino, fi, lock), *lock));
}

void op_setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep) {
  Mount& m = mount_of(req);
  pb::LockReq r = posix_req(m, ino, fi, lock);
  if (r.type() != pb::LT_UNLOCK) {
    m.note_posix_lock(r.inode());
    if (fi->fh == kNoFlushHandle) m.note_lock_without_flush(r.inode(), fi->lock_owner);
  }
  m.spawn(acquire(req, std::move(r), sleep != 0));
}

void op_flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  Mount& m = mount_of(req);
  pb::LockReq r;
  r.set_inode(m.to_master(ino));
  r.set_owner(fi->lock_owner);
  r.set_kind(pb::LK_FLOCK);
  int what = op & (LOCK_SH | LOCK_EX | LOCK_UN);
  r.set_type(what == LOCK_SH ? pb::LT_READ : what == LOCK_EX ? pb::LT_WRITE : pb::LT_UNLOCK);
  r.set_end(kToEnd);
  m.spawn(acquire(req, std::move(r), (op & LOCK_NB) == 0));
}

namespace {
pb::LockReq unlock_all(uint64_t ino, uint64_t owner, pb::LockKind kind) {
  pb::LockReq r;
  r.set_inode(ino);
  r.set_owner(owner);
  r.set_kind(kind);
  r.set_type(pb::LT_UNLOCK);
  r.set_end(kToEnd);
  return r;
}
}  // namespace

awaitable<Status> release_posix_locks(Mount& m, uint64_t ino, uint64_t owner) {
  if (!m.may_hold_posix_locks(ino)) co_return Status::Ok();
  co_return co_await m.client().co_lock(unlock_all(ino, owner, pb::LK_POSIX));
}

awaitable<Status> release_flock(Mount& m, uint64_t ino, uint64_t owner) {
  co_return co_await m.client().co_lock(unlock_all(ino, owner, pb::LK_FLOCK));
}

}  // namespace keelfs::fuse
