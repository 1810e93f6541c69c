#include "ipckit/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "ipckit/error.hpp"

namespace ipckit {

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);  // never retried: see class comment
    fd_ = fd;
}

void set_nonblocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) throw_errno("fcntl(F_GETFL)", "fd " + std::to_string(fd));
    int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0)
        throw_errno("fcntl(F_SETFL)", "fd " + std::to_string(fd));
}

unique_fd dup_cloexec(int fd) {
    int r = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (r < 0) throw_errno("dup", "fd " + std::to_string(fd));
    return unique_fd(r);
}

}  // namespace ipckit
