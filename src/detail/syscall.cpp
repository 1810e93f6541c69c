#include "detail/syscall.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include "ipckit/error.hpp"

namespace ipckit::detail {
namespace {

io_outcome wait_for(int fd, short events, const deadline& until, std::string_view object,
                    short* revents_out) {
    for (;;) {
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, until.poll_timeout_ms());
        if (r < 0) {
            if (errno == EINTR) continue;  // time left is recomputed on the next turn
            throw_errno("poll", object);
        }
        if (r == 0) {
            if (until.expired()) return io_outcome::timed_out;
            continue;  // woke up early (rounding): wait for the rest
        }
        if (p.revents & POLLNVAL) throw_error(EBADF, "poll", object);
        if (revents_out) *revents_out = p.revents;
        return io_outcome::ok;
    }
}

bool is_nonblocking(int fd) noexcept {
    int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// Gives the socket a timeout (SO_RCVTIMEO / SO_SNDTIMEO) for its next blocking
// call under `until`: never more than the time left, one second while more is
// left. A setsockopt only when the current value would overshoot the deadline
// or is needlessly short. False if the socket refuses (then poll instead).
bool arm_socket_timeout(int fd, int option, const deadline& until, long long& current_us) {
    using std::chrono::duration_cast;
    using std::chrono::microseconds;
    const long long left =
        std::max<long long>(1, duration_cast<microseconds>(until.remaining()).count());
    const long long want = std::min<long long>(left, 1'000'000);
    if (current_us != 0 && current_us <= left && current_us >= want / 2) return true;
    timeval tv{static_cast<time_t>(want / 1'000'000), static_cast<suseconds_t>(want % 1'000'000)};
    if (::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) != 0) return false;
    current_us = want;
    return true;
}

// For a call without deadline: no timeout at all. A leftover short one (a
// deadline that had almost run out) would wake the call every few ms.
void disarm_socket_timeout(int fd, int option, long long& current_us) {
    if (current_us == 0) return;
    timeval tv{};
    if (::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) == 0) current_us = 0;
}

}  // namespace

fd_kind kind_of(int fd) noexcept {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fd_kind::other;
    return S_ISSOCK(st.st_mode)   ? fd_kind::socket
           : S_ISFIFO(st.st_mode) ? fd_kind::pipe
                                  : fd_kind::other;
}

io_outcome wait_readable(int fd, const deadline& until, std::string_view object) {
    return wait_for(fd, POLLIN, until, object, nullptr);
}

io_outcome wait_writable(int fd, const deadline& until, std::string_view object) {
    short revents = 0;
    auto r = wait_for(fd, POLLOUT, until, object, &revents);
    if (r == io_outcome::ok && !(revents & POLLOUT) && (revents & (POLLERR | POLLHUP)))
        return io_outcome::closed;
    return r;
}

io_outcome write_all(int fd, std::span<const std::byte> buf, const deadline& until,
                     std::string_view object, std::size_t* written, fd_kind kind,
                     socket_timeouts* timeouts) {
    return write_all2(fd, buf, {}, until, object, written, kind, timeouts);
}

