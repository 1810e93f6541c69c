// Private syscall helpers: the one EINTR-retry loop, full read/write loops and
// poll-based readiness waits with a deadline. Not installed.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <sys/uio.h>

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
enum class fd_kind { unknown, socket, pipe, other };  // pipe: a pipe or FIFO
fd_kind kind_of(int fd) noexcept;

/// The SO_RCVTIMEO / SO_SNDTIMEO a blocking socket currently has, kept by its
/// owner between calls (0: none, the kernel default). With it, a socket waits
/// for a deadline inside one blocking read or send instead of poll(2) and
/// then the call: on this VM a 64 KiB Unix-socket round trip took 1.7x as long
/// through poll. The timeout set is the time left but at most one second, so
/// a loop under one far deadline sets it once, and no call outlives its
/// deadline; a wait longer than a second just wakes and goes on. The kernel
/// rounds these timeouts up to a scheduler tick, so a socket wait may end up
/// to one tick (1-4 ms) after its deadline, never before. The values belong
/// to the socket: two owners of one socket (fork, dup) would confuse the
/// cache, so only a channel that owns its descriptor keeps one.
struct socket_timeouts {
    long long receive_us = 0;
    long long send_us = 0;
};

/// Writes all of buf, looping over partial writes and EAGAIN. A blocking
/// socket whose owner passes `timeouts` sends blocking under SO_SNDTIMEO (no
/// longer than the deadline; a deadline already passed sends MSG_DONTWAIT);
/// other sockets send MSG_NOSIGNAL | MSG_DONTWAIT and poll for POLLOUT when
/// full, so even a blocking socket honours the deadline. Other fds get write() under a
/// sigpipe_guard (make them O_NONBLOCK for deadlines to apply). EPIPE / ECONNRESET are reported as
/// closed, never as SIGPIPE. On timed_out, *written (if given) tells how much went out.
io_outcome write_all(int fd, std::span<const std::byte> buf, const deadline& until,
                     std::string_view object, std::size_t* written = nullptr,
                     fd_kind kind = fd_kind::unknown, socket_timeouts* timeouts = nullptr);

/// write_all for two buffers in one system call where possible (writev /
/// sendmsg): a frame header and its payload without copying them together.
io_outcome write_all2(int fd, std::span<const std::byte> first, std::span<const std::byte> second,
                      const deadline& until, std::string_view object, std::size_t* written,
                      fd_kind kind, socket_timeouts* timeouts = nullptr);

/// Reads exactly buf.size() bytes unless EOF comes first. Returns ok, closed
/// (EOF or reset; *got tells how many bytes arrived) or timed_out.
io_outcome read_exact(int fd, std::span<std::byte> buf, const deadline& until,
                      std::string_view object, std::size_t* got = nullptr);

/// One read of up to buf.size() bytes once readable; 0 bytes means EOF.
/// Returns timed_out when the deadline passes first. With deadline::never on a
/// blocking fd it is a single blocking read(2) (the cheapest wait there is).
/// With a finite deadline, a blocking socket whose owner passes `timeouts`
/// waits in a blocking read under SO_RCVTIMEO (see socket_timeouts); other
/// fds poll first. On an O_NONBLOCK fd, EAGAIN falls back to poll.
io_outcome read_some(int fd, std::span<std::byte> buf, const deadline& until,
                     std::string_view object, std::size_t& got, fd_kind kind = fd_kind::unknown,
                     socket_timeouts* timeouts = nullptr);
/// read_some into several buffers at once (readv): one system call fills them
/// in order, e.g. a frame header, the caller's message buffer and a spill
/// buffer for whatever follows.
io_outcome read_some_v(int fd, std::span<const ::iovec> bufs, const deadline& until,
                       std::string_view object, std::size_t& got, fd_kind kind = fd_kind::unknown,
                       socket_timeouts* timeouts = nullptr);

/// How a busy-polling reader tries an fd without waiting. Never through
/// the fd's O_NONBLOCK flag: it belongs to a file description that others
/// may share and change (a read that was to return at once would then block
/// past every deadline), and setting it would leak into them.
enum class try_read_method {
    socket_dontwait,  // recvmsg(MSG_DONTWAIT)
    rwf_nowait,       // preadv2(RWF_NOWAIT): anonymous pipes
    poll_then_read,   // poll(0), then read what it reports: FIFOs
};
try_read_method try_read_method_for(fd_kind kind) noexcept;

