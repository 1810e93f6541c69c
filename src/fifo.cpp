#include "ipckit/fifo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {
namespace {

std::string object(const std::string& path) {
    return "fifo:" + path;
}

// The object at path must be a FIFO we own, and must not be a symlink.
void check_existing(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) throw_errno("lstat", object(path));
    if (S_ISLNK(st.st_mode))
        throw_error(ELOOP, "open", object(path), "path is a symbolic link; refusing to follow it");
    if (!S_ISFIFO(st.st_mode))
        throw_error(EEXIST, "open", object(path), "something that is not a FIFO is at this path");
    if (st.st_uid != ::geteuid())
        throw_error(EPERM, "open", object(path),
                    "FIFO is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                        std::to_string(::geteuid()));
}

void check_is_fifo(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) throw_errno("fstat", object(path));
    if (!S_ISFIFO(st.st_mode)) throw_error(EINVAL, "open", object(path), "not a FIFO");
}

}  // namespace

bool create_fifo(const std::string& path, open_mode how, unsigned mode) {
    if (path.empty()) throw_error(EINVAL, "mkfifo", object(path), "empty path");
    if (how == open_mode::open_only) {
        check_existing(path);
        return false;
    }
    // Create with no permissions for others whatever the umask, then set the
    // exact mode; the window in between grants nothing to anyone else.
    // Fix (foundation tests): the owner bits are granted from the start. With
    // mode 0, a sender of the same (non-root) user that opened the FIFO in
    // that window failed with EACCES.
    if (::mkfifo(path.c_str(), mode & 0700) == 0) {
        // fchmod on the FIFO itself, opened without following symlinks: a
        // chmod(path) could be redirected if the FIFO were swapped for a link.
        int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        int e = 0;
        if (fd < 0) e = errno;
        unique_fd owned(fd);
        struct stat st {};
        if (e == 0 && ::fstat(fd, &st) < 0) e = errno;
        if (e == 0 && !S_ISFIFO(st.st_mode)) e = EINVAL;
        if (e == 0 && ::fchmod(fd, mode & 07777) < 0) e = errno;
        if (e != 0) {
            ::unlink(path.c_str());
            throw_error(e, "chmod", object(path));
        }
        return true;
    }
    if (errno != EEXIST || how == open_mode::create_only) throw_errno("mkfifo", object(path));
    check_existing(path);
    return false;
}

unique_fd open_fifo_reader(const std::string& path, open_mode how, unsigned mode) {
    if (how == open_mode::open_only)
        check_existing(path);
    else
        create_fifo(path, how, mode);
    int fd = detail::retry_eintr(
        [&] { return ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW); });
    if (fd < 0) throw_errno("open", object(path));
    unique_fd owned(fd);
    check_is_fifo(fd, path);
    return owned;
}

std::optional<unique_fd> open_fifo_writer(const std::string& path, const deadline& until) {
    long backoff_us = 100;
    for (;;) {
        int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            unique_fd owned(fd);
            check_is_fifo(fd, path);
            return owned;
        }
        if (errno == EINTR) continue;
        if (errno == ELOOP)
            throw_error(ELOOP, "open", object(path),
                        "path is a symbolic link; refusing to follow it");
        if (errno != ENXIO) throw_errno("open", object(path));
        // ENXIO: no reader yet.
        if (until.expired()) return std::nullopt;
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(until.remaining());
        long sleep_us = std::min<long>(backoff_us, std::max<long>(1, left.count()));
        timespec ts{0, sleep_us * 1000};
        ::nanosleep(&ts, nullptr);
        backoff_us = std::min<long>(backoff_us * 2, 10'000);
    }
}

bool remove_fifo(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
        if (errno == ENOENT) return false;
        throw_errno("lstat", object(path));
    }
    if (!S_ISFIFO(st.st_mode)) throw_error(EINVAL, "remove", object(path), "not a FIFO");
    if (::unlink(path.c_str()) < 0) {
        if (errno == ENOENT) return false;
        throw_errno("unlink", object(path));
    }
    return true;
}

fifo_remover::~fifo_remover() {
    if (path_.empty()) return;
    try {
        remove_fifo(path_);
    } catch (...) {
    }
}

}  // namespace ipckit
