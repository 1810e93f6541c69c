// POSIX message queues: names, open modes, attributes, priorities, timeouts,
// limits. Every queue is removed by an mq_remover declared before it opens.
#include "ipckit/mqueue.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "ipckit/error.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string qname() {
    return std::string("/").append(test::unique_name("ipckit-mqt"));
}

// A small queue that fits any container's limits (msg_max may be 10).
mq_options small(long maxmsg = 4, long msgsize = 128) {
    mq_options o;
    o.max_messages = maxmsg;
    o.message_size = msgsize;
    return o;
}

// Runs f and returns the ipckit::error it throws (fails the test otherwise).
template <class F>
ipckit::error expect_error(F&& f) {
    try {
        f();
    } catch (const ipckit::error& e) {
        return e;
    }
    ADD_FAILURE() << "no ipckit::error thrown";
    return ipckit::error(0, "none", "none");
}

}  // namespace

TEST(MqueueName, RejectsBadNames) {
    auto no_slash = expect_error([] { message_queue::validate_name("jobs"); });
    EXPECT_EQ(no_slash.code().value(), EINVAL);
    EXPECT_NE(std::string(no_slash.what()).find("must start with '/'"), std::string::npos);

    auto extra = expect_error([] { message_queue::open("/a/b", small()); });
    EXPECT_EQ(extra.code().value(), EINVAL);
    EXPECT_NE(std::string(extra.what()).find("no '/' after the first"), std::string::npos);

    auto empty = expect_error([] { message_queue::validate_name("/"); });
    EXPECT_EQ(empty.code().value(), EINVAL);
    EXPECT_EQ(expect_error([] { message_queue::validate_name(""); }).code().value(), EINVAL);

    std::string too_long = std::string("/").append(std::string(256, 'x'));
    auto longer = expect_error([&] { message_queue::open(too_long, small()); });
    EXPECT_EQ(longer.code().value(), EINVAL);
    EXPECT_NE(std::string(longer.what()).find("NAME_MAX = 255"), std::string::npos)
        << longer.what();
    // Exactly NAME_MAX characters is fine.
    EXPECT_NO_THROW(message_queue::validate_name(std::string("/").append(std::string(255, 'x'))));
}

TEST(Mqueue, OpenModes) {
    std::string name = qname();
    mq_remover rm(name);
    auto o = small();
    o.mode = open_mode::open_only;
    EXPECT_EQ(expect_error([&] { message_queue::open(name, o); }).code().value(), ENOENT);
    o.mode = open_mode::create_only;
    auto q = message_queue::open(name, o);
    EXPECT_TRUE(q.is_open());
    EXPECT_EQ(expect_error([&] { message_queue::open(name, o); }).code().value(), EEXIST);
    o.mode = open_mode::open_or_create;
    EXPECT_TRUE(message_queue::open(name, o).is_open());
    o.mode = open_mode::open_only;
    EXPECT_TRUE(message_queue::open(name, o).is_open());
}

TEST(Mqueue, CreatedPrivateAndCloseOnExec) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small());
    struct stat st {};
    ASSERT_EQ(::fstat(q.native_handle(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_TRUE(::fcntl(q.native_handle(), F_GETFD) & FD_CLOEXEC);
}

TEST(Mqueue, AttributesAndDefaults) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(3, 100));
    auto a = q.attributes();
    EXPECT_EQ(a.max_messages, 3);
    EXPECT_EQ(a.message_size, 100);
    EXPECT_EQ(a.current_messages, 0);
    EXPECT_FALSE(a.nonblocking);

    std::string name2 = qname();
    mq_remover rm2(name2);
    auto d = message_queue::open(name2).attributes();  // system defaults
    auto lim = mq_limits::read();
    EXPECT_EQ(d.max_messages, lim.msg_default);
    EXPECT_EQ(d.message_size, lim.msgsize_default);

    mq_options half;
    half.max_messages = 3;  // message_size missing
    EXPECT_EQ(expect_error([&] { message_queue::open(qname(), half); }).code().value(), EINVAL);
}

