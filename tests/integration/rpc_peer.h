// A test's own RPC connection, on its own network thread: a peer that stays connected
// while others misbehave, and that can send any message, logins included.
#pragma once

#include <future>
#include <optional>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "common/rpc.h"
#include "keelfs.pb.h"

namespace keelfs::test {

class RpcPeer {
 public:
  explicit RpcPeer(const std::string& address, pb::Role role = pb::ROLE_CLIENT) : role_(role) {
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
    auto conn = run(open(address, role_));
    if (!conn.ok()) {
      stop();  // REQUIRE throws: the thread must not outlive the constructor
      FAIL("cannot dial " << address << ": " << conn.status().to_string());
    }
    conn_ = *conn;
  }
  ~RpcPeer() {
    run(close(conn_));
    stop();
  }
  RpcPeer(const RpcPeer&) = delete;
  RpcPeer& operator=(const RpcPeer&) = delete;

  template <class Msg>
  Result<Frame> call(uint16_t type, const Msg& msg, std::string payload = {}) {
    return run(call_on(conn_, type, msg, std::move(payload)));
  }
  // The HELLO nonces of this connection, which every login proof on it must cover.
  const LoginNonces& nonces() const { return conn_->nonces(); }

 private:
  static awaitable<Result<ConnectionPtr>> open(std::string address, pb::Role role) {
    co_return co_await dial(address, role, "rpc-peer");
  }
  static awaitable<int> close(ConnectionPtr conn) {
    if (conn) conn->close(Status::Ok());
    co_return 0;
  }
  template <class Msg>
  static awaitable<Result<Frame>> call_on(ConnectionPtr conn, uint16_t type, Msg msg, std::string payload) {
    co_return co_await conn->call(type, msg, std::move(payload), std::chrono::seconds(10));
  }
  template <class T>
  static awaitable<void> fulfil(awaitable<T> task, std::promise<T>* promise) {
    promise->set_value(co_await std::move(task));
  }
  void stop() {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  template <class T>
  T run(awaitable<T> task) {
    std::promise<T> promise;
    auto future = promise.get_future();
    asio::co_spawn(io_, fulfil(std::move(task), &promise), asio::detached);
    return future.get();
  }

  pb::Role role_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  ConnectionPtr conn_;
};

// MOUNT_SALT, then MOUNT with a proof of `secret` made for this connection: what a client
// does to attach to a volume. Returns MOUNT's answer.
inline Result<Frame> mount_volume(RpcPeer& peer, const std::string& volume, const std::string& secret) {
  pb::MountSaltReq salt_req;
  salt_req.set_volume(volume);
  auto salt = peer.call(pb::MOUNT_SALT, salt_req);
  if (!salt.ok()) return salt.status();
  pb::MountSaltResp salt_resp;
  if (!salt_resp.ParseFromString(salt->body)) return error(Code::kProtocol, "MOUNT_SALT answer does not parse");
  pb::MountReq mount;
  mount.set_volume(volume);
  mount.set_proof(mount_proof(secret, salt_resp.salt(), peer.nonces(), volume));
  return peer.call(pb::MOUNT, mount);
}

}  // namespace keelfs::test
