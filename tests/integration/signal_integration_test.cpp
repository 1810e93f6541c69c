// Signals between real processes. In every test the receiver blocks the
// signals under test (through its listener or a mask) and only then says
// "ready" over a pipe; the sender waits for that before sending, so no
// signal can reach a default action by racing the setup.
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/signal.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;
using ipckit::test::forked_child;

namespace {

// One-byte handshakes and short text reports over a pipe.
void put(int fd, const std::string& s) {
    std::string line = s + "\n";
    ASSERT_EQ(detail::write_all(fd, std::as_bytes(std::span(line.data(), line.size())),
                                deadline::after(10s), "pipe"),
              detail::io_outcome::ok);
}

// Plain write(2), not write_all: its SIGPIPE guard would swallow a SIGPIPE
// that the parent sends while the child is writing (the SIGPIPE row of
// DefaultActionsMatchTheKernel). No gtest macros in children.
void put_child(int fd, const std::string& s) {
    std::string line = s + "\n";
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = detail::retry_eintr(
            [&] { return ::write(fd, line.data() + done, line.size() - done); });
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

std::string get(int fd) {
    std::string out;
    char c;
    std::size_t got = 0;
    while (detail::read_some(fd, std::as_writable_bytes(std::span(&c, 1)), deadline::after(10s),
                             "pipe", got) == detail::io_outcome::ok &&
           got == 1 && c != '\n')
        out += c;
    return out;
}

}  // namespace

TEST(SignalIntegration, KillReportsSenderPidUidAndCode) {
    auto up = make_pipe();
    forked_child child([&] {
        signal_listener l(signal_set{SIGUSR1});
        put_child(up.write_end.get(), "ready");
        auto r = l.wait(deadline::after(10s));
        if (!r) return 1;
        put_child(up.write_end.get(), std::to_string(r->sender_pid) + " " +
                                          std::to_string(r->sender_uid) + " " + r->code_name());
        return 0;
    });
    ASSERT_EQ(get(up.read_end.get()), "ready");
    send_signal(child.pid(), SIGUSR1);
    EXPECT_EQ(get(up.read_end.get()),
              std::to_string(::getpid()) + " " + std::to_string(::getuid()) + " SI_USER");
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(SignalIntegration, RealtimeSignalsQueueInOrderWithPayloads) {
    constexpr int kCount = 20;
    const int sig = SIGRTMIN + 3;
    auto up = make_pipe();
    auto down = make_pipe();
    forked_child child([&] {
        signal_listener l(signal_set{sig});
        put_child(up.write_end.get(), "ready");
        if (get(down.read_end.get()) != "sent") return 2;
        // All kCount are pending now: read them without waiting.
        std::string values;
        while (auto r = l.try_receive()) {
            if (r->signo != sig || r->code != SI_QUEUE) return 3;
            values += std::to_string(r->value) + ",";
        }
        put_child(up.write_end.get(), values);
        return 0;
    });
    ASSERT_EQ(get(up.read_end.get()), "ready");
    std::string want;
    for (int v = 100; v < 100 + kCount; ++v) {
        queue_signal(child.pid(), sig, v);
        want += std::to_string(v) + ",";
    }
    put(down.write_end.get(), "sent");
    EXPECT_EQ(get(up.read_end.get()), want);
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(SignalIntegration, StandardSignalsCoalesceWhilePending) {
    auto up = make_pipe();
    auto down = make_pipe();
    forked_child child([&] {
        signal_listener l(signal_set{SIGUSR2, SIGHUP});
        put_child(up.write_end.get(), "ready");
        if (get(down.read_end.get()) != "sent") return 2;
        int usr2 = 0, hup = 0, first_value = -1;
        while (auto r = l.try_receive()) {
            if (r->signo == SIGUSR2 && usr2++ == 0) first_value = r->value;
            if (r->signo == SIGHUP) ++hup;
        }
        put_child(up.write_end.get(), std::to_string(usr2) + " " + std::to_string(hup) + " " +
                                          std::to_string(first_value));
        return 0;
    });
    ASSERT_EQ(get(up.read_end.get()), "ready");
    for (int v = 1; v <= 5; ++v) {
        queue_signal(child.pid(), SIGUSR2, v);  // a payload does not make it queue
        send_signal(child.pid(), SIGHUP);
    }
    put(down.write_end.get(), "sent");
    // One of each survives; the payload is the first one's.
    EXPECT_EQ(get(up.read_end.get()), "1 1 1");
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(SignalIntegration, ChildQueuesPayloadToParent) {
    const int sig = SIGRTMIN + 6;
    signal_listener l(signal_set{sig});  // blocked before the child exists
    forked_child child([&] {
        queue_signal(::getppid(), sig, 4242);
        return 0;
    });
    auto r = l.wait(deadline::after(10s));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->sender_pid, child.pid());
    EXPECT_EQ(r->value, 4242);
    EXPECT_EQ(r->code, SI_QUEUE);
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success());
}

TEST(SignalIntegration, ProcessGroupReachesEveryMember) {
    auto up = make_pipe();
    forked_child leader([&] {
        if (::setpgid(0, 0) != 0) return 2;
        signal_listener l(signal_set{SIGUSR1});
        // A second member of the group, blocked through the inherited listener mask.
        forked_child member([&] {
            signal_listener ml(signal_set{SIGUSR1});
            put_child(up.write_end.get(), "ready");
            return ml.wait(deadline::after(10s)) ? 0 : 1;
        });
        put_child(up.write_end.get(), "ready");
        if (!l.wait(deadline::after(10s))) return 3;
        auto st = member.wait();
        return st && st->success() ? 0 : 4;
    });
    ASSERT_EQ(get(up.read_end.get()), "ready");
    ASSERT_EQ(get(up.read_end.get()), "ready");
    const pid_t pgid = leader.pid();
    send_signal_to_group(pgid, SIGUSR1);
    auto st = leader.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    EXPECT_THROW(queue_signal(-pgid, SIGRTMIN, 1), std::invalid_argument);
}

TEST(SignalIntegration, ReapedChildIsEsrch) {
    forked_child child([] { return 0; });
    const pid_t pid = child.pid();
    auto st = child.wait();
    ASSERT_TRUE(st);
    try {
        send_signal(pid, SIGTERM);
        FAIL() << "kill of a reaped child succeeded (pid reused?)";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ESRCH);
        EXPECT_NE(std::string(e.what()).find("No such process"), std::string::npos);
    }
}

TEST(SignalIntegration, ListenerDestructionRestoresDefaultAction) {
    auto up = make_pipe();
    forked_child child([&]() -> int {
        { signal_listener l(signal_set{SIGUSR1}); }
        put_child(up.write_end.get(), "unblocked");
        for (;;)
            ::pause();  // SIGUSR1's default action must end us
    });
    ASSERT_EQ(get(up.read_end.get()), "unblocked");
    send_signal(child.pid(), SIGUSR1);
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_FALSE(st->exited);
    EXPECT_EQ(st->signal, SIGUSR1);
}

TEST(SignalIntegration, TimerInChildDeliversToItsListener) {
    forked_child child([] {
        signal_listener l(signal_set{SIGALRM});
        signal_timer t(SIGALRM, 9);
        t.arm(2ms);
        auto r = l.wait(deadline::after(10s));
        return r && r->code == SI_TIMER && r->value == 9 && r->sender_pid == 0 ? 0 : 1;
    });
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

// The table's default actions against the kernel: a child restores SIG_DFL,
// blocks everything, lets the parent send the signal, checks it is pending,
// then unblocks it and lets the kernel act. terminate/core -> killed by it;
// stop -> stopped; ignore/continue -> the child carries on and exits 0.
TEST(SignalIntegration, DefaultActionsMatchTheKernel) {
    for (const auto& row : signal_table()) {
        if (row.reserved) continue;
        SCOPED_TRACE(row.name);
        const int sig = row.number;
        auto up = make_pipe();
        auto down = make_pipe();
        forked_child child([&] {
            // Own process group, whose parent (this test) is in another group
            // of the same session: the group is not orphaned, so the kernel
            // applies SIGTSTP/SIGTTIN/SIGTTOU's stop instead of discarding
            // them (it discards them for orphaned groups, e.g. under CI).
            ::setpgid(0, 0);
            ::prctl(PR_SET_DUMPABLE, 0);  // no core files from the core-action signals
            rlimit none{0, 0};
            ::setrlimit(RLIMIT_CORE, &none);
            if (row.blockable) {
                struct sigaction dfl {};
                dfl.sa_handler = SIG_DFL;
                ::sigaction(sig, &dfl, nullptr);
                scoped_signal_mask all(signal_set::all_blockable(), scoped_signal_mask::how::set);
                put_child(up.write_end.get(), "ready");
                if (get(down.read_end.get()) != "sent") return 2;
                if (!pending_signals().contains(sig)) return 3;
                scoped_signal_mask open(signal_set{sig}, scoped_signal_mask::how::unblock);
                return 0;  // still alive: ignored (or continued)
            }
            put_child(up.write_end.get(), "ready");
            for (;;)
                ::pause();
        });
        ASSERT_EQ(get(up.read_end.get()), "ready");
        send_signal(child.pid(), sig);
        if (row.blockable) put(down.write_end.get(), "sent");
        if (row.default_action == signal_action::stop) {
            int st = 0;
            pid_t r;
            do
                r = ::waitpid(child.pid(), &st, WUNTRACED);
            while (r < 0 && errno == EINTR);
            ASSERT_EQ(r, child.pid());
            ASSERT_TRUE(WIFSTOPPED(st));
            EXPECT_EQ(WSTOPSIG(st), sig);
            ::kill(child.pid(), row.blockable ? SIGCONT : SIGKILL);
            if (!row.blockable) continue;  // SIGSTOP: child killed, reaped by its destructor
        }
        auto st = child.wait();
        ASSERT_TRUE(st);
        switch (row.default_action) {
            case signal_action::terminate:
            case signal_action::core:
                EXPECT_FALSE(st->exited) << st->describe();
                EXPECT_EQ(st->signal, sig) << st->describe();
                break;
            case signal_action::ignore:
            case signal_action::cont:
            case signal_action::stop:  // continued by the parent, then exits 0
                EXPECT_TRUE(st->success()) << st->describe();
                break;
        }
    }
}
