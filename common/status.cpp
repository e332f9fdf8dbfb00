#include "common/status.h"

#include <cerrno>

namespace keelfs {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NotFound";
    case Code::kExists: return "Exists";
    case Code::kNotDir: return "NotADirectory";
    case Code::kIsDir: return "IsADirectory";
    case Code::kNotEmpty: return "NotEmpty";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kNoSpace: return "NoSpace";
    case Code::kQuotaExceeded: return "QuotaExceeded";
    case Code::kIOError: return "IOError";
    case Code::kCorruption: return "Corruption";
    case Code::kUnavailable: return "Unavailable";
    case Code::kTimeout: return "Timeout";
    case Code::kProtocol: return "ProtocolError";
    case Code::kStaleVersion: return "StaleVersion";
    case Code::kNameTooLong: return "NameTooLong";
    case Code::kBusy: return "Busy";
    case Code::kNotSupported: return "NotSupported";
    case Code::kInternal: return "Internal";
    case Code::kNoData: return "NoData";
    case Code::kLoop: return "Loop";
    case Code::kTooManyLinks: return "TooManyLinks";
    case Code::kWouldBlock: return "WouldBlock";
    case Code::kCrossDevice: return "CrossDevice";
    case Code::kNoSession: return "NoSession";
  }
  return "Unknown";
}

int code_to_errno(Code code) {
  switch (code) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kPermissionDenied: return EACCES;
    case Code::kNoSpace: return ENOSPC;
    case Code::kQuotaExceeded: return EDQUOT;
    case Code::kCorruption: return EIO;
    case Code::kIOError: return EIO;
    case Code::kUnavailable: return EIO;
    case Code::kTimeout: return ETIMEDOUT;
    case Code::kProtocol: return EPROTO;
    case Code::kStaleVersion: return EAGAIN;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kBusy: return EBUSY;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kInternal: return EIO;
    case Code::kNoData: return ENODATA;
    case Code::kLoop: return EINVAL;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kWouldBlock: return EAGAIN;
    case Code::kCrossDevice: return EXDEV;
    case Code::kNoSession: return EACCES;
  }
  return EIO;
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(code_name(code_)) + ": " + message_;
}

}  // namespace keelfs
