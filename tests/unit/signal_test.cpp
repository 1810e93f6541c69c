// In-process tests of the signals module: names, the table against the
// kernel's own lists, sets and masks, the signalfd listener, timers.
#include "ipckit/signal.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/pipe.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}

}  // namespace

TEST(SignalNames, ParsesNamesNumbersAndRealtime) {
    EXPECT_EQ(parse_signal("USR1"), SIGUSR1);
    EXPECT_EQ(parse_signal("SIGUSR1"), SIGUSR1);
    EXPECT_EQ(parse_signal("usr1"), SIGUSR1);
    EXPECT_EQ(parse_signal("sigterm"), SIGTERM);
    EXPECT_EQ(parse_signal("9"), SIGKILL);
    EXPECT_EQ(parse_signal("64"), 64);
    EXPECT_EQ(parse_signal("RTMIN"), SIGRTMIN);
    EXPECT_EQ(parse_signal("RTMIN+3"), SIGRTMIN + 3);
    EXPECT_EQ(parse_signal("SIGRTMIN+3"), SIGRTMIN + 3);
    EXPECT_EQ(parse_signal("RTMAX"), SIGRTMAX);
    EXPECT_EQ(parse_signal("SIGRTMAX-2"), SIGRTMAX - 2);
    EXPECT_EQ(parse_signal("IOT"), SIGABRT);
    EXPECT_EQ(parse_signal("CLD"), SIGCHLD);
    EXPECT_EQ(parse_signal("POLL"), SIGIO);
    EXPECT_EQ(parse_signal("IO"), SIGIO);
}

TEST(SignalNames, RefusesUnknownNamesAndNumbers) {
    for (const char* bad : {"", "FOO", "SIGFOO", "0", "65", "-1", "1x", "RTMIN+", "RTMIN-1",
                            "RTMAX+1", "RTMIN+31", "RTMAX-31", "SIG", "12345678901"}) {
        EXPECT_THROW(parse_signal(bad), std::invalid_argument) << bad;
    }
    EXPECT_NE(message_of([] { parse_signal("FOO"); }).find("unknown signal"), std::string::npos);
    EXPECT_NE(message_of([] { parse_signal("65"); }).find("1-64"), std::string::npos);
    // glibc keeps 32 and 33 for its threads: refuse them with the reason.
    EXPECT_NE(message_of([] { parse_signal("32"); }).find("reserved"), std::string::npos);
    EXPECT_THROW(signal_name(0), std::invalid_argument);
    EXPECT_THROW(signal_name(65), std::invalid_argument);
}

TEST(SignalNames, NamesRoundTrip) {
    for (const auto& row : signal_table()) {
        if (row.reserved) continue;
        EXPECT_EQ(parse_signal(row.name), row.number) << row.name;
        EXPECT_EQ(parse_signal(std::to_string(row.number)), row.number);
    }
    EXPECT_EQ(signal_name(SIGRTMIN + 1), "SIGRTMIN+1");
    EXPECT_EQ(signal_name(SIGRTMAX - 1), "SIGRTMAX-1");
}

TEST(SignalTable, Has64RowsWithKernelProperties) {
    const auto& t = signal_table();
    ASSERT_EQ(t.size(), 64u);
    for (int i = 0; i < 64; ++i)
        EXPECT_EQ(t[i].number, i + 1);
    EXPECT_FALSE(signal_info_of(SIGKILL).catchable);
    EXPECT_FALSE(signal_info_of(SIGKILL).blockable);
    EXPECT_FALSE(signal_info_of(SIGSTOP).catchable);
    EXPECT_EQ(signal_info_of(SIGSTOP).default_action, signal_action::stop);
    EXPECT_EQ(signal_info_of(SIGCONT).default_action, signal_action::cont);
    EXPECT_EQ(signal_info_of(SIGCHLD).default_action, signal_action::ignore);
    EXPECT_EQ(signal_info_of(SIGSEGV).default_action, signal_action::core);
    EXPECT_EQ(signal_info_of(SIGUSR1).default_action, signal_action::terminate);
    EXPECT_FALSE(signal_info_of(SIGUSR1).queued);
    EXPECT_TRUE(signal_info_of(SIGRTMIN).queued);
    EXPECT_TRUE(signal_info_of(SIGRTMAX).queued);
    EXPECT_TRUE(signal_info_of(32).reserved);
    for (const auto& row : t)
        EXPECT_FALSE(row.description.empty()) << row.number;
}