TEST(Mqueue, PrioritiesHighestFirstFifoWithinOne) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(4, 64));
    q.send("low", 1);
    q.send("high-a", 7);
    q.send("mid", 3);
    q.send("high-b", 7);
    std::string out;
    EXPECT_EQ(q.receive(out), 7u);
    EXPECT_EQ(out, "high-a");
    EXPECT_EQ(q.receive(out), 7u);
    EXPECT_EQ(out, "high-b");
    auto m = q.receive();
    EXPECT_EQ(m.priority, 3u);
    EXPECT_EQ(m.data, "mid");
    EXPECT_EQ(q.receive(out), 1u);
    EXPECT_EQ(out, "low");
}

TEST(Mqueue, BinaryPayloadAndEmptyMessage) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(4, 64));
    std::string bin("a\0b\xff", 4);
    q.send(bin);
    q.send("");
    std::string out;
    q.receive(out);
    EXPECT_EQ(out, bin);
    q.receive(out);
    EXPECT_EQ(out, "");
}

TEST(Mqueue, ShortAndFullSizeMessagesInAnyOrderArriveIntact) {
    // Receives go straight into the caller's buffer when it is already
    // msgsize long, through a scratch buffer otherwise: every order of sizes
    // must give exactly the bytes sent.
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(4, 128));
    std::string out = "leftover from before";
    for (std::size_t n : {std::size_t{64}, std::size_t{128}, std::size_t{0}, std::size_t{128},
                          std::size_t{128}, std::size_t{1}, std::size_t{127}}) {
        std::string msg(n, '\0');
        for (std::size_t i = 0; i < n; ++i)
            msg[i] = static_cast<char>('a' + (i * 7 + n) % 26);
        q.send(msg);
        q.receive(out);
        ASSERT_EQ(out, msg) << n;
    }
}

TEST(Mqueue, OversizeMessageNamesBothSizes) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(2, 100));
    auto e = expect_error([&] { q.send(std::string(101, 'x')); });
    EXPECT_EQ(e.code().value(), EMSGSIZE);
    EXPECT_NE(std::string(e.what()).find("message is 101 bytes, queue msgsize is 100"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(q.attributes().current_messages, 0);
}

TEST(Mqueue, BadPriorityRefused) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small());
    EXPECT_EQ(expect_error([&] { q.send("x", mq_priority_limit); }).code().value(), EINVAL);
}

TEST(Mqueue, FullAndEmptyAreValues) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(2, 16));
    EXPECT_TRUE(q.try_send("1"));
    EXPECT_TRUE(q.send_for("2", 0, 10ms));
    EXPECT_FALSE(q.try_send("3"));
    EXPECT_FALSE(q.send_for("3", 0, 20ms));
    std::string out;
    EXPECT_TRUE(q.try_receive(out));
    EXPECT_TRUE(q.receive_for(out, 10ms));
    EXPECT_EQ(out, "2");
    EXPECT_FALSE(q.try_receive(out));
    EXPECT_FALSE(q.receive_for(out, 20ms));
}

TEST(Mqueue, NonblockingModeStillHonoursDeadlines) {
    std::string name = qname();
    mq_remover rm(name);
    auto o = small(2, 16);
    o.nonblocking = true;
    auto q = message_queue::open(name, o);
    EXPECT_TRUE(q.attributes().nonblocking);
    std::string out;
    EXPECT_FALSE(q.try_receive(out));
    EXPECT_FALSE(q.receive_for(out, 20ms));

    // A child sends later; the non-blocking descriptor waits via poll().
    test::forked_child child([&] {
        auto w = message_queue::open(name, mq_options{.mode = open_mode::open_only, .read = false});
        std::this_thread::sleep_for(50ms);
        w.send("late", 2);
        return 0;
    });
    auto prio = q.receive_for(out, 10s);
    ASSERT_TRUE(prio);
    EXPECT_EQ(*prio, 2u);
    EXPECT_EQ(out, "late");
    ASSERT_TRUE(child.wait());

    q.set_nonblocking(false);
    EXPECT_FALSE(q.attributes().nonblocking);
}

