#include "master/region_networks.h"

#include <fmt/format.h>

#include "common/asio.h"

namespace keelfs::master {
namespace {

// The address's bytes (4 for IPv4, 16 for IPv6; an IPv4-mapped IPv6 address as IPv4).
std::optional<std::string> address_bytes(const std::string& text) {
  error_code ec;
  asio::ip::address a = asio::ip::make_address(text, ec);
  if (ec) return std::nullopt;
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    return std::string(b.begin(), b.end());
  }
  auto b = a.to_v6().to_bytes();
  return std::string(b.begin(), b.end());
}

// The address part of "host:port", "[v6]:port" or a bare address.
std::string host_part(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') return peer.substr(1, peer.find(']') - 1);
  if (address_bytes(peer)) return peer;  // a bare address (IPv6 ones hold colons)
  auto colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

bool prefix_matches(const std::string& a, const std::string& net, int bits) {
  if (a.size() != net.size()) return false;
  for (int i = 0; i < bits; ++i) {
    const int byte = i / 8, bit = 7 - i % 8;
    if (((a[byte] >> bit) & 1) != ((net[byte] >> bit) & 1)) return false;
  }
  return true;
}

}  // namespace

Result<RegionNetworks> RegionNetworks::parse(const std::vector<std::string>& specs) {
  RegionNetworks out;
  for (const std::string& spec : specs) {
    const auto eq = spec.find('=');
    const auto slash = spec.rfind('/');
    auto bad = [&](const std::string& why) {
      return error(Code::kInvalidArgument, fmt::format("--region-network '{}': {} (want REGION=ADDRESS/BITS, e.g. "
                                                       "eu=10.1.0.0/16)", spec, why));
    };
    if (eq == std::string::npos || eq == 0 || slash == std::string::npos || slash < eq) return bad("not REGION=CIDR");
    Network n;
    n.region = spec.substr(0, eq);
    auto bytes = address_bytes(spec.substr(eq + 1, slash - eq - 1));
    if (!bytes) return bad("not an IP address");
    n.bytes = *bytes;
    try {
      size_t used = 0;
      n.prefix_len = std::stoi(spec.substr(slash + 1), &used);
      if (used != spec.size() - slash - 1) return bad("prefix length is not a number");
    } catch (const std::exception&) {
      return bad("prefix length is not a number");
    }
    if (n.prefix_len < 0 || n.prefix_len > static_cast<int>(n.bytes.size() * 8)) return bad("prefix length out of range");
    out.networks_.push_back(std::move(n));
  }
  return out;
}

std::optional<std::string> RegionNetworks::region_of(const std::string& address) const {
  auto bytes = address_bytes(host_part(address));
  if (!bytes) return std::nullopt;
  const Network* best = nullptr;
  for (const Network& n : networks_)
    if (prefix_matches(*bytes, n.bytes, n.prefix_len) && (!best || n.prefix_len > best->prefix_len)) best = &n;
  if (!best) return std::nullopt;
  return best->region;
}

}  // namespace keelfs::master
