// Pipes and FIFOs across real processes: parent/child transfers, EOF when a
// writer dies mid-frame, FIFO squatting, exact modes, creation modes, many
// writers with frames larger than PIPE_BUF, child processes and fd hygiene.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/fifo.hpp"
#include "ipckit/pipe.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

template <class F>
int error_code_of(F&& f, std::string* what = nullptr) {
    try {
        f();
    } catch (const ipckit::error& e) {
        if (what) *what = e.what();
        return e.code().value();
    }
    return 0;
}

// Deterministic payload of `size` bytes for (writer, seq): any interleaving or
// truncation changes it.
std::string payload_for(int writer, int seq, std::size_t size) {
    std::string head = "w" + std::to_string(writer) + " s" + std::to_string(seq) + " ";
    std::string p(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        p[i] = i < head.size() ? head[i] : static_cast<char>((i * 31 + writer * 7 + seq) & 0xff);
    return p;
}

// Receives writers * each messages made by payload_for(w, s, size_of(s)):
// any interleaving between writers, but each writer's in order and intact.
void receive_in_order_per_writer(channel& reader, int writers, int each,
                                 const std::function<std::size_t(int)>& size_of,
                                 std::chrono::seconds timeout) {
    std::map<int, int> next_seq;
    message m;
    for (int i = 0; i < writers * each; ++i) {
        ASSERT_EQ(reader.receive(m, deadline::after(timeout)), io_status::ok) << "message " << i;
        int w = -1, s = -1;
        ASSERT_EQ(std::sscanf(m.payload.c_str(), "w%d s%d", &w, &s), 2) << "message " << i;
        ASSERT_TRUE(w >= 0 && w < writers) << w;
        ASSERT_EQ(s, next_seq[w]) << "writer " << w;
        std::string want = payload_for(w, s, size_of(s));
        // Compared as a bool: printing 64 KiB of binary on failure helps nobody.
        auto diff = std::mismatch(want.begin(), want.end(), m.payload.begin(), m.payload.end());
        ASSERT_TRUE(m.payload == want)
            << "writer " << w << " seq " << s << ": got " << m.payload.size() << " bytes, want "
            << want.size() << ", first difference at byte " << (diff.first - want.begin());
        ++next_seq[w];
    }
}

void expect_all_succeed(std::vector<std::unique_ptr<test::forked_child>>& children,
                        std::chrono::seconds timeout) {
    for (auto& c : children) {
        auto st = c->wait(timeout);
        ASSERT_TRUE(st);
        EXPECT_TRUE(st->success()) << st->describe();
    }
}

// One-byte "I am ready" signal from a child to the parent.
struct ready_signal {
    pipe_pair p = make_pipe();
    void notify() {
        char c = 'r';
        (void)!::write(p.write_end.get(), &c, 1);
    }
    bool wait(std::chrono::milliseconds timeout) {
        pollfd pfd{p.read_end.get(), POLLIN, 0};
        return ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1;
    }
};

mode_t mode_of(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) return 0;
    return st.st_mode;
}

// Restores the umask on scope exit.
using test::kNobody;
using test::run_unprivileged;
using test::umask_guard;

}  // namespace

// ---- busy-polling receive -------------------------------------------------------------------

bool nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// A spinning receive tries its read end without waiting by other means than
// O_NONBLOCK (RWF_NOWAIT on a pipe, poll then read on a FIFO): that flag
// belongs to a file description others may share, so it must neither leak
// into them nor be trusted. Here another holder of the reader's description
// sets and clears it, and the spinning receive keeps its deadline.
TEST(SpinningReceive, NeverTouchesOrTrustsTheSharedNonBlockingFlag) {
    auto pc = make_pipe_channels();
    const int rd = pc.reader->poll_fd();
    EXPECT_FALSE(nonblocking(rd));
    {
        // A channel over a descriptor the caller passes in leaves its mode.
        unique_fd mine(::dup(rd));
        ASSERT_TRUE(mine.valid());
        unique_fd sink(::open("/dev/null", O_WRONLY | O_CLOEXEC));
        auto other = make_fd_channel("dup of the read end", std::move(mine), std::move(sink));
        message m;
        EXPECT_EQ(other->receive(m, deadline::after(5ms)), io_status::timed_out);
    }
    EXPECT_FALSE(nonblocking(rd)) << "O_NONBLOCK leaked into the shared description";
    message m;
    for (bool flag : {true, false}) {
        const int flags = ::fcntl(rd, F_GETFL);
        ASSERT_EQ(::fcntl(rd, F_SETFL, flag ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), 0);
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(pc.reader->receive(m, deadline::after(30ms)), io_status::timed_out);
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "O_NONBLOCK " << flag;
    }
    ASSERT_EQ(pc.writer->send("here", deadline::after(1s)), io_status::ok);
    ASSERT_EQ(pc.reader->receive(m, deadline::after(1s)), io_status::ok);
    EXPECT_EQ(m.payload, "here");
}