// The table must say what the kernel's own tools say: bash's `kill -l` lists
// every usable signal as "N) SIGNAME" (realtime names from the runtime
// SIGRTMIN), procps' `kill -L` the standard ones as "N NAME".
TEST(SignalTable, MatchesBashKillList) {
    auto r = run({"bash", "-c", "kill -l"}, {}, deadline::after(10s));
    ASSERT_TRUE(r.status.success()) << r.err;
    std::istringstream in(r.out);
    std::string token;
    int seen = 0;
    while (in >> token) {
        ASSERT_EQ(token.back(), ')') << token;
        int number = std::stoi(token);
        std::string name;
        ASSERT_TRUE(in >> name);
        EXPECT_EQ(signal_name(number), name);
        EXPECT_EQ(parse_signal(name), number);
        EXPECT_FALSE(signal_info_of(number).reserved);
        ++seen;
    }
    EXPECT_EQ(seen, 62);  // 64 minus the two reserved by glibc
}

TEST(SignalTable, MatchesProcpsKillTable) {
    auto r = run({"/bin/kill", "-L"}, {}, deadline::after(10s));
    if (!r.status.success()) GTEST_SKIP() << "/bin/kill -L not available: " << r.err;
    std::istringstream in(r.out);
    int number;
    std::string name;
    int seen = 0;
    while (in >> number >> name) {
        EXPECT_EQ(parse_signal(name), number) << name;  // procps says POLL for SIGIO
        ++seen;
    }
    EXPECT_GE(seen, 31);
}

TEST(SignalSet, AddRemoveContainsAndRefusesBadNumbers) {
    signal_set s{SIGINT, SIGQUIT};
    EXPECT_TRUE(s.contains(SIGINT));
    EXPECT_FALSE(s.contains(SIGHUP));
    EXPECT_EQ(s.size(), 2u);
    EXPECT_EQ(s.to_string(), "SIGINT SIGQUIT");
    s.add(SIGRTMIN + 2).remove(SIGINT);
    EXPECT_EQ(s.members(), (std::vector<int>{SIGQUIT, SIGRTMIN + 2}));
    EXPECT_EQ(signal_set::parse({"QUIT", "RTMIN+2"}), s);
    EXPECT_THROW(s.add(0), std::invalid_argument);
    EXPECT_THROW(s.add(65), std::invalid_argument);
    EXPECT_THROW(s.add(33), std::invalid_argument);
    EXPECT_TRUE(signal_set{}.empty());
    EXPECT_FALSE(signal_set{SIGRTMAX}.empty());
    auto all = signal_set::all_blockable();
    EXPECT_FALSE(all.contains(SIGKILL));
    EXPECT_FALSE(all.contains(SIGSTOP));
    EXPECT_EQ(all.size(), 60u);
}

TEST(SignalMask, BlocksForTheScopeAndRestoresThePreviousMask) {
    const auto before = blocked_signals();
    ASSERT_FALSE(before.contains(SIGUSR2));
    {
        scoped_signal_mask outer(signal_set{SIGUSR2});
        EXPECT_TRUE(blocked_signals().contains(SIGUSR2));
        {
            scoped_signal_mask inner(signal_set{SIGUSR2}, scoped_signal_mask::how::unblock);
            EXPECT_FALSE(blocked_signals().contains(SIGUSR2));
        }
        EXPECT_TRUE(blocked_signals().contains(SIGUSR2));
        EXPECT_FALSE(outer.previous().contains(SIGUSR2));
    }
    EXPECT_EQ(blocked_signals(), before);
}