TEST(Mqueue, HugeTimeoutWaitsInsteadOfTimingOutAtOnce) {
    // receive_for(out, nanoseconds::max()) once overflowed clock::now() + timeout
    // into the past: on a non-blocking descriptor (EAGAIN, then "expired?")
    // it returned nullopt without waiting.
    std::string name = qname();
    mq_remover rm(name);
    auto o = small(2, 16);
    o.nonblocking = true;
    auto q = message_queue::open(name, o);
    test::forked_child child([&] {
        auto w = message_queue::open(name, mq_options{.mode = open_mode::open_only, .read = false});
        std::this_thread::sleep_for(50ms);
        w.send("late", 1);
        return 0;
    });
    std::string out;
    auto prio = q.receive_for(out, nanoseconds::max());
    ASSERT_TRUE(prio);
    EXPECT_EQ(out, "late");
    auto st = child.wait();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    EXPECT_TRUE(q.send_for("x", 0, nanoseconds::max()));
}

TEST(Mqueue, DescriptorIsPollable) {
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, small(1, 16));
    pollfd p{q.native_handle(), POLLIN | POLLOUT, 0};
    ASSERT_EQ(::poll(&p, 1, 0), 1);
    EXPECT_EQ(p.revents, POLLOUT);  // empty: writable, not readable
    q.send("x");
    p.revents = 0;
    ASSERT_EQ(::poll(&p, 1, 0), 1);
    EXPECT_EQ(p.revents, POLLIN);  // full (maxmsg 1): readable, not writable
}

TEST(Mqueue, RemoveAndRemover) {
    std::string name = qname();
    {
        mq_remover rm(name);
        auto q = message_queue::open(name, small());
        EXPECT_FALSE(q.removed());
    }
    auto o = small();
    o.mode = open_mode::open_only;
    EXPECT_EQ(expect_error([&] { message_queue::open(name, o); }).code().value(), ENOENT);

    mq_remover rm(name);
    auto q = message_queue::open(name, small());
    q.send("still here");
    EXPECT_TRUE(message_queue::remove(name));
    EXPECT_FALSE(message_queue::remove(name));
    EXPECT_TRUE(q.removed());
    std::string out;  // an open descriptor keeps working after the name is gone
    EXPECT_TRUE(q.try_receive(out));
    EXPECT_EQ(out, "still here");
}

TEST(MqueueLimits, ReadFromProc) {
    auto lim = mq_limits::read();
    EXPECT_GT(lim.msg_max, 0);
    EXPECT_GT(lim.msgsize_max, 0);
    EXPECT_GT(lim.msg_default, 0);
    EXPECT_GT(lim.msgsize_default, 0);
    EXPECT_GT(lim.queues_max, 0);
}

namespace {

constexpr int kPrivileged = 20;  // the child could exceed the limit: it is privileged

// Runs body in a forked child without privileges: under root (as in CI) the
// child first drops to uid/gid 65534, so msg_max and msgsize_max apply to it
// (CAP_SYS_RESOURCE lifts them). The POSIX queue name space (/dev/mqueue) is
// world-writable with the sticky bit, so nobody may create queues in it.
// Expects body to throw EINVAL whose what() contains `expected`.
int expect_einval_naming(const std::function<void()>& body, const std::string& expected) {
    try {
        body();
        return kPrivileged;
    } catch (const ipckit::error& e) {
        if (e.code().value() != EINVAL) return 11;
        if (std::string(e.what()).find(expected) == std::string::npos) {
            std::fprintf(stderr, "%s\n  does not contain: %s\n", e.what(), expected.c_str());
            return 12;
        }
        return 0;
    }
}

void expect_child_ok(const std::optional<exit_status>& st) {
    ASSERT_TRUE(st);
    if (st->exited && st->code == kPrivileged)
        GTEST_SKIP() << "privileged (CAP_SYS_RESOURCE) although not root: the limit does not apply";
    EXPECT_TRUE(st->success()) << st->describe();
}

}  // namespace

TEST(MqueueLimits, TooManyMessagesNamesMsgMax) {
    auto lim = mq_limits::read();
    std::string name = qname();
    mq_remover rm(name);  // in the parent: root removes whatever the child made
    expect_child_ok(test::run_unprivileged([&](const std::string&) {
        return expect_einval_naming(
            [&] { message_queue::open(name, small(lim.msg_max + 1, 16)); },
            "max_messages " + std::to_string(lim.msg_max + 1) +
                " exceeds /proc/sys/fs/mqueue/msg_max = " + std::to_string(lim.msg_max));
    }));
}

