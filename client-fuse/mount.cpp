// Mount: the session loop on the client's thread, and the state requests share.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_future.hpp>
#include <spdlog/spdlog.h>

#include "client-fuse/fuse_ops.h"
#include "common/async.h"

namespace keelfs::fuse {
namespace {
// Requests received in a row before the loop lets the client's other work run.
constexpr int kBatch = 32;
}  // namespace

Mount::Mount(client::Client& client, uint64_t root_inode, MountOptions options)
    : client_(client), root_(root_inode), options_(options) {
  client_.on_names_maybe_lost([this](std::vector<std::pair<uint64_t, std::string>> names) {
    forget_names(std::move(names));
  });
}

void Mount::forget_names(std::vector<std::pair<uint64_t, std::string>> names) {
  if (!se_) return;
  for (auto& [dir, name] : names) {
    const fuse_ino_t parent = to_kernel(dir);
    asio::post(reply_thread_, [se = se_, parent, name = std::move(name)] {
      fuse_lowlevel_notify_inval_entry(se, parent, name.c_str(), name.size());
    });
  }
}

int Mount::serve(fuse_session* se) {
  se_ = se;
  auto done = asio::co_spawn(client_.executor(), loop(), asio::use_future);
  int rc = done.get();
  reply_thread_.join();  // replies handed over by requests that ended
  return rc;
}

void Mount::reply_off_thread(std::function<void()> reply) { asio::post(reply_thread_, std::move(reply)); }

// Receives and processes requests until /dev/fuse has none (the reactor reports readiness
// edge-triggered, so the device is always drained before waiting again), then waits until
// it is readable. Processing a request only starts its coroutine.
//
// Waiting costs a wake-up per request: the kernel wakes this thread, on another CPU when
// one is idle, which on virtual machines costs as much as the rest of a request answered
// from memory. So while at most one request runs (a program waiting for one answer, or
// for nothing), the loop keeps reading the device and lets the reactor look at the
// sockets without blocking, for options_.poll_us after the last answer went out: the
// master's answer and the program's next request (which follows within microseconds) are
// then taken without a wake-up. More requests in flight (streaming I/O) park the loop at
// once: their answers come fast enough to keep the thread awake anyway.
awaitable<int> Mount::loop() {
  auto ex = co_await asio::this_coro::executor;
  int fd = fuse_session_fd(se_);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    spdlog::error("cannot make /dev/fuse non-blocking: {}", std::strerror(err));
    co_return -err;
  }
  asio::posix::stream_descriptor dev(ex, fd);
  // These replace libfuse's handlers for the same signals: end the session and wake the loop.
  asio::signal_set signals(ex, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([this, &dev](const error_code& ec, int sig) {
    if (ec) return;  // cancelled: the loop is over and `dev` may be gone
    spdlog::info("signal {}: unmounting", sig);
    fuse_session_exit(se_);
    error_code ignored;
    dev.cancel(ignored);
  });

  fuse_buf buf = {};
  int rc = 0;
  while (!fuse_session_exited(se_)) {
    Received r = drain(&buf, &rc);
    if (r == Received::kEnded) break;
    // Let the requests just taken run (one answered from memory replies at once), and the
    // client's other work too when a full batch was taken.
    co_await asio::post(ex, use_awaitable);
    if (r == Received::kRequest) continue;
    if (co_await poll_briefly(&buf, &rc)) continue;
    if (fuse_session_exited(se_)) break;
    error_code ec;
    stop_waiting_ = [&dev] {
      error_code ignored;
      dev.cancel(ignored);
    };
    co_await dev.async_wait(asio::posix::descriptor_base::wait_read, asio::redirect_error(use_awaitable, ec));
    stop_waiting_ = nullptr;
    if (ec == asio::error::operation_aborted) continue;  // the last request ended, or a signal
    if (ec) {
      spdlog::error("waiting for /dev/fuse failed: {}", ec.message());
      rc = -EIO;
      break;
    }
  }
  error_code ignored;
  signals.cancel(ignored);
  // A request still running replies into the ended session (the kernel drops the reply):
  // it must end before the session is destroyed.
  if (in_flight_ > 0) spdlog::info("waiting for {} requests to end", in_flight_);
  while (in_flight_ > 0) co_await sleep_for(std::chrono::milliseconds(1));
  std::free(buf.mem);
  dev.release();  // libfuse closes the fd
  co_return rc;
}

Mount::Received Mount::receive_one(fuse_buf* buf, int* rc) {
  for (;;) {
    int res = fuse_session_receive_buf(se_, buf);
    if (res == -EINTR) continue;
    if (res == -EAGAIN) return Received::kNone;
    if (res > 0) {
      process(buf);
      return Received::kRequest;
    }
    if (res < 0) {  // 0: unmounted (libfuse ended the session)
      spdlog::error("reading /dev/fuse failed: {}", std::strerror(-res));
      *rc = res;
    }
    fuse_session_exit(se_);
    return Received::kEnded;
  }
}

void Mount::process(fuse_buf* buf) {
  receiving_ = buf;
  fuse_session_process_buf(se_, buf);
  receiving_ = nullptr;
  if (buffer_taken_) {
    buf->mem = nullptr;  // a request owns it now; libfuse allocates the next one
    buffer_taken_ = false;
  }
}

Mount::Received Mount::drain(fuse_buf* buf, int* rc) {
  for (int n = 1; n <= kBatch; ++n) {
    Received r = receive_one(buf, rc);
    if (r != Received::kRequest) return r;
  }
  return Received::kRequest;  // more may wait
}

awaitable<bool> Mount::poll_briefly(fuse_buf* buf, int* rc) {
  if (options_.poll_us <= 0) co_return false;
  const auto window = std::chrono::microseconds(options_.poll_us);
  auto until = std::chrono::steady_clock::now() + window;
  size_t running = in_flight_;
  while (in_flight_ <= 1) {
    Received r = receive_one(buf, rc);
    if (r != Received::kNone) co_return r == Received::kRequest;
    auto now = std::chrono::steady_clock::now();
    if (in_flight_ < running) until = now + window;  // an answer went out: its program's next request comes
    running = in_flight_;
    if (now >= until) co_return false;
    sched_yield();  // whatever else this CPU has to run goes first
    // The reactor looks at the sockets without blocking, and what came in runs.
    co_await asio::post(client_.executor(), use_awaitable);
  }
  co_return false;
}

void Mount::spawn(awaitable<void> request) {
  ++in_flight_;
  asio::co_spawn(client_.executor(), std::move(request), [this](std::exception_ptr e) {
    if (--in_flight_ == 0 && stop_waiting_) stop_waiting_();
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("a FUSE request failed: {}", x.what());
    } catch (...) {
      spdlog::error("a FUSE request failed");
    }
  });
}

