// master/region_networks.cpp: which region an address is in.
#include <catch2/catch.hpp>

#include "master/region_networks.h"

using keelfs::master::RegionNetworks;

TEST_CASE("region networks: the most specific network holding an address names its region", "[regions]") {
  auto nets = RegionNetworks::parse({"eu=10.0.0.0/8", "eu-west=10.1.0.0/16", "us=192.168.5.0/24", "v6=fd00:1::/32",
                                     "lo=127.0.0.1/32"});
  REQUIRE(nets.ok());
  CHECK(nets->region_of("10.9.9.9") == "eu");
  CHECK(nets->region_of("10.1.2.3") == "eu-west");
  CHECK(nets->region_of("10.1.2.3:5555") == "eu-west");  // a peer, with its port
  CHECK(nets->region_of("192.168.5.255") == "us");
  CHECK(nets->region_of("192.168.6.1") == std::nullopt);
  CHECK(nets->region_of("fd00:1::7") == "v6");
  CHECK(nets->region_of("[fd00:1::7]:80") == "v6");
  CHECK(nets->region_of("fd00:2::7") == std::nullopt);
  CHECK(nets->region_of("::ffff:10.1.0.1") == "eu-west");  // an IPv4 peer on an IPv6 socket
  CHECK(nets->region_of("127.0.0.1:9") == "lo");
  CHECK(nets->region_of("127.0.0.2") == std::nullopt);
  CHECK(nets->region_of("not an address") == std::nullopt);
  CHECK(RegionNetworks::parse({})->empty());
}

TEST_CASE("region networks: specs that are not REGION=CIDR are refused", "[regions]") {
  for (const char* bad : {"eu", "eu=10.0.0.0", "eu=10.0.0.0/33", "=10.0.0.0/8", "eu=nonsense/8", "eu=10.0.0.0/x",
                          "eu=10.0.0.0/8x", "v6=fd00::/129"}) {
    INFO(bad);
    auto nets = RegionNetworks::parse({bad});
    REQUIRE(!nets.ok());
    CHECK(nets.status().message().find("--region-network") != std::string::npos);
  }
}
