// Small coroutine tools over Asio: a one-shot Event, sleeping, and running blocking work
// (disk I/O, fsync) on a thread pool without blocking the network thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/asio.h"

namespace keelfs {

// A one-shot event for coroutines on one executor. wait() returns once notify() was called
// (before or after the wait), or false when the timeout passes first.
// REQUIRES: notify() and wait() run on the same single-threaded executor; one waiter at a
// time (a second wait() re-arms the timer, which ends the first wait early with false).
class Event {
 public:
  explicit Event(asio::any_io_executor ex) : timer_(ex) {}
  void notify() {
    set_ = true;
    timer_.cancel();
  }
  bool is_set() const { return set_; }
  awaitable<bool> wait(std::chrono::steady_clock::duration timeout = std::chrono::hours(24 * 365)) {
    if (set_) co_return true;
    timer_.expires_after(timeout);
    error_code ec;
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    co_return set_;
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
};

inline awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  error_code ec;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
}

// Lets long work on a shared single-threaded executor give way to everything else queued
// there: check due() often (it is cheap) and co_await yield() when it says so.
//
//   Slicer slicer;
//   for (auto& item : many) { work(item); if (slicer.due()) co_await slicer.yield(); }
//
// After a yield, anything the work looked at before may have changed.
//
// All slicers of a thread share one budget: together they may use at most half of the
// thread's time (kBackgroundShare). Past that, yield() sleeps until the others' turn has
// come, instead of only queueing behind what is ready. Otherwise several pieces of long
// work (a chunk report, HEALTH, FSCK, the healer) would take turns with each other, and a
// client's request would wait behind one slice of each.
class Slicer {
 public:
  explicit Slicer(std::chrono::steady_clock::duration slice = std::chrono::milliseconds(2))
      : slice_(slice), since_(std::chrono::steady_clock::now()) {}
  bool due() const { return std::chrono::steady_clock::now() - since_ >= slice_; }
  awaitable<void> yield() {
    const auto now = std::chrono::steady_clock::now();
    const auto owed = budget().spend(now - since_, now);
    if (owed > std::chrono::steady_clock::duration::zero())
      co_await sleep_for(owed);
    else
      co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
    since_ = std::chrono::steady_clock::now();
    ++yields_;
  }
  uint64_t yields() const { return yields_; }

 private:
  // Background time of this thread: a bucket that fills at kBackgroundShare of wall time
  // (holding at most kBurst) and that every slice empties by what it used.
  struct Budget {
    static constexpr double kBackgroundShare = 0.5;
    static constexpr std::chrono::milliseconds kBurst{4};
    std::chrono::steady_clock::duration credit = kBurst;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    // Takes `used`; returns how long to sleep until the credit is back to zero.
    std::chrono::steady_clock::duration spend(std::chrono::steady_clock::duration used, std::chrono::steady_clock::time_point now) {
      credit += std::chrono::duration_cast<std::chrono::steady_clock::duration>((now - last) * kBackgroundShare);
      credit = std::min<std::chrono::steady_clock::duration>(credit, kBurst);
      last = now;
      credit -= used;
      if (credit >= std::chrono::steady_clock::duration::zero()) return std::chrono::steady_clock::duration::zero();
      return std::chrono::duration_cast<std::chrono::steady_clock::duration>(-credit / kBackgroundShare);
    }
  };
  static Budget& budget() {
    thread_local Budget b;
    return b;
  }

  std::chrono::steady_clock::duration slice_;
  std::chrono::steady_clock::time_point since_;
  uint64_t yields_ = 0;
};

// Runs fn() on `pool` and resumes the calling coroutine on its own executor with the result.
template <class Fn>
auto run_in_pool(asio::thread_pool& pool, Fn fn) -> awaitable<decltype(fn())> {
  using R = decltype(fn());
  auto initiate = [&pool, fn = std::move(fn)](auto handler) mutable {
    asio::post(pool, [handler = std::move(handler), fn = std::move(fn)]() mutable {
      auto result = std::make_shared<R>(fn());
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, [handler = std::move(handler), result]() mutable { handler(std::move(*result)); });
    });
  };
  co_return co_await asio::async_initiate<decltype(use_awaitable), void(R)>(std::move(initiate), use_awaitable);
}

}  // namespace keelfs

namespace keelfs {

namespace detail {
template <class T>
struct AllState {
  AllState(asio::any_io_executor ex, size_t n) : results(n), left(n), done(ex) {}
  std::vector<std::optional<T>> results;
  size_t left;
  Event done;
};
template <class T>
awaitable<void> run_one(std::shared_ptr<AllState<T>> st, size_t i, awaitable<T> task) {
  st->results[i].emplace(co_await std::move(task));
  if (--st->left == 0) st->done.notify();
}
}  // namespace detail

// Runs every task concurrently on the current executor; returns their results in order.
template <class T>
awaitable<std::vector<T>> when_all(std::vector<awaitable<T>> tasks) {
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<detail::AllState<T>>(ex, tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) asio::co_spawn(ex, detail::run_one<T>(st, i, std::move(tasks[i])), asio::detached);
  if (!tasks.empty()) co_await st->done.wait();
  std::vector<T> out;
  out.reserve(tasks.size());
  for (auto& r : st->results) out.push_back(std::move(*r));
  co_return out;
}

// Mutual exclusion per key between coroutines of one single-threaded executor; the lock
// passes straight to the next waiter, first come first served.
class KeyedMutex {
 public:
  class Guard {
   public:
    Guard(KeyedMutex* m, uint64_t key) : m_(m), key_(key) {}
    Guard(Guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)), key_(o.key_) {}
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (m_) m_->unlock(key_);
    }

   private:
    KeyedMutex* m_;
    uint64_t key_;
  };

  awaitable<Guard> lock(uint64_t key) {
    auto it = held_.find(key);
    if (it == held_.end()) {
      held_[key];
      co_return Guard(this, key);
    }
    auto ev = std::make_shared<Event>(co_await asio::this_coro::executor);
    it->second.push_back(ev);
    co_await ev->wait();
    co_return Guard(this, key);
  }

 private:
  void unlock(uint64_t key) {
    auto it = held_.find(key);
    if (it == held_.end()) return;
    if (it->second.empty()) {
      held_.erase(it);
      return;
    }
    auto ev = it->second.front();
    it->second.pop_front();
    ev->notify();
  }
  std::unordered_map<uint64_t, std::deque<std::shared_ptr<Event>>> held_;
};

}  // namespace keelfs