bool Mount::exiting() const { return se_ && fuse_session_exited(se_); }

RequestBytes Mount::hold_request_bytes(const char* data, size_t len) {
  RequestBytes out;
  out.size = len;
  if (receiving_ && !buffer_taken_ && receiving_->mem && !(receiving_->flags & FUSE_BUF_IS_FD)) {
    const char* begin = static_cast<const char*>(receiving_->mem);
    if (data >= begin && data + len <= begin + receiving_->size) {
      out.owner.reset(static_cast<char*>(receiving_->mem));
      out.data = data;
      buffer_taken_ = true;
      return out;
    }
  }
  out.owner.reset(static_cast<char*>(std::malloc(len ? len : 1)));
  if (!out.owner) return out;  // data stays null: out of memory
  std::memcpy(out.owner.get(), data, len);
  out.data = out.owner.get();
  return out;
}

bool Mount::known_without_capability(uint64_t ino) {
  auto it = no_capability_.find(ino);
  if (it == no_capability_.end()) return false;
  if (std::chrono::steady_clock::now() < it->second) return true;
  no_capability_.erase(it);
  return false;
}

void Mount::note_without_capability(uint64_t ino, uint64_t asked_at) {
  if (asked_at != capability_generation_) return;
  auto now = std::chrono::steady_clock::now();
  if (no_capability_.size() >= 100000) std::erase_if(no_capability_, [&](const auto& e) { return e.second <= now; });
  no_capability_[ino] = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(options_.attr_timeout));
}

void Mount::told_kernel(const pb::Attr& a) const {
  if (told_.size() >= 1000000) told_.clear();  // forgotten means "may be stale": safe
  told_[a.inode()] = Seen::of(a);
}

void Mount::refresh_kernel_attr_if_changed(const pb::Attr& fresh) {
  auto it = told_.find(fresh.inode());
  if (it != told_.end() && it->second == Seen::of(fresh)) return;
  // Offset -1: attributes only. It takes no lock an open in progress holds.
  fuse_lowlevel_notify_inval_inode(se_, to_kernel(fresh.inode()), -1, 0);
  told_.erase(fresh.inode());
}

namespace {
// A lookup this soon after a listing of its directory is taken as using that listing.
constexpr auto kListingUse = std::chrono::seconds(1);
constexpr size_t kMaxListers = 4096;
}  // namespace

bool Mount::wants_attrs_in_listings(pid_t tid) const {
  auto it = listers_.find(tid);
  return it != listers_.end() && it->second.wants_attrs;
}

void Mount::note_listing(pid_t tid, uint64_t dir) {
  auto now = std::chrono::steady_clock::now();
  if (listers_.size() >= kMaxListers && !listers_.count(tid))
    std::erase_if(listers_, [&](const auto& e) { return now - e.second.listed_at > 10 * kListingUse; });
  if (listers_.size() >= kMaxListers) listers_.clear();  // forgetting costs attributes, not correctness
  Lister& l = listers_[tid];
  l.dir = dir;
  l.listed_at = now;
}

void Mount::note_lookup(pid_t tid, uint64_t parent) {
  auto it = listers_.find(tid);
  if (it == listers_.end() || it->second.dir != parent) return;
  if (std::chrono::steady_clock::now() - it->second.listed_at < kListingUse) it->second.wants_attrs = true;
}

bool Mount::unchanged_since_last_open(const pb::Attr& a) {
  auto it = seen_.find(a.inode());
  bool same = it != seen_.end() && it->second == Seen::of(a);
  seen_[a.inode()] = Seen::of(a);
  return same;
}

}  // namespace keelfs::fuse
