// Random sequences of chunk store operations against a model of every chunk's bytes
// (tests/unit/chunk_store_driver.h). Seeded: a failure is the same on every run.
#include <stdlib.h>

#include <filesystem>
#include <random>

#include <catch2/catch.hpp>

#include "tests/unit/chunk_store_driver.h"

TEST_CASE("random chunk store operations answer as the model says and read back the model's bytes",
          "[chunk_store][random]") {
  constexpr int kSeeds = 40, kOps = 200;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    char tmpl[] = "/tmp/keelfs-cs-random-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    std::mt19937 rng(seed);
    std::string problems;
    {
      keelfs::test::ChunkStoreDriver driver(dir, [&] { return static_cast<int>(rng() & 0xff); });
      problems = driver.run(kOps);
    }  // the store closes before its directory goes
    std::filesystem::remove_all(dir);
    INFO("seed " << seed << ":\n" << problems);
    REQUIRE(problems.empty());
  }
}
