// `ipckit chat serve` with many real clients, one of which stops reading.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "ipckit/pipe.hpp"
#include "ipckit/socket.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

using test::read_all;

// Reads one '\n'-terminated line from fd (byte by byte: it is a pipe we
// share with nobody, and only the first line is needed).
std::string read_line(int fd, const deadline& until) {
    std::string line;
    char c;
    while (!until.expired()) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, until.poll_timeout_ms()) <= 0) continue;
        ssize_t n = ::read(fd, &c, 1);
        if (n <= 0) break;
        if (c == '\n') return line;
        line += c;
    }
    return line;
}

struct client {
    sock s;
    std::string name;
    std::string in;  // everything received
    std::size_t count(const std::string& needle) const {
        std::size_t n = 0;
        for (auto p = in.find(needle); p != std::string::npos; p = in.find(needle, p + 1))
            ++n;
        return n;
    }
};

// Reads whatever is available on every client until pred() holds.
bool pump(std::vector<client*>& cs, const deadline& until, const std::function<bool()>& pred) {
    std::vector<pollfd> fds(cs.size());
    while (!pred()) {
        if (until.expired()) return false;
        for (std::size_t i = 0; i < cs.size(); ++i)
            fds[i] = {cs[i]->s.fd(), POLLIN, 0};
        int n = ::poll(fds.data(), fds.size(), 100);
        if (n <= 0) continue;
        for (std::size_t i = 0; i < cs.size(); ++i) {
            if (!fds[i].revents) continue;
            char buf[65536];
            ssize_t r = ::recv(cs[i]->s.fd(), buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0) cs[i]->in.append(buf, static_cast<std::size_t>(r));
        }
    }
    return true;
}

}  // namespace

