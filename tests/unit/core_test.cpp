// Core types: unique_fd, ipckit::error, deadline, and the syscall helpers.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <thread>

#include "detail/syscall.hpp"
#include "ipckit/deadline.hpp"
#include "ipckit/error.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/signal.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

bool fd_is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

int open_devnull() {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_errno("open", "/dev/null");
    return fd;
}

std::span<const std::byte> bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

}  // namespace

// ---- unique_fd -------------------------------------------------------------------------

TEST(UniqueFd, DefaultIsInvalid) {
    unique_fd fd;
    EXPECT_FALSE(fd.valid());
    EXPECT_FALSE(fd);
    EXPECT_EQ(fd.get(), -1);
    EXPECT_EQ(fd.release(), -1);
}

TEST(UniqueFd, ClosesInDestructor) {
    int raw = open_devnull();
    {
        unique_fd fd(raw);
        EXPECT_TRUE(fd);
        EXPECT_EQ(fd.get(), raw);
    }
    EXPECT_FALSE(fd_is_open(raw));
}

TEST(UniqueFd, MoveTransfersOwnership) {
    int raw = open_devnull();
    unique_fd a(raw);
    unique_fd b(std::move(a));
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    EXPECT_EQ(b.get(), raw);
    int other = open_devnull();
    unique_fd c(other);
    c = std::move(b);  // closes c's old fd, takes raw
    EXPECT_FALSE(fd_is_open(other));
    EXPECT_EQ(c.get(), raw);
    EXPECT_TRUE(fd_is_open(raw));
    auto& self = c;
    c = std::move(self);  // self-move keeps the fd
    EXPECT_EQ(c.get(), raw);
    EXPECT_TRUE(fd_is_open(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnership) {
    int raw = open_devnull();
    {
        unique_fd fd(raw);
        EXPECT_EQ(fd.release(), raw);
        EXPECT_FALSE(fd.valid());
    }
    EXPECT_TRUE(fd_is_open(raw));
    ::close(raw);
}

TEST(UniqueFd, ResetClosesTheOldAndKeepsTheSame) {
    int a = open_devnull();
    int b = open_devnull();
    unique_fd fd(a);
    fd.reset(b);
    EXPECT_FALSE(fd_is_open(a));
    EXPECT_EQ(fd.get(), b);
    fd.reset(b);  // resetting to the fd it holds must not close it
    EXPECT_TRUE(fd_is_open(b));
    fd.reset();
    EXPECT_FALSE(fd_is_open(b));
    EXPECT_FALSE(fd.valid());
}

TEST(UniqueFd, DupCloexecAndNonblocking) {
    unique_fd src(open_devnull());
    unique_fd dup = dup_cloexec(src.get());
    EXPECT_NE(dup.get(), src.get());
    EXPECT_TRUE(::fcntl(dup.get(), F_GETFD) & FD_CLOEXEC);
    set_nonblocking(dup.get(), true);
    EXPECT_TRUE(::fcntl(dup.get(), F_GETFL) & O_NONBLOCK);
    set_nonblocking(dup.get(), false);
    EXPECT_FALSE(::fcntl(dup.get(), F_GETFL) & O_NONBLOCK);
    try {
        dup_cloexec(-1);
        FAIL() << "dup of -1 succeeded";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), EBADF);
        EXPECT_EQ(e.operation(), "dup");
        EXPECT_EQ(e.object(), "fd -1");
    }
    EXPECT_THROW(set_nonblocking(-1, true), ipckit::error);
}

static_assert(!std::is_copy_constructible_v<unique_fd>);
static_assert(!std::is_copy_assignable_v<unique_fd>);
static_assert(std::is_nothrow_move_constructible_v<unique_fd>);
static_assert(std::is_nothrow_move_assignable_v<unique_fd>);

// ---- ipckit::error ---------------------------------------------------------------------------

TEST(Error, WhatNamesOperationObjectAndReason) {
    ipckit::error e(EACCES, "mq_open", "/jobs");
    EXPECT_STREQ(e.what(), (std::string("mq_open /jobs: ") + std::strerror(EACCES)).c_str());
    EXPECT_EQ(e.code(), std::error_code(EACCES, std::generic_category()));
    EXPECT_EQ(e.code().value(), EACCES);
    EXPECT_EQ(e.operation(), "mq_open");
    EXPECT_EQ(e.object(), "/jobs");
    const std::system_error& base = e;  // catchable as the standard type
    EXPECT_EQ(base.code().value(), EACCES);
}

