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

std::string owner_text(uid_t uid) {
    return "FIFO is owned by uid " + std::to_string(uid) + ", not by uid " +
           std::to_string(::geteuid());
}

// The object at path must be a FIFO we own, and must not be a symlink. This
// gives the clear message; what protects is check_opened on the descriptor.
void check_existing(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) throw_errno("lstat", object(path));
    if (S_ISLNK(st.st_mode))
        throw_error(ELOOP, "open", object(path), "path is a symbolic link; refusing to follow it");
    if (!S_ISFIFO(st.st_mode))
        throw_error(EEXIST, "open", object(path), "something that is not a FIFO is at this path");
    if (st.st_uid != ::geteuid()) throw_error(EPERM, "open", object(path), owner_text(st.st_uid));
}

// What was actually opened: a FIFO and, for a reader (the owner's side), one
// owned by our euid. Checked on the descriptor, so a FIFO swapped in after
// check_existing's lstat is refused too.
struct stat check_opened(int fd, const std::string& path, bool must_own) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) throw_errno("fstat", object(path));
    if (!S_ISFIFO(st.st_mode)) throw_error(EINVAL, "open", object(path), "not a FIFO");
    if (must_own && st.st_uid != ::geteuid())
        throw_error(EPERM, "open", object(path), owner_text(st.st_uid));
    return st;
}

std::string proc_fd_path(int fd) {
    return "/proc/self/fd/" + std::to_string(fd);
}

// Sets the mode of the FIFO that `fd` (an O_PATH descriptor) refers to. fchmod
// does not work on O_PATH descriptors, and chmod(path) could be redirected if
// the FIFO were swapped for a symlink: chmod through /proc/self/fd/N reaches
// exactly the inode we opened. Without /proc, fchmodat(AT_SYMLINK_NOFOLLOW)
// on the path refuses a symlink, and the mode read back through fd proves it
// reached our FIFO. Returns 0 or an errno.
int set_mode(int fd, const std::string& path, mode_t mode) {
    if (::chmod(proc_fd_path(fd).c_str(), mode) == 0) return 0;
    if (errno != ENOENT) return errno;
    if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) < 0) return errno;
    struct stat st {};
    if (::fstat(fd, &st) < 0) return errno;
    return (st.st_mode & 07777) == mode ? 0 : EAGAIN;
}

// mkfifo + exact mode. On success *created is the FIFO, held by an O_PATH
// descriptor (no permission needed, nothing opened for I/O); a FIFO that was
// already there is checked and `created` stays empty.
bool create_or_check(const std::string& path, open_mode how, unsigned mode, unique_fd* created) {
    if (path.empty()) throw_error(EINVAL, "mkfifo", object(path), "empty path");
    if (how == open_mode::open_only) {
        check_existing(path);
        return false;
    }
    // Create with no permissions for others whatever the umask, then set the
    // exact mode; the window in between grants nothing to anyone else. The
    // owner bits are asked for from the start (a sender of the same user
    // opening in that window would otherwise fail with EACCES), but the umask
    // may still take them away (umask 0477, 0777): the FIFO is therefore
    // reached with O_PATH, which needs no read or write permission, never by
    // opening it for reading.
    if (::mkfifo(path.c_str(), mode & 0700) == 0) {
        int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        int e = 0;
        if (fd < 0) e = errno;
        unique_fd owned(fd);
        struct stat st {};
        if (e == 0 && ::fstat(fd, &st) < 0) e = errno;
        if (e == 0 && (!S_ISFIFO(st.st_mode) || st.st_uid != ::geteuid())) e = EAGAIN;
        if (e == 0) e = set_mode(fd, path, static_cast<mode_t>(mode & 07777));
        if (e != 0) {
            // EAGAIN: the path no longer names the FIFO we made; leave alone
            // whatever is there now.
            if (e != EAGAIN) ::unlink(path.c_str());
            throw_error(e, "chmod", object(path),
                        e == EAGAIN ? "the FIFO was replaced while it was being created" : "");
        }
        if (created) *created = std::move(owned);
        return true;
    }
    if (errno != EEXIST || how == open_mode::create_only) throw_errno("mkfifo", object(path));
    check_existing(path);
    return false;
}

}  // namespace

bool create_fifo(const std::string& path, open_mode how, unsigned mode) {
    return create_or_check(path, how, mode, nullptr);
}

unique_fd open_fifo_reader(const std::string& path, open_mode how, unsigned mode) {
    unique_fd created;
    create_or_check(path, how, mode, &created);
    constexpr int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
    int fd = -1;
    if (created) {
        // Reopen the FIFO just made through its O_PATH descriptor rather than
        // by path: nothing can be swapped in between.
        fd =
            detail::retry_eintr([&] { return ::open(proc_fd_path(created.get()).c_str(), flags); });
        if (fd < 0 && errno != ENOENT) throw_errno("open", object(path));
    }
    if (fd < 0)  // an existing FIFO, or no /proc: by path, checked below
        fd = detail::retry_eintr([&] { return ::open(path.c_str(), flags | O_NOFOLLOW); });
    if (fd < 0) {
        if (errno == ELOOP)
            throw_error(ELOOP, "open", object(path),
                        "path is a symbolic link; refusing to follow it");
        throw_errno("open", object(path));
    }
    unique_fd owned(fd);
    struct stat st = check_opened(fd, path, true);
    if (created) {
        struct stat mine {};
        if (::fstat(created.get(), &mine) < 0) throw_errno("fstat", object(path));
        if (mine.st_dev != st.st_dev || mine.st_ino != st.st_ino)
            throw_error(EAGAIN, "open", object(path),
                        "the FIFO was replaced while it was being opened");
    }
    return owned;
}

std::optional<unique_fd> open_fifo_writer(const std::string& path, const deadline& until) {
    long backoff_us = 100;
    for (;;) {
        int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            unique_fd owned(fd);
            check_opened(fd, path, false);  // a writer may use another user's FIFO
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
