// Small helpers every process uses: clocks, host name, logging set-up, signals.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace keelfs {

int64_t unix_ms();
int64_t unix_seconds();
std::string host_name();
// Takes the open-files limit up to the hard limit the system allows (services often start
// with a soft 1024): servers hold a socket per client and cache files.
void raise_open_files_limit();

// Log to stderr, or to `file` when not empty. level: trace, debug, info, warn, error.
void setup_logging(const std::string& program, const std::string& file, const std::string& level);

// "1.5 GiB"
std::string human_bytes(uint64_t bytes);
// "100G", "1.5T", "512M", "64k", "4096" -> bytes (K, M, G, T, P are powers of 1024; an
// "i" or "B" after the unit is allowed). Returns false on anything else.
bool parse_bytes(const std::string& text, uint64_t* bytes);

}  // namespace keelfs