TEST(Chat, FiftyClientsAndOneThatStopsReading) {
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto server = spawn({test::ipckit_binary(), "chat", "serve", "tcp://127.0.0.1:0",
                         "--queue-limit", "128k", "--sndbuf", "16k"},
                        so);
    std::string first = read_line(server.stdout_pipe().get(), deadline::after(20s));
    auto colon = first.rfind(':');
    ASSERT_NE(colon, std::string::npos) << first;
    auto port = static_cast<std::uint16_t>(std::stoi(first.substr(colon + 1)));

    constexpr int kClients = 50;
    std::vector<client> clients(kClients);
    std::vector<client*> readers;  // every client but the slow one
    for (int i = 0; i < kClients; ++i) {
        auto& c = clients[i];
        c.name = i == kClients - 1 ? "slow" : "c" + std::to_string(i);
        c.s = connect_tcp("127.0.0.1", port, deadline::after(20s));
        if (c.name == "slow") {
            int small = 4096;  // a small window: its backlog lands in the server's queue
            ::setsockopt(c.s.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        } else {
            readers.push_back(&c);
        }
        ASSERT_EQ(c.s.send(c.name + "\n"), io_status::ok);
    }
    // Every reader sees its own welcome and, eventually, the slow client join.
    ASSERT_TRUE(pump(readers, deadline::after(60s), [&] {
        for (auto* c : readers)
            if (c->count("* you are " + c->name + ";") != 1) return false;
        return readers.front()->count("* slow joined") == 1;
    }));

    // c0 talks a lot; the others keep up, the slow one never reads.
    const std::string payload(1000, 'x');
    constexpr int kLines = 500;
    auto& talker = clients[0];
    std::vector<client*> listeners(readers.begin() + 1, readers.end());
    for (int sent = 0; sent < kLines;) {
        std::string batch;
        for (int k = 0; k < 20 && sent < kLines; ++k, ++sent)
            batch += std::to_string(sent) + " " + payload + "\n";
        ASSERT_EQ(talker.s.send(batch, deadline::after(30s)), io_status::ok);
        // Keep everyone who reads within one batch of the talker.
        ASSERT_TRUE(pump(listeners, deadline::after(60s),
                         [&] {
                             for (auto* c : listeners)
                                 if (c->count("c0: ") != static_cast<std::size_t>(sent))
                                     return false;
                             return true;
                         }))
            << "a reading client fell behind after " << sent << " lines";
    }
    // The slow client was dropped and everyone heard of it.
    ASSERT_TRUE(pump(readers, deadline::after(60s), [&] {
        for (auto* c : readers)
            if (c->count("* slow was dropped (not reading)") != 1) return false;
        return true;
    }));
    for (auto* c : listeners) {
        EXPECT_EQ(c->count("c0: "), static_cast<std::size_t>(kLines)) << c->name;
        EXPECT_EQ(c->count("c0: 499 x"), 1u) << c->name;
    }
    EXPECT_EQ(talker.count("c0: "), 0u) << "the sender gets no echo of its own lines";

    // A client leaving is announced.
    clients[5].s = sock();
    ASSERT_TRUE(
        pump(readers, deadline::after(30s), [&] { return clients[1].count("* c5 left") == 1; }));

    server.kill(SIGTERM);
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    std::string log = first + "\n" + read_all(server.stdout_pipe().get(), deadline::after(5s));
    EXPECT_NE(log.find("chat: dropped slow: not reading"), std::string::npos) << log;
    EXPECT_NE(log.find("chat: c5 left"), std::string::npos) << log;
}

namespace {

// A chat server on an ephemeral TCP port, with the port read off its first line.
struct tcp_chat {
    child_process server;
    std::uint16_t port = 0;
    explicit tcp_chat(std::vector<std::string> extra) {
        spawn_options so;
        so.out = stdio_mode::pipe;
        std::vector<std::string> argv{test::ipckit_binary(), "chat", "serve", "tcp://127.0.0.1:0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        server = spawn(argv, so);
        std::string first = read_line(server.stdout_pipe().get(), deadline::after(20s));
        auto colon = first.rfind(':');
        if (colon != std::string::npos)
            port = static_cast<std::uint16_t>(std::stoi(first.substr(colon + 1)));
    }
    client join(const std::string& name) {
        client c{connect_tcp("127.0.0.1", port, deadline::after(20s)), name, {}};
        EXPECT_EQ(c.s.send(name + "\n"), io_status::ok);
        return c;
    }
};

}  // namespace

TEST(Chat, LongLinesAreCutToMaxLine) {
    tcp_chat chat({"--max-line", "100"});
    ASSERT_NE(chat.port, 0);
    client ana = chat.join("ana");
    client bob = chat.join("bob");
    std::vector<client*> both{&ana, &bob};
    ASSERT_TRUE(pump(both, deadline::after(20s), [&] { return ana.count("* bob joined") == 1; }));

    // 1000 bytes in one line, then 350 bytes with no newline yet, then the newline.
    ASSERT_EQ(bob.s.send(std::string(1000, 'y') + "\n" + std::string(350, 'z')), io_status::ok);
    ASSERT_TRUE(pump(both, deadline::after(20s), [&] { return ana.count("bob: ") == 13; }))
        << ana.in.size() << " bytes: " << ana.in.substr(0, 400);
    ASSERT_EQ(bob.s.send("\n"), io_status::ok);
    ASSERT_TRUE(pump(both, deadline::after(20s), [&] { return ana.count("bob: ") == 14; }));

    std::size_t ys = 0, zs = 0;
    for (std::size_t pos = 0; (pos = ana.in.find("bob: ", pos)) != std::string::npos;) {
        auto end = ana.in.find('\n', pos);
        ASSERT_NE(end, std::string::npos);
        std::string text = ana.in.substr(pos + 5, end - pos - 5);
        EXPECT_LE(text.size(), 100u) << "a line longer than --max-line went out";
        ys += static_cast<std::size_t>(std::count(text.begin(), text.end(), 'y'));
        zs += static_cast<std::size_t>(std::count(text.begin(), text.end(), 'z'));
        pos = end;
    }
    EXPECT_EQ(ys, 1000u);
    EXPECT_EQ(zs, 350u) << "the unfinished line went out in pieces, none lost";
    chat.server.kill(SIGTERM);
    ASSERT_TRUE(chat.server.wait_until(deadline::after(20s)));
}

TEST(Chat, AFloodingClientDoesNotStarveTheOthers) {
    // carol reads (and drops) what she gets, so the server has work for
    // every flood line. The queue limit is high so that she is not dropped
    // while her small kernel buffer (--sndbuf 32k) lets the queue grow; the
    // test is over within a second or two when the server is fair.
    tcp_chat chat({"--queue-limit", "512M", "--max-line", "8192"});
    ASSERT_NE(chat.port, 0);
    client flood = chat.join("flood");
    client carol = chat.join("carol");
    std::vector<client*> readers{&carol};
    ASSERT_TRUE(
        pump(readers, deadline::after(20s), [&] { return carol.count("* you are carol;") == 1; }));

    // The flood goes out from a child process, as fast as the server takes
    // it, until the test ends. dave joins once it is flowing: a server that
    // reads one client until EAGAIN neither accepts dave nor reads his name
    // while the flood lasts, here for good.
    test::forked_child flooder([&] {
        std::string batch;
        for (int i = 0; i < 8; ++i)
            batch += std::string(8000, 'f') + "\n";
        for (;;)
            if (flood.s.send(batch, deadline::after(60s)) != io_status::ok) return 1;
    });
    flood.s = sock();  // the child holds the connection now
    std::size_t carol_bytes = 0;
    auto drain = [&] {
        carol_bytes += carol.in.size();
        carol.in.clear();
    };
    ASSERT_TRUE(pump(readers, deadline::after(60s), [&] {
        drain();
        return carol_bytes > (4u << 20);
    }));
    client dave = chat.join("dave");
    std::vector<client*> both{&carol, &dave};
    ASSERT_TRUE(pump(both, deadline::after(60s),
                     [&] {
                         drain();
                         return dave.in.find("* you are dave; online: ") != std::string::npos;
                     }))
        << "dave got no welcome during the flood: " << dave.in.substr(0, 200);
    chat.server.kill(SIGTERM);
    ASSERT_TRUE(chat.server.wait_until(deadline::after(20s)));
}

TEST(Chat, UnixSocketServerWithJoinClients) {
    auto path = test::unique_path("ipckit-chat") + ".sock";
    test::scoped_unlink rm(path);
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto server = spawn({test::ipckit_binary(), "chat", "serve", "unix:" + path}, so);
    std::string first = read_line(server.stdout_pipe().get(), deadline::after(20s));
    ASSERT_NE(first.find("serving unix:" + path), std::string::npos) << first;

    // A raw client waits in the room; `chat join` says one line and leaves.
    client watcher{connect_unix(path, socket_type::stream, deadline::after(10s)), "watcher", {}};
    watcher.s.send("watcher\n");
    std::vector<client*> w{&watcher};
    ASSERT_TRUE(
        pump(w, deadline::after(20s), [&] { return watcher.count("* you are watcher;") == 1; }));
    auto r =
        test::run_ipckit({"chat", "join", "unix:" + path, "--name", "ana"}, "hello room\n", 30s);
    EXPECT_TRUE(r.status.success()) << r.status.describe() << r.err;
    EXPECT_NE(r.out.find("* you are ana; online: watcher"), std::string::npos) << r.out;
    ASSERT_TRUE(pump(w, deadline::after(20s), [&] { return watcher.count("* ana left") == 1; }));
    EXPECT_NE(watcher.in.find("* ana joined\nana: hello room\n* ana left\n"), std::string::npos)
        << watcher.in;

    server.kill(SIGTERM);
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the server removes its socket file";
}

// unix:@name has no permissions: the chat admits only its own user (and
// root) unless the URL says allow=, and refuses before reading a byte.
TEST(Chat, AbstractRoomAdmitsOnlyItsOwnUserByDefault) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    for (std::string allow : {"", "?allow=any"}) {
        SCOPED_TRACE(allow);
        auto name = "@" + test::unique_name("ipckit-chat-allow");
        spawn_options so;
        so.out = stdio_mode::pipe;
        auto server = spawn({test::ipckit_binary(), "chat", "serve", "unix:" + name + allow}, so);
        std::string first = read_line(server.stdout_pipe().get(), deadline::after(20s));
        ASSERT_NE(first.find("serving"), std::string::npos) << first;
        auto st = test::run_unprivileged([&](const std::string&) {
            client c{connect_unix(name, socket_type::stream, deadline::after(10s)), "nobody", {}};
            c.s.send("nobody\n");
            std::vector<client*> me{&c};
            bool welcomed = pump(me, deadline::after(allow.empty() ? 1s : 10s),
                                 [&] { return c.count("* you are nobody;") == 1; });
            return welcomed ? 0 : 1;
        });
        ASSERT_TRUE(st);
        ASSERT_LT(st->code, 90) << "could not drop to uid " << test::kNobody;
        EXPECT_EQ(st->success(), !allow.empty()) << "another user got into the room";
        client me = {connect_unix(name, socket_type::stream, deadline::after(10s)), "me", {}};
        me.s.send("me\n");
        std::vector<client*> mine{&me};
        EXPECT_TRUE(
            pump(mine, deadline::after(20s), [&] { return me.count("* you are me;") == 1; }));
        server.kill(SIGTERM);
        ASSERT_TRUE(server.wait_until(deadline::after(20s)));
        std::string log = read_all(server.stdout_pipe().get(), deadline::after(5s));
        EXPECT_EQ(log.find("chat: refused pid") != std::string::npos, allow.empty()) << log;
    }
}

TEST(Chat, BadUsage) {
    auto r = test::run_ipckit({"chat", "serve", "fifo:/tmp/x"});
    EXPECT_EQ(r.status.code, 2) << r.err;
    EXPECT_NE(r.err.find("tcp://"), std::string::npos) << r.err;
    r = test::run_ipckit({"chat", "join", "tcp://127.0.0.1:1"});  // --name missing
    EXPECT_EQ(r.status.code, 2);
    r = test::run_ipckit({"chat", "serve", "tcp://127.0.0.1:0", "--queue-limit", "lots"});
    EXPECT_EQ(r.status.code, 2) << r.err;
}