TEST(SignalMask, RefusesSigkillAndSigstop) {
    auto msg = message_of([] { scoped_signal_mask m(signal_set{SIGINT, SIGKILL}); });
    EXPECT_NE(msg.find("SIGKILL cannot be blocked"), std::string::npos) << msg;
    msg =
        message_of([] { scoped_signal_mask m(signal_set{SIGSTOP}, scoped_signal_mask::how::set); });
    EXPECT_NE(msg.find("SIGSTOP"), std::string::npos) << msg;
    EXPECT_FALSE(blocked_signals().contains(SIGINT));  // nothing half-applied
}

TEST(SignalMask, BlockedSignalShowsAsPendingThenReachesListener) {
    signal_listener listener(signal_set{SIGUSR1});
    EXPECT_FALSE(pending_signals().contains(SIGUSR1));
    raise_signal(SIGUSR1);
    EXPECT_TRUE(pending_signals().contains(SIGUSR1));
    auto r = listener.wait(deadline::after(5s));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->signo, SIGUSR1);
    EXPECT_EQ(r->sender_pid, ::getpid());
    EXPECT_EQ(r->sender_uid, ::getuid());
    EXPECT_EQ(r->code_name(), "SI_TKILL");  // raise() is tgkill()
    EXPECT_FALSE(r->has_value());
    EXPECT_FALSE(pending_signals().contains(SIGUSR1));
}

TEST(SignalListener, RefusesSigkillSigstopAndEmptySets) {
    auto msg = message_of([] { signal_listener l(signal_set{SIGKILL}); });
    EXPECT_NE(msg.find("SIGKILL cannot be blocked, caught"), std::string::npos) << msg;
    EXPECT_THROW(signal_listener(signal_set{SIGUSR1, SIGSTOP}), std::invalid_argument);
    EXPECT_THROW(signal_listener(signal_set{}), std::invalid_argument);
    EXPECT_FALSE(blocked_signals().contains(SIGUSR1));
}

TEST(SignalListener, TimesOutAsAValue) {
    signal_listener listener(signal_set{SIGUSR2});
    EXPECT_FALSE(listener.wait(deadline::after(20ms)).has_value());
    EXPECT_FALSE(listener.try_receive().has_value());
}

TEST(SignalListener, FdIsPollableAndCloexec) {
    signal_listener listener(signal_set{SIGUSR2});
    EXPECT_TRUE(::fcntl(listener.fd(), F_GETFD) & FD_CLOEXEC);
    pollfd p{listener.fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0);
    raise_signal(SIGUSR2);
    EXPECT_EQ(::poll(&p, 1, 5000), 1);
    EXPECT_TRUE(p.revents & POLLIN);
    EXPECT_TRUE(listener.try_receive().has_value());
}

TEST(SignalListener, DestructorDiscardsPendingAndRestoresMask) {
    {
        signal_listener listener(signal_set{SIGUSR1});
        raise_signal(SIGUSR1);  // left pending on purpose
    }
    // Still alive (the default action, terminate, did not run) and unblocked.
    EXPECT_FALSE(blocked_signals().contains(SIGUSR1));
    EXPECT_FALSE(pending_signals().contains(SIGUSR1));
}

TEST(SignalListener, KeepsSignalsBlockedByAnOuterMask) {
    scoped_signal_mask outer(signal_set{SIGUSR1});
    { signal_listener listener(signal_set{SIGUSR1, SIGUSR2}); }
    EXPECT_TRUE(blocked_signals().contains(SIGUSR1));
    EXPECT_FALSE(blocked_signals().contains(SIGUSR2));
}

namespace {
// Runs body in a forked child: a listener bug that unblocks a signal too early
// kills the child (SIGUSR1's default action), not the test runner.
void expect_child_succeeds(const std::function<int()>& body) {
    child_process child = fork_child(body);
    auto st = child.wait_until(deadline::after(20s));
    ASSERT_TRUE(st) << "child still running";
    EXPECT_TRUE(st->success()) << st->describe();
}
}  // namespace

