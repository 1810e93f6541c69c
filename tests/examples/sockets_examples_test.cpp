// Runs the lecture's socket programs (examples/lecture) as real processes.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "ipckit/pipe.hpp"
#include "ipckit/socket.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string example(const std::string& name) {
    return std::string(IPCKIT_EXAMPLES_DIR) + "/" + name;
}

std::string read_until(int fd, const std::string& needle, const deadline& until) {
    std::string out;
    char buf[1024];
    while (out.find(needle) == std::string::npos && !until.expired()) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, until.poll_timeout_ms()) <= 0) continue;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

void server_and_two_clients(const std::string& address) {
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto server = spawn({example("unix_server"), address, "--clients", "2"}, so);
    auto head = read_until(server.stdout_pipe().get(), "\n", deadline::after(20s));
    ASSERT_EQ(head, "listening on " + address + "\n");
    auto a = run({example("unix_client"), address}, "hello server", deadline::after(20s));
    EXPECT_TRUE(a.status.success()) << a.err;
    auto b = run({example("unix_client"), address}, std::string(250, 'x'), deadline::after(20s));
    EXPECT_TRUE(b.status.success()) << b.err;
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    auto out = read_until(server.stdout_pipe().get(), "\x01", deadline::after(2s));
    EXPECT_NE(out.find("read 12 bytes: hello server\nEOF\n"), std::string::npos) << out;
    // 250 bytes arrive in reads of at most 100 bytes (the slide's buffer), all printed.
    std::size_t xs = 0;
    for (char c : out)
        xs += c == 'x';
    EXPECT_EQ(xs, 250u) << out;
}

}  // namespace

TEST(SocketExamples, UnixServerAndClientPathname) {
    auto path = test::unique_path("ipckit-ex") + ".sock";
    test::scoped_unlink rm(path);
    server_and_two_clients(path);
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the server removes its socket file";
}

TEST(SocketExamples, UnixServerAndClientAbstract) {
    server_and_two_clients("@" + test::unique_name("ipckit-ex"));
}

TEST(SocketExamples, ClientWithoutServerFailsClearly) {
    auto r =
        run({example("unix_client"), "@" + test::unique_name("nobody")}, "x", deadline::after(20s));
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.err;
}

TEST(SocketExamples, SocketpairHello) {
    auto r = run({example("socketpair_hello")}, {}, deadline::after(20s));
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("PAI recv: Hello, how are you?\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FILHO recv: I am fine, thanks.\n"), std::string::npos) << r.out;
}

TEST(SocketExamples, TcpChat) {
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto server = spawn({example("tcp_chat")}, so);
    auto head = read_until(server.stdout_pipe().get(), "\n", deadline::after(20s));
    ASSERT_EQ(head.rfind("port ", 0), 0u) << head;
    auto port = static_cast<std::uint16_t>(std::stoi(head.substr(5)));
    sock ana = connect_tcp("127.0.0.1", port, deadline::after(20s));
    sock bob = connect_tcp("127.0.0.1", port, deadline::after(20s));
    ASSERT_EQ(ana.send("ana\n"), io_status::ok);
    ASSERT_EQ(bob.send("bob\n"), io_status::ok);
    auto receive_line = [&ana] {
        std::string got, part;
        while (got.find('\n') == std::string::npos &&
               ana.receive(part, 1, deadline::after(20s)) == io_status::ok)
            got += part;
        return got;
    };
    EXPECT_EQ(receive_line(), "* bob joined\n");
    ASSERT_EQ(bob.send("hi ana\n"), io_status::ok);
    EXPECT_EQ(receive_line(), "bob: hi ana\n");
    bob = sock();
    EXPECT_EQ(receive_line(), "* bob left\n");
    server.kill(SIGTERM);
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
}
