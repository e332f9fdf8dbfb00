// Status and Result<T>: errors are values. A Status is a code and a message; Result<T>
// holds either a T or a non-OK Status. Codes are shared by every process and travel on the
// wire in the frame header, so a client sees the master's or a chunkserver's exact error.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace keelfs {

enum class Code : unsigned {
  kOk = 0,
  kNotFound = 1,
  kExists = 2,
  kNotDir = 3,
  kIsDir = 4,
  kNotEmpty = 5,
  kInvalidArgument = 6,
  kPermissionDenied = 7,
  kNoSpace = 8,
  kQuotaExceeded = 9,
  kIOError = 10,
  kCorruption = 11,
  kUnavailable = 12,
  kTimeout = 13,
  kProtocol = 14,
  kStaleVersion = 15,
  kNameTooLong = 16,
  kBusy = 17,
  kNotSupported = 18,
  kInternal = 19,
  kNoData = 20,      // e.g. missing xattr
  kLoop = 21,        // directory into its own subtree
  kTooManyLinks = 22,
  kWouldBlock = 23,  // a lock is held by someone else
  kCrossDevice = 24,  // rename or link between volumes
  kNoSession = 25,    // the connection has not mounted the volume (or its session expired)
};
constexpr unsigned kMaxCode = 25;

const char* code_name(Code code);
// The errno a POSIX caller should see for this code (FUSE replies, CLI exit messages).
int code_to_errno(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool is(Code code) const { return code_ == code; }
  // "NotFound: volume 'x' does not exist"
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status error(Code code, std::string message) { return Status(code, std::move(message)); }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

namespace detail {
inline Status status_of(const Status& s) { return s; }
template <class T>
Status status_of(const Result<T>& r) { return r.status(); }
}  // namespace detail

}  // namespace keelfs

#define KEELFS_CONCAT_INNER(a, b) a##b
#define KEELFS_CONCAT(a, b) KEELFS_CONCAT_INNER(a, b)

// Return the Status of `expr` from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                                           \
  do {                                                                  \
    auto&& _st = (expr);                                                \
    if (!_st.ok()) return ::keelfs::detail::status_of(_st);             \
  } while (0)

#define CO_RETURN_IF_ERROR(expr)                                        \
  do {                                                                  \
    auto&& _st = (expr);                                                \
    if (!_st.ok()) co_return ::keelfs::detail::status_of(_st);          \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, f());` declares x from a Result or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(KEELFS_CONCAT(_res, __LINE__), lhs, expr, return)
#define CO_ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(KEELFS_CONCAT(_res, __LINE__), lhs, expr, co_return)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr, ret) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) ret tmp.status();                 \
  lhs = std::move(tmp).value()