// The spin never outlasts the caller's deadline, and whatever arrives while
// it spins (a message, or EOF) is what the receive returns.
TEST(SpinningReceive, DeadlineMessagesAndEofWinOverTheSpin) {
    std::string path = test::unique_path("ipckit-fifo-spin");
    fifo_remover rm(path);
    auto reader = open_channel("fifo:" + path + "?spin_us=1000000", channel_role::receiver);
    message m;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(reader->receive(m, deadline::after(30ms)), io_status::timed_out);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms) << "the 1 s spin ignored the deadline";
    EXPECT_EQ(reader->receive(m, deadline::immediate()), io_status::timed_out);

    test::forked_child writer([&] {
        (void)reader.release();  // the parent's; its cleanup is not ours to run
        open_options o;
        o.open_deadline = deadline::after(10s);
        auto w = open_channel("fifo:" + path, channel_role::sender, o);
        std::this_thread::sleep_for(20ms);  // the reader is spinning by now
        return w->send("during the spin", deadline::after(10s)) == io_status::ok ? 0 : 1;
    });
    ASSERT_EQ(reader->receive(m, deadline::after(10s)), io_status::ok);
    EXPECT_EQ(m.payload, "during the spin");
    auto st = writer.wait(20s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();

    // EOF met by a read that does not wait: the pipe's writer goes away.
    auto pc = make_pipe_channels();
    test::forked_child closer([&] {
        pc.reader.reset();
        std::this_thread::sleep_for(5ms);
        return pc.writer->send("last", deadline::after(10s)) == io_status::ok ? 0 : 1;
    });
    pc.writer.reset();
    ASSERT_EQ(pc.reader->receive(m, deadline::after(10s)), io_status::ok);
    EXPECT_EQ(m.payload, "last");
    EXPECT_EQ(pc.reader->receive(m, deadline::after(10s)), io_status::closed);
    st = closer.wait(20s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(SpinningReceive, SpinLongerThanOneSecondIsRefused) {
    std::string path = test::unique_path("ipckit-fifo-spin");
    fifo_remover rm(path);
    std::string what;
    EXPECT_EQ(
        error_code_of(
            [&] { open_channel("fifo:" + path + "?spin_us=1000001", channel_role::receiver); },
            &what),
        EINVAL);
    EXPECT_NE(what.find("spin_us"), std::string::npos) << what;
    EXPECT_NE(what.find("at most 1000000"), std::string::npos) << what;
    struct stat st {};
    EXPECT_NE(::lstat(path.c_str(), &st), 0) << "a refused URL left a FIFO behind";
}

// ---- parent / child --------------------------------------------------------------------------

TEST(PipeIntegration, ParentToChildFramedMessagesThenEof) {
    auto pc = make_pipe_channels();
    const std::vector<std::string> msgs{"one", "", std::string(200000, 'b'), "last"};
    test::forked_child child([&] {
        pc.writer.reset();  // or the child would never see EOF
        message m;
        for (const auto& want : msgs) {
            if (pc.reader->receive(m, deadline::after(10s)) != io_status::ok) return 1;
            if (m.payload != want) return 2;
        }
        return pc.reader->receive(m, deadline::after(10s)) == io_status::closed ? 0 : 3;
    });
    pc.reader.reset();
    for (const auto& m : msgs)
        ASSERT_EQ(pc.writer->send(m, deadline::after(10s)), io_status::ok);
    pc.writer.reset();
    auto st = child.wait(20s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(PipeIntegration, ChildToParent) {
    auto pc = make_pipe_channels(framing::line);
    test::forked_child child([&] {
        pc.reader.reset();
        for (int i = 0; i < 100; ++i)
            if (pc.writer->send("line " + std::to_string(i), deadline::after(10s)) != io_status::ok)
                return 1;
        return 0;
    });
    pc.writer.reset();
    message m;
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(pc.reader->receive(m, deadline::after(10s)), io_status::ok);
        ASSERT_EQ(m.payload, "line " + std::to_string(i));
    }
    EXPECT_EQ(pc.reader->receive(m, deadline::after(10s)), io_status::closed);
    auto st = child.wait(20s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(PipeIntegration, ForkedProcessesShareOneWriterForLargeMessages) {
    // The children inherit the same writer channel (one open file description,
    // one channel object copied by fork): their large messages still arrive
    // whole, because each process's chunk records carry its own writer id.
    auto pc = make_pipe_channels();
    // The parent sends a large message first, so the channel the children
    // copy has already picked its writer id: each child must draw its own.
    ASSERT_EQ(pc.writer->send(payload_for(99, 0, 50000), deadline::after(10s)), io_status::ok);
    constexpr int kWriters = 8, kEach = 4;
    std::vector<std::unique_ptr<test::forked_child>> writers;
    for (int w = 0; w < kWriters; ++w)
        writers.push_back(std::make_unique<test::forked_child>([&, w] {
            pc.reader.reset();
            for (int s = 0; s < kEach; ++s)
                if (pc.writer->send(payload_for(w, s, 100000 + s), deadline::after(30s)) !=
                    io_status::ok)
                    return 1;
            return 0;
        }));
    pc.writer.reset();
    message m;
    ASSERT_EQ(pc.reader->receive(m, deadline::after(30s)), io_status::ok);
    ASSERT_TRUE(m.payload == payload_for(99, 0, 50000));
    ASSERT_NO_FATAL_FAILURE(receive_in_order_per_writer(
        *pc.reader, kWriters, kEach, [](int s) { return std::size_t{100000} + s; }, 30s));
    EXPECT_EQ(pc.reader->receive(m, deadline::after(10s)), io_status::closed);
    expect_all_succeed(writers, 30s);
}

TEST(PipeIntegration, ChildWithTheSamePidStillDrawsItsOwnWriterId) {
    // pid 1 of a new pid namespace forks a child into another new namespace:
    // the child is pid 1 too. Both send large messages on the inherited
    // writer; if the child kept its parent's writer id, the reader would
    // drop their interleaved records as gaps while every send said ok.
    constexpr int kEach = 20;
    constexpr std::size_t kSize = 600000;
    test::forked_child outer([&]() -> int {
        auto pc = make_pipe_channels();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) return 77;
        pid_t init = ::fork();
        if (init == 0) {  // pid 1
            pc.reader.reset();
            if (pc.writer->send(payload_for(0, 0, kSize), deadline::after(30s)) != io_status::ok)
                ::_exit(2);
            if (::unshare(CLONE_NEWPID) != 0) ::_exit(3);
            pid_t c = ::fork();  // pid 1 as well
            const int me = c == 0 ? 1 : 2;
            for (int s = 1; s <= kEach; ++s)
                if (pc.writer->send(payload_for(me, s, kSize), deadline::after(30s)) !=
                    io_status::ok)
                    ::_exit(4);
            if (c == 0) ::_exit(0);
            int st = 0;
            ::waitpid(c, &st, 0);
            ::_exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 5);
        }
        pc.writer.reset();
        int got = 0;
        message m;
        while (pc.reader->receive(m, deadline::after(30s)) == io_status::ok) {
            int w = -1, s = -1;
            if (std::sscanf(m.payload.c_str(), "w%d s%d", &w, &s) != 2) return 6;
            if (m.payload != payload_for(w, s, kSize)) return 7;
            ++got;
        }
        int st = 0;
        ::waitpid(init, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 8;
        return got == 1 + 2 * kEach ? 0 : 9;
    });
    auto st = outer.wait(60s);
    ASSERT_TRUE(st);
    if (st->exited && st->code == 77) GTEST_SKIP() << "no user/pid namespaces here";
    EXPECT_TRUE(st->success()) << st->describe() << " (9: messages lost)";
}

TEST(FifoIntegration, WriterProcessToReader) {
    std::string path = test::unique_path("ipckit-fifo");
    fifo_remover rm(path);
    auto reader = open_channel("fifo:" + path, channel_role::receiver);
    EXPECT_EQ(mode_of(path) & 07777, 0600u);
    test::forked_child child([&] {
        // Not reset(): destroying the inherited receiver here would run its
        // cleanup and remove the parent's FIFO. The child just leaves it.
        (void)reader.release();
        open_options o;
        o.open_deadline = deadline::after(10s);
        auto w = open_channel("fifo:" + path, channel_role::sender, o);
        for (int i = 0; i < 10; ++i)
            if (w->send(payload_for(0, i, 100 + i), deadline::after(10s)) != io_status::ok)
                return 1;
        return 0;
    });
    message m;
    for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(reader->receive(m, deadline::after(10s)), io_status::ok);
        ASSERT_EQ(m.payload, payload_for(0, i, 100 + i));
    }
    auto st = child.wait(20s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    // The receiver keeps its own write end: no EOF between writers, a timeout.
    EXPECT_EQ(reader->receive(m, deadline::after(50ms)), io_status::timed_out);
    reader.reset();  // it created the FIFO, so it removes it
    EXPECT_EQ(mode_of(path), 0u);
}

// ---- a writer killed mid-stream ---------------------------------------------------------------

namespace {

// The child sends three whole frames, then starts an 8 MiB frame that blocks
// on the full pipe; the parent kills it with SIGKILL in the middle of it.
void expect_closed_after_kill(std::unique_ptr<channel>& reader,
                              const std::function<std::unique_ptr<channel>()>& open_writer,
                              const std::function<void()>& drop_parent_writer) {
    ready_signal opened, ready;
    test::forked_child child([&] {
        reader.reset();
        auto w = open_writer();
        opened.notify();
        for (int i = 0; i < 3; ++i)
            if (w->send(payload_for(1, i, 1000)) != io_status::ok) return 1;
        ready.notify();
        w->send(std::string(8 << 20, 'T'));  // never completes: nobody reads that much
        return 2;
    });
    drop_parent_writer();
    // A FIFO read end sees EOF while no writer is connected: start reading
    // only once the writer is there.
    ASSERT_TRUE(opened.wait(10s));
    message m;
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(reader->receive(m, deadline::after(10s)), io_status::ok);
        ASSERT_EQ(m.payload, payload_for(1, i, 1000));
    }
    ASSERT_TRUE(ready.wait(10s));
    // The child is now inside (or about to start) the 8 MiB frame.
    ::kill(child.pid(), SIGKILL);
    auto st = child.wait(10s);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->signal, SIGKILL);
    EXPECT_EQ(reader->receive(m, deadline::after(10s)), io_status::closed);
    EXPECT_EQ(reader->receive(m, deadline::after(1s)), io_status::closed);
}

}  // namespace

TEST(PipeIntegration, WriterKilledMidFrameGivesClosedNeverATornMessage) {
    auto pc = make_pipe_channels();
    auto writer = std::move(pc.writer);
    std::unique_ptr<channel> reader = std::move(pc.reader);
    expect_closed_after_kill(
        reader, [&] { return std::move(writer); }, [&] { writer.reset(); });
}

TEST(FifoIntegration, WriterKilledMidFrameGivesClosedNeverATornMessage) {
    std::string path = test::unique_path("ipckit-fifo-kill");
    fifo_remover rm(path);
    // A plain reader (no keep-alive write end, unlike the fifo: receiver), so
    // the writer's death is end of stream.
    std::unique_ptr<channel> reader = make_fd_channel(
        "fifo:" + path, open_fifo_reader(path, open_mode::create_only), unique_fd{});
    expect_closed_after_kill(
        reader,
        [&] {
            auto fd = open_fifo_writer(path, deadline::after(10s));
            if (!fd) throw std::runtime_error("no reader");
            return make_fd_channel("fifo:" + path, unique_fd{}, std::move(*fd));
        },
        [] {});
}

TEST(FifoIntegration, WriterKilledMidLargeFrameTearsNothingForTheNextWriters) {
    // The fifo: receiver never sees EOF (it holds a write end itself), so the
    // death of a writer mid-frame cannot be noticed as end of stream: large
    // frames travel as atomic chunk records, and the dead writer's incomplete
    // message is simply never delivered.
    std::string path = test::unique_path("ipckit-fifo-kill9");
    fifo_remover rm(path);
    auto reader = open_channel("fifo:" + path, channel_role::receiver);
    auto open_writer = [&] {
        open_options o;
        o.open_deadline = deadline::after(10s);
        return open_channel("fifo:" + path, channel_role::sender, o);
    };
    ready_signal ready;
    test::forked_child doomed([&] {
        (void)reader.release();  // see WriterProcessToReader
        auto w = open_writer();
        if (w->send(payload_for(1, 0, 10000), deadline::after(10s)) != io_status::ok) return 1;
        ready.notify();
        w->send(std::string(8 << 20, 'T'));  // fills the FIFO, then blocks: killed there
        return 2;
    });
    message m;
    ASSERT_EQ(reader->receive(m, deadline::after(10s)), io_status::ok);
    ASSERT_TRUE(m.payload == payload_for(1, 0, 10000));
    ASSERT_TRUE(ready.wait(10s));
    // Let it write part of the 8 MiB message (the FIFO holds 256 KiB at most).
    std::this_thread::sleep_for(100ms);
    ::kill(doomed.pid(), SIGKILL);
    auto st = doomed.wait(10s);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->signal, SIGKILL);

    test::forked_child next([&] {
        (void)reader.release();
        auto w = open_writer();
        for (int s = 0; s < 6; ++s)
            if (w->send(payload_for(2, s, s % 2 ? 100 : 70000), deadline::after(10s)) !=
                io_status::ok)
                return 1;
        return 0;
    });
    for (int s = 0; s < 6; ++s) {
        ASSERT_EQ(reader->receive(m, deadline::after(10s)), io_status::ok) << s;
        ASSERT_TRUE(m.payload == payload_for(2, s, s % 2 ? 100 : 70000))
            << "message " << s << ": " << m.payload.size() << " bytes, starts "
            << m.payload.substr(0, 12);
    }
    EXPECT_EQ(reader->receive(m, deadline::after(200ms)), io_status::timed_out);
    auto st2 = next.wait(20s);
    ASSERT_TRUE(st2);
    EXPECT_TRUE(st2->success()) << st2->describe();
}

TEST(FifoIntegration, ManyWritersWithLargeMessagesAllArrive) {
    // More writers than the reader keeps incomplete messages for, all sending
    // large messages at once: ipckit fifo: writers take turns (flock) for
    // large messages, so every one arrives whole.
    std::string path = test::unique_path("ipckit-fifo-crowd");
    fifo_remover rm(path);
    auto reader = open_channel("fifo:" + path, channel_role::receiver);
    constexpr int kWriters = 24, kEach = 4;
    std::vector<std::unique_ptr<test::forked_child>> writers;
    for (int w = 0; w < kWriters; ++w)
        writers.push_back(std::make_unique<test::forked_child>([&, w] {
            (void)reader.release();  // see WriterProcessToReader
            open_options o;
            o.open_deadline = deadline::after(10s);
            auto ch = open_channel("fifo:" + path, channel_role::sender, o);
            for (int s = 0; s < kEach; ++s)
                if (ch->send(payload_for(w, s, 200000), deadline::after(30s)) != io_status::ok)
                    return 1;
            return 0;
        }));
    ASSERT_NO_FATAL_FAILURE(receive_in_order_per_writer(
        *reader, kWriters, kEach, [](int) { return std::size_t{200000}; }, 30s));
    expect_all_succeed(writers, 30s);
}

TEST(FifoIntegration, WaitingForAnotherLargeMessageHonoursTheDeadline) {
    std::string path = test::unique_path("ipckit-fifo-turn");
    fifo_remover rm(path);
    auto reader = open_channel("fifo:" + path, channel_role::receiver);
    open_options o;
    o.open_deadline = deadline::after(10s);
    auto writer = open_channel("fifo:" + path, channel_role::sender, o);
    // Another writer is in the middle of a large message (holds the lock).
    auto other = open_fifo_writer(path, deadline::after(10s));
    ASSERT_TRUE(other);
    ASSERT_EQ(::flock(other->get(), LOCK_EX), 0);
    const std::string big = payload_for(3, 0, 100000);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(writer->send(big, deadline::after(200ms)), io_status::timed_out);
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 200ms);
    EXPECT_LT(waited, 5s);
    // Small messages need no turn.
    EXPECT_EQ(writer->send("small", deadline::after(1s)), io_status::ok);
    ASSERT_EQ(::flock(other->get(), LOCK_UN), 0);
    EXPECT_EQ(writer->send(big, deadline::after(10s)), io_status::ok);
    message m;
    ASSERT_EQ(reader->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "small");  // nothing of the timed-out message came first
    ASSERT_EQ(reader->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_TRUE(m.payload == big);
}

// ---- FIFO squatting ----------------------------------------------------------------------------

TEST(FifoSquatting, RegularFileAtThePathIsRefused) {
    std::string path = test::unique_path("ipckit-squat-file");
    test::scoped_unlink rm(path);
    unique_fd f(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_TRUE(f);
    std::string what;
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::create_only); }), EEXIST);
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::open_or_create); }, &what), EEXIST);
    EXPECT_NE(what.find("not a FIFO"), std::string::npos) << what;
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(path, open_mode::open_only); }), EEXIST);
    EXPECT_THROW(open_channel("fifo:" + path, channel_role::receiver), ipckit::error);
    // A sender must not write a framed stream into somebody's file either.
    EXPECT_THROW(open_fifo_writer(path, deadline::immediate()), ipckit::error);
    EXPECT_EQ(error_code_of([&] { remove_fifo(path); }), EINVAL);
    EXPECT_TRUE(S_ISREG(mode_of(path)));
}

