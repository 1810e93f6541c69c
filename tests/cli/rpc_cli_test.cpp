// ipckit rpc serve / rpc call, end to end over unix: and tcp:.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ipckit/pipe.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// `ipckit rpc serve` on a unique socket path, its first line already read.
// Members are destroyed in reverse: the process is killed and reaped (if a
// test failed early), then the socket file is removed.
struct rpc_server {
    test::scoped_unlink rm;
    std::string url;
    test::line_process proc;
    std::string head;
    explicit rpc_server(const std::vector<std::string>& extra = {})
        : rm(test::unique_path("ipckit-rpc") + ".sock"),
          url("unix:" + rm.path()),
          proc(argv(url, extra)),
          head(proc.line()) {}
    static std::vector<std::string> argv(const std::string& url,
                                         const std::vector<std::string>& extra) {
        std::vector<std::string> a{test::ipckit_binary(), "rpc", "serve", url};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    run_result call(std::vector<std::string> args, std::string_view input = {}) {
        args.insert(args.begin(), {"rpc", "call", url});
        return test::run_ipckit(args, input);
    }
    // SIGTERM: the server must stop cleanly (exit 0) and remove its socket file.
    void stop() {
        proc.process().kill(SIGTERM);
        auto st = proc.finish();
        EXPECT_TRUE(st.success()) << st.describe();
        EXPECT_NE(::access(rm.path().c_str(), F_OK), 0) << "socket file left behind";
    }
};

}  // namespace

TEST(RpcCli, ServeAndCall) {
    rpc_server s;
    ASSERT_EQ(s.head, "rpc: serving " + s.url + " (methods: echo, add, upper, date, sleep, pid)");
    auto r = s.call({"add", "2", "3"});
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "5\n");
    r = s.call({"add", "--", "-4", "10", "+1"});
    EXPECT_EQ(r.out, "7\n") << r.err;
    r = s.call({"echo", "hello", "rpc", "world"});
    EXPECT_EQ(r.out, "hello rpc world\n") << r.err;
    r = s.call({"echo", "-"}, std::string("two\nlines\x01"));
    EXPECT_EQ(r.out, "two\\nlines\\x01\n") << r.err;
    r = s.call({"echo", "-", "--raw"}, "raw\tbytes");
    EXPECT_EQ(r.out, "raw\tbytes\n") << r.err;
    r = s.call({"upper", "abc-xyz"});
    EXPECT_EQ(r.out, "ABC-XYZ\n") << r.err;
    r = s.call({"pid"});
    EXPECT_EQ(r.out, std::to_string(s.proc.pid()) + "\n") << r.err;
    r = s.call({"date"});
    EXPECT_EQ(r.out.size(), 21u) << r.out;  // 2026-01-02T03:04:05Z\n
    EXPECT_EQ(r.out[10], 'T') << r.out;
    // Each call is logged by the server, one line per call.
    EXPECT_EQ(s.proc.line().rfind("rpc: add ok (3 -> 1 bytes, ", 0), 0u);
    s.stop();
}

