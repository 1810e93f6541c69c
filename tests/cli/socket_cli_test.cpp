// The ipckit command over unix:, tcp: and udp:, and talking to nc and socat.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/pipe.hpp"
#include "ipckit/socket.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

using test::read_all;

// A background process whose stdout we collect once it ends.
struct background {
    child_process proc;
    explicit background(const std::vector<std::string>& argv) {
        spawn_options so;
        so.out = stdio_mode::pipe;
        so.err = stdio_mode::pipe;
        proc = spawn(argv, so);
    }
    // Waits for the exit; returns stdout ("" + failure if it did not end).
    std::pair<std::optional<exit_status>, std::string> finish(std::chrono::seconds t = 20s) {
        auto st = proc.wait_until(deadline::after(t));
        if (!st) proc.kill(SIGKILL);
        return {st, read_all(proc.stdout_pipe().get(), deadline::after(2s))};
    }
};

// Waits until something accepts connections at a Unix address. The probe
// connection is closed at once; a sequential listener just serves the next.
bool wait_unix_listening(const std::string& address) {
    auto until = deadline::after(20s);
    while (!until.expired()) {
        sock s;
        if (try_connect_unix(address, socket_type::stream, s, deadline::after(1s)) ==
            connect_status::ok)
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

bool wait_tcp_listening(std::uint16_t port) {
    auto until = deadline::after(20s);
    while (!until.expired()) {
        sock s;
        if (try_connect_tcp("127.0.0.1", port, s, deadline::after(1s)) == connect_status::ok)
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

// A port from an ephemeral bind (closed again for the program under test).
std::uint16_t free_port() {
    return tcp_listener("127.0.0.1", 0).port();
}

std::vector<std::string> cli_argv(std::vector<std::string> args) {
    args.insert(args.begin(), test::ipckit_binary());
    return args;
}

}  // namespace

TEST(SocketCli, UnixStreamSendRecv) {
    auto path = test::unique_path("ipckit-cli") + ".sock";
    test::scoped_unlink rm(path);
    background recv(cli_argv({"recv", "unix:" + path, "-n", "2", "--timeout", "20s"}));
    ASSERT_TRUE(wait_unix_listening(path));
    auto r = test::run_ipckit({"send", "unix:" + path, "hello", "world"});
    EXPECT_TRUE(r.status.success()) << r.err;
    auto [st, out] = recv.finish();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    EXPECT_EQ(out, "hello\nworld\n");
}

TEST(SocketCli, SeqpacketAndDgram) {
    for (std::string type : {"seqpacket", "dgram"}) {
        auto path = test::unique_path("ipckit-cli") + ".sock";
        test::scoped_unlink rm(path);
        auto url = "unix:" + path + "?type=" + type;
        background recv(cli_argv({"recv", url, "-n", "2", "--timeout", "20s"}));
        // Retry the send until the receiver has bound its socket.
        run_result r;
        for (int i = 0; i < 500; ++i) {
            r = test::run_ipckit({"send", url, "m1", "m2"});
            if (r.status.success() || r.err.find("refused") == std::string::npos) break;
            std::this_thread::sleep_for(20ms);
        }
        EXPECT_TRUE(r.status.success()) << type << ": " << r.err;
        auto [st, out] = recv.finish();
        ASSERT_TRUE(st);
        EXPECT_EQ(out, "m1\nm2\n") << type;
    }
}

TEST(SocketCli, SocatTalksToRecvInLineMode) {
    auto name = test::unique_name("ipckit-socat");
    background recv(
        cli_argv({"recv", "unix:@" + name + "?frame=line", "-n", "2", "--timeout", "20s"}));
    ASSERT_TRUE(wait_unix_listening("@" + name));
    auto r = run({"socat", "-", "ABSTRACT-CONNECT:" + name}, "from socat\nsecond line\n",
                 deadline::after(20s));
    EXPECT_TRUE(r.status.success()) << r.err;
    auto [st, out] = recv.finish();
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success());
    EXPECT_EQ(out, "from socat\nsecond line\n");
}

TEST(SocketCli, NcTalksToRecvOverTcp) {
    auto port = free_port();
    auto url = "tcp://127.0.0.1:" + std::to_string(port) + "?frame=line";
    background recv(cli_argv({"recv", url, "-n", "2", "--timeout", "20s"}));
    ASSERT_TRUE(wait_tcp_listening(port));
    auto r = run({"nc", "-N", "127.0.0.1", std::to_string(port)}, "nc one\nnc two\n",
                 deadline::after(20s));
    EXPECT_TRUE(r.status.success()) << r.err;
    auto [st, out] = recv.finish();
    ASSERT_TRUE(st);
    EXPECT_EQ(out, "nc one\nnc two\n");
}

TEST(SocketCli, SendToNcListener) {
    auto port = free_port();
    background nc({"nc", "-l", "127.0.0.1", std::to_string(port)});
    auto url = "tcp://127.0.0.1:" + std::to_string(port) + "?frame=line";
    run_result r;
    for (int i = 0; i < 500; ++i) {  // nc accepts one connection: no probe, retry instead
        r = test::run_ipckit({"send", url, "to nc", "bye"});
        if (r.status.success() || r.err.find("refused") == std::string::npos) break;
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(r.status.success()) << r.err;
    auto [st, out] = nc.finish();
    EXPECT_EQ(out, "to nc\nbye\n");
}

TEST(SocketCli, UdpFromSocat) {
    auto port = free_port();
    background recv(cli_argv(
        {"recv", "udp://127.0.0.1:" + std::to_string(port), "-n", "1", "--timeout", "20s"}));
    // UDP has no handshake: repeat the datagram until the receiver got one.
    std::optional<exit_status> st;
    for (int i = 0; i < 200 && !st; ++i) {
        run({"socat", "-u", "-", "UDP-SENDTO:127.0.0.1:" + std::to_string(port)}, "ping",
            deadline::after(5s));
        st = recv.proc.wait_until(deadline::after(50ms));
    }
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success());
    EXPECT_EQ(read_all(recv.proc.stdout_pipe().get(), deadline::after(2s)), "ping\n");
}

TEST(SocketCli, TimeoutRefusedAndBadInput) {
    auto r = test::run_ipckit({"recv", "tcp://127.0.0.1:0", "--timeout", "200ms"});
    EXPECT_EQ(r.status.code, 3) << r.err;
    r = test::run_ipckit({"send", "unix:@" + test::unique_name("nobody"), "x"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.err;
    r = test::run_ipckit({"recv", "unix:/tmp/" + std::string(150, 'l')});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("107"), std::string::npos) << r.err;
    r = test::run_ipckit({"recv", "tcp://[::1:80"});
    EXPECT_EQ(r.status.code, 2) << r.err;
    // A regular file at the path is not replaced.
    auto path = test::unique_path("ipckit-file");
    test::scoped_unlink rm(path);
    ASSERT_TRUE(run({"touch", path}).status.success());
    r = test::run_ipckit({"recv", "unix:" + path, "--timeout", "1s"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("not a socket"), std::string::npos) << r.err;
}

TEST(SocketCli, NcJoinsTheChat) {
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto port = free_port();
    auto server = spawn(
        {test::ipckit_binary(), "chat", "serve", "tcp://127.0.0.1:" + std::to_string(port)}, so);
    ASSERT_TRUE(wait_tcp_listening(port));
    // An ipckit client stays in the room while nc says hello and leaves.
    spawn_options jo;
    jo.in = stdio_mode::pipe;
    jo.out = stdio_mode::pipe;
    auto ana = spawn({test::ipckit_binary(), "chat", "join",
                      "tcp://127.0.0.1:" + std::to_string(port), "--name", "ana"},
                     jo);
    // Wait until ana is in (the server logs it), then let nc talk.
    std::string log;
    auto until = deadline::after(20s);
    char buf[256];
    while (log.find("ana joined") == std::string::npos && !until.expired()) {
        pollfd p{server.stdout_pipe().get(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        ssize_t n = ::read(server.stdout_pipe().get(), buf, sizeof buf);
        if (n <= 0) break;
        log.append(buf, static_cast<std::size_t>(n));
    }
    ASSERT_NE(log.find("ana joined"), std::string::npos) << log;
    auto r = run({"nc", "-N", "127.0.0.1", std::to_string(port)}, "bob\nhi from nc\n",
                 deadline::after(20s));
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("* you are bob; online: ana"), std::string::npos) << r.out;
    ana.stdin_pipe().reset();  // ana leaves too; join exits when the server closes
    auto ast = ana.wait_until(deadline::after(20s));
    ASSERT_TRUE(ast);
    EXPECT_TRUE(ast->success());
    auto ana_out = read_all(ana.stdout_pipe().get(), deadline::after(2s));
    EXPECT_NE(ana_out.find("* bob joined\nbob: hi from nc\n* bob left\n"), std::string::npos)
        << ana_out;
    server.kill(SIGTERM);
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success());
}