TEST(FifoSquatting, FifoOwnedBySomeoneElseIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the FIFO away";
    std::string path = test::unique_path("ipckit-squat-owner");
    test::scoped_unlink rm(path);
    ASSERT_EQ(::mkfifo(path.c_str(), 0666), 0);
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);  // nobody
    std::string what;
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::open_or_create); }, &what), EPERM);
    EXPECT_NE(what.find("uid 65534"), std::string::npos) << what;
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(path, open_mode::open_or_create); }), EPERM);
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(path, open_mode::open_only); }), EPERM);
    EXPECT_THROW(open_channel("fifo:" + path, channel_role::receiver), ipckit::error);
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::create_only); }), EEXIST);
}

TEST(FifoSquatting, DanglingSymlinkIsRefusedAndNothingIsCreatedAtItsTarget) {
    std::string path = test::unique_path("ipckit-squat-link");
    std::string target = test::unique_path("ipckit-squat-target");
    test::scoped_unlink rm(path), rm_target(target);
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::create_only); }), EEXIST);
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::open_or_create); }), ELOOP);
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(path, open_mode::open_or_create); }), ELOOP);
    EXPECT_THROW(open_channel("fifo:" + path, channel_role::receiver), ipckit::error);
    EXPECT_EQ(mode_of(target), 0u);  // nothing appeared where the link points
    EXPECT_TRUE(S_ISLNK(mode_of(path)));
}