TEST(Error, EmptyObjectAndDetail) {
    ipckit::error e(std::error_code(EMSGSIZE, std::generic_category()), "send", "",
                    "message is 9000 bytes, msgsize is 8192");
    EXPECT_EQ(std::string(e.what()), std::string("send: ") + std::strerror(EMSGSIZE) +
                                         " (message is 9000 bytes, msgsize is 8192)");
    EXPECT_EQ(e.object(), "");
}

TEST(Error, ThrowHelpers) {
    errno = ENOENT;
    try {
        throw_errno("open", "fifo:/nowhere");
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_STREQ(e.what(), "open fifo:/nowhere: No such file or directory");
    }
    try {
        throw_error(EPERM, "kill", "pid 1", "not yours");
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), EPERM);
        EXPECT_EQ(std::string(e.what()), "kill pid 1: Operation not permitted (not yours)");
    }
    EXPECT_THROW(throw_error(EINVAL, "x", "y"), std::system_error);
}

// ---- deadline --------------------------------------------------------------------------------

TEST(Deadline, Never) {
    auto d = deadline::never();
    EXPECT_TRUE(d.is_never());
    EXPECT_FALSE(d.expired());
    EXPECT_EQ(d.remaining(), nanoseconds::max());
    EXPECT_EQ(d.poll_timeout_ms(), -1);
    auto rel = d.relative_timespec();
    EXPECT_GT(rel.tv_sec, 86400);  // "a long time", never zero
}

TEST(Deadline, ImmediateIsExpired) {
    auto d = deadline::immediate();
    EXPECT_FALSE(d.is_never());
    EXPECT_TRUE(d.expired());
    EXPECT_EQ(d.remaining(), nanoseconds{0});
    EXPECT_EQ(d.poll_timeout_ms(), 0);
    auto rel = d.relative_timespec();
    EXPECT_EQ(rel.tv_sec, 0);
    EXPECT_EQ(rel.tv_nsec, 0);
    EXPECT_TRUE(deadline::after(-5s).expired());
    EXPECT_EQ(deadline::after(-5s).poll_timeout_ms(), 0);
}

TEST(Deadline, RemainingCountsDown) {
    auto d = deadline::after(1h);
    EXPECT_FALSE(d.expired());
    EXPECT_LE(d.remaining(), nanoseconds(1h));
    EXPECT_GT(d.remaining(), nanoseconds(59min));
    auto when = clock::now() + 10min;
    EXPECT_EQ(deadline::at(when).when(), when);
}

TEST(Deadline, PollTimeoutRoundsUp) {
    // 1 ns left must not become a 0 ms poll (which would spin until expiry).
    auto when = clock::now() + 1h + 1ns;
    auto d = deadline::at(when);
    int ms = d.poll_timeout_ms();
    EXPECT_GE(ms, 3'600'000 - 1000);  // whatever time this test took to get here
    EXPECT_LE(ms, 3'600'001);
    auto tiny = deadline::after(200us);
    int t = tiny.poll_timeout_ms();
    EXPECT_TRUE(t == 1 || (t == 0 && tiny.expired())) << t;
    // Very long deadlines clamp to INT_MAX instead of overflowing.
    EXPECT_EQ(deadline::after(std::chrono::hours(24 * 365 * 100)).poll_timeout_ms(),
              std::numeric_limits<int>::max());
}

