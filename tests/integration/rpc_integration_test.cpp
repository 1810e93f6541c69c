// ipckit::rpc across real processes: servers and clients in forked children,
// over Unix (pathname and abstract) and TCP sockets and a socketpair.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "channels/stream_channel.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/rpc.hpp"
#include "ipckit/socket.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

void expect_exit0(test::forked_child& c, std::chrono::milliseconds timeout = 60s) {
    auto st = c.wait(timeout);
    ASSERT_TRUE(st) << "child timed out";
    EXPECT_TRUE(st->success()) << st->describe();
}

// True once the child has ended (it stays a zombie for forked_child::wait).
bool has_exited(pid_t pid) {
    siginfo_t info{};
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return true;
    return info.si_pid == pid;
}

// FNV-1a, 64 bits.
std::uint64_t fnv1a(std::string_view s) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

// n pseudo-random bytes of every value (NULs included), different per seed.
std::string pattern(std::size_t n, std::uint64_t seed) {
    std::string s(n, '\0');
    std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = static_cast<char>(x >> 24);
    }
    return s;
}

// A 4-byte little-endian frame header.
std::string header(std::uint32_t n) {
    unsigned char h[4];
    detail::encode_frame_header(n, h);
    return std::string(reinterpret_cast<char*>(h), 4);
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// One RPC message as docs/rpc.md describes it, encoded here independently of
// the library: u16 magic 0x5052, u8 version 1, u8 kind (1 call, 2 result,
// 3 error), u16 method length, u16 error code, u64 call id, method, body.
std::string wire(std::uint8_t kind, std::uint64_t id, std::string_view method,
                 std::string_view body, std::uint16_t code = 0) {
    std::string m;
    put_le(m, 0x5052, 2);
    put_le(m, 1, 1);
    put_le(m, kind, 1);
    put_le(m, method.size(), 2);
    put_le(m, code, 2);
    put_le(m, id, 8);
    m += method;
    m += body;
    return m;
}

// A call as it travels on a stream socket: frame header + RPC message.
std::string framed_call(std::uint64_t id, std::string_view method, std::string_view args) {
    auto m = wire(1, id, method, args);
    return header(static_cast<std::uint32_t>(m.size())) + m;
}

struct decoded_reply {
    std::uint8_t kind = 0;
    std::uint16_t code = 0;
    std::uint64_t id = 0;
    std::string body;
};

std::uint64_t get_le(std::string_view s, std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
    return v;
}

// Takes one whole length-framed reply off the front of buf, if there is one
// (a frame that is not an RPC message gives kind 0).
std::optional<decoded_reply> take_reply(std::string& buf) {
    if (buf.size() < 4) return std::nullopt;
    auto n = get_le(buf, 0, 4);
    if (buf.size() < 4 + n) return std::nullopt;
    std::string m = buf.substr(4, n);
    buf.erase(0, 4 + n);
    decoded_reply r;
    if (m.size() < 16 || get_le(m, 0, 2) != 0x5052) return r;
    r.kind = static_cast<std::uint8_t>(m[3]);
    r.code = static_cast<std::uint16_t>(get_le(m, 6, 2));
    r.id = get_le(m, 8, 8);
    r.body = m.substr(16 + get_le(m, 4, 2));
    return r;
}

// Reads one length-framed reply from a raw stream socket; nullopt on EOF or
// timeout.
std::optional<decoded_reply> read_reply(sock& s, std::string& buf, const deadline& until) {
    for (;;) {
        if (auto r = take_reply(buf)) return r;
        std::string part;
        if (s.receive(part, 1 << 16, until) != io_status::ok) return std::nullopt;
        buf += part;
    }
}

// Reads (and discards) until the server hangs up: closed, or timed_out if it
// never does.
io_status read_until_closed(sock& s, const deadline& until) {
    std::string part;
    for (;;) {
        auto st = s.receive(part, 1 << 16, until);
        if (st != io_status::ok) return st;
    }
}

std::string format_stats(const rpc::server_stats& s) {
    return "accepted=" + std::to_string(s.accepted) + " refused=" + std::to_string(s.refused) +
           " calls=" + std::to_string(s.calls) + " errors=" + std::to_string(s.errors) +
           " dropped=" + std::to_string(s.dropped) + " active=" + std::to_string(s.active);
}

// Test servers offer: echo, fnv (hex FNV-1a of the arguments), add (sum of
// space-separated integers), stats (format_stats) and stop (request_stop).
void add_common(rpc::server& srv) {
    srv.add("echo", [](std::string_view a) { return std::string(a); });
    srv.add("fnv", [](std::string_view a) { return hex(fnv1a(a)); });
    srv.add("add", [](std::string_view a) {
        long long sum = 0;
        std::size_t p = 0;
        while (p < a.size()) {
            auto end = a.find(' ', p);
            if (end == std::string_view::npos) end = a.size();
            std::string tok(a.substr(p, end - p));
            if (!tok.empty()) {
                std::size_t used = 0;
                long long v = 0;
                try {
                    v = std::stoll(tok, &used);
                } catch (const std::exception&) {
                    used = 0;
                }
                if (used != tok.size()) throw std::invalid_argument("not a number: " + tok);
                sum += v;
            }
            p = end + 1;
        }
        return std::to_string(sum);
    });
    srv.add("stats", [&srv](std::string_view) { return format_stats(srv.stats()); });
    srv.add("stop", [&srv](std::string_view) {
        srv.request_stop();
        return std::string("stopping");
    });
}

// The server's stats, read through its "stats" method.
rpc::server_stats remote_stats(rpc::client& cl) {
    std::string r;
    rpc::server_stats s;
    EXPECT_EQ(cl.call("stats", "", r, deadline::after(20s)), io_status::ok);
    unsigned long long v[6] = {};
    int n = std::sscanf(
        r.c_str(), "accepted=%llu refused=%llu calls=%llu errors=%llu dropped=%llu active=%llu",
        &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    EXPECT_EQ(n, 6) << r;
    s.accepted = v[0];
    s.refused = v[1];
    s.calls = v[2];
    s.errors = v[3];
    s.dropped = v[4];
    s.active = v[5];
    return s;
}

// The server's stats once it counts `active` open connections (a client's
// hang-up reaches the server a little after the client goes).
rpc::server_stats stats_when_active(rpc::client& cl, std::size_t active) {
    auto until = deadline::after(20s);
    auto s = remote_stats(cl);
    while (s.active != active && !until.expired()) {
        std::this_thread::sleep_for(20ms);
        s = remote_stats(cl);
    }
    return s;
}

// Runs srv (already listening) in a forked child until a client calls "stop".
// The child exits 0 when run() reports that stop.
test::forked_child serve_in_child(rpc::server& srv) {
    return test::forked_child([&srv] { return srv.run(deadline::after(120s)) ? 0 : 3; });
}

void stop_child(rpc::client& cl, test::forked_child& child) {
    std::string r;
    EXPECT_EQ(cl.call("stop", "", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "stopping");
    expect_exit0(child);
}

// Runs srv in short slices until done() holds; false if until passes first.
bool run_until(rpc::server& srv, const deadline& until, const std::function<bool()>& done) {
    while (!done()) {
        if (until.expired()) return false;
        srv.run(deadline::after(50ms));
    }
    return true;
}

std::string abstract_url() {
    return "unix:@" + test::unique_name("ipckit-rpc");
}

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// Calls method and expects a remote_error; returns it (code 0 if none came).
rpc::remote_error expect_remote_error(rpc::client& cl, std::string_view method,
                                      std::string_view args) {
    std::string r;
    try {
        auto st = cl.call(method, args, r, deadline::after(20s));
        ADD_FAILURE() << method << ": no remote_error, status " << to_string(st) << ", result '"
                      << r << "'";
    } catch (const rpc::remote_error& e) {
        return e;
    }
    return rpc::remote_error(rpc::errc{}, "", "");
}

}  // namespace

// ---- 1. every transport: echo of awkward sizes, a handler of ours ----------

class RpcTransports : public ::testing::TestWithParam<std::string> {};

TEST_P(RpcTransports, EchoSizesAndAdd) {
    std::string url;
    std::string path;
    if (GetParam() == "unix_path") {
        path = test::unique_path("ipckit-rpc") + ".sock";
        url = "unix:" + path;
    } else if (GetParam() == "unix_abstract") {
        url = abstract_url();
    } else {
        url = "tcp://127.0.0.1:0";
    }
    std::optional<test::scoped_unlink> rm;
    if (!path.empty()) rm.emplace(path);

    rpc::server srv;
    add_common(srv);
    srv.listen(url);
    const std::string addr = srv.address();
    if (GetParam() == "tcp") {
        ASSERT_EQ(addr.rfind("tcp://127.0.0.1:", 0), 0u) << addr;
        EXPECT_GT(std::stoi(addr.substr(addr.rfind(':') + 1)), 0) << addr;
    } else {
        EXPECT_EQ(addr, url);
    }
    if (!path.empty()) {
        struct stat st {};
        ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0600u);
    }
    auto child = serve_in_child(srv);

    rpc::client cl(addr, deadline::after(20s));
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{4096},
                             std::size_t{65536}, std::size_t{(1u << 20) + 7}}) {
        SCOPED_TRACE("size " + std::to_string(size));
        const std::string payload = pattern(size, size + 1);
        std::string r = "stale";
        ASSERT_EQ(cl.call("echo", payload, r, deadline::after(30s)), io_status::ok);
        EXPECT_EQ(r.size(), size);
        EXPECT_EQ(hex(fnv1a(r)), hex(fnv1a(payload)));
        EXPECT_TRUE(r == payload);
        ASSERT_EQ(cl.call("fnv", payload, r, deadline::after(30s)), io_status::ok);
        EXPECT_EQ(r, hex(fnv1a(payload))) << "the server saw other bytes than were sent";
    }
    std::string r;
    ASSERT_EQ(cl.call("add", "2 3", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "5");
    ASSERT_EQ(cl.call("add", "-7 1000000000000 7 40", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "1000000000040");
    ASSERT_EQ(cl.call("add", "", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "0");

    std::vector<std::string> names;
    ASSERT_EQ(cl.methods(names, deadline::after(20s)), io_status::ok);
    for (const char* m : {"echo", "fnv", "add", "stats", "stop"})
        EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;

    auto s = remote_stats(cl);
    EXPECT_EQ(s.accepted, 1u);
    EXPECT_GE(s.calls, 15u);  // 12 sized calls, 3 adds (+ methods, stats itself)
    EXPECT_EQ(s.errors, 0u);
    EXPECT_EQ(s.dropped, 0u);
    EXPECT_EQ(s.active, 1u);
    stop_child(cl, child);
}

INSTANTIATE_TEST_SUITE_P(Rpc, RpcTransports, ::testing::Values("unix_path", "unix_abstract", "tcp"),
                         [](const auto& info) { return info.param; });

// ---- 2. fifty client processes at once ------------------------------------

TEST(RpcProcesses, FiftyClientsTimesHundredCalls) {
    constexpr int kClients = 50;
    constexpr int kCalls = 100;
    // The answer is a function of (client, sequence) that the client checks.
    auto answer = [](long id, long seq) {
        return "r " + std::to_string(id) + " " + std::to_string(seq) + " " +
               std::to_string(id * 1000003 + seq * seq * 31 + 7);
    };
    rpc::server srv;
    srv.add("mix", [&](std::string_view a) {
        long id = -1, seq = -1;
        if (std::sscanf(std::string(a).c_str(), "%ld %ld", &id, &seq) != 2)
            throw std::invalid_argument("bad args");
        return answer(id, seq);
    });
    srv.listen(abstract_url());
    const std::string addr = srv.address();

    std::vector<std::unique_ptr<test::forked_child>> kids;
    for (int id = 0; id < kClients; ++id) {
        kids.push_back(std::make_unique<test::forked_child>([&, id] {
            rpc::client cl(addr, deadline::after(60s));
            std::string r;
            for (int seq = 0; seq < kCalls; ++seq) {
                auto args = std::to_string(id) + " " + std::to_string(seq);
                if (cl.call("mix", args, r, deadline::after(60s)) != io_status::ok) return 1;
                if (r != answer(id, seq)) {
                    std::fprintf(stderr, "client %d call %d: got '%s'\n", id, seq, r.c_str());
                    return 2;
                }
            }
            return 0;
        }));
    }
    // The server runs here, in slices, until every client has gone and the
    // server has seen each hang up.
    bool done = run_until(srv, deadline::after(180s), [&] {
        for (auto& k : kids)
            if (!has_exited(k->pid())) return false;
        return srv.stats().active == 0;
    });
    EXPECT_TRUE(done) << format_stats(srv.stats());
    for (auto& k : kids)
        expect_exit0(*k);
    auto s = srv.stats();
    EXPECT_EQ(s.calls, std::uint64_t{kClients * kCalls}) << format_stats(s);
    EXPECT_EQ(s.accepted, std::uint64_t{kClients}) << format_stats(s);
    EXPECT_EQ(s.dropped, 0u) << format_stats(s);
    EXPECT_EQ(s.errors, 0u) << format_stats(s);
    EXPECT_EQ(s.refused, 0u) << format_stats(s);
    EXPECT_EQ(s.active, 0u) << format_stats(s);
}

// ---- 3. the server's errors reach the caller, the server goes on ----------

TEST(RpcProcesses, RemoteErrorsAndTheServerSurvives) {
    rpc::server srv;
    add_common(srv);
    srv.add("explode", [](std::string_view) -> std::string { throw std::runtime_error("boom"); });
    srv.listen(abstract_url());
    auto child = serve_in_child(srv);
    rpc::client cl(srv.address(), deadline::after(20s));

    auto e = expect_remote_error(cl, "no.such_method", "x");
    EXPECT_EQ(e.code(), rpc::errc::unknown_method);
    EXPECT_EQ(e.method(), "no.such_method");
    EXPECT_EQ(std::string(e.what()).rfind("no.such_method: unknown method", 0), 0u) << e.what();

    e = expect_remote_error(cl, "explode", "");
    EXPECT_EQ(e.code(), rpc::errc::handler_failed);
    EXPECT_EQ(e.method(), "explode");
    EXPECT_EQ(e.detail(), "boom");
    EXPECT_STREQ(e.what(), "explode: handler failed: boom");

    e = expect_remote_error(cl, "add", "1 x");
    EXPECT_EQ(e.code(), rpc::errc::handler_failed);
    EXPECT_EQ(e.detail(), "not a number: x");
    EXPECT_STREQ(e.what(), "add: handler failed: not a number: x");

    std::string r;
    ASSERT_EQ(cl.call("add", "19 23", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "42");
    auto s = remote_stats(cl);
    EXPECT_EQ(s.errors, 3u);
    EXPECT_GE(s.calls, 4u);
    EXPECT_EQ(s.dropped, 0u);
    EXPECT_EQ(s.active, 1u);
    stop_child(cl, child);
}

// ---- 4. a timeout is a value; the late reply is skipped by its id --------

TEST(RpcProcesses, TimedOutCallThenNextCallGetsItsOwnResult) {
    rpc::server srv;
    add_common(srv);
    srv.add("sleep", [](std::string_view a) {
        std::this_thread::sleep_for(500ms);
        return "slept " + std::string(a);
    });
    srv.add("sleep_then_fail", [](std::string_view) -> std::string {
        std::this_thread::sleep_for(300ms);
        throw std::runtime_error("late failure");
    });
    const std::string blob = pattern(4 << 20, 3);
    srv.add("blob", [&](std::string_view) { return blob; });
    srv.listen(abstract_url());
    auto child = serve_in_child(srv);
    rpc::client cl(srv.address(), deadline::after(20s));

    std::string r;
    EXPECT_EQ(cl.call("sleep", "1", r, deadline::after(50ms)), io_status::timed_out);
    ASSERT_EQ(cl.call("echo", "mine", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "mine") << "the late reply of the timed-out call was taken for this one";

    // Two late replies queued before the next call's own.
    EXPECT_EQ(cl.call("sleep", "2", r, deadline::after(50ms)), io_status::timed_out);
    EXPECT_EQ(cl.call("sleep", "3", r, deadline::after(50ms)), io_status::timed_out);
    ASSERT_EQ(cl.call("add", "20 22", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "42");
    ASSERT_EQ(cl.call("sleep", "4", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "slept 4");
    ASSERT_EQ(cl.call("echo", "last", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "last");

    // A late *error* reply is skipped too, not thrown at the next call.
    EXPECT_EQ(cl.call("sleep_then_fail", "", r, deadline::after(50ms)), io_status::timed_out);
    ASSERT_EQ(cl.call("add", "1 1", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "2");

    // Large replies cut off by the deadline part way: whatever the status,
    // the next call gets its own answer.
    for (int i = 0; i < 10; ++i) {
        auto st = cl.call("blob", "", r, deadline::after(std::chrono::milliseconds(i)));
        ASSERT_NE(st, io_status::closed);
        if (st == io_status::ok) {
            EXPECT_TRUE(r == blob) << "blob " << i;
        }
        ASSERT_EQ(cl.call("echo", "own " + std::to_string(i), r, deadline::after(20s)),
                  io_status::ok);
        EXPECT_EQ(r, "own " + std::to_string(i));
    }
    stop_child(cl, child);
}

// ---- 5. the server dies mid-call --------------------------------------------

TEST(RpcProcesses, ServerKilledDuringCallIsClosed) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    unique_fd started_r(p[0]), started_w(p[1]);
    rpc::server srv;
    add_common(srv);
    // Tells the test it is running, then takes far longer than any deadline.
    srv.add("hang", [&](std::string_view) {
        (void)!::write(started_w.get(), "s", 1);
        std::this_thread::sleep_for(60s);
        return std::string("too late");
    });
    srv.listen(abstract_url());
    auto child = serve_in_child(srv);
    started_w.reset();
    const pid_t server_pid = child.pid();
    std::thread killer([&] {
        pollfd pf{started_r.get(), POLLIN, 0};
        if (::poll(&pf, 1, 30000) == 1) ::kill(server_pid, SIGKILL);
    });

    rpc::client cl(srv.address(), deadline::after(20s));
    std::string r;
    io_status st = io_status::ok;
    EXPECT_NO_THROW(st = cl.call("hang", "", r, deadline::after(45s)));
    killer.join();
    EXPECT_EQ(st, io_status::closed);
    auto es = child.wait(20s);
    ASSERT_TRUE(es);
    EXPECT_EQ(es->signal, SIGKILL) << es->describe();
    // The client stays usable as a value-reporting object: still closed.
    EXPECT_EQ(cl.call("echo", "x", r, deadline::after(5s)), io_status::closed);
}

TEST(RpcProcesses, ServerKillingItselfInAHandlerIsClosed) {
    rpc::server srv;
    add_common(srv);
    srv.add("die", [](std::string_view) -> std::string {
        ::kill(::getpid(), SIGKILL);
        std::this_thread::sleep_for(60s);
        return "unreachable";
    });
    srv.listen("tcp://127.0.0.1:0");
    auto child = serve_in_child(srv);
    rpc::client cl(srv.address(), deadline::after(20s));
    std::string r;
    ASSERT_EQ(cl.call("echo", "alive", r, deadline::after(20s)), io_status::ok);
    io_status st = io_status::ok;
    EXPECT_NO_THROW(st = cl.call("die", "", r, deadline::after(30s)));
    EXPECT_EQ(st, io_status::closed);
    auto es = child.wait(20s);
    ASSERT_TRUE(es);
    EXPECT_EQ(es->signal, SIGKILL) << es->describe();
}

// ---- 6. clients that break the protocol are dropped, others served --------

TEST(RpcProcesses, GarbageClientsAreDisconnected) {
    const std::string url = abstract_url();
    const std::string name = url.substr(5);  // "@..."
    rpc::listen_options o;
    o.max_message = 64 * 1024;
    rpc::server srv;
    add_common(srv);
    srv.listen(url, o);
    auto child = serve_in_child(srv);

    rpc::client good(srv.address(), deadline::after(20s));
    std::string r;
    auto good_call = [&](const std::string& what) {
        r.clear();
        ASSERT_EQ(good.call("echo", what, r, deadline::after(20s)), io_status::ok) << what;
        EXPECT_EQ(r, what);
    };
    good_call("before");

    // A well-formed frame holding something else than an RPC message.
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        ASSERT_EQ(g.send(header(static_cast<std::uint32_t>(http.size())) + http), io_status::ok);
        EXPECT_EQ(read_until_closed(g, deadline::after(20s)), io_status::closed);
    }
    good_call("after garbage");
    // Shorter than the RPC header.
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        ASSERT_EQ(g.send(header(3) + "abc"), io_status::ok);
        EXPECT_EQ(read_until_closed(g, deadline::after(20s)), io_status::closed);
    }
    good_call("after short");
    // A frame header above the server's max_message (payload never comes).
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        ASSERT_EQ(g.send(header(64 * 1024 + 1)), io_status::ok);
        EXPECT_EQ(read_until_closed(g, deadline::after(20s)), io_status::closed);
    }
    good_call("after oversized");
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        ASSERT_EQ(g.send(header(0x7fffffff)), io_status::ok);  // must not be allocated
        EXPECT_EQ(read_until_closed(g, deadline::after(20s)), io_status::closed);
    }
    good_call("after 2 GiB header");
    // A reply sent where a call belongs.
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        auto m = wire(2, 1, "", "a result");
        ASSERT_EQ(g.send(header(static_cast<std::uint32_t>(m.size())) + m), io_status::ok);
        EXPECT_EQ(read_until_closed(g, deadline::after(20s)), io_status::closed);
    }
    good_call("after a reply");
    // A call with a field that must be zero (the error code) set.
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        auto m = wire(1, 1, "echo", "x", 3);
        ASSERT_EQ(g.send(header(static_cast<std::uint32_t>(m.size())) + m), io_status::ok);
        EXPECT_EQ(read_until_closed(g, deadline::after(20s)), io_status::closed);
    }
    good_call("after a call with an error code");

    // An invalid method name in a well-formed call is a bad_request reply,
    // not a protocol violation: the same connection goes on.
    {
        sock g = connect_unix(name, socket_type::stream, deadline::after(10s));
        ASSERT_EQ(g.send(framed_call(7, "a b", "x") + framed_call(8, "echo", "raw ok")),
                  io_status::ok);
        std::string buf;
        auto a = read_reply(g, buf, deadline::after(20s));
        ASSERT_TRUE(a);
        EXPECT_EQ(a->kind, 3);
        EXPECT_EQ(a->id, 7u);
        EXPECT_EQ(a->code, static_cast<std::uint16_t>(rpc::errc::bad_request));
        auto b = read_reply(g, buf, deadline::after(20s));
        ASSERT_TRUE(b);
        EXPECT_EQ(b->kind, 2);
        EXPECT_EQ(b->id, 8u);
        EXPECT_EQ(b->body, "raw ok");
    }
    good_call("after bad name");

    auto s = stats_when_active(good, 1);
    EXPECT_EQ(s.dropped, 6u);
    EXPECT_EQ(s.accepted, 8u);
    EXPECT_EQ(s.active, 1u);
    stop_child(good, child);
}

// ---- 7. a client that never reads its replies stalls only itself ----------

TEST(RpcProcesses, PipeliningClientThatNeverReadsDoesNotStallOthers) {
    rpc::server srv;
    add_common(srv);
    const std::string url = abstract_url();
    const std::string name = url.substr(5);
    srv.listen(url);
    auto server = serve_in_child(srv);

    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    unique_fd report_r(p[0]), report_w(p[1]);
    constexpr int kCalls = 200;
    // Writes 200 echo calls of 64 KiB and reads nothing. Reports how many
    // went out before a send stalled ('S') or that all did ('A').
    test::forked_child hog([&] {
        report_r.reset();
        sock s = connect_unix(name, socket_type::stream, deadline::after(20s));
        const std::string args(64 * 1024, 'h');
        int sent = 0;
        char what = 'A';
        for (; sent < kCalls; ++sent) {
            auto st = s.send(framed_call(1000 + sent, "echo", args), deadline::after(3s));
            if (st != io_status::ok) {
                what = st == io_status::timed_out ? 'S' : 'C';
                break;
            }
        }
        std::string msg = what + std::to_string(sent);
        if (::write(report_w.get(), msg.data(), msg.size()) < 0) return 1;
        report_w.reset();
        std::this_thread::sleep_for(120s);  // holds the connection until killed
        return 0;
    });
    report_w.reset();
    std::string report = test::read_all(report_r.get(), deadline::after(60s));
    ASSERT_FALSE(report.empty()) << "the pipelining client never reported";
    EXPECT_EQ(report[0], 'S') << report
                              << ": the server took every call without the replies "
                                 "being read (unbounded buffering?)";

    rpc::client cl(srv.address(), deadline::after(20s));
    const std::string big = pattern(64 * 1024, 7);
    std::string r;
    for (int i = 0; i < 20; ++i) {
        ASSERT_EQ(cl.call("echo", big, r, deadline::after(2s)), io_status::ok) << "call " << i;
        EXPECT_TRUE(r == big);
        ASSERT_EQ(cl.call("add", std::to_string(i) + " 1", r, deadline::after(2s)), io_status::ok);
        EXPECT_EQ(r, std::to_string(i + 1));
    }
    auto s = remote_stats(cl);
    EXPECT_EQ(s.dropped, 0u) << "a slow reader is not a protocol violation";
    EXPECT_EQ(s.active, 2u);

    ::kill(hog.pid(), SIGKILL);  // its connection closes with unread replies
    auto es = hog.wait(20s);
    ASSERT_TRUE(es);
    EXPECT_EQ(stats_when_active(cl, 1).active, 1u) << "the dead client's connection stayed open";
    ASSERT_EQ(cl.call("echo", big, r, deadline::after(2s)), io_status::ok);
    EXPECT_TRUE(r == big);
    stop_child(cl, server);
}

// ---- 8. the allow-list ------------------------------------------------------

TEST(RpcProcesses, AllowListRefusesOtherUids) {
    auto path = test::unique_path("ipckit-rpc-acl") + ".sock";
    test::scoped_unlink rm(path);
    rpc::listen_options o;
    o.allow.uids = {static_cast<uid_t>(::getuid() + 1)};
    rpc::server srv;
    add_common(srv);
    srv.listen("unix:" + path, o);
    const std::string addr = srv.address();
    test::forked_child c([&] {
        try {
            rpc::client cl(addr, deadline::after(20s));
            std::string r;
            auto st = cl.call("echo", "let me in", r, deadline::after(20s));
            if (st == io_status::ok) std::fprintf(stderr, "refused client got '%s'\n", r.c_str());
            return st == io_status::closed ? 0 : st == io_status::ok ? 1 : 2;
        } catch (const ipckit::error&) {
            return 0;  // refused while connecting: fine too
        }
    });
    EXPECT_TRUE(run_until(srv, deadline::after(60s), [&] { return has_exited(c.pid()); }));
    expect_exit0(c);
    auto s = srv.stats();
    EXPECT_GE(s.refused, 1u) << format_stats(s);
    EXPECT_EQ(s.calls, 0u) << format_stats(s);
    EXPECT_EQ(s.active, 0u) << format_stats(s);
}

TEST(RpcProcesses, AllowListAdmitsOurUid) {
    auto path = test::unique_path("ipckit-rpc-acl") + ".sock";
    test::scoped_unlink rm(path);
    rpc::listen_options o;
    o.allow.uids = {::getuid()};
    rpc::server srv;
    add_common(srv);
    srv.listen("unix:" + path, o);
    const std::string addr = srv.address();
    test::forked_child c([&] {
        rpc::client cl(addr, deadline::after(20s));
        std::string r;
        if (cl.call("add", "1 2", r, deadline::after(20s)) != io_status::ok) return 1;
        return r == "3" ? 0 : 2;
    });
    EXPECT_TRUE(run_until(srv, deadline::after(60s), [&] { return has_exited(c.pid()); }));
    expect_exit0(c);
    auto s = srv.stats();
    EXPECT_EQ(s.refused, 0u) << format_stats(s);
    EXPECT_EQ(s.calls, 1u) << format_stats(s);
}

// ---- 9. stopping, deadlines, cleanup ----------------------------------------

TEST(RpcServer, RequestStopFromAnotherThread) {
    rpc::server srv;
    add_common(srv);
    srv.listen(abstract_url());
    auto t0 = clock::now();
    std::atomic<bool> returned{false};
    // Asks again and again: whether a stop requested before run() starts
    // carries over is not what this test is about.
    std::thread stopper([&] {
        while (!returned) {
            std::this_thread::sleep_for(200ms);
            srv.request_stop();
        }
    });
    bool stopped = srv.run(deadline::after(60s));
    returned = true;
    stopper.join();
    EXPECT_TRUE(stopped);
    EXPECT_LT(clock::now() - t0, 30s) << "run() waited for its deadline, not for the stop";
}

rpc::server* g_signal_server = nullptr;
extern "C" void stop_on_signal(int) {
    if (g_signal_server) g_signal_server->request_stop();
}

TEST(RpcServer, RequestStopFromASignalHandler) {
    rpc::server srv;
    srv.listen(abstract_url());
    g_signal_server = &srv;
    struct sigaction sa {
    }, old{};
    sa.sa_handler = stop_on_signal;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(::sigaction(SIGUSR2, &sa, &old), 0);
    const pthread_t runner = ::pthread_self();
    auto t0 = clock::now();
    std::atomic<bool> returned{false};
    std::thread signaller([&] {
        while (!returned) {
            std::this_thread::sleep_for(200ms);
            ::pthread_kill(runner, SIGUSR2);  // interrupts run()'s own wait
        }
    });
    bool stopped = srv.run(deadline::after(60s));
    returned = true;
    signaller.join();
    ::sigaction(SIGUSR2, &old, nullptr);
    g_signal_server = nullptr;
    EXPECT_TRUE(stopped);
    EXPECT_LT(clock::now() - t0, 30s);
}

TEST(RpcServer, StopRequestedBeforeRunEndsTheNextRun) {
    rpc::server srv;
    srv.listen(abstract_url());
    srv.request_stop();
    auto t0 = clock::now();
    EXPECT_TRUE(srv.run(deadline::after(60s)));
    EXPECT_LT(clock::now() - t0, 30s);
    // Used up: the run after it goes to its deadline.
    EXPECT_FALSE(srv.run(deadline::after(100ms)));
}

TEST(RpcServer, RunWithNothingToDoReturnsFalseAtItsDeadline) {
    rpc::server srv;
    srv.listen(abstract_url());
    auto t0 = clock::now();
    EXPECT_FALSE(srv.run(deadline::after(300ms)));
    auto took = clock::now() - t0;
    EXPECT_GE(took, 295ms) << "returned before its deadline";
    EXPECT_LT(took, 30s);
    EXPECT_FALSE(srv.run(deadline::immediate()));
}

TEST(RpcServer, StopFromAHandlerAndNothingLeftBehind) {
    auto path = test::unique_path("ipckit-rpc-fd") + ".sock";
    test::scoped_unlink rm(path);
    const std::size_t before = open_fds();
    std::optional<test::forked_child> c;
    {
        std::optional<rpc::server> srv;
        srv.emplace();
        add_common(*srv);
        srv->listen("unix:" + path);
        ASSERT_EQ(::access(path.c_str(), F_OK), 0);
        const std::string addr = srv->address();
        // The client stops the server from a handler, then calls again: the
        // call that nobody answers ends as closed once the server is destroyed.
        c.emplace([&addr] {
            rpc::client cl(addr, deadline::after(20s));
            std::string r;
            if (cl.call("echo", "hi", r, deadline::after(20s)) != io_status::ok || r != "hi")
                return 1;
            if (cl.call("stop", "", r, deadline::after(20s)) != io_status::ok) return 2;
            if (r != "stopping") return 3;
            for (int i = 0; i < 1000; ++i) {
                auto st = cl.call("echo", "anyone?", r, deadline::after(30s));
                if (st == io_status::closed) return 0;
                if (st != io_status::ok) return 4;
            }
            return 5;
        });
        auto t0 = clock::now();
        EXPECT_TRUE(srv->run(deadline::after(60s)));
        EXPECT_LT(clock::now() - t0, 50s);
        auto s = srv->stats();
        EXPECT_GE(s.calls, 2u) << format_stats(s);
        EXPECT_EQ(s.accepted, 1u) << format_stats(s);
        EXPECT_GT(open_fds(), before);
        srv.reset();
    }
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the server left its socket file";
    EXPECT_EQ(open_fds(), before) << "the server leaked descriptors";
    expect_exit0(*c);
}

TEST(RpcServer, TcpServerLeavesNoDescriptors) {
    const std::size_t before = open_fds();
    {
        rpc::server srv;
        add_common(srv);
        srv.listen("tcp://127.0.0.1:0");
        const std::string addr = srv.address();
        test::forked_child c([&] {
            rpc::client cl(addr, deadline::after(20s));
            std::string r;
            for (int i = 0; i < 10; ++i)
                if (cl.call("add", std::to_string(i) + " 1", r, deadline::after(20s)) !=
                        io_status::ok ||
                    r != std::to_string(i + 1))
                    return 1;
            return 0;
        });
        EXPECT_TRUE(run_until(srv, deadline::after(60s),
                              [&] { return has_exited(c.pid()) && srv.stats().active == 0; }));
        expect_exit0(c);
        EXPECT_EQ(srv.stats().calls, 10u);
    }
    EXPECT_EQ(open_fds(), before) << "the server leaked descriptors";
}

// ---- 10. serve() over one socketpair ------------------------------------------

TEST(RpcProcesses, ServeOverASocketpairUntilTheParentCloses) {
    auto pair = make_socket_pair();  // clang 14: no lambda capture of bindings
    auto& parent_end = pair.first;
    auto& child_end = pair.second;
    rpc::server srv;
    add_common(srv);
    srv.add("explode", [](std::string_view) -> std::string { throw std::runtime_error("boom"); });
    test::forked_child c([&] {
        { auto drop = std::move(parent_end); }  // else we keep our own peer open
        auto ch = make_fd_channel("socketpair", child_end.release_fd(), {});
        auto st = srv.serve(*ch, deadline::after(60s));
        return st == io_status::closed ? 0 : 1;
    });
    { auto drop = std::move(child_end); }
    {
        rpc::client cl(make_fd_channel("socketpair", parent_end.release_fd(), {}));
        std::string r;
        for (std::size_t size : {std::size_t{0}, std::size_t{4096}, std::size_t{(1u << 20) + 7}}) {
            const std::string payload = pattern(size, 99 + size);
            ASSERT_EQ(cl.call("echo", payload, r, deadline::after(30s)), io_status::ok);
            EXPECT_TRUE(r == payload) << size;
        }
        ASSERT_EQ(cl.call("add", "1 2 3", r, deadline::after(20s)), io_status::ok);
        EXPECT_EQ(r, "6");
        auto e = expect_remote_error(cl, "explode", "");
        EXPECT_EQ(e.code(), rpc::errc::handler_failed);
        EXPECT_EQ(e.detail(), "boom");
        e = expect_remote_error(cl, "nope", "");
        EXPECT_EQ(e.code(), rpc::errc::unknown_method);
        ASSERT_EQ(cl.call("echo", "still here", r, deadline::after(20s)), io_status::ok);
        EXPECT_EQ(r, "still here");
    }  // the client closes the parent's end: serve() returns closed
    expect_exit0(c);
}

TEST(RpcServer, ServeTimesOutAndRejectsGarbage) {
    rpc::server srv;
    add_common(srv);
    {
        auto pair = make_socket_pair();
        auto ch = make_fd_channel("socketpair", pair.second.release_fd(), {});
        EXPECT_EQ(srv.serve(*ch, deadline::after(200ms)), io_status::timed_out);
    }
    {
        auto pair = make_socket_pair();
        auto ch = make_fd_channel("socketpair", pair.second.release_fd(), {});
        const std::string junk = "definitely not an rpc message";
        ASSERT_EQ(pair.first.send(header(static_cast<std::uint32_t>(junk.size())) + junk),
                  io_status::ok);
        try {
            srv.serve(*ch, deadline::after(10s));
            ADD_FAILURE() << "serve() accepted a message that is not an RPC call";
        } catch (const ipckit::error& e) {
            EXPECT_EQ(e.code().value(), EPROTO) << e.what();
        }
    }
}

// ---- 11. bad input at the API -------------------------------------------------

TEST(RpcApi, InvalidMethodNamesThrowBeforeAnythingIsSent) {
    auto pair = make_socket_pair();
    auto& peer = pair.first;
    rpc::client cl(
        make_fd_channel("socketpair", pair.second.release_fd(), {}, framing::length, 1024));
    std::string r;
    for (const std::string& bad : {std::string(), std::string("a b"), std::string(256, 'm'),
                                   std::string("caf\xc3\xa9"), std::string("a\nb")}) {
        try {
            cl.call(bad, "x", r, deadline::after(1s));
            ADD_FAILURE() << "no error for method '" << bad << "'";
        } catch (const ipckit::error& e) {
            EXPECT_EQ(e.code().value(), EINVAL) << e.what();
        }
    }
    // A call larger than the channel carries.
    try {
        cl.call("echo", std::string(2048, 'x'), r, deadline::after(1s));
        ADD_FAILURE() << "no error for a call above max_message";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), EMSGSIZE) << e.what();
    }
    std::string got;
    EXPECT_EQ(peer.receive(got, 1 << 16, deadline::after(200ms)), io_status::timed_out)
        << "something was sent: " << got.size() << " bytes";

    EXPECT_TRUE(rpc::valid_method_name(std::string(rpc::max_method_name, 'm')));
    EXPECT_FALSE(rpc::valid_method_name(std::string(rpc::max_method_name + 1, 'm')));
    EXPECT_TRUE(rpc::valid_method_name("a_b.c:d-9"));
    EXPECT_FALSE(rpc::valid_method_name(""));
    EXPECT_FALSE(rpc::valid_method_name("a/b"));
}