TEST(FifoSquatting, SymlinkToARealFifoIsNotFollowed) {
    std::string real = test::unique_path("ipckit-real-fifo");
    std::string link = test::unique_path("ipckit-link-fifo");
    fifo_remover rm_real(real);
    test::scoped_unlink rm_link(link);
    ASSERT_TRUE(create_fifo(real));
    auto real_reader = open_fifo_reader(real);  // so a writer open would succeed if followed
    ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
    std::string what;
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(link, open_mode::open_only); }, &what), ELOOP);
    EXPECT_NE(what.find("symbolic link"), std::string::npos) << what;
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(link, open_mode::open_or_create); }), ELOOP);
    EXPECT_EQ(error_code_of([&] { open_fifo_writer(link, deadline::after(1s)); }), ELOOP);
    open_options o;
    o.open_deadline = deadline::after(1s);
    EXPECT_THROW(open_channel("fifo:" + link, channel_role::sender, o), ipckit::error);
    EXPECT_EQ(error_code_of([&] { remove_fifo(link); }), EINVAL);  // the link is not a FIFO
    EXPECT_TRUE(S_ISFIFO(mode_of(real)));
}

// The lstat check names the owner, but only the fstat of the opened
// descriptor protects: a FIFO of someone else's swapped in between the two
// (rename over the path) was once accepted. A thread keeps exchanging our
// FIFO and one owned by nobody; every reader opened must be ours.
TEST(FifoSquatting, FifoSwappedForSomeoneElsesAfterTheCheckIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a FIFO away";
    std::string path = test::unique_path("ipckit-swap");
    std::string other = test::unique_path("ipckit-swap-other");
    test::scoped_unlink rm(path), rm_other(other);
    ASSERT_TRUE(create_fifo(path));
    ASSERT_EQ(::mkfifo(other.c_str(), 0666), 0);
    ASSERT_EQ(::chown(other.c_str(), kNobody, kNobody), 0);
    std::atomic<bool> stop{false};
    std::atomic<long> swaps{0};
    std::thread swapper([&] {
        while (!stop.load(std::memory_order_relaxed))
            if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, other.c_str(), RENAME_EXCHANGE) == 0)
                swaps.fetch_add(1, std::memory_order_relaxed);
    });
    // A failed ASSERT returns early: the swapper must be stopped and joined
    // then too, or the joinable thread's destructor terminates the run.
    struct stop_and_join {
        std::atomic<bool>& stop;
        std::thread& t;
        ~stop_and_join() {
            stop = true;
            if (t.joinable()) t.join();
        }
    } guard{stop, swapper};
    long ours = 0, refused = 0, foreign = 0;
    const auto until = clock::now() + 1500ms;
    for (int i = 0; clock::now() < until; ++i) {
        try {
            unique_fd fd = open_fifo_reader(
                path, i % 2 == 0 ? open_mode::open_only : open_mode::open_or_create);
            struct stat st {};
            ASSERT_EQ(::fstat(fd.get(), &st), 0);
            if (st.st_uid == ::geteuid())
                ++ours;
            else
                ++foreign;
        } catch (const ipckit::error& e) {
            ASSERT_EQ(e.code().value(), EPERM) << e.what();
            EXPECT_NE(std::string(e.what()).find("uid 65534"), std::string::npos) << e.what();
            ++refused;
        }
    }
    stop = true;
    swapper.join();
    EXPECT_EQ(foreign, 0) << ours << " ours, " << refused << " refused, " << swaps << " swaps";
    EXPECT_GT(swaps.load(), 0);
    EXPECT_GT(ours, 0);
    EXPECT_GT(refused, 0);
}

