// Random sequences of namespace operations (tests/unit/namespace_ops_driver.h): after every
// one, a refused operation changed nothing and every directory's figures are what the tree
// holds. Seeded, so a failure is the same on every run; the seed is in the failure's message.
#include <random>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"
#include "tests/unit/namespace_ops_driver.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("random operation sequences keep every directory's figures and refuse changes whole",
          "[namespace][accounting][random]") {
  constexpr int kSeeds = 60, kOps = 250;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    Fixture f;
    std::mt19937 rng(seed);
    NamespaceOpsDriver driver(*f.store, *f.ns, f.root, [&] { return static_cast<int>(rng() & 0xff); });
    const std::string problems = driver.run(kOps);
    INFO("seed " << seed << ":\n" << problems);
    REQUIRE(problems.empty());
  }
}