TEST(SignalListener, SecondListenerStaysProtectedWhenTheFirstGoesFirst) {
    expect_child_succeeds([] {
        auto l1 = std::make_unique<signal_listener>(signal_set{SIGUSR1});
        signal_listener l2(signal_set{SIGUSR1, SIGUSR2});
        l1.reset();  // once unblocked SIGUSR1 although l2 still listens
        if (!blocked_signals().contains(SIGUSR1)) return 1;
        raise_signal(SIGUSR1);
        auto r = l2.wait(deadline::after(5s));
        if (!r || r->signo != SIGUSR1) return 2;
        return 0;
    });
}

TEST(SignalListener, MaskIsRestoredWhateverTheDestructionOrder) {
    expect_child_succeeds([] {
        for (bool first_goes_first : {true, false}) {
            auto l1 = std::make_unique<signal_listener>(signal_set{SIGUSR1});
            auto l2 = std::make_unique<signal_listener>(signal_set{SIGUSR1, SIGUSR2});
            (first_goes_first ? l1 : l2).reset();
            if (!blocked_signals().contains(SIGUSR1)) return 10;
            (first_goes_first ? l2 : l1).reset();
            // The last one gone: nothing a listener blocked stays blocked.
            if (blocked_signals().contains(SIGUSR1) || blocked_signals().contains(SIGUSR2))
                return 11;
        }
        // A signal the thread blocked itself stays blocked, whatever the order.
        scoped_signal_mask outer(signal_set{SIGUSR2});
        auto l1 = std::make_unique<signal_listener>(signal_set{SIGUSR1, SIGUSR2});
        auto l2 = std::make_unique<signal_listener>(signal_set{SIGUSR2});
        l1.reset();
        if (blocked_signals().contains(SIGUSR1) || !blocked_signals().contains(SIGUSR2)) return 12;
        l2.reset();
        if (!blocked_signals().contains(SIGUSR2)) return 13;
        return 0;
    });
}

TEST(SignalQueue, RealtimeSignalsQueueInOrderWithPayloads) {
    const int sig = SIGRTMIN + 4;
    signal_listener listener(signal_set{sig});
    for (int v = 1; v <= 5; ++v)
        queue_signal(::getpid(), sig, v * 11);
    for (int v = 1; v <= 5; ++v) {
        auto r = listener.try_receive();
        ASSERT_TRUE(r) << "instance " << v << " was not queued";
        EXPECT_EQ(r->signo, sig);
        EXPECT_EQ(r->code, SI_QUEUE);
        EXPECT_TRUE(r->has_value());
        EXPECT_EQ(r->value, v * 11);
    }
    EXPECT_FALSE(listener.try_receive());
}

TEST(SignalQueue, StandardSignalsCoalesce) {
    signal_listener listener(signal_set{SIGUSR1});
    for (int v = 1; v <= 5; ++v)
        queue_signal(::getpid(), SIGUSR1, v);
    auto r = listener.try_receive();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->value, 1);  // the first one stays pending; the rest were dropped
    EXPECT_FALSE(listener.try_receive());
}

TEST(SignalSend, RefusesDangerousOrMeaninglessTargets) {
    auto msg = message_of([] { send_signal(-1, SIGUSR1); });
    EXPECT_NE(msg.find("refusing pid <= 0"), std::string::npos) << msg;
    EXPECT_THROW(send_signal(0, SIGUSR1), std::invalid_argument);
    msg = message_of([] { queue_signal(-::getpgrp(), SIGRTMIN, 1); });
    EXPECT_NE(msg.find("payload goes to exactly one process"), std::string::npos) << msg;
    EXPECT_THROW(queue_signal(0, SIGRTMIN, 1), std::invalid_argument);
    EXPECT_THROW(send_signal(::getpid(), 65), std::invalid_argument);
    EXPECT_THROW(send_signal_to_group(1, SIGUSR1), std::invalid_argument);
    EXPECT_THROW(raise_signal(0), std::invalid_argument);
}