// ---- modes and creation -------------------------------------------------------------------------

TEST(FifoCreate, ModeIsExactWhateverTheUmask) {
    for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0777}}) {
        umask_guard g(mask);
        for (unsigned mode : {0600u, 0640u, 0666u}) {
            SCOPED_TRACE(std::to_string(mask) + " " + std::to_string(mode));
            std::string path = test::unique_path("ipckit-mode");
            fifo_remover rm(path);
            ASSERT_TRUE(create_fifo(path, open_mode::create_only, mode));
            EXPECT_TRUE(S_ISFIFO(mode_of(path)));
            EXPECT_EQ(mode_of(path) & 07777, mode);
        }
        std::string path = test::unique_path("ipckit-mode-url");
        fifo_remover rm(path);
        auto ch = open_channel("fifo:" + path, channel_role::receiver);
        EXPECT_EQ(mode_of(path) & 07777, 0600u);
    }
}

// Root ignores permission bits, so the test above cannot see a FIFO created
// without its owner's read bit. As an ordinary user, a umask of 0477 or 0777
// once made create_fifo fail ("chmod ...: Permission denied"): it opened the
// new FIFO for reading to fchmod it.
TEST(FifoCreate, ModeIsExactWhateverTheUmaskForAnOrdinaryUser) {
    auto st = run_unprivileged([](const std::string& dir) {
        int n = 0;
        for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0477}, mode_t{0777}}) {
            umask_guard g(mask);
            for (unsigned mode : {0600u, 0640u, 0666u, 0200u}) {
                std::string path = dir + "/m" + std::to_string(n++);
                fifo_remover rm(path);
                try {
                    if (!create_fifo(path, open_mode::create_only, mode)) return 10;
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "umask %o mode %o: %s\n", unsigned(mask), mode, e.what());
                    return 11;
                }
                if (!S_ISFIFO(mode_of(path))) return 12;
                if ((mode_of(path) & 07777) != mode) return 13;
            }
            std::string path = dir + "/r" + std::to_string(n++);
            fifo_remover rm(path);
            try {
                auto rd = open_fifo_reader(path, open_mode::open_or_create);
                if ((mode_of(path) & 07777) != 0600u) return 14;
                auto wr = open_fifo_writer(path, deadline::immediate());
                if (!wr) return 15;
                auto ch = open_channel("fifo:" + dir + "/c" + std::to_string(n++),
                                       channel_role::receiver);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "umask %o reader: %s\n", unsigned(mask), e.what());
                return 16;
            }
        }
        return 0;
    });
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(FifoCreate, CreateOnlyOpenOrCreateOpenOnly) {
    std::string path = test::unique_path("ipckit-modes");
    fifo_remover rm(path);
    std::string what;
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::open_only); }, &what), ENOENT);
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(path, open_mode::open_only); }), ENOENT);
    EXPECT_EQ(error_code_of([&] { open_fifo_writer(path, deadline::immediate()); }, &what), ENOENT);
    EXPECT_EQ(what, "open fifo:" + path + ": No such file or directory");
    EXPECT_TRUE(create_fifo(path, open_mode::create_only));
    EXPECT_EQ(error_code_of([&] { create_fifo(path, open_mode::create_only); }), EEXIST);
    EXPECT_FALSE(create_fifo(path, open_mode::open_or_create));
    EXPECT_FALSE(create_fifo(path, open_mode::open_only));
    EXPECT_TRUE(open_fifo_reader(path, open_mode::open_only));
    EXPECT_TRUE(open_fifo_reader(path, open_mode::open_or_create));
    EXPECT_EQ(error_code_of([&] { open_fifo_reader(path, open_mode::create_only); }), EEXIST);
    EXPECT_TRUE(remove_fifo(path));
    EXPECT_FALSE(remove_fifo(path));
    EXPECT_EQ(error_code_of([&] { create_fifo("", open_mode::create_only); }), EINVAL);
    // URL options reach the same rules.
    EXPECT_THROW(open_channel("fifo:" + path + "?create=open_only", channel_role::receiver),
                 ipckit::error);
    {
        auto ch =
            open_channel("fifo:" + path + "?create=create_only&mode=0640", channel_role::receiver);
        EXPECT_EQ(mode_of(path) & 07777, 0640u);
        EXPECT_THROW(open_channel("fifo:" + path + "?create=create_only", channel_role::receiver),
                     ipckit::error);
    }
    EXPECT_EQ(mode_of(path), 0u);  // removed by the channel that created it
}