TEST(Deadline, HugeTimeoutsSaturateToNever) {
    // clock::now() + nanoseconds::max() used to wrap into the past: a call
    // given "wait as long as it takes" timed out at once.
    for (auto d :
         {deadline::after(nanoseconds::max()), deadline::after(nanoseconds::max() - 1ns),
          deadline::after(std::chrono::microseconds::max()), deadline::after(milliseconds::max()),
          deadline::after(std::chrono::seconds::max()), deadline::after(std::chrono::hours::max()),
          deadline::after(std::chrono::duration<double>(1e300))}) {
        EXPECT_FALSE(d.expired());
        EXPECT_TRUE(d.is_never());
        EXPECT_EQ(d.remaining(), nanoseconds::max());
        EXPECT_EQ(d.poll_timeout_ms(), -1);
    }
    // Huge negative ones are "poll once", without overflowing either.
    for (auto d : {deadline::after(nanoseconds::min()), deadline::after(std::chrono::hours::min()),
                   deadline::after(std::chrono::duration<double>(-1e300))}) {
        EXPECT_TRUE(d.expired());
        EXPECT_EQ(d.remaining(), nanoseconds{0});
        EXPECT_EQ(d.poll_timeout_ms(), 0);
    }
    // Long but representable timeouts stay finite.
    auto century = deadline::after(std::chrono::hours(24 * 365 * 100));
    EXPECT_FALSE(century.is_never());
    EXPECT_FALSE(century.expired());
    EXPECT_GT(century.remaining(), nanoseconds(std::chrono::hours(24 * 365 * 99)));
    auto d = deadline::after(std::chrono::duration<double>(0.5));
    EXPECT_FALSE(d.is_never());
    EXPECT_LE(d.remaining(), nanoseconds(500ms));
    // A deadline far in the past reports nothing left (no overflow).
    EXPECT_EQ(deadline::at(clock::time_point::min()).remaining(), nanoseconds{0});
    EXPECT_TRUE(deadline::at(clock::time_point::min()).expired());
}

TEST(Deadline, RealtimeTimespecIsInTheFuture) {
    auto d = deadline::after(30s);
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    timespec abs = d.realtime_timespec();
    EXPECT_GE(abs.tv_nsec, 0);
    EXPECT_LT(abs.tv_nsec, 1'000'000'000);
    EXPECT_GE(abs.tv_sec, now.tv_sec + 28);
    EXPECT_LE(abs.tv_sec, now.tv_sec + 31);
    auto rel = d.relative_timespec();
    EXPECT_LE(rel.tv_sec, 30);
    EXPECT_GE(rel.tv_sec, 28);
}

// ---- syscall helpers ---------------------------------------------------------------------------

TEST(Syscall, RetryEintrRetriesOnlyEintr) {
    int calls = 0;
    auto r = detail::retry_eintr([&] {
        ++calls;
        if (calls < 3) {
            errno = EINTR;
            return -1;
        }
        return 7;
    });
    EXPECT_EQ(r, 7);
    EXPECT_EQ(calls, 3);
    calls = 0;
    r = detail::retry_eintr([&] {
        ++calls;
        errno = EAGAIN;
        return -1;
    });
    EXPECT_EQ(r, -1);
    EXPECT_EQ(calls, 1);
}

TEST(Syscall, WaitReadableTimesOutAsAValue) {
    auto p = make_pipe();
    EXPECT_EQ(detail::wait_readable(p.read_end.get(), deadline::after(20ms), "pipe"),
              detail::io_outcome::timed_out);
    EXPECT_EQ(detail::wait_readable(p.read_end.get(), deadline::immediate(), "pipe"),
              detail::io_outcome::timed_out);
    ASSERT_EQ(::write(p.write_end.get(), "x", 1), 1);
    EXPECT_EQ(detail::wait_readable(p.read_end.get(), deadline::immediate(), "pipe"),
              detail::io_outcome::ok);
    // A closed descriptor is a caller bug (POLLNVAL), not a timeout.
    int closed_fd = ::dup(p.read_end.get());
    ::close(closed_fd);
    EXPECT_THROW(detail::wait_readable(closed_fd, deadline::immediate(), "bad"), ipckit::error);
}

TEST(Syscall, WriteAllReportsPartialProgressOnTimeout) {
    auto p = make_pipe(true);
    std::string big(1 << 20, 'w');
    std::size_t written = 0;
    EXPECT_EQ(
        detail::write_all(p.write_end.get(), bytes(big), deadline::after(20ms), "pipe", &written),
        detail::io_outcome::timed_out);
    EXPECT_GT(written, 0u);
    EXPECT_EQ(written, pipe_capacity(p.write_end.get()));
}

TEST(Syscall, WriteAllToClosedPeerIsClosedWithoutSigpipe) {
    // SIGPIPE left at its default: a raw write would kill the test.
    struct sigaction old {
    }, dfl{};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, &old);
    auto p = make_pipe();
    p.read_end.reset();
    EXPECT_EQ(detail::write_all(p.write_end.get(), bytes("data"), deadline::after(1s), "pipe"),
              detail::io_outcome::closed);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    unique_fd a(sv[0]);
    ::close(sv[1]);
    EXPECT_EQ(detail::write_all(a.get(), bytes("data"), deadline::after(1s), "sock"),
              detail::io_outcome::closed);
    sigset_t pending;
    sigpending(&pending);
    EXPECT_FALSE(sigismember(&pending, SIGPIPE));  // nothing left to be delivered later
    sigaction(SIGPIPE, &old, nullptr);
}

