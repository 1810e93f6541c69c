// In-process tests of rpc.hpp: the wire codec, name rules, and a server and
// client over a socketpair or a listening socket served by a thread (the
// multi-process cases are in tests/integration/rpc_integration_test.cpp).
#include "ipckit/rpc.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "channels/stream_channel.hpp"
#include "detail/rpc_wire.hpp"
#include "ipckit/error.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using ipckit::test::errno_of;
using namespace std::chrono_literals;
namespace wire = ipckit::rpc::detail;

namespace {

std::pair<std::unique_ptr<channel>, std::unique_ptr<channel>> channel_pair() {
    auto [a, b] = make_socket_pair(socket_type::stream);
    return {make_fd_channel("rpc-a", a.release_fd(), {}),
            make_fd_channel("rpc-b", b.release_fd(), {})};
}

}  // namespace

TEST(RpcWire, EveryKindRoundTrips) {
    for (auto kind : {wire::kind::call, wire::kind::result, wire::kind::error}) {
        wire::frame f{kind, static_cast<std::uint16_t>(kind == wire::kind::error ? 3 : 0),
                      0x0102030405060708ull, kind == wire::kind::call ? "add" : "",
                      std::string_view("\0body\xff", 6)};
        std::string bytes = "prefix";
        wire::encode(f, bytes);  // appends
        ASSERT_EQ(bytes.substr(0, 6), "prefix");
        auto d = wire::decode(std::string_view(bytes).substr(6));
        ASSERT_TRUE(d);
        EXPECT_EQ(d->type, kind);
        EXPECT_EQ(d->id, 0x0102030405060708ull);
        EXPECT_EQ(d->method, f.method);
        EXPECT_EQ(d->body, f.body);
        EXPECT_EQ(d->error_code, f.error_code);
    }
}

TEST(RpcWire, HeaderIsLittleEndianAsDocumented) {
    std::string bytes;
    wire::encode({wire::kind::call, 0, 0x1122, "m", "x"}, bytes);
    const std::string expected("RP\x01\x01\x01\x00\x00\x00\x22\x11\x00\x00\x00\x00\x00\x00mx", 18);
    EXPECT_EQ(bytes, expected);
}

TEST(RpcWire, EveryTruncationAndBadFieldIsRefused) {
    std::string good;
    wire::encode({wire::kind::call, 0, 9, "method", "args"}, good);
    // Any cut inside the header or the method name is truncated; a cut in
    // the body is a shorter body, which the transport's framing rules out.
    for (std::size_t n = 0; n < wire::wire_header_size + 6; ++n) {
        wire::decode_failure why{};
        EXPECT_FALSE(wire::decode(std::string_view(good).substr(0, n), &why)) << n;
        EXPECT_EQ(why, wire::decode_failure::truncated) << n;
    }
    auto with = [&](std::size_t at, char value) {
        std::string b = good;
        b[at] = value;
        wire::decode_failure why{};
        EXPECT_FALSE(wire::decode(b, &why));
        return why;
    };
    EXPECT_EQ(with(0, 'X'), wire::decode_failure::bad_magic);
    EXPECT_EQ(with(2, 2), wire::decode_failure::bad_version);
    EXPECT_EQ(with(3, 0), wire::decode_failure::bad_kind);
    EXPECT_EQ(with(3, 4), wire::decode_failure::bad_kind);
    EXPECT_EQ(with(4, 0), wire::decode_failure::bad_fields);  // call without a method
    EXPECT_EQ(with(6, 1), wire::decode_failure::bad_fields);  // error code on a call
    std::string result;
    wire::encode({wire::kind::result, 0, 9, {}, "r"}, result);
    result[4] = 1;  // a method length on a result
    EXPECT_FALSE(wire::decode(result));
    std::string error;
    wire::encode({wire::kind::error, 1, 9, {}, "e"}, error);
    error[6] = 0;  // an error without a code
    EXPECT_FALSE(wire::decode(error));
}

