// Regions decided by the master (docs/decisions.md, "Regions are decided by the master"):
// with --region-network, a host's region is where its address is, whatever it claims. The
// hosts are network namespaces of the test's own making, each with its own address on a
// veth link to this one.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

// A host of its own: a network namespace linked to this one by a veth pair, this side
// 10.213.N.1/30, its side 10.213.N.2/30. Removed (with its link) at the end.
class NamespaceHost {
 public:
  explicit NamespaceHost(int n)
      : name_(fmt::format("kfs{}h{}", getpid() % 100000, n)),
        subnet_(fmt::format("10.213.{}", (getpid() + n) % 250)) {
    const std::string here = name_ + "a", there = name_ + "b";
    for (const std::string& cmd : {
             fmt::format("ip netns add {}", name_),
             fmt::format("ip link add {} type veth peer name {}", here, there),
             fmt::format("ip link set {} netns {}", there, name_),
             fmt::format("ip addr add {}.1/30 dev {}", subnet_, here),
             fmt::format("ip link set {} up", here),
             fmt::format("ip netns exec {} ip addr add {}.2/30 dev {}", name_, subnet_, there),
             fmt::format("ip netns exec {} ip link set {} up", name_, there),
             fmt::format("ip netns exec {} ip link set lo up", name_),
         }) {
      INFO(cmd);
      REQUIRE(shell(cmd) == 0);
    }
  }
  ~NamespaceHost() { shell(fmt::format("ip netns del {} 2>/dev/null", name_)); }
  // The network this host's address is in, and the address of this side of its link.
  std::string network() const { return subnet_ + ".0/30"; }
  std::string gateway() const { return subnet_ + ".1"; }
  // Runs the keelfs CLI on this host; returns its exit code, stdout and stderr together.
  int cli(int master_port, const std::vector<std::string>& args, std::string* out) const {
    std::string cmd = fmt::format("ip netns exec {} {} --master {}:{}", name_, bin("keelfs"), gateway(), master_port);
    for (const auto& a : args) cmd += " '" + a + "'";
    return shell(cmd + " 2>&1", out);
  }

 private:
  std::string name_;
  std::string subnet_;
};

int port_of(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

}  // namespace

TEST_CASE("regions come from the master's networks: a host of another region is refused even when it claims the "
          "right one",
          "[regions]") {
  NamespaceHost us_host(1);
  ClusterOptions options;
  options.chunkservers = 2;
  options.cs_regions = {"eu", "us"};
  options.master_listen_host = "0.0.0.0";
  options.master_args = {"--region-network", "eu=127.0.0.0/8", "--region-network", "us=" + us_host.network()};
  Cluster cluster(options);
  const int port = port_of(cluster.master_address());
  std::string out, err;
  for (const char* region : {"eu", "us"}) {
    const std::string vol = std::string(region) + "-vol";
    INFO(vol);
    REQUIRE(cluster.cli({"volume", "create", vol, "--region", region, "--goal", "1", "--save-secret",
                         cluster.dir() + "/" + vol + ".secret"},
                        &out, &err) == 0);
  }

  // This machine (127.0.0.1) is in eu by the master's networks: its eu volume mounts...
  REQUIRE(cluster.cli({"--region", "eu", "ls", "eu-vol:/"}, &out, &err) == 0);
  // ...and claiming us does not open the us volume.
  REQUIRE(cluster.cli({"--region", "us", "ls", "us-vol:/"}, &out, &err) != 0);
  INFO(err);
  REQUIRE(err.find("volume us-vol is in region us; this host is in eu") != std::string::npos);

  // The host in the us network mounts the us volume, whatever it claims or if it claims
  // nothing, and is refused the eu volume even when it claims eu.
  INFO(out);
  REQUIRE(us_host.cli(port, {"ls", "us-vol:/"}, &out) == 0);
  REQUIRE(us_host.cli(port, {"--region", "eu", "ls", "us-vol:/"}, &out) == 0);
  REQUIRE(us_host.cli(port, {"--region", "eu", "ls", "eu-vol:/"}, &out) != 0);
  REQUIRE(out.find("volume eu-vol is in region eu; this host is in us") != std::string::npos);

  // The master logged each refusal with the host's address.
  REQUIRE(shell("grep -c 'refused: host is in region' " + cluster.dir() + "/master.log", &out) == 0);
  REQUIRE(std::stoi(out) >= 2);
}

TEST_CASE("keelfs-master refuses a --region-network that is not REGION=CIDR", "[regions]") {
  for (const char* bad : {"eu", "eu=10.0.0.0", "eu=10.0.0.0/33", "=10.0.0.0/8", "eu=nonsense/8", "eu=10.0.0.0/x"}) {
    INFO(bad);
    std::string out;
    const int rc = shell(fmt::format("{} --data-dir /tmp/never-made --secret-file /dev/null --region-network '{}' 2>&1",
                                     bin("keelfs-master"), bad),
                         &out);
    REQUIRE(rc != 0);
    REQUIRE(out.find("--region-network") != std::string::npos);
  }
}