TEST(Syscall, ReadExactStopsAtEofAndTimeout) {
    auto p = make_pipe();
    ASSERT_EQ(::write(p.write_end.get(), "abc", 3), 3);
    char buf[8];
    std::size_t got = 99;
    auto span = std::as_writable_bytes(std::span(buf));
    EXPECT_EQ(detail::read_exact(p.read_end.get(), span, deadline::after(20ms), "pipe", &got),
              detail::io_outcome::timed_out);
    EXPECT_EQ(got, 3u);
    ASSERT_EQ(::write(p.write_end.get(), "defgh", 5), 5);
    EXPECT_EQ(
        detail::read_exact(p.read_end.get(), span.first(5), deadline::after(1s), "pipe", &got),
        detail::io_outcome::ok);
    EXPECT_EQ(std::string(buf, 5), "defgh");
    p.write_end.reset();
    EXPECT_EQ(detail::read_exact(p.read_end.get(), span, deadline::never(), "pipe", &got),
              detail::io_outcome::closed);
    EXPECT_EQ(got, 0u);
}

// A writer blocked in a large write to a pipe whose reader then closes gets
// a short count *and* SIGPIPE from the kernel; write_all must report closed
// and the SIGPIPE must never be delivered (it used to kill the writer).
TEST(Syscall, ReaderClosingDuringABlockedLargeWriteIsClosedNotSigpipe) {
    for (int round = 0; round < 5; ++round) {
        auto p = make_pipe();
        ipckit::test::forked_child writer([&] {
            p.read_end.reset();
            std::string big(1 << 20, 'w');
            auto r = detail::write_all(p.write_end.get(), std::as_bytes(std::span(big)),
                                       deadline::after(std::chrono::seconds(10)), "pipe");
            return r == detail::io_outcome::closed ? 0 : 1;
        });
        p.write_end.reset();
        char buf[4096];
        std::size_t total = 0;
        while (total < 100000) {  // the writer is now blocked mid-write
            ssize_t n = ::read(p.read_end.get(), buf, sizeof buf);
            ASSERT_GT(n, 0);
            total += static_cast<std::size_t>(n);
        }
        p.read_end.reset();
        auto st = writer.wait();
        ASSERT_TRUE(st.has_value());
        EXPECT_TRUE(st->success()) << "exit code " << st->code << ", signal " << st->signal;
    }
}

TEST(Syscall, IgnoringSigpipeProcessWideSkipsTheGuardAndStillReportsClosed) {
    ipckit::test::forked_child child([] {  // a process-wide change: not in the test process
        ipckit::ignore_sigpipe_process_wide();
        struct sigaction now {};
        ::sigaction(SIGPIPE, nullptr, &now);
        if (now.sa_handler != SIG_IGN) return 2;
        auto p = make_pipe();
        p.read_end.reset();
        std::string msg(100, 'x');
        sigset_t during;
        {
            detail::sigpipe_guard g;  // does nothing now
            pthread_sigmask(SIG_BLOCK, nullptr, &during);
        }
        if (sigismember(&during, SIGPIPE)) return 3;
        auto r = detail::write_all(p.write_end.get(), std::as_bytes(std::span(msg)),
                                   deadline::after(std::chrono::seconds(5)), "pipe");
        return r == detail::io_outcome::closed ? 0 : 4;
    });
    auto st = child.wait();
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->success()) << "exit code " << st->code << ", signal " << st->signal;
}