io_outcome write_all2(int fd, std::span<const std::byte> first, std::span<const std::byte> second,
                      const deadline& until, std::string_view object, std::size_t* written,
                      fd_kind kind, socket_timeouts* timeouts) {
    const bool sock = (kind == fd_kind::unknown ? kind_of(fd) : kind) == fd_kind::socket;
    // A socket whose owner keeps its timeouts sends blocking under
    // SO_SNDTIMEO (see socket_timeouts): MSG_DONTWAIT first would cost a
    // second sendmsg for every message of a stream that keeps it full. Only
    // a deadline already passed (a try) never blocks.
    bool blocking_send = sock && timeouts != nullptr && !until.expired();
    const std::size_t total = first.size() + second.size();
    std::size_t done = 0;
    auto report = [&](io_outcome o) {
        if (written) *written = done;
        return o;
    };
    while (done < total) {
        iovec iov[2];
        int count = 0;
        if (done < first.size()) {
            iov[count++] = {const_cast<std::byte*>(first.data() + done), first.size() - done};
            if (!second.empty())
                iov[count++] = {const_cast<std::byte*>(second.data()), second.size()};
        } else {
            std::size_t off = done - first.size();
            iov[count++] = {const_cast<std::byte*>(second.data() + off), second.size() - off};
        }
        ssize_t n;
        if (sock) {
            msghdr mh{};
            mh.msg_iov = iov;
            mh.msg_iovlen = static_cast<std::size_t>(count);
            // Re-armed before every blocking send: never past the deadline.
            if (blocking_send && !until.is_never())
                blocking_send = arm_socket_timeout(fd, SO_SNDTIMEO, until, timeouts->send_us);
            else if (blocking_send)
                disarm_socket_timeout(fd, SO_SNDTIMEO, timeouts->send_us);
            n = ::sendmsg(fd, &mh, blocking_send ? MSG_NOSIGNAL : MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            sigpipe_guard guard;
            n = count == 1 ? ::write(fd, iov[0].iov_base, iov[0].iov_len)
                           : ::writev(fd, iov, count);
            guard.after_write(n, iov[0].iov_len + (count > 1 ? iov[1].iov_len : 0));
        }
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        switch (errno) {
            case EINTR:
                continue;
            case EAGAIN: {
                if (until.expired()) return report(io_outcome::timed_out);
                // Full: wait in a blocking send (again, if a one-second slice
                // ran out), unless the fd is O_NONBLOCK or refused a timeout.
                if (sock && timeouts && !is_nonblocking(fd) &&
                    (blocking_send || until.is_never() ||
                     arm_socket_timeout(fd, SO_SNDTIMEO, until, timeouts->send_us))) {
                    blocking_send = true;
                    continue;
                }
                blocking_send = false;
                auto w = wait_writable(fd, until, object);
                if (w != io_outcome::ok) return report(w);
                continue;
            }
            case EPIPE:
            case ECONNRESET:
                return report(io_outcome::closed);
            default:
                throw_errno("write", object);
        }
    }
    return report(io_outcome::ok);
}

io_outcome read_some(int fd, std::span<std::byte> buf, const deadline& until,
                     std::string_view object, std::size_t& got, fd_kind kind,
                     socket_timeouts* timeouts) {
    const ::iovec one{buf.data(), buf.size()};
    return read_some_v(fd, std::span(&one, 1), until, object, got, kind, timeouts);
}

io_outcome read_some_v(int fd, std::span<const ::iovec> bufs, const deadline& until,
                       std::string_view object, std::size_t& got, fd_kind kind,
                       socket_timeouts* timeouts) {
    got = 0;
    // A blocking fd must not block past a finite deadline: a socket whose
    // owner keeps its timeouts waits in the read itself (SO_RCVTIMEO), any
    // other fd polls first.
    const bool timed_socket = kind == fd_kind::socket && timeouts != nullptr;
    if (timed_socket && until.is_never())
        disarm_socket_timeout(fd, SO_RCVTIMEO, timeouts->receive_us);
    if (!until.is_never()) {
        if (!timed_socket || until.expired() ||
            !arm_socket_timeout(fd, SO_RCVTIMEO, until, timeouts->receive_us)) {
            auto w = wait_readable(fd, until, object);
            if (w != io_outcome::ok) return w;
        }
    }
    for (;;) {
        ssize_t n = bufs.size() == 1 ? ::read(fd, bufs[0].iov_base, bufs[0].iov_len)
                                     : ::readv(fd, bufs.data(), static_cast<int>(bufs.size()));
        if (n >= 0) {
            got = static_cast<std::size_t>(n);
            return io_outcome::ok;
        }
        if (errno == EINTR) {
            // A signal ends a read under SO_RCVTIMEO even with SA_RESTART:
            // re-arm for what is left, or signals could keep it from ever
            // timing out.
            if (until.is_never() || !timed_socket) continue;
            if (until.expired()) return io_outcome::timed_out;
            if (arm_socket_timeout(fd, SO_RCVTIMEO, until, timeouts->receive_us)) continue;
            auto w = wait_readable(fd, until, object);
            if (w != io_outcome::ok) return w;
            continue;
        }
        if (errno == ECONNRESET) return io_outcome::ok;  // reset reads as EOF (got == 0)
        if (errno != EAGAIN) throw_errno("read", object);
        if (until.expired()) return io_outcome::timed_out;
        // A one-second receive timeout ran out: wait again (armed for what
        // is left). An O_NONBLOCK fd has no timeout to wait in: poll.
        if (timed_socket && !is_nonblocking(fd) &&
            (until.is_never() || arm_socket_timeout(fd, SO_RCVTIMEO, until, timeouts->receive_us)))
            continue;
        auto w = wait_readable(fd, until, object);
        if (w != io_outcome::ok) return w;
    }
}

try_read_method try_read_method_for(fd_kind kind) noexcept {
    if (kind == fd_kind::socket) return try_read_method::socket_dontwait;
    if (kind == fd_kind::pipe) return try_read_method::rwf_nowait;
    return try_read_method::poll_then_read;
}

std::optional<std::size_t> read_now_v(int fd, std::span<const ::iovec> bufs,
                                      try_read_method& method, std::string_view object) {
    const int count = static_cast<int>(bufs.size());
    ssize_t n = -1;
    switch (method) {
        case try_read_method::socket_dontwait: {
            msghdr mh{};
            mh.msg_iov = const_cast<::iovec*>(bufs.data());
            mh.msg_iovlen = bufs.size();
            n = ::recvmsg(fd, &mh, MSG_DONTWAIT);
            break;
        }
        case try_read_method::rwf_nowait:
            n = ::preadv2(fd, bufs.data(), count, -1, RWF_NOWAIT);
            if (n < 0 && errno == EOPNOTSUPP) {  // a FIFO: no RWF_NOWAIT there
                method = try_read_method::poll_then_read;
                return read_now_v(fd, bufs, method, object);
            }
            break;
        case try_read_method::poll_then_read: {
            pollfd p{fd, POLLIN, 0};
            const int r = ::poll(&p, 1, 0);
            if (r < 0 && errno != EINTR) throw_errno("poll", object);
            if (r <= 0) return std::nullopt;
            if (p.revents & POLLNVAL) throw_error(EBADF, "poll", object);
            // Readable (or hung up: the read returns 0), so it cannot wait,
            // unless another reader of the same pipe takes the bytes first,
            // as after any poll.
            n = count == 1 ? ::read(fd, bufs[0].iov_base, bufs[0].iov_len)
                           : ::readv(fd, bufs.data(), count);
            break;
        }
    }
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    if (errno == ECONNRESET) return 0;
    throw_errno("read", object);
}

bool spinning_can_help() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return false;
    return CPU_COUNT(&set) >= 2;
}

