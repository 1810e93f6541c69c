// ipckit error model: failures throw ipckit::error; routine outcomes are values.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace ipckit {

/// A failed operation on a named object. what() reads
/// "<operation> <object>: <reason>", e.g. "mq_open /jobs: Permission denied";
/// code() keeps the errno (std::generic_category) or another error code.
class error : public std::system_error {
  public:
    error(int errno_value, std::string_view operation, std::string_view object);
    error(std::error_code code, std::string_view operation, std::string_view object,
          std::string_view detail = {});

    /// The failed operation, e.g. "open" or "mq_send".
    const std::string& operation() const noexcept { return operation_; }
    /// The object it was applied to, e.g. "fifo:/tmp/x" (may be empty).
    const std::string& object() const noexcept { return object_; }
    /// "<operation> <object>: <reason>[ (<detail>)]".
    const char* what() const noexcept override { return what_.c_str(); }

  private:
    std::string operation_;
    std::string object_;
    std::string what_;
};

/// Throws ipckit::error built from the current errno.
[[noreturn]] void throw_errno(std::string_view operation, std::string_view object);

/// Throws ipckit::error for errno_value, appending detail to the reason
/// (e.g. "Message too long (message is 9000 bytes, queue msgsize is 8192)").
[[noreturn]] void throw_error(int errno_value, std::string_view operation, std::string_view object,
                              std::string_view detail = {});

}  // namespace ipckit