TEST(FifoOpen, WriterWithoutReaderTimesOutAsAValue) {
    std::string path = test::unique_path("ipckit-noreader");
    fifo_remover rm(path);
    ASSERT_TRUE(create_fifo(path));
    EXPECT_FALSE(open_fifo_writer(path, deadline::immediate()));
    EXPECT_FALSE(open_fifo_writer(path, deadline::after(50ms)));
    open_options o;
    o.open_deadline = deadline::after(50ms);
    EXPECT_EQ(error_code_of([&] { open_channel("fifo:" + path, channel_role::sender, o); }),
              ETIMEDOUT);
    auto rd = open_fifo_reader(path);
    auto wr = open_fifo_writer(path, deadline::immediate());
    ASSERT_TRUE(wr);
    EXPECT_TRUE(::fcntl(wr->get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(rd.get(), F_GETFD) & FD_CLOEXEC);
}

TEST(FifoOpen, WriterWaitsForAReaderThatComesLater) {
    std::string path = test::unique_path("ipckit-latereader");
    fifo_remover rm(path);
    ASSERT_TRUE(create_fifo(path));
    ready_signal ready, opened;
    test::forked_child child([&] {
        ready.notify();
        auto fd = open_fifo_writer(path, deadline::after(15s));
        if (!fd) return 1;
        opened.notify();
        auto ch = make_fd_channel("w", unique_fd{}, std::move(*fd));
        return ch->send("late but here", deadline::after(5s)) == io_status::ok ? 0 : 2;
    });
    ASSERT_TRUE(ready.wait(10s));
    auto reader = make_fd_channel("r", open_fifo_reader(path), unique_fd{});
    ASSERT_TRUE(opened.wait(15s));  // before that, a plain FIFO reader would see EOF
    message m;
    ASSERT_EQ(reader->receive(m, deadline::after(15s)), io_status::ok);
    EXPECT_EQ(m.payload, "late but here");
    auto st = child.wait(20s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}

// ---- several writers, frames larger than PIPE_BUF
// --------------------------------------------------

TEST(FifoIntegration, ConcurrentWritersLargeFramesNeverInterleave) {
    std::string path = test::unique_path("ipckit-fifo-many");
    fifo_remover rm(path);
    auto reader = open_channel("fifo:" + path, channel_role::receiver);
    constexpr int kWriters = 4;
    constexpr int kMessages = 24;
    // Large frames (64 KiB, far above PIPE_BUF = 4096) mixed with small ones,
    // which are written without the lock but must not land inside a large one.
    auto size_of = [](int seq) -> std::size_t {
        return seq % 3 == 0 ? 64 * 1024 : seq % 3 == 1 ? 100 : 3 * PIPE_BUF + 5;
    };
    std::vector<std::unique_ptr<test::forked_child>> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.push_back(std::make_unique<test::forked_child>([&, w] {
            (void)reader.release();  // see WriterProcessToReader
            open_options o;
            o.open_deadline = deadline::after(10s);
            auto ch = open_channel("fifo:" + path, channel_role::sender, o);
            for (int s = 0; s < kMessages; ++s)
                if (ch->send(payload_for(w, s, size_of(s)), deadline::after(20s)) != io_status::ok)
                    return 1;
            return 0;
        }));
    }
    ASSERT_NO_FATAL_FAILURE(receive_in_order_per_writer(
        *reader, kWriters, kMessages, [&](int s) { return size_of(s); }, 20s));
    expect_all_succeed(writers, 20s);
}

// ---- pipe capacity
// ----------------------------------------------------------------------------------

TEST(PipeCapacity, GetAndSet) {
    auto p = make_pipe();
    std::size_t def = pipe_capacity(p.write_end.get());
    EXPECT_GE(def, static_cast<std::size_t>(PIPE_BUF));
    EXPECT_EQ(pipe_capacity(p.read_end.get()), def);  // one buffer, seen from both ends
    std::size_t granted = set_pipe_capacity(p.write_end.get(), 256 * 1024);
    EXPECT_GE(granted, 256u * 1024);
    EXPECT_EQ(pipe_capacity(p.read_end.get()), granted);
    // Rounded up to a power-of-two number of pages.
    std::size_t small = set_pipe_capacity(p.write_end.get(), 5000);
    EXPECT_GE(small, 5000u);
    EXPECT_EQ(small & (small - 1), 0u);
    // The capacity is real: that many bytes fit without a reader.
    set_nonblocking(p.write_end.get(), true);
    std::string fill(small, 'c');
    EXPECT_EQ(::write(p.write_end.get(), fill.data(), fill.size()), static_cast<ssize_t>(small));
    EXPECT_EQ(::write(p.write_end.get(), "x", 1), -1);
    EXPECT_EQ(errno, EAGAIN);

    auto np = make_pipe(true);
    EXPECT_TRUE(::fcntl(np.read_end.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(np.write_end.get(), F_GETFD) & FD_CLOEXEC);

    unique_fd notpipe(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    EXPECT_THROW(pipe_capacity(notpipe.get()), ipckit::error);
    EXPECT_THROW(set_pipe_capacity(notpipe.get(), 4096), ipckit::error);
    EXPECT_EQ(error_code_of([&] { set_pipe_capacity(p.write_end.get(), std::size_t{1} << 40); }),
              EINVAL);
}

// ---- run, run_pipeline, spawn
// ----------------------------------------------------------------------

TEST(Spawn, RunFeedsStdinAndCollectsBothOutputs) {
    auto r = run({"tr", "a-z", "A-Z"}, "hello pipes", deadline::after(10s));
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.status.success()) << r.status.describe();
    EXPECT_EQ(r.out, "HELLO PIPES");
    auto e = run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {}, deadline::after(10s));
    EXPECT_TRUE(e.status.exited);
    EXPECT_EQ(e.status.code, 3);
    EXPECT_FALSE(e.status.success());
    EXPECT_EQ(e.status.describe(), "exit 3");
    EXPECT_EQ(e.out, "out\n");
    EXPECT_EQ(e.err, "err\n");
}

TEST(Spawn, RunMovesMoreThanAPipeFullBothWays) {
    // cat echoes 4 MiB while we are still writing: needs concurrent pumping.
    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i % 251);
    auto r = run({"cat"}, big, deadline::after(30s));
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.status.success());
    EXPECT_EQ(r.out.size(), big.size());
    EXPECT_TRUE(r.out == big);
}