TEST(SignalSend, MissingProcessIsEsrch) {
    int pid_max = 4194304;
    std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;  // pids are < pid_max
    try {
        send_signal(pid_max, SIGUSR1);
        FAIL() << "no error";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ESRCH);
        EXPECT_EQ(std::string(e.what()),
                  "kill pid " + std::to_string(pid_max) + ": No such process");
    }
    try {
        queue_signal(pid_max, SIGRTMIN, 7);
        FAIL() << "no error";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ESRCH);
        EXPECT_NE(std::string(e.what()).find("sigqueue pid"), std::string::npos);
    }
    EXPECT_FALSE(process_exists(pid_max));
    EXPECT_TRUE(process_exists(::getpid()));
}

TEST(SignalTimer, DeliversToTheListenerWithItsValue) {
    signal_listener listener(signal_set{SIGALRM});
    signal_timer timer(SIGALRM, 1234);
    timer.arm(1ms);
    auto r = listener.wait(deadline::after(10s));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->signo, SIGALRM);
    EXPECT_EQ(r->code_name(), "SI_TIMER");
    EXPECT_TRUE(r->has_value());
    EXPECT_EQ(r->value, 1234);
    EXPECT_EQ(r->sender_pid, 0);
}

TEST(SignalTimer, PeriodicUntilDisarmed) {
    const int sig = SIGRTMIN + 1;
    signal_listener listener(signal_set{sig});
    signal_timer timer(sig, 5);
    timer.arm(1ms, 1ms);
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(listener.wait(deadline::after(10s))) << i;
    timer.disarm();
    while (listener.try_receive()) {
    }
    EXPECT_THROW(signal_timer(0), std::invalid_argument);
}

TEST(SignalTimer, OverrunsCountExpirationsMergedWhilePending) {
    const int sig = SIGRTMIN + 2;
    signal_listener listener(signal_set{sig});  // blocked: the first signal stays pending
    signal_timer timer(sig, 7);
    timer.arm(1ms, 1ms);
    // About 50 expirations; only the first is queued, the others are overruns,
    // counted when that signal is taken.
    std::this_thread::sleep_for(60ms);
    auto r = listener.try_receive();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code_name(), "SI_TIMER");
    EXPECT_EQ(r->value, 7);
    EXPECT_GE(timer.overruns(), 5);
    timer.disarm();
    while (listener.try_receive()) {
    }
}

namespace {
volatile sig_atomic_t g_flag = 0;
void set_flag(int) {
    g_flag = 1;
}
volatile sig_atomic_t g_value = 0;
void set_value(int, siginfo_t* info, void*) {
    g_value = info->si_value.sival_int;
}
}  // namespace

TEST(SignalAction, InstallsAndRestoresTheHandler) {
    struct sigaction before {};
    ::sigaction(SIGUSR1, nullptr, &before);
    {
        scoped_sigaction handler(SIGUSR1, &set_flag);
        g_flag = 0;
        raise_signal(SIGUSR1);  // handled before raise returns (unblocked, own thread)
        EXPECT_EQ(g_flag, 1);
    }
    struct sigaction after {};
    ::sigaction(SIGUSR1, nullptr, &after);
    EXPECT_EQ(after.sa_handler, before.sa_handler);
    {
        scoped_sigaction handler(SIGRTMIN + 5, &set_value);
        queue_signal(::getpid(), SIGRTMIN + 5, 77);
        EXPECT_EQ(g_value, 77);
    }
    {
        auto ign = scoped_sigaction::ignore(SIGUSR2);
        raise_signal(SIGUSR2);  // ignored: the test process survives
    }
    auto msg = message_of([] { scoped_sigaction h(SIGKILL, &set_flag); });
    EXPECT_NE(msg.find("SIGKILL cannot be blocked, caught or ignored"), std::string::npos);
    EXPECT_THROW(scoped_sigaction::ignore(SIGSTOP), std::invalid_argument);
}