// With socket timeouts, an O_NONBLOCK socket has nothing to wait in: the
// helpers must fall back to poll, not spin on EAGAIN or return early.
TEST(Syscall, SocketTimeoutsOnANonblockingSocketFallBackToPoll) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    unique_fd a(sv[0]), b(sv[1]);
    detail::socket_timeouts t;
    char buf[16];
    std::size_t got = 0;
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(detail::read_some(a.get(), std::as_writable_bytes(std::span(buf)),
                                deadline::after(std::chrono::milliseconds(50)), "s", got,
                                detail::fd_kind::socket, &t),
              detail::io_outcome::timed_out);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ASSERT_EQ(::send(b.get(), "x", 1, MSG_NOSIGNAL), 1);
    });
    EXPECT_EQ(detail::read_some(a.get(), std::as_writable_bytes(std::span(buf)),
                                deadline::after(std::chrono::seconds(10)), "s", got,
                                detail::fd_kind::socket, &t),
              detail::io_outcome::ok);
    EXPECT_EQ(got, 1u);
    late.join();
    // Sending into a full non-blocking socket: timed out as a value.
    std::string chunk(65536, 'f');
    detail::io_outcome r = detail::io_outcome::ok;
    for (int i = 0; i < 1000 && r == detail::io_outcome::ok; ++i)
        r = detail::write_all(a.get(), std::as_bytes(std::span(chunk)),
                              deadline::after(std::chrono::milliseconds(30)), "s", nullptr,
                              detail::fd_kind::socket, &t);
    EXPECT_EQ(r, detail::io_outcome::timed_out);
}

TEST(Syscall, SigpipeGuardRestoresTheMask) {
    sigset_t before, during, after;
    pthread_sigmask(SIG_BLOCK, nullptr, &before);
    ASSERT_FALSE(sigismember(&before, SIGPIPE));
    {
        detail::sigpipe_guard g;
        pthread_sigmask(SIG_BLOCK, nullptr, &during);
        EXPECT_TRUE(sigismember(&during, SIGPIPE));
        errno = EPIPE;
    }
    EXPECT_EQ(errno, EPIPE);  // the guard's destructor keeps errno for the caller
    pthread_sigmask(SIG_BLOCK, nullptr, &after);
    EXPECT_FALSE(sigismember(&after, SIGPIPE));
}

// ---- adaptive_spin -------------------------------------------------------------------------

TEST(AdaptiveSpin, OffImmediateOrSucceeding) {
    int calls = 0;
    auto never_there = [&] {
        ++calls;
        return false;
    };
    ipckit::detail::adaptive_spin off;
    EXPECT_FALSE(off.run(deadline::never(), never_there));
    EXPECT_EQ(calls, 0);

    ipckit::detail::adaptive_spin spin(std::chrono::milliseconds(100));
    EXPECT_FALSE(spin.run(deadline::immediate(), never_there)) << "a try must not spin";
    EXPECT_EQ(calls, 0);
    EXPECT_TRUE(spin.run(deadline::never(), [&] { return ++calls == 3; }));
    EXPECT_EQ(calls, 3);
}

// Four spins in a row that find nothing: then only every 64th receive
// spins, until one finds something again.
TEST(AdaptiveSpin, BacksOffAfterFourMissesAndRecoversOnAHit) {
    ipckit::detail::adaptive_spin spin(std::chrono::microseconds(20));
    int calls = 0;
    auto never_there = [&] {
        ++calls;
        return false;
    };
    for (int i = 0; i < 4; ++i) {
        calls = 0;
        EXPECT_FALSE(spin.run(deadline::never(), never_there));
        EXPECT_GE(calls, 1) << "spin " << i;
    }
    int spun = 0;
    for (int i = 0; i < 64; ++i) {
        calls = 0;
        EXPECT_FALSE(spin.run(deadline::never(), never_there));
        if (calls > 0) ++spun;
    }
    EXPECT_EQ(spun, 1) << "one receive in 64 still spins";
    // The next one that spins finds something: spinning resumes for all.
    bool hit = false;
    for (int i = 0; i < 64 && !hit; ++i)
        hit = spin.run(deadline::never(), [] { return true; });
    ASSERT_TRUE(hit);
    calls = 0;
    EXPECT_FALSE(spin.run(deadline::never(), never_there));
    EXPECT_GE(calls, 1);
}

// The budget ends the spin, and so does an earlier deadline.
TEST(AdaptiveSpin, NeverOutlastsTheDeadline) {
    ipckit::detail::adaptive_spin spin(std::chrono::seconds(1));
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(spin.run(deadline::after(std::chrono::milliseconds(20)), [] { return false; }));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
}