TEST(RpcCli, RemoteErrors) {
    rpc_server s{{"-q"}};
    auto r = s.call({"nosuch", "x"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err.rfind("ipckit: rpc nosuch " + s.url + ": unknown method: ", 0), 0u) << r.err;
    r = s.call({"add", "1", "x"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err, "ipckit: rpc add " + s.url + ": handler failed: not an integer: x\n");
    r = s.call({"add", "9223372036854775807", "1"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("sum overflows int64"), std::string::npos) << r.err;
    r = s.call({"sleep", "60001"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("0..60000"), std::string::npos) << r.err;
    // The server's text is escaped (it must not drive the terminal) and quotes
    // at most 40 bytes of the argument.
    r = s.call({"add", "\x1b]0;title\x07"});
    EXPECT_EQ(r.err, "ipckit: rpc add " + s.url +
                         ": handler failed: not an integer: \\x1b]0;title\\x07\n");
    r = s.call({"sleep", "-"}, std::string(100000, 'a'));
    EXPECT_EQ(r.err, "ipckit: rpc sleep " + s.url + ": handler failed: sleep takes milliseconds " +
                         "0..60000, not '" + std::string(40, 'a') + "...'\n");
    // Checked before connecting: a bad method name is a usage error.
    r = s.call({"bad name!"});
    EXPECT_EQ(r.status.code, 2) << r.err;
    EXPECT_NE(r.err.find("invalid method name"), std::string::npos) << r.err;
    // stdin is read up to max_message, not without bound.
    r = test::run_ipckit({"rpc", "call", s.url + "?max_message=1k", "echo", "-"},
                         std::string(2000, 'x'));
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("arguments from stdin exceed max_message (1024 bytes)"), std::string::npos)
        << r.err;
    // The server survives every bad request.
    r = s.call({"add", "1", "1"});
    EXPECT_EQ(r.out, "2\n") << r.err;
    s.stop();
}

TEST(RpcCli, TimeoutExits3AndStopInterruptsSleep) {
    rpc_server s{{"-q"}};
    auto start = std::chrono::steady_clock::now();
    auto r = s.call({"sleep", "2000", "--timeout", "200ms"});
    EXPECT_EQ(r.status.code, 3) << r.err;
    EXPECT_EQ(r.err, "ipckit: rpc sleep " + s.url + ": timed out after 200ms (no reply)\n");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
    r = s.call({"sleep", "50"});
    EXPECT_EQ(r.out, "slept 50 ms\n") << r.err;
    // SIGTERM during a long sleep still stops the server at once.
    spawn_options so;
    so.out = stdio_mode::pipe;
    so.err = stdio_mode::pipe;
    auto slow = spawn({test::ipckit_binary(), "rpc", "call", s.url, "sleep", "60000"}, so);
    std::this_thread::sleep_for(200ms);
    start = std::chrono::steady_clock::now();
    s.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    auto st = slow.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->code, 1);
}

TEST(RpcCli, JsonAndMethods) {
    rpc_server s{{"--json"}};
    auto first = json::parse(s.head);
    EXPECT_EQ(first["serving"], s.url);
    EXPECT_EQ(first["methods"].size(), 6u) << s.head;
    auto r = s.call({"add", "2", "3", "--json"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["method"], "add");
    EXPECT_EQ(j["result"], "5");
    EXPECT_TRUE(j["microseconds"].is_number_integer());
    r = s.call({"echo", "-", "--json"}, std::string("\xff\x00", 2));
    j = json::parse(r.out);
    EXPECT_EQ(j["result_hex"], "ff00") << r.out;
    r = s.call({"rpc.methods"});
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("echo\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("add\n"), std::string::npos) << r.out;
    r = s.call({"rpc.methods", "--json"});
    j = json::parse(r.out);
    ASSERT_TRUE(j["result"].is_array()) << r.out;
    // The server logs one JSON object per call handled by a demo method.
    auto line = json::parse(s.proc.line());
    EXPECT_EQ(line["method"], "add");
    EXPECT_EQ(line["status"], "ok");
    EXPECT_EQ(line["bytes_in"], 3);
    EXPECT_EQ(line["bytes_out"], 1);
    EXPECT_TRUE(line["microseconds"].is_number_integer());
    s.stop();
}

TEST(RpcCli, MaxCallsAndTimeoutOverTcp) {
    test::line_process srv({test::ipckit_binary(), "rpc", "serve", "tcp://127.0.0.1:0", "-n", "2"});
    auto head = srv.line();
    ASSERT_EQ(head.rfind("rpc: serving tcp://127.0.0.1:", 0), 0u) << head;
    auto url = head.substr(13, head.find(' ', 13) - 13);
    EXPECT_NE(url, "tcp://127.0.0.1:0");
    EXPECT_EQ(test::run_ipckit({"rpc", "call", url, "upper", "a"}).out, "A\n");
    EXPECT_EQ(test::run_ipckit({"rpc", "call", url, "upper", "b"}).out, "B\n");
    auto st = srv.finish();
    EXPECT_TRUE(st.success()) << st.describe();

    test::line_process idle(
        {test::ipckit_binary(), "rpc", "serve", "tcp://127.0.0.1:0", "-q", "--timeout", "300ms"});
    EXPECT_EQ(idle.line().rfind("rpc: serving", 0), 0u);
    st = idle.finish();
    EXPECT_TRUE(st.success()) << st.describe();
}

TEST(RpcCli, RefusedAndBadUrls) {
    auto r = test::run_ipckit({"rpc", "call", "unix:@" + test::unique_name("nobody"), "echo"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.err;
    r = test::run_ipckit({"rpc", "call", "unix:" + test::unique_path("nobody"), "echo"});
    EXPECT_EQ(r.status.code, 1) << r.err;
    for (std::string bad : {"mq:/x", "tcp://[::1:80", "fifo:/tmp/x"}) {
        r = test::run_ipckit({"rpc", "call", bad, "echo"});
        EXPECT_EQ(r.status.code, 2) << bad << ": " << r.err;
        r = test::run_ipckit({"rpc", "serve", bad});
        EXPECT_EQ(r.status.code, 2) << bad << ": " << r.err;
    }
    for (const char* sub : {"serve", "call"}) {
        r = test::run_ipckit({"rpc", sub, "--help"});
        EXPECT_TRUE(r.status.success());
        EXPECT_NE(r.out.find(std::string("ipckit rpc ") + sub + " "), std::string::npos) << r.out;
    }
}
