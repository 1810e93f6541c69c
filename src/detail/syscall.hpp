// Private syscall helpers: the one EINTR-retry loop, full read/write loops and
// poll-based readiness waits with a deadline. Not installed.
#pragma once

#include <cerrno>
#include <cstddef>
#include <span>
#include <string_view>

#include "ipckit/deadline.hpp"

namespace ipckit::detail {

/// Calls f() until it does not fail with EINTR. For calls without a timeout;
/// never use it around close(2).
template <class F>
auto retry_eintr(F&& f) -> decltype(f()) {
    for (;;) {
        auto r = f();
        if (r != -1 || errno != EINTR) return r;
    }
}

/// Outcome of a wait or transfer that can legitimately end early.
enum class io_outcome { ok, timed_out, closed };

/// Waits until fd is readable (or has hung up). Returns ok / timed_out.
/// EINTR is retried with the time left recomputed. Throws on poll errors.
io_outcome wait_readable(int fd, const deadline& until, std::string_view object);
/// Waits until fd is writable; closed if the peer hung up (POLLERR/POLLHUP
/// without POLLOUT).
io_outcome wait_writable(int fd, const deadline& until, std::string_view object);

/// What kind of descriptor a write goes to; `unknown` costs an fstat per call.
enum class fd_kind { unknown, socket, other };
fd_kind kind_of(int fd) noexcept;

/// Writes all of buf, looping over partial writes and EAGAIN (waiting for
/// POLLOUT with the deadline). Sockets get send(MSG_NOSIGNAL | MSG_DONTWAIT),
/// so even a blocking socket honours the deadline; other fds get write()
/// under a sigpipe_guard (make them O_NONBLOCK for deadlines to apply).
/// EPIPE / ECONNRESET are reported as closed, never as SIGPIPE.
/// On timed_out, *written (if given) tells how much went out.
io_outcome write_all(int fd, std::span<const std::byte> buf, const deadline& until,
                     std::string_view object, std::size_t* written = nullptr,
                     fd_kind kind = fd_kind::unknown);

/// write_all for two buffers in one system call where possible (writev /
/// sendmsg): a frame header and its payload without copying them together.
io_outcome write_all2(int fd, std::span<const std::byte> first, std::span<const std::byte> second,
                      const deadline& until, std::string_view object, std::size_t* written,
                      fd_kind kind);

/// Reads exactly buf.size() bytes unless EOF comes first. Returns ok, closed
/// (EOF or reset; *got tells how many bytes arrived) or timed_out.
io_outcome read_exact(int fd, std::span<std::byte> buf, const deadline& until,
                      std::string_view object, std::size_t* got = nullptr);

/// One read of up to buf.size() bytes once readable; 0 bytes means EOF.
/// Returns timed_out when the deadline passes first. With a finite deadline it
/// polls before reading; with deadline::never on a blocking fd it is a single
/// blocking read(2) (the cheapest wait there is); on an O_NONBLOCK fd, EAGAIN
/// falls back to poll.
io_outcome read_some(int fd, std::span<std::byte> buf, const deadline& until,
                     std::string_view object, std::size_t& got);

/// Blocks SIGPIPE in the calling thread for write() on pipes/FIFOs, where
/// MSG_NOSIGNAL is not available; the SIGPIPE the write raised is consumed
/// before the previous mask is restored, so nothing is delivered later.
class sigpipe_guard {
  public:
    sigpipe_guard() noexcept;
    ~sigpipe_guard();
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;
    /// Call when the guarded write failed with EPIPE: only then is a pending
    /// SIGPIPE ours to consume (one sent by another process is left alone).
    void saw_epipe() noexcept { epipe_ = true; }

  private:
    bool epipe_ = false;
    bool was_blocked_ = false;
    bool was_pending_ = false;
};

}  // namespace ipckit::detail
