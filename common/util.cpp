#include "common/util.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace keelfs {

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t unix_seconds() { return unix_ms() / 1000; }

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

void setup_logging(const std::string& program, const std::string& file, const std::string& level) {
  std::shared_ptr<spdlog::logger> logger;
  if (file.empty()) {
    logger = spdlog::stderr_logger_mt(program);
  } else {
    logger = spdlog::basic_logger_mt(program, file);
  }
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%n] %v");
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::info);
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

bool parse_bytes(const std::string& text, uint64_t* bytes) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    return false;
  }
  if (value < 0 || text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.')) return false;
  std::string unit = text.substr(pos);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  double scale = 1;
  if (unit.size() > 1) return false;
  if (unit.size() == 1) {
    const std::string units = "KMGTP";
    size_t u = units.find(static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0]))));
    if (u == std::string::npos) return false;
    for (size_t i = 0; i <= u; ++i) scale *= 1024;
  }
  double b = value * scale;
  if (b > 1.8e19) return false;
  *bytes = static_cast<uint64_t>(b);
  return true;
}

void raise_open_files_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, rlim_t{1} << 20);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) spdlog::warn("cannot raise the open-files limit: {}", std::strerror(errno));
}

}  // namespace keelfs