io_outcome read_exact(int fd, std::span<std::byte> buf, const deadline& until,
                      std::string_view object, std::size_t* got) {
    std::size_t done = 0;
    while (done < buf.size()) {
        std::size_t n = 0;
        auto r = read_some(fd, buf.subspan(done), until, object, n);
        if (r != io_outcome::ok) {
            if (got) *got = done;
            return r;
        }
        if (n == 0) {
            if (got) *got = done;
            return io_outcome::closed;
        }
        done += n;
    }
    if (got) *got = done;
    return io_outcome::ok;
}

namespace {
std::atomic<bool> sigpipe_ignored{false};
}  // namespace

void note_sigpipe_ignored() noexcept {
    sigpipe_ignored.store(true, std::memory_order_relaxed);
}

sigpipe_guard::sigpipe_guard() noexcept {
    if (sigpipe_ignored.load(std::memory_order_relaxed)) return;
    active_ = true;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    was_blocked_ = sigismember(&old, SIGPIPE) == 1;
    // Only a caller that already blocks SIGPIPE can have one pending; look
    // only then, so the common path costs two sigprocmask calls.
    if (was_blocked_) {
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
}

sigpipe_guard::~sigpipe_guard() {
    if (!active_) return;
    const int saved_errno = errno;  // callers inspect the write's errno afterwards
    if (write_may_have_raised_ && !was_pending_) {
        // Consume the SIGPIPE our write raised so it is not delivered on unblock.
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        timespec zero{0, 0};
        while (sigtimedwait(&pipe_only, nullptr, &zero) == -1 && errno == EINTR) {
        }
    }
    if (!was_blocked_) {
        sigset_t unblock;
        sigemptyset(&unblock);
        sigaddset(&unblock, SIGPIPE);
        pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
    }
    errno = saved_errno;
}

long read_proc_long(const char* path) noexcept {
    std::FILE* f = std::fopen(path, "re");
    if (!f) return -1;
    long v = -1;
    if (std::fscanf(f, "%ld", &v) != 1) v = -1;
    std::fclose(f);
    return v;
}

std::string proc_setting(const char* path) {
    const long v = read_proc_long(path);
    return std::string(path) + " = " + (v < 0 ? std::string("unknown") : std::to_string(v));
}

}  // namespace ipckit::detail
