// Owning file descriptor.
#pragma once

#include <utility>

namespace ipckit {

/// Move-only owner of a file descriptor; closes it in the destructor.
/// close() errors are ignored (EINTR must not be retried on Linux: the fd is
/// already gone).
class unique_fd {
  public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    /// Gives up ownership; the caller closes the returned fd.
    int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the current fd (if any) and takes ownership of fd.
    void reset(int fd = -1) noexcept;

  private:
    int fd_ = -1;
};

/// Sets or clears O_NONBLOCK on fd. Throws ipckit::error on failure.
void set_nonblocking(int fd, bool on);

/// Duplicates fd with FD_CLOEXEC set (F_DUPFD_CLOEXEC).
unique_fd dup_cloexec(int fd);

}  // namespace ipckit