TEST(MqueueLimits, TooLargeMessagesNameMsgsizeMax) {
    auto lim = mq_limits::read();
    std::string name = qname();
    mq_remover rm(name);
    expect_child_ok(test::run_unprivileged([&](const std::string&) {
        return expect_einval_naming(
            [&] { message_queue::open(name, small(1, lim.msgsize_max + 1)); },
            "message_size " + std::to_string(lim.msgsize_max + 1) +
                " exceeds /proc/sys/fs/mqueue/msgsize_max = " + std::to_string(lim.msgsize_max));
    }));
}

namespace {

bool cap_sys_resource_in_effective_set() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("CapEff:", 0) == 0)
            return (std::stoull(line.substr(7), nullptr, 16) >> 24) & 1;
    return false;
}

bool write_file(const char* path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    f.flush();
    return static_cast<bool>(f);
}

}  // namespace

// With CAP_SYS_RESOURCE the sysctls do not apply; what binds is the kernel's
// hard limit, and the error once blamed msg_max = 10 all the same. Run in a
// child; where the runner lacks the capability (a container that drops it
// from root), the child takes it in a user namespace of its own (root mapped
// to root): the kernel then still applies the sysctls, but the message must
// still name both limits.
TEST(MqueueLimits, PrivilegedCallerIsToldTheHardLimit) {
    auto lim = mq_limits::read();
    std::string name = qname();
    mq_remover rm(name);
    test::forked_child child([&] {
        if (!cap_sys_resource_in_effective_set()) {
            const std::string uid = std::to_string(::geteuid()), gid = std::to_string(::getegid());
            if (::unshare(CLONE_NEWUSER) != 0) return kPrivileged;
            if (!write_file("/proc/self/setgroups", "deny") ||
                !write_file("/proc/self/uid_map", "0 " + uid + " 1") ||
                !write_file("/proc/self/gid_map", "0 " + gid + " 1"))
                return 30;
            if (!cap_sys_resource_in_effective_set()) return 31;
        }
        const std::string with_sysctl_msg_max =
            " (the limit with CAP_SYS_RESOURCE; without it /proc/sys/fs/mqueue/msg_max = " +
            std::to_string(lim.msg_max) + ")";
        if (int r = expect_einval_naming(
                [&] { message_queue::open(name, small(65537, 16)); },
                "max_messages 65537 exceeds the kernel's hard limit HARD_MSGMAX = 65536" +
                    with_sysctl_msg_max))
            return 40 + r;
        const long big = 16L * 1024 * 1024 + 1;
        if (int r = expect_einval_naming(
                [&] { message_queue::open(name, small(1, big)); },
                "message_size " + std::to_string(big) +
                    " exceeds the kernel's hard limit HARD_MSGSIZEMAX = 16777216 (the limit with "
                    "CAP_SYS_RESOURCE; without it /proc/sys/fs/mqueue/msgsize_max = " +
                    std::to_string(lim.msgsize_max) + ")"))
            return 60 + r;
        return 0;
    });
    auto st = child.wait();
    ASSERT_TRUE(st);
    if (st->exited && st->code == kPrivileged)
        GTEST_SKIP() << "no CAP_SYS_RESOURCE and no user namespace to take it in";
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(MqueueLimits, RlimitMsgqueueNamedInEmfile) {
    std::string name = qname();
    mq_remover rm(name);
    // In a child, so the lowered limit does not leak into other tests.
    test::forked_child child([&] {
        rlimit rl{1024, 1024};
        if (::setrlimit(RLIMIT_MSGQUEUE, &rl) != 0) return 10;
        try {
            message_queue::open(name, small(4, 1024));
            return 11;  // privileged: the limit did not apply
        } catch (const ipckit::error& e) {
            if (e.code().value() != EMFILE) return 12;
            if (std::string(e.what()).find("RLIMIT_MSGQUEUE = 1024") == std::string::npos)
                return 13;
            return 0;
        }
    });
    auto st = child.wait();
    ASSERT_TRUE(st);
    if (st->exited && st->code == 11) GTEST_SKIP() << "privileged: RLIMIT_MSGQUEUE does not apply";
    EXPECT_TRUE(st->success()) << st->describe();
}