TEST(RpcApi, ServerRejectsBadNamesAndUrls) {
    rpc::server srv;
    srv.add("ok", [](std::string_view) { return std::string(); });
    srv.add(std::string(rpc::max_method_name, 'n'), [](std::string_view) { return std::string(); });
    for (const std::string& bad :
         {std::string("rpc.x"), std::string("rpc.methods"), std::string("ok"), std::string(),
          std::string("a b"), std::string(256, 'n')})
        EXPECT_THROW(srv.add(bad, [](std::string_view) { return std::string(); }),
                     std::invalid_argument)
            << "'" << bad << "'";
    auto path = test::unique_path("ipckit-rpc-dgram");
    test::scoped_unlink rm(path);
    EXPECT_THROW(srv.listen("mq:/x"), std::invalid_argument);
    EXPECT_THROW(srv.listen("unix:" + path + "?type=dgram"), std::invalid_argument);
    EXPECT_THROW(srv.listen("fifo:" + path), std::invalid_argument);
    EXPECT_THROW(srv.listen("udp://127.0.0.1:0"), std::invalid_argument);
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "a refused listen created " << path;
}

TEST(RpcApi, ConnectingToNobodyThrowsRefused) {
    const std::string url = abstract_url();
    try {
        rpc::client cl(url, deadline::after(5s));
        ADD_FAILURE() << "connected to " << url;
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ECONNREFUSED) << e.what();
    }
}