TEST(RpcNames, MethodNameRules) {
    EXPECT_TRUE(rpc::valid_method_name("add"));
    EXPECT_TRUE(rpc::valid_method_name("calc.add_v2:x-y"));
    EXPECT_TRUE(rpc::valid_method_name(std::string(255, 'a')));
    EXPECT_FALSE(rpc::valid_method_name(""));
    EXPECT_FALSE(rpc::valid_method_name(std::string(256, 'a')));
    EXPECT_FALSE(rpc::valid_method_name("a b"));
    EXPECT_FALSE(rpc::valid_method_name("a/b"));
    EXPECT_FALSE(rpc::valid_method_name(std::string("a\0b", 3)));

    rpc::server s;
    auto echo = [](std::string_view a) { return std::string(a); };
    s.add("echo", echo);
    EXPECT_THROW(s.add("echo", echo), std::invalid_argument);
    EXPECT_THROW(s.add("rpc.echo", echo), std::invalid_argument);
    EXPECT_THROW(s.add("", echo), std::invalid_argument);
    EXPECT_THROW(s.add("x", rpc::handler{}), std::invalid_argument);
}

TEST(RpcServer, ListenRefusesNonStreamUrls) {
    rpc::server s;
    EXPECT_THROW(s.listen("mq:/x"), std::invalid_argument);
    EXPECT_THROW(s.listen("unix:@x?type=dgram"), std::invalid_argument);
    EXPECT_THROW(s.listen("tcp://127.0.0.1:0?frame=line"), std::invalid_argument);
    EXPECT_THROW(s.listen("unix:"), std::invalid_argument);  // url_error
    EXPECT_THROW(s.run(deadline::immediate()), std::invalid_argument);
    EXPECT_THROW(rpc::client("udp://127.0.0.1:9"), std::invalid_argument);
}