TEST(Spawn, MissingProgramIsAnError) {
    std::string what;
    EXPECT_EQ(error_code_of([&] { spawn({"ipckit-no-such-program"}); }, &what), ENOENT);
    EXPECT_EQ(what, "spawn ipckit-no-such-program: No such file or directory");
    EXPECT_EQ(error_code_of([&] { run({"ipckit-no-such-program"}, "input"); }), ENOENT);
    EXPECT_EQ(error_code_of([&] { spawn({}); }), EINVAL);
    EXPECT_EQ(error_code_of([&] { run_pipeline({{"true"}, {"ipckit-no-such-program"}}); }), ENOENT);
}

TEST(Spawn, TimeoutKillsTheChild) {
    auto r = run({"sleep", "30"}, {}, deadline::after(200ms));
    EXPECT_TRUE(r.timed_out);
    EXPECT_FALSE(r.status.exited);
    EXPECT_EQ(r.status.signal, SIGKILL);
    EXPECT_EQ(r.status.describe(), "killed by SIGKILL");
    // A child that closes its stdout but keeps running is still killed.
    auto r2 = run({"sh", "-c", "exec >&- 2>&-; sleep 30"}, {}, deadline::after(200ms));
    EXPECT_TRUE(r2.timed_out);
    EXPECT_EQ(r2.status.signal, SIGKILL);
    auto p = run_pipeline({{"sleep", "30"}, {"cat"}}, {}, deadline::after(200ms));
    EXPECT_TRUE(p.timed_out);
    ASSERT_EQ(p.statuses.size(), 2u);
    EXPECT_EQ(p.statuses[0].signal, SIGKILL);
}

TEST(Spawn, PipelineWithoutAShell) {
    auto r =
        run_pipeline({{"seq", "1", "1000"}, {"grep", "7"}, {"wc", "-l"}}, {}, deadline::after(10s));
    EXPECT_FALSE(r.timed_out);
    ASSERT_EQ(r.statuses.size(), 3u);
    for (const auto& s : r.statuses)
        EXPECT_TRUE(s.success()) << s.describe();
    EXPECT_EQ(r.out, "271\n");
    // Input to the first stage, and arguments are never shell-interpreted.
    auto r2 = run_pipeline({{"cat"}, {"sort", "-r"}}, "a\nc\nb\n", deadline::after(10s));
    EXPECT_EQ(r2.out, "c\nb\na\n");
    auto r3 = run_pipeline({{"echo", "$HOME; rm -rf /"}}, {}, deadline::after(10s));
    EXPECT_EQ(r3.out, "$HOME; rm -rf /\n");
    // Each stage's exit status is reported.
    auto r4 = run_pipeline({{"sh", "-c", "echo x; exit 4"}, {"cat"}}, {}, deadline::after(10s));
    ASSERT_EQ(r4.statuses.size(), 2u);
    EXPECT_EQ(r4.statuses[0].code, 4);
    EXPECT_TRUE(r4.statuses[1].success());
    EXPECT_EQ(r4.out, "x\n");
}

