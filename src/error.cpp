#include "ipckit/error.hpp"

#include <cerrno>

namespace ipckit {

error::error(int errno_value, std::string_view operation, std::string_view object)
    : error(std::error_code(errno_value, std::generic_category()), operation, object) {}

error::error(std::error_code code, std::string_view operation, std::string_view object,
             std::string_view detail)
    : std::system_error(code), operation_(operation), object_(object) {
    what_ = operation_;
    if (!object_.empty()) {
        what_ += ' ';
        what_ += object_;
    }
    what_ += ": ";
    what_ += code.message();
    if (!detail.empty()) {
        what_ += " (";
        what_ += detail;
        what_ += ')';
    }
}

void throw_errno(std::string_view operation, std::string_view object) {
    throw error(errno, operation, object);
}

void throw_error(int errno_value, std::string_view operation, std::string_view object,
                 std::string_view detail) {
    throw error(std::error_code(errno_value, std::generic_category()), operation, object, detail);
}

}  // namespace ipckit
