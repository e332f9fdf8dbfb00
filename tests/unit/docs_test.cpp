// docs/: the tables of docs/protocol.md say what the code does: every message type of
// proto/keelfs.proto with its number, and every status code with its name and errno.
#include <string.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "common/status.h"
#include "keelfs.pb.h"

using namespace keelfs;

namespace {

std::string protocol_md() {
  std::ifstream in(std::filesystem::path(KEELFS_SOURCE_DIR) / "docs" / "protocol.md");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("docs/protocol.md names every message type with its number, and no other", "[docs]") {
  const std::string doc = protocol_md();
  std::map<std::string, int> documented;  // "NAME (N)" in the tables, or "NAME (N, ..." in the text
  std::regex cell(R"(\b([A-Z][A-Z_]+) \((\d+)[,)])");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), cell); it != std::sregex_iterator(); ++it)
    documented[(*it)[1]] = std::stoi((*it)[2]);
  const auto* types = pb::MsgType_descriptor();
  for (int i = 0; i < types->value_count(); ++i) {
    const auto* v = types->value(i);
    if (v->number() == pb::MSG_NONE) continue;
    INFO(v->name() << " = " << v->number());
    REQUIRE(documented.count(v->name()) == 1);
    REQUIRE(documented[v->name()] == v->number());
  }
  for (auto& [name, number] : documented) {
    INFO(name << " (" << number << ") is in docs/protocol.md");
    pb::MsgType parsed = pb::MSG_NONE;
    REQUIRE(pb::MsgType_Parse(name, &parsed));
    REQUIRE(static_cast<int>(parsed) == number);
  }
}

TEST_CASE("docs/protocol.md's table of status codes matches common/status.h and the errno mapping", "[docs]") {
  const std::string doc = protocol_md();
  std::map<unsigned, std::pair<std::string, std::string>> rows;  // code -> (name, errno)
  std::regex row(R"(\n\| (\d+) \| ([A-Za-z]+) \| ([A-Z0-9]+) \|)");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), row); it != std::sregex_iterator(); ++it)
    rows[static_cast<unsigned>(std::stoul((*it)[1]))] = {(*it)[2], (*it)[3]};
  REQUIRE(rows.size() == kMaxCode + 1);
  for (unsigned c = 0; c <= kMaxCode; ++c) {
    INFO("code " << c);
    REQUIRE(rows.count(c) == 1);
    REQUIRE(rows[c].first == code_name(static_cast<Code>(c)));
    const int e = code_to_errno(static_cast<Code>(c));
    const char* errno_name = e == 0 ? "0" : strerrorname_np(e);
    REQUIRE(errno_name != nullptr);
    REQUIRE(rows[c].second == errno_name);
  }
}