TEST(Spawn, ChildProcessWaitKillAndDestructorReap) {
    spawn_options o;
    o.out = stdio_mode::pipe;
    o.in = stdio_mode::null;
    auto c = spawn({"sh", "-c", "echo $$; exec sleep 30"}, o);
    pid_t pid = c.pid();
    EXPECT_GT(pid, 0);
    EXPECT_FALSE(c.wait_until(deadline::after(50ms)));
    c.kill(SIGTERM);
    auto st = c.wait_until(deadline::after(10s));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->signal, SIGTERM);
    EXPECT_EQ(c.pid(), -1);
    c.kill(SIGKILL);  // no-op once reaped
    EXPECT_THROW(c.wait(), ipckit::error);
    pid_t orphan;
    {
        auto d = spawn({"sleep", "30"});
        orphan = d.pid();
    }
    // The destructor killed and reaped it: the pid is no longer our child.
    EXPECT_EQ(::waitpid(orphan, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

namespace {
long voluntary_context_switches() {
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw;
}
}  // namespace

// wait_until(never) once polled waitpid(WNOHANG) with a 1 ms sleep: about
// 300 wake-ups for a child living 300 ms, in every run() and run_pipeline()
// without a deadline. Blocking in waitpid wakes once.
TEST(Spawn, WaitingWithoutADeadlineBlocksInsteadOfPolling) {
    auto c = spawn({"sleep", "0.3"});
    long before = voluntary_context_switches();
    auto st = c.wait_until(deadline::never());
    long wakeups = voluntary_context_switches() - before;
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    EXPECT_EQ(c.pid(), -1);
    EXPECT_LT(wakeups, 30);
    // run() without a deadline: its pipes reach EOF at once (the shell closes
    // them), then it waits 300 ms for the exit.
    before = voluntary_context_switches();
    auto r = run({"sh", "-c", "exec >&- 2>&- <&-; sleep 0.3; exit 3"});
    wakeups = voluntary_context_switches() - before;
    EXPECT_EQ(r.status.code, 3) << r.status.describe();
    EXPECT_FALSE(r.timed_out);
    EXPECT_LT(wakeups, 60);
}

TEST(Spawn, ExitStatusFromWait) {
    auto ok = exit_status::from_wait(0);
    EXPECT_TRUE(ok.success());
    EXPECT_EQ(ok.describe(), "exit 0");
    auto sig = exit_status::from_wait(SIGSEGV);  // WIFSIGNALED encoding
    EXPECT_FALSE(sig.exited);
    EXPECT_EQ(sig.signal, SIGSEGV);
    EXPECT_EQ(sig.describe(), "killed by SIGSEGV");
}

// ---- fd hygiene ---------------------------------------------------------------------------------

namespace {

// fd number -> link target of every fd of the calling process.
std::map<int, std::string> parse_ls_fd(const std::string& ls_output) {
    std::map<int, std::string> fds;
    std::istringstream in(ls_output);
    std::string line;
    while (std::getline(in, line)) {
        auto arrow = line.find(" -> ");
        if (arrow == std::string::npos) continue;
        auto start = line.rfind(' ', arrow - 1);
        fds[std::stoi(line.substr(start + 1, arrow - start - 1))] = line.substr(arrow + 4);
    }
    return fds;
}

}  // namespace

TEST(FdHygiene, NoIpckitFdLeaksIntoAnExecdChild) {
    // Several ipckit descriptors of different kinds held open while spawning.
    std::string path = test::unique_path("ipckit-leak");
    fifo_remover rm(path);
    auto fifo_reader = open_channel("fifo:" + path, channel_role::receiver);
    auto pipes = make_pipe_channels();
    auto raw = make_pipe();
    auto dup = dup_cloexec(raw.read_end.get());
    // Descriptors this test process inherited from whoever started it (ctest,
    // a shell) are not ours: an exec'd child legitimately inherits them too.
    std::set<int> inherited;
    for (int fd = 3; fd < 1024; ++fd) {
        int flags = ::fcntl(fd, F_GETFD);
        if (flags != -1 && !(flags & FD_CLOEXEC)) inherited.insert(fd);
    }
    auto r = run({"ls", "-l", "/proc/self/fd/"}, {}, deadline::after(10s));
    ASSERT_TRUE(r.status.success()) << r.err;
    auto fds = parse_ls_fd(r.out);
    ASSERT_TRUE(fds.count(0) && fds.count(1) && fds.count(2)) << r.out;
    int ls_own = 0;
    for (const auto& [fd, target] : fds) {
        if (fd <= 2 || inherited.count(fd)) continue;
        if (target.find("/fd") != std::string::npos && target.rfind("/proc/", 0) == 0) {
            ++ls_own;  // the directory ls is listing
            continue;
        }
        ADD_FAILURE() << "fd " << fd << " -> " << target << " leaked into the child\n" << r.out;
    }
    EXPECT_LE(ls_own, 1);
    if (!inherited.empty())
        std::printf("note: %zu fd(s) inherited from the test runner\n", inherited.size());
}

// ---- fork_child -------------------------------------------------------------

TEST(ForkChild, ReturnValueIsTheExitCode) {
    auto child = fork_child([] { return 7; });
    auto st = child.wait_until(deadline::after(10s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->exited);
    EXPECT_EQ(st->code, 7);
}

TEST(ForkChild, EscapedExceptionExits99AndSaysWhat) {
    auto err = make_pipe();
    auto child = fork_child([&] {
        ::dup2(err.write_end.get(), 2);  // capture the child's stderr
        throw std::runtime_error("boom in the child");
        return 0;
    });
    err.write_end.reset();
    auto st = child.wait_until(deadline::after(10s));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->describe(), "exit 99");
    std::string text(256, '\0');
    ssize_t n = ::read(err.read_end.get(), text.data(), text.size());
    ASSERT_GT(n, 0);
    text.resize(static_cast<std::size_t>(n));
    EXPECT_NE(text.find("boom in the child"), std::string::npos) << text;
}

TEST(ForkChild, DroppedHandleKillsAndReapsTheChild) {
    pid_t pid;
    {
        auto child = fork_child([] {
            for (;;)
                ::pause();
            return 0;
        });
        pid = child.pid();
        ASSERT_EQ(::kill(pid, 0), 0);
    }
    // Reaped: the pid no longer names a child of ours.
    EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(ForkChild, ParentsBufferedOutputIsNotDuplicated) {
    auto out = make_pipe();
    std::FILE* f = ::fdopen(::dup(out.write_end.get()), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("parent\n", f);  // still in the parent's stdio buffer at fork time
    // The child flushes stdio before _exit: without the flush before fork it
    // would write the inherited "parent\n" a second time.
    auto child = fork_child([] { return 0; });
    ASSERT_TRUE(child.wait_until(deadline::after(10s)));
    std::fclose(f);
    out.write_end.reset();
    std::string text(64, '\0');
    ssize_t n = ::read(out.read_end.get(), text.data(), text.size());
    ASSERT_GT(n, 0);
    text.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(text, "parent\n");
}