TEST(RpcApi, ErrorNames) {
    EXPECT_STREQ(rpc::to_string(rpc::errc::unknown_method), "unknown method");
    EXPECT_STREQ(rpc::to_string(rpc::errc::bad_request), "bad request");
    EXPECT_STREQ(rpc::to_string(rpc::errc::handler_failed), "handler failed");
    EXPECT_STREQ(rpc::to_string(rpc::errc::reply_too_large), "reply too large");
    rpc::remote_error e(rpc::errc::handler_failed, "add", "not a number: x");
    EXPECT_STREQ(e.what(), "add: handler failed: not a number: x");
}

// ---- more limits ----------------------------------------------------------------

TEST(RpcProcesses, ReplyTooLargeIsAnErrorNotADrop) {
    rpc::listen_options o;
    o.max_message = 64 * 1024;
    rpc::server srv;
    add_common(srv);
    srv.add("grow",
            [](std::string_view a) { return std::string(std::stoul(std::string(a)), 'g'); });
    srv.listen(abstract_url(), o);
    auto child = serve_in_child(srv);
    rpc::client cl(srv.address(), deadline::after(20s));
    std::string r;
    ASSERT_EQ(cl.call("grow", "1000", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, std::string(1000, 'g'));
    auto e = expect_remote_error(cl, "grow", std::to_string(100 * 1024));
    EXPECT_EQ(e.code(), rpc::errc::reply_too_large) << e.what();
    EXPECT_EQ(e.method(), "grow");
    ASSERT_EQ(cl.call("echo", "same connection", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "same connection");
    auto s = remote_stats(cl);
    EXPECT_EQ(s.dropped, 0u);
    EXPECT_EQ(s.errors, 1u);
    stop_child(cl, child);
}

TEST(RpcProcesses, MaxClientsRefusesTheRest) {
    rpc::listen_options o;
    o.max_clients = 2;
    rpc::server srv;
    add_common(srv);
    srv.listen(abstract_url(), o);
    auto child = serve_in_child(srv);
    const std::string addr = srv.address();
    std::string r;
    rpc::client a(addr, deadline::after(20s));
    ASSERT_EQ(a.call("echo", "a", r, deadline::after(20s)), io_status::ok);
    std::optional<rpc::client> b;
    b.emplace(addr, deadline::after(20s));
    ASSERT_EQ(b->call("echo", "b", r, deadline::after(20s)), io_status::ok);
    // The third is accepted and closed at once.
    try {
        rpc::client c(addr, deadline::after(20s));
        EXPECT_EQ(c.call("echo", "c", r, deadline::after(20s)), io_status::closed);
    } catch (const ipckit::error& e) {
        SUCCEED() << "refused while connecting: " << e.what();
    }
    auto s = remote_stats(a);
    EXPECT_GE(s.refused, 1u) << format_stats(s);
    EXPECT_EQ(s.active, 2u) << format_stats(s);
    // Once one leaves, there is room again.
    b.reset();
    EXPECT_EQ(stats_when_active(a, 1).active, 1u);
    rpc::client d(addr, deadline::after(20s));
    ASSERT_EQ(d.call("echo", "d", r, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(r, "d");
    stop_child(a, child);
}

// A batch client: sends its call, shuts down its sending side, reads the
// answer. The server must finish the reply it owes before closing.
// BUG (disabled until fixed): server::impl::on_event keeps reading after a
// reply went pending (flush() hit EAGAIN) and closes the connection on the
// EOF it then reads, dropping the unsent rest: the client gets 219264 of
// 4194320 bytes, then EOF.
TEST(RpcServer, HalfClosedClientStillGetsItsReply) {
    rpc::server srv;
    const std::string big = pattern(4 << 20, 5);
    srv.add("blob", [&](std::string_view) { return big; });
    const std::string url = abstract_url();
    srv.listen(url);
    sock s = connect_unix(url.substr(5), socket_type::stream, deadline::after(10s));
    ASSERT_EQ(s.send(framed_call(1, "blob", "")), io_status::ok);
    s.shutdown_write();
    // The server and the reader take turns in this thread.
    std::string buf;
    std::optional<decoded_reply> got;
    io_status st = io_status::ok;
    auto until = deadline::after(60s);
    while (!got && st != io_status::closed && !until.expired()) {
        srv.run(deadline::after(10ms));
        std::string part;
        while ((st = s.receive(part, 1 << 20, deadline::immediate())) == io_status::ok)
            buf += part;
        got = take_reply(buf);
    }
    ASSERT_TRUE(got) << "no whole reply; " << buf.size() << " bytes of it came, then "
                     << to_string(st);
    EXPECT_EQ(got->kind, 2);
    EXPECT_EQ(got->id, 1u);
    EXPECT_TRUE(got->body == big) << got->body.size() << " bytes";
}

// A handler whose exception text is longer than the channel carries still
// gives the caller an error reply (cut to fit), and the server goes on.
// BUG (disabled until fixed): dispatch() checks only results against
// max_message, not error replies: serve() throws "send server end: Message
// too long (message is 102428 bytes, max_message is 65536)" and the caller
// times out.
TEST(RpcServer, HugeHandlerErrorOverServe) {
    rpc::server srv;
    add_common(srv);
    srv.add("verbose", [](std::string_view) -> std::string {
        throw std::runtime_error("long story: " + std::string(100 * 1024, 'v'));
    });
    auto pair = make_socket_pair();
    auto sch =
        make_fd_channel("server end", pair.first.release_fd(), {}, framing::length, 64 * 1024);
    std::string serve_error;
    io_status serve_status = io_status::ok;
    std::thread t([&] {
        try {
            serve_status = srv.serve(*sch, deadline::after(60s));
        } catch (const std::exception& e) {
            serve_error = e.what();
        }
    });
    {
        rpc::client cl(make_fd_channel("client end", pair.second.release_fd(), {}, framing::length,
                                       64 * 1024));
        std::string r;
        try {
            auto st = cl.call("verbose", "", r, deadline::after(5s));
            ADD_FAILURE() << "no remote_error, status " << to_string(st);
        } catch (const rpc::remote_error& e) {
            EXPECT_EQ(e.code(), rpc::errc::handler_failed);
            EXPECT_EQ(e.detail().rfind("long story: vvv", 0), 0u);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not a remote_error: " << e.what();
        }
        EXPECT_EQ(cl.call("echo", "next", r, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(r, "next");
    }
    t.join();
    EXPECT_EQ(serve_error, "");
    EXPECT_EQ(serve_status, io_status::closed);
}

// BUG (disabled until fixed): the listening server sends the error reply in a
// frame above its own max_message; a client with the same limit gets
// ipckit::error(EMSGSIZE) "frame announces 102428 bytes" instead of the error.
TEST(RpcProcesses, HugeHandlerErrorOverAListener) {
    rpc::listen_options o;
    o.max_message = 64 * 1024;
    rpc::server srv;
    add_common(srv);
    srv.add("verbose", [](std::string_view) -> std::string {
        throw std::runtime_error("long story: " + std::string(100 * 1024, 'v'));
    });
    srv.listen(abstract_url(), o);
    auto child = serve_in_child(srv);
    // The client reads replies up to the same limit.
    rpc::client cl(srv.address() + "?max_message=64k", deadline::after(20s));
    std::string r;
    try {
        auto st = cl.call("verbose", "", r, deadline::after(20s));
        ADD_FAILURE() << "no remote_error, status " << to_string(st);
    } catch (const rpc::remote_error& e) {
        EXPECT_EQ(e.code(), rpc::errc::handler_failed);
        EXPECT_EQ(e.detail().rfind("long story: vvv", 0), 0u);
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a remote_error: " << e.what();
    }
    rpc::client cl2(srv.address(), deadline::after(20s));
    stop_child(cl2, child);
}