/// One read that does not wait: the bytes read (0 is EOF, as ECONNRESET
/// is), or nullopt when nothing is there yet. A real error throws
/// ipckit::error now: a socket's pending error is cleared by the read that
/// returns it, so a later read would not see it again. `method` turns from
/// rwf_nowait to poll_then_read where the kernel refuses RWF_NOWAIT.
std::optional<std::size_t> read_now_v(int fd, std::span<const ::iovec> bufs,
                                      try_read_method& method, std::string_view object);

/// Whether busy-polling can pay off: this thread may run on at least two
/// CPUs, so the peer it waits for can run meanwhile.
bool spinning_can_help() noexcept;

/// How long a stream or queue receive that finds nothing busy-polls before
/// it sleeps, unless the URL says otherwise (spin_us=). Longer than a reply
/// or the next message of a stream takes to come, far shorter than the time
/// slice a sleeping reader gives up.
inline constexpr std::chrono::nanoseconds default_read_spin = std::chrono::microseconds(10);

/// Busy-polling before a receive sleeps, that backs off where it does not
/// pay: run() calls attempt() (true: done) until it succeeds or the budget
/// has passed (never past `until`), pausing 250 ns between calls so that a
/// reader trying an empty pipe does not keep its lock from the writer. After
/// four spins in a row that found nothing (an idle channel, or a peer that
/// the scheduler put on this very CPU, where spinning only delays it), only
/// one receive in 64 spins, until a spin finds something again.
class adaptive_spin {
  public:
    adaptive_spin() = default;
    explicit adaptive_spin(std::chrono::nanoseconds budget) noexcept : budget_(budget) {}
    bool enabled() const noexcept { return budget_.count() > 0; }

    template <class Attempt>
    bool run(const deadline& until, Attempt&& attempt) {
        if (!enabled() || until.expired()) return false;
        if (misses_ >= kMissesBeforeBackoff && (++skipped_ % kRetryEvery) != 0) return false;
        using clock = std::chrono::steady_clock;
        constexpr std::chrono::nanoseconds gap{250};
        const auto start = clock::now();
        const auto stop =
            until.is_never() ? start + budget_ : std::min(start + budget_, until.when());
        for (;;) {
            if (attempt()) {
                misses_ = 0;
                return true;
            }
            const auto t = clock::now();
            if (t >= stop) break;
            while (clock::now() < t + gap) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
        }
        if (misses_ < kMissesBeforeBackoff) ++misses_;
        return false;
    }

  private:
    static constexpr unsigned kMissesBeforeBackoff = 4;
    static constexpr unsigned kRetryEvery = 64;
    std::chrono::nanoseconds budget_{0};
    unsigned misses_ = 0;
    unsigned skipped_ = 0;
};

/// A kernel setting from /proc (e.g. "/proc/sys/kernel/msgmni"); -1 when it
/// cannot be read.
long read_proc_long(const char* path) noexcept;
/// "<path> = <value>" (or "= unknown"), for errors that name the limit hit.
std::string proc_setting(const char* path);

/// Records that the application set SIGPIPE to SIG_IGN process-wide
/// (ipckit::ignore_sigpipe_process_wide): sigpipe_guard then does nothing.
void note_sigpipe_ignored() noexcept;

/// Blocks SIGPIPE in the calling thread for write() on pipes/FIFOs, where
/// MSG_NOSIGNAL is not available; the SIGPIPE the write raised is consumed
/// before the previous mask is restored, so nothing is delivered later.
class sigpipe_guard {
  public:
    sigpipe_guard() noexcept;
    ~sigpipe_guard();
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;
    /// Call with the guarded write's result (errno intact) and the bytes it
    /// was asked for. A write fails with EPIPE and raises SIGPIPE when the
    /// last reader is gone, but one that had already moved some bytes returns
    /// that short count and raises SIGPIPE all the same (a reader closing
    /// during a blocked large write). Only after one of those is a pending
    /// SIGPIPE ours to consume; one sent by another process at another time
    /// is left alone.
    void after_write(long result, std::size_t wanted) noexcept {
        if ((result < 0 && errno == EPIPE) ||
            (result >= 0 && static_cast<std::size_t>(result) < wanted))
            write_may_have_raised_ = true;
    }

  private:
    bool active_ = false;  // false: SIGPIPE is ignored process-wide
    bool write_may_have_raised_ = false;
    bool was_blocked_ = false;
    bool was_pending_ = false;
};

}  // namespace ipckit::detail