TEST(RpcServer, ServesOneChannelUntilThePeerCloses) {
    auto [client_end, server_end] = channel_pair();
    rpc::server s;
    s.add("add", [](std::string_view a) {
        auto space = a.find(' ');
        return std::to_string(std::stol(std::string(a.substr(0, space))) +
                              std::stol(std::string(a.substr(space + 1))));
    });
    s.add("fail", [](std::string_view) -> std::string { throw std::runtime_error("boom"); });
    io_status served = io_status::ok;
    std::thread t([&, ch = server_end.get()] { served = s.serve(*ch); });
    {
        rpc::client c(std::move(client_end));
        std::string r;
        ASSERT_EQ(c.call("add", "40 2", r, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(r, "42");
        try {
            c.call("fail", "", r, deadline::after(10s));
            ADD_FAILURE() << "no remote_error";
        } catch (const rpc::remote_error& e) {
            EXPECT_EQ(e.code(), rpc::errc::handler_failed);
            EXPECT_EQ(e.detail(), "boom");
            EXPECT_STREQ(e.what(), "fail: handler failed: boom");
        }
        try {
            c.call("nope", "", r, deadline::after(10s));
            ADD_FAILURE() << "no remote_error";
        } catch (const rpc::remote_error& e) {
            EXPECT_EQ(e.code(), rpc::errc::unknown_method);
            EXPECT_EQ(e.method(), "nope");
        }
        std::vector<std::string> names;
        ASSERT_EQ(c.methods(names, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(names, (std::vector<std::string>{"add", "fail", "rpc.methods"}));
        EXPECT_EQ(errno_of([&] { c.call("bad name", "", r); }), EINVAL);
        ASSERT_EQ(c.call("add", "-1 1", r, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(r, "0");
    }  // the client's channel closes here
    t.join();
    EXPECT_EQ(served, io_status::closed);
}

TEST(RpcServer, ServeRejectsAPeerThatIsNotAnRpcClient) {
    auto [peer, server_end] = channel_pair();
    ASSERT_EQ(peer->send("hello, not rpc"), io_status::ok);
    rpc::server s;
    EXPECT_EQ(errno_of([&, ch = server_end.get()] { s.serve(*ch, deadline::after(10s)); }), EPROTO);
}

TEST(RpcClient, ReplyThatIsNotRpcIsAProtocolError) {
    auto [client_end, fake_server] = channel_pair();
    rpc::client c(std::move(client_end));
    std::thread t([&, ch = fake_server.get()] {
        message m;
        if (ch->receive(m, deadline::after(10s)) == io_status::ok) ch->send("garbage!");
    });
    std::string r;
    EXPECT_EQ(errno_of([&] { c.call("x", "", r, deadline::after(10s)); }), EPROTO);
    t.join();
}

TEST(RpcClient, ReplyTooLargeForTheChannelIsAnError) {
    auto [a, b] = make_socket_pair(socket_type::stream);
    auto client_end = make_fd_channel("c", a.release_fd(), {});
    auto server_end = make_fd_channel("s", b.release_fd(), {}, framing::length, 1000);
    rpc::server s;
    s.add("big", [](std::string_view) { return std::string(2000, 'x'); });
    s.add("ok", [](std::string_view) { return std::string(984, 'y'); });  // 1000 with the header
    std::thread t([&, ch = server_end.get()] { s.serve(*ch, deadline::after(20s)); });
    {
        rpc::client c(std::move(client_end));
        std::string r;
        try {
            c.call("big", "", r, deadline::after(10s));
            ADD_FAILURE() << "no remote_error";
        } catch (const rpc::remote_error& e) {
            EXPECT_EQ(e.code(), rpc::errc::reply_too_large);
            EXPECT_NE(e.detail().find("2000 bytes"), std::string::npos) << e.detail();
        }
        ASSERT_EQ(c.call("ok", "", r, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(r.size(), 984u);
    }
    t.join();
}

TEST(RpcServer, ListeningServerAnswersSeveralClientsAndStops) {
    rpc::server s;
    s.add("echo", [](std::string_view a) { return std::string(a); });
    s.listen("tcp://127.0.0.1:0");
    ASSERT_EQ(s.address().rfind("tcp://127.0.0.1:", 0), 0u) << s.address();
    EXPECT_NE(s.address(), "tcp://127.0.0.1:0");
    bool stopped = false;
    std::thread t([&] { stopped = s.run(deadline::after(60s)); });
    {
        rpc::client c1(s.address(), deadline::after(10s));
        rpc::client c2(s.address(), deadline::after(10s));
        std::string r;
        for (int i = 0; i < 100; ++i) {
            std::string msg(static_cast<std::size_t>(i) * 997, static_cast<char>('a' + i % 26));
            auto& c = i % 2 ? c1 : c2;
            ASSERT_EQ(c.call("echo", msg, r, deadline::after(10s)), io_status::ok);
            ASSERT_EQ(r, msg);
        }
    }
    s.request_stop();
    t.join();
    EXPECT_TRUE(stopped);
    auto st = s.stats();
    EXPECT_EQ(st.calls, 100u);
    EXPECT_EQ(st.accepted, 2u);
    EXPECT_EQ(st.errors, 0u);
    EXPECT_EQ(st.dropped, 0u);
}

TEST(RpcServer, RunReturnsFalseAtItsDeadline) {
    rpc::server s;
    s.listen("unix:@" + test::unique_name("ipckit-rpc"));
    EXPECT_FALSE(s.run(deadline::after(50ms)));
    s.request_stop();  // a stop requested before run() ends the next one at once
    EXPECT_TRUE(s.run(deadline::after(10s)));
}

// Two calls in one write, then a half-close: the second call is answered from
// the bytes kept while the first (large) reply was pending, and neither reply
// is dropped when the EOF is read.
TEST(RpcServer, PipelinedCallsThenHalfCloseGetEveryReply) {
    const std::size_t big = 4u << 20;
    rpc::server s;
    s.add("big", [&](std::string_view) { return std::string(big, 'z'); });
    s.listen("unix:@" + test::unique_name("ipckit-rpc-pipelined"));
    std::string two_calls;
    for (std::uint64_t id : {1, 2}) {
        std::string call;
        wire::encode({wire::kind::call, 0, id, "big", ""}, call);
        unsigned char header[4];
        ipckit::detail::encode_frame_header(static_cast<std::uint32_t>(call.size()), header);
        two_calls.append(reinterpret_cast<const char*>(header), 4).append(call);
    }
    sock c = connect_unix(s.address().substr(5), socket_type::stream, deadline::after(5s));
    ASSERT_EQ(c.send(two_calls), io_status::ok);
    c.shutdown_write();
    std::thread t([&] { s.run(deadline::after(30s)); });
    std::string got = test::read_all(c.fd(), deadline::after(20s));
    s.request_stop();
    t.join();
    EXPECT_EQ(got.size(), 2 * (4 + wire::wire_header_size + big));
}
