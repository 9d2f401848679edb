// Copyright (c) glint authors.
//
// Status: the result of every glint call that can fail. Errors are values,
// never exceptions. A Status is cheap to copy when ok() (no allocation).
//
// Thread safety: a Status is a value; distinct objects may be used from
// distinct threads without synchronisation.

#ifndef GLINT_STATUS_H_
#define GLINT_STATUS_H_

#include <memory>
#include <string>
#include <string_view>

namespace glint {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,   // a bad argument: size, name, metadata, id, option
  kNotFound = 2,          // no such object or key (Delete, GetObjectInfo,
                          // GetMetadata; a Get answers kTimedOut instead)
  kAlreadyExists = 3,     // id or name taken by a live object
  kOutOfMemory = 4,       // the data heap or the object table is full
  kTimedOut = 5,          // a Get did not find a sealed object in time
  kAborted = 6,           // a build of the object was aborted (or its
                          // builder died) while we waited
  kTooManyClients = 7,    // every client slot of the store is taken
  kNotConnected = 8,      // no store serves that path, or the client is unusable
  kIncompatible = 9,      // the region has another magic or layout version
  kCorrupt = 10,          // the region fails a consistency check
  kPermissionDenied = 11, // the OS refused access (socket, region file)
  kIOError = 12,          // any other OS-level failure
  kFailedPrecondition = 13,  // a call on an object in the wrong state
                             // (seal twice, resize after seal)
};

// Returns the name of a code, e.g. "InvalidArgument".
const char* StatusCodeName(StatusCode code);

class Status {
 public:
  // An OK status.
  Status() noexcept = default;
  Status(StatusCode code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&& other) noexcept = default;
  Status& operator=(Status&& other) noexcept = default;

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(StatusCode::kInvalidArgument, msg);
  }
  static Status NotFound(std::string_view msg) {
    return Status(StatusCode::kNotFound, msg);
  }
  static Status AlreadyExists(std::string_view msg) {
    return Status(StatusCode::kAlreadyExists, msg);
  }
  static Status OutOfMemory(std::string_view msg) {
    return Status(StatusCode::kOutOfMemory, msg);
  }
  static Status TimedOut(std::string_view msg) {
    return Status(StatusCode::kTimedOut, msg);
  }
  static Status Aborted(std::string_view msg) {
    return Status(StatusCode::kAborted, msg);
  }
  static Status TooManyClients(std::string_view msg) {
    return Status(StatusCode::kTooManyClients, msg);
  }
  static Status NotConnected(std::string_view msg) {
    return Status(StatusCode::kNotConnected, msg);
  }
  static Status Incompatible(std::string_view msg) {
    return Status(StatusCode::kIncompatible, msg);
  }
  static Status Corrupt(std::string_view msg) {
    return Status(StatusCode::kCorrupt, msg);
  }
  static Status PermissionDenied(std::string_view msg) {
    return Status(StatusCode::kPermissionDenied, msg);
  }
  static Status IOError(std::string_view msg) {
    return Status(StatusCode::kIOError, msg);
  }
  static Status FailedPrecondition(std::string_view msg) {
    return Status(StatusCode::kFailedPrecondition, msg);
  }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // Empty when ok().
  const std::string& message() const;
  // "OK" or "<CodeName>: <message>".
  std::string ToString() const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

}  // namespace glint

#endif  // GLINT_STATUS_H_
