// common/: Status, CRC32C, tickets, addresses, the Slicer.
#include <algorithm>
#include <functional>

#include <catch2/catch.hpp>

#include "common/async.h"
#include "common/crc32c.h"
#include "common/rpc.h"
#include "common/status.h"
#include "common/auth.h"
#include "common/ticket.h"
#include "keelfs.pb.h"

using namespace keelfs;

TEST_CASE("crc32c is the standard Castagnoli CRC", "[common]") {
  REQUIRE(crc32c("123456789", 9) == 0xE3069283u);
  REQUIRE(crc32c("", 0) == 0u);
  // Extended by what follows, a CRC is the CRC of the whole.
  REQUIRE(crc32c_extend(crc32c("1234", 4), "56789", 5) == 0xE3069283u);
  REQUIRE(crc32c_extend(crc32c("", 0), "123456789", 9) == 0xE3069283u);
}

TEST_CASE("Result carries a value or an error", "[common]") {
  Result<int> ok = 5;
  REQUIRE(ok.ok());
  REQUIRE(*ok == 5);
  Result<int> bad = error(Code::kNotFound, "volume 'x' does not exist");
  REQUIRE(!bad.ok());
  REQUIRE(bad.status().is(Code::kNotFound));
  REQUIRE(bad.status().to_string() == "NotFound: volume 'x' does not exist");
  REQUIRE(code_to_errno(Code::kNotEmpty) == ENOTEMPTY);
  REQUIRE(code_to_errno(Code::kQuotaExceeded) == EDQUOT);
}

TEST_CASE("tickets: genuine ones pass, forged, expired, other-chunk and under-privileged ones fail", "[common]") {
  const std::string secret = "s3cret";
  pb::Ticket t;
  t.set_chunk_id(42);
  t.set_version(3);
  t.set_rights(kRightRead);
  t.set_expires_unix_ms(10'000);
  sign_ticket(secret, &t);
  REQUIRE(check_ticket(secret, t, 42, 3, kRightRead, 5'000).ok());
  REQUIRE(check_ticket(secret, t, 42, 3, kRightRead, 20'000).is(Code::kPermissionDenied));   // expired
  REQUIRE(check_ticket(secret, t, 43, 3, kRightRead, 5'000).is(Code::kPermissionDenied));    // other chunk
  REQUIRE(check_ticket(secret, t, 42, 4, kRightRead, 5'000).is(Code::kPermissionDenied));    // other version
  REQUIRE(check_ticket(secret, t, 42, 3, kRightWrite, 5'000).is(Code::kPermissionDenied));   // no write right
  REQUIRE(check_ticket("other", t, 42, 3, kRightRead, 5'000).is(Code::kPermissionDenied));   // other cluster
  pb::Ticket forged = t;
  forged.set_rights(kRightRead | kRightWrite);  // raising rights breaks the signature
  REQUIRE(check_ticket(secret, forged, 42, 3, kRightWrite, 5'000).is(Code::kPermissionDenied));
  forged = t;
  forged.set_expires_unix_ms(1'000'000);
  REQUIRE(check_ticket(secret, forged, 42, 3, kRightRead, 5'000).is(Code::kPermissionDenied));
}

TEST_CASE("addresses parse as HOST:PORT", "[common]") {
  auto a = parse_address("127.0.0.1:9520");
  REQUIRE(a.ok());
  REQUIRE(a->first == "127.0.0.1");
  REQUIRE(a->second == 9520);
  REQUIRE(parse_address("127.0.0.1:0").ok());
  REQUIRE(!parse_address("127.0.0.1").ok());
  REQUIRE(!parse_address("127.0.0.1:70000").ok());
  REQUIRE(!parse_address("127.0.0.1:12ab").ok());
  REQUIRE(!parse_address(":80").ok());
}

TEST_CASE("Slicer: long work on a single-threaded executor lets other work run between slices", "[common]") {
  asio::io_context io(1);
  int ticks = 0;          // other work that got to run
  int ticks_seen_max = 0;  // the most ticks that ran during one slice of the long work
  bool long_done = false;
  auto long_work = [&]() -> awaitable<void> {
    Slicer slicer(std::chrono::milliseconds(1));
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (std::chrono::steady_clock::now() < until) {
      if (slicer.due()) {
        const int before = ticks;
        co_await slicer.yield();
        ticks_seen_max = std::max(ticks_seen_max, ticks - before);
      }
    }
    REQUIRE(slicer.yields() >= 10);
    long_done = true;
  };
  std::function<void()> tick = [&] {
    ++ticks;
    if (!long_done) asio::post(io, tick);
  };
  asio::co_spawn(io, long_work(), asio::detached);
  asio::post(io, tick);
  io.run();
  REQUIRE(long_done);
  REQUIRE(ticks >= 10);           // the other work ran while the long work went on...
  REQUIRE(ticks_seen_max >= 1);  // ...between its slices
}

TEST_CASE("Slicer: long pieces of work together take at most about half of the thread", "[common]") {
  asio::io_context io(1);
  std::chrono::steady_clock::duration worked{};
  int running = 2;
  auto long_work = [&]() -> awaitable<void> {
    Slicer slicer(std::chrono::milliseconds(1));
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    auto slice_began = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < until) {
      if (slicer.due()) {
        worked += std::chrono::steady_clock::now() - slice_began;
        co_await slicer.yield();
        slice_began = std::chrono::steady_clock::now();
      }
    }
    --running;
  };
  const auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(io, long_work(), asio::detached);
  asio::co_spawn(io, long_work(), asio::detached);
  io.run();
  REQUIRE(running == 0);
  const double share = std::chrono::duration<double>(worked) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0);
  INFO("background share " << share);
  REQUIRE(share < 0.65);  // half, with the first burst and timer slack
}

TEST_CASE("login proofs: bound to both nonces and the subject; the master's answer is not a login", "[common]") {
  const LoginNonces a{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"};
  const LoginNonces other_server{"aaaaaaaaaaaaaaaa", "cccccccccccccccc"};
  const LoginNonces other_client{"dddddddddddddddd", "bbbbbbbbbbbbbbbb"};
  const std::string proof = login_proof("key", a, admin_subject());
  REQUIRE(check_login_proof("key", a, admin_subject(), proof, "admin login").ok());
  REQUIRE(check_login_proof("key", other_server, admin_subject(), proof, "admin login").is(Code::kPermissionDenied));
  REQUIRE(check_login_proof("key", other_client, admin_subject(), proof, "admin login").is(Code::kPermissionDenied));
  REQUIRE(check_login_proof("other", a, admin_subject(), proof, "admin login").is(Code::kPermissionDenied));
  REQUIRE(check_login_proof("key", a, chunkserver_subject(1, "h:1"), proof, "x").is(Code::kPermissionDenied));
  // Reflecting the master's own answer back at it proves nothing.
  REQUIRE(check_login_proof("key", a, admin_subject(), master_login_proof("key", a, admin_subject()), "x")
              .is(Code::kPermissionDenied));
  REQUIRE(check_master_login_proof("key", a, admin_subject(), master_login_proof("key", a, admin_subject()), "m").ok());
}
