// RegionNetworks: which region a host is in, decided by the master from the address its
// connection comes from (docs/decisions.md, "Regions are decided by the master").
//
// Configured with `--region-network REGION=CIDR` (repeatable). When any is configured, a
// mount's region is the region of the most specific network holding its address, whatever
// region the host claims; an address in no network is in no region and mounts nothing.
// With none configured, the master believes the region a host names (a single trusted
// network, as on one machine).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace keelfs::master {

class RegionNetworks {
 public:
  // Parses "REGION=CIDR" specs (IPv4 or IPv6, e.g. "eu=10.1.0.0/16", "us=fd00:2::/48").
  static Result<RegionNetworks> parse(const std::vector<std::string>& specs);

  bool empty() const { return networks_.empty(); }
  // The region of the most specific network holding `address` ("1.2.3.4" or "::1", or a
  // peer's "host:port"); nullopt when no network holds it.
  std::optional<std::string> region_of(const std::string& address) const;

 private:
  struct Network {
    std::string region;
    std::string bytes;   // the network's address, 4 or 16 bytes
    int prefix_len = 0;  // bits of it that count
  };
  std::vector<Network> networks_;
};

}  // namespace keelfs::master
