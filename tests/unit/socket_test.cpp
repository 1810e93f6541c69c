// In-process tests of socket.hpp and the unix:/tcp:/udp: channels.
#include "ipckit/socket.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using ipckit::test::errno_of;
using namespace std::chrono_literals;

namespace {

std::string sock_path() {
    return test::unique_path("ipckit-sock") + ".sock";
}

std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

bool is_cloexec(int fd) {
    return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

}  // namespace

TEST(SocketType, ParsesAndPrints) {
    EXPECT_EQ(parse_socket_type("seqpacket"), socket_type::seqpacket);
    EXPECT_EQ(parse_socket_type("dgram"), socket_type::dgram);
    EXPECT_FALSE(parse_socket_type("raw"));
    EXPECT_STREQ(to_string(socket_type::stream), "stream");
}

TEST(UnixListener, PathnameSocketIsCreated0600AndRemoved) {
    auto path = sock_path();
    test::scoped_unlink rm(path);
    mode_t old = ::umask(0);  // even a permissive umask must not widen it
    {
        unix_listener l(path, socket_type::stream);
        ::umask(old);
        struct stat st {};
        ASSERT_EQ(::lstat(path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        EXPECT_TRUE(is_cloexec(l.fd()));
    }
    ::umask(old);
    struct stat st {};
    EXPECT_NE(::lstat(path.c_str(), &st), 0) << "listener must unlink its file";
}

TEST(UnixListener, StaleSocketOfDeadServerIsReplaced) {
    auto path = sock_path();
    test::scoped_unlink rm(path);
    {
        // A "dead server": bind a sock file, then close without unlinking.
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        ::close(fd);
    }
    unix_listener l(path, socket_type::stream);
    sock c = connect_unix(path, socket_type::stream, deadline::after(5s));
    auto s = l.accept(deadline::after(5s));
    ASSERT_TRUE(s);
}

TEST(UnixListener, LiveServerIsNeverStolen) {
    auto path = sock_path();
    test::scoped_unlink rm(path);
    unix_listener first(path, socket_type::stream);
    EXPECT_EQ(errno_of([&] { unix_listener second(path, socket_type::stream); }), EADDRINUSE);
    // The first one still works.
    sock c = connect_unix(path, socket_type::stream, deadline::after(5s));
    EXPECT_TRUE(first.accept(deadline::after(5s)));
}

TEST(UnixListener, NonSocketFileIsAnError) {
    auto path = sock_path();
    test::scoped_unlink rm(path);
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
    auto msg = what_of([&] { unix_listener l(path, socket_type::stream); });
    EXPECT_NE(msg.find("not a socket"), std::string::npos) << msg;
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << "a regular file must not be removed";
}

TEST(UnixListener, PathTooLongNamesTheLimit) {
    std::string path = "/tmp/" + std::string(120, 'x');
    auto msg = what_of([&] { unix_listener l(path, socket_type::stream); });
    EXPECT_NE(msg.find("107"), std::string::npos) << msg;
    EXPECT_NE(msg.find("108"), std::string::npos) << msg;
    EXPECT_EQ(errno_of([&] { connect_unix(path, socket_type::stream); }), ENAMETOOLONG);
    EXPECT_EQ(errno_of([&] { connect_unix("@" + std::string(108, 'a'), socket_type::stream); }),
              ENAMETOOLONG);
    EXPECT_EQ(errno_of([&] { connect_unix("", socket_type::stream); }), EINVAL);
    EXPECT_EQ(errno_of([&] { connect_unix("@", socket_type::stream); }), EINVAL);
}

TEST(UnixSocket, AbstractStreamRoundTrip) {
    auto name = "@" + test::unique_name("ipckit-abs");
    unix_listener l(name, socket_type::stream);
    sock c = connect_unix(name, socket_type::stream, deadline::after(5s));
    auto s = l.accept(deadline::after(5s));
    ASSERT_TRUE(s);
    EXPECT_EQ(c.send("hello"), io_status::ok);
    std::string got;
    ASSERT_EQ(s->receive(got, 100, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(got, "hello");
    auto cred = s->peer();
    EXPECT_EQ(cred.pid, ::getpid());
    EXPECT_EQ(cred.uid, ::getuid());
}

TEST(UnixSocket, ConnectRefusedIsAValue) {
    sock s;
    EXPECT_EQ(try_connect_unix(sock_path(), socket_type::stream, s), connect_status::refused);
    EXPECT_EQ(try_connect_unix("@" + test::unique_name("nobody"), socket_type::seqpacket, s),
              connect_status::refused);
    EXPECT_EQ(errno_of([&] { connect_unix(sock_path(), socket_type::stream); }), ECONNREFUSED);
}

TEST(UnixSocket, AcceptTimeoutIsAValue) {
    auto name = "@" + test::unique_name("ipckit-idle");
    unix_listener l(name, socket_type::seqpacket);
    EXPECT_FALSE(l.accept(deadline::after(20ms)));
}

TEST(UnixSocket, AllowListRejectsBeforeReading) {
    auto name = "@" + test::unique_name("ipckit-allow");
    unix_listen_options o;
    o.allow.uids = {static_cast<uid_t>(::getuid() + 12345)};  // not us
    unix_listener l(name, socket_type::stream, o);
    sock c = connect_unix(name, socket_type::stream, deadline::after(5s));
    c.send("secret");
    EXPECT_FALSE(l.accept(deadline::after(50ms)));
    EXPECT_EQ(l.rejected(), 1u);
    std::string got;
    EXPECT_EQ(c.receive(got, 10, deadline::after(5s)), io_status::closed);

    unix_listen_options ok;
    ok.allow.gids = {::getgid()};
    auto name2 = "@" + test::unique_name("ipckit-allow");
    unix_listener l2(name2, socket_type::stream, ok);
    sock c2 = connect_unix(name2, socket_type::stream, deadline::after(5s));
    EXPECT_TRUE(l2.accept(deadline::after(5s)));
    EXPECT_EQ(l2.rejected(), 0u);
}

TEST(UnixSocket, SeqpacketAndDgramKeepBoundaries) {
    for (auto type : {socket_type::seqpacket, socket_type::dgram}) {
        auto ab_pair = make_socket_pair(type);  // clang 14: no lambda capture of bindings
        auto& a = ab_pair.first;
        auto& b = ab_pair.second;
        EXPECT_EQ(a.send("one"), io_status::ok);
        EXPECT_EQ(a.send(""), io_status::ok);
        EXPECT_EQ(a.send("three"), io_status::ok);
        std::string got;
        ASSERT_EQ(b.receive(got, 100), io_status::ok);
        EXPECT_EQ(got, "one");
        ASSERT_EQ(b.receive(got, 100), io_status::ok);
        EXPECT_EQ(got, "");
        ASSERT_EQ(b.receive(got, 100), io_status::ok);
        EXPECT_EQ(got, "three");
        EXPECT_EQ(b.receive(got, 100, deadline::after(10ms)), io_status::timed_out);
    }
}

TEST(UnixSocket, OversizedMessageRejectedAndConsumed) {
    auto ab_pair =
        make_socket_pair(socket_type::seqpacket);  // clang 14: no lambda capture of bindings
    auto& a = ab_pair.first;
    auto& b = ab_pair.second;
    a.send(std::string(1000, 'x'));
    a.send("next");
    std::string got;
    auto msg = what_of([&] { b.receive(got, 100); });
    EXPECT_NE(msg.find("1000 bytes"), std::string::npos) << msg;
    ASSERT_EQ(b.receive(got, 100), io_status::ok);
    EXPECT_EQ(got, "next");
}

TEST(UnixSocket, ClosedPeerIsAValueNoSigpipe) {
    for (auto type : {socket_type::stream, socket_type::seqpacket}) {
        auto ab_pair = make_socket_pair(type);  // clang 14: no lambda capture of bindings
        auto& a = ab_pair.first;
        auto& b = ab_pair.second;
        { auto gone = std::move(b); }
        // Without MSG_NOSIGNAL this would kill the test with SIGPIPE.
        EXPECT_EQ(a.send("x"), io_status::closed);
        std::string got;
        EXPECT_EQ(a.receive(got, 10), io_status::closed);
    }
}

TEST(FdPassing, SeveralFdsArriveCloexec) {
    auto ab_pair = make_socket_pair();  // clang 14: no lambda capture of bindings
    auto& a = ab_pair.first;
    auto& b = ab_pair.second;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    unique_fd r(p[0]), w(p[1]);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    unique_fd dn(devnull);
    int fds[3] = {r.get(), w.get(), dn.get()};
    ASSERT_EQ(a.send_fds("F", fds), io_status::ok);
    std::string got;
    std::vector<unique_fd> in;
    ASSERT_EQ(b.receive_fds(got, 10, in, 8), io_status::ok);
    EXPECT_EQ(got, "F");
    ASSERT_EQ(in.size(), 3u);
    for (auto& f : in)
        EXPECT_TRUE(is_cloexec(f.get()));
    // The received write end feeds the original read end.
    ASSERT_EQ(::write(in[1].get(), "ok", 2), 2);
    char buf[2];
    ASSERT_EQ(::read(r.get(), buf, 2), 2);
    EXPECT_EQ(std::string(buf, 2), "ok");
}

TEST(FdPassing, TruncatedControlDataClosesArrivedFdsAndThrows) {
    auto ab_pair =
        make_socket_pair(socket_type::seqpacket);  // clang 14: no lambda capture of bindings
    auto& a = ab_pair.first;
    auto& b = ab_pair.second;
    std::vector<unique_fd> mine;
    std::vector<int> raw;
    for (int i = 0; i < 6; ++i) {
        mine.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        raw.push_back(mine.back().get());
    }
    ASSERT_EQ(a.send_fds("six", raw), io_status::ok);
    // Count open fds before and after: truncated arrivals must all be closed.
    auto count_fds = [] {
        int n = 0;
        for (int fd = 0; fd < 1024; ++fd)
            if (::fcntl(fd, F_GETFD) != -1) ++n;
        return n;
    };
    int before = count_fds();
    std::string got;
    std::vector<unique_fd> in;
    auto msg = what_of([&] { b.receive_fds(got, 10, in, 2); });
    EXPECT_NE(msg.find("MSG_CTRUNC"), std::string::npos) << msg;
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(count_fds(), before) << "fds that arrived with a truncated message leaked";
}

TEST(FdPassing, StreamNeedsAByteAndLimitIsChecked) {
    auto ab_pair = make_socket_pair();  // clang 14: no lambda capture of bindings
    auto& a = ab_pair.first;
    int fd = 0;
    EXPECT_EQ(errno_of([&] { a.send_fds("", std::span<const int>(&fd, 1)); }), EINVAL);
    std::vector<int> many(254, 0);
    EXPECT_EQ(errno_of([&] { a.send_fds("x", many); }), EINVAL);
}

TEST(InetEndpoint, ParsesHostPortForms) {
    auto a = inet_endpoint::parse("127.0.0.1:80");
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 80);
    auto b = inet_endpoint::parse("[::1]:8080");
    EXPECT_EQ(b.host, "::1");
    EXPECT_EQ(b.port, 8080);
    EXPECT_EQ(b.to_string(), "[::1]:8080");
    EXPECT_EQ(inet_endpoint::parse("localhost:0").port, 0);
    EXPECT_THROW(inet_endpoint::parse("::1:80"), std::invalid_argument);
    EXPECT_THROW(inet_endpoint::parse("host:99999"), std::invalid_argument);
    EXPECT_THROW(inet_endpoint::parse("host"), std::invalid_argument);
    EXPECT_THROW(inet_endpoint::parse("[::1"), std::invalid_argument);
    EXPECT_THROW(inet_endpoint::parse("host:"), std::invalid_argument);
}

TEST(Tcp, Ipv4AndIpv6RoundTrip) {
    for (std::string host : {"127.0.0.1", "::1"}) {
        tcp_listener l(host, 0);
        ASSERT_NE(l.port(), 0);
        sock c = connect_tcp(host, l.port(), deadline::after(5s));
        auto s = l.accept(deadline::after(5s));
        ASSERT_TRUE(s) << host;
        EXPECT_TRUE(is_cloexec(s->fd()));
        int nd = 0;
        socklen_t len = sizeof nd;
        ::getsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &nd, &len);
        EXPECT_EQ(nd, 1);
        EXPECT_EQ(c.send("ping " + host), io_status::ok);
        std::string got;
        ASSERT_EQ(s->receive(got, 100, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(got, "ping " + host);
    }
}

TEST(Tcp, RefusedIsAValue) {
    std::uint16_t port;
    {
        tcp_listener l("127.0.0.1", 0);
        port = l.port();
    }  // closed: nobody listens there now
    sock s;
    EXPECT_EQ(try_connect_tcp("127.0.0.1", port, s, deadline::after(5s)), connect_status::refused);
    EXPECT_EQ(errno_of([&] { connect_tcp("127.0.0.1", port, deadline::after(5s)); }), ECONNREFUSED);
}

TEST(Tcp, BadHostIsAnError) {
    EXPECT_THROW(connect_tcp("no-such-host.invalid", 80, deadline::after(5s)), ipckit::error);
}

TEST(Udp, Ipv4AndIpv6Datagrams) {
    for (std::string host : {"127.0.0.1", "::1"}) {
        sock r = bind_udp(host, 0);
        sock s = connect_udp(host, r.local_port());
        EXPECT_EQ(s.send("d1"), io_status::ok);
        EXPECT_EQ(s.send("datagram two"), io_status::ok);
        std::string got;
        ASSERT_EQ(r.receive(got, 100, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(got, "d1");
        ASSERT_EQ(r.receive(got, 100, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(got, "datagram two");
        EXPECT_EQ(r.receive(got, 100, deadline::after(10ms)), io_status::timed_out);
    }
}

TEST(SocketChannel, UnixStreamFramedRoundTrip) {
    auto path = sock_path();
    test::scoped_unlink rm(path);
    auto rx = open_channel("unix:" + path, channel_role::receiver);
    auto tx = open_channel("unix:" + path, channel_role::sender);
    ASSERT_EQ(tx->send("alpha"), io_status::ok);
    ASSERT_EQ(tx->send(std::string(100000, 'z')), io_status::ok);
    message m;
    ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "alpha");
    ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload.size(), 100000u);
}

TEST(SocketChannel, ListenerServesClientsOneAfterAnother) {
    auto name = test::unique_name("ipckit-seq");
    auto rx = open_channel("unix:@" + name, channel_role::receiver);
    message m;
    EXPECT_EQ(rx->receive(m, deadline::after(20ms)), io_status::timed_out);
    for (int i = 0; i < 3; ++i) {
        auto tx = open_channel("unix:@" + name, channel_role::sender);
        ASSERT_EQ(tx->send("client " + std::to_string(i)), io_status::ok);
    }  // each sender closes before the next connects
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(m.payload, "client " + std::to_string(i));
    }
    EXPECT_EQ(rx->receive(m, deadline::after(20ms)), io_status::timed_out);
}

TEST(SocketChannel, AllServesConcurrentClients) {
    auto name = test::unique_name("ipckit-all");
    auto rx = open_channel("unix:@" + name + "?all=1", channel_role::receiver);
    auto a = open_channel("unix:@" + name, channel_role::sender);
    auto b = open_channel("unix:@" + name, channel_role::sender);
    // b speaks while a is still connected and silent: only ?all=1 sees it.
    ASSERT_EQ(b->send("from b"), io_status::ok);
    message m;
    ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "from b");
    ASSERT_EQ(a->send("from a 1"), io_status::ok);
    ASSERT_EQ(a->send("from a 2"), io_status::ok);
    ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "from a 1");
    ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "from a 2");
    EXPECT_EQ(rx->receive(m, deadline::after(20ms)), io_status::timed_out);
}

TEST(SocketChannel, SeqpacketAndDgramChannels) {
    for (std::string type : {"seqpacket", "dgram"}) {
        auto path = sock_path();
        test::scoped_unlink rm(path);
        auto url = "unix:" + path + "?type=" + type;
        auto rx = open_channel(url, channel_role::receiver);
        auto tx = open_channel(url, channel_role::sender);
        ASSERT_EQ(tx->send("m1"), io_status::ok);
        ASSERT_EQ(tx->send("m2"), io_status::ok);
        message m;
        ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok) << type;
        EXPECT_EQ(m.payload, "m1");
        ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(m.payload, "m2");
    }
}

TEST(SocketChannel, TcpAndUdpChannels) {
    auto rx = open_channel("tcp://127.0.0.1:0", channel_role::receiver);
    // name() reports the ephemeral port actually bound.
    auto url = rx->name();
    ASSERT_EQ(url.rfind("tcp://127.0.0.1:", 0), 0u);
    EXPECT_NE(url, "tcp://127.0.0.1:0");
    auto tx = open_channel(url, channel_role::sender);
    ASSERT_EQ(tx->send("over tcp"), io_status::ok);
    message m;
    ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "over tcp");

    auto urx = open_channel("udp://[::1]:0", channel_role::receiver);
    auto utx = open_channel(urx->name(), channel_role::sender);
    ASSERT_EQ(utx->send("over udp"), io_status::ok);
    ASSERT_EQ(urx->receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "over udp");
    EXPECT_EQ(errno_of([&] { utx->send(std::string(udp_max_payload + 1, 'x')); }), EMSGSIZE);
}

TEST(SocketChannel, BadInput) {
    EXPECT_EQ(
        errno_of([] { open_channel("unix:/tmp/x?type=dgram&frame=line", channel_role::receiver); }),
        EINVAL);
    // A datagram receive waits in the kernel at once: nothing to spin.
    EXPECT_EQ(errno_of([] {
                  open_channel("unix:/tmp/x?type=seqpacket&spin_us=5", channel_role::receiver);
              }),
              EINVAL);
    EXPECT_THROW(open_channel("unix:/tmp/x?type=bogus", channel_role::receiver),
                 std::invalid_argument);
    auto msg =
        what_of([] { open_channel("unix:/tmp/" + std::string(200, 'p'), channel_role::receiver); });
    EXPECT_NE(msg.find("107"), std::string::npos) << msg;
    EXPECT_EQ(
        errno_of([] { open_channel("unix:@" + test::unique_name("none"), channel_role::sender); }),
        ECONNREFUSED);
}

TEST(UnixSocket, SeqpacketPeerShutdownWriteIsClosedNotEmptyMessages) {
    auto [a, b] = make_socket_pair(socket_type::seqpacket);
    ASSERT_EQ(a.send(""), io_status::ok);  // an empty record before data: kept
    ASSERT_EQ(a.send("last"), io_status::ok);
    a.shutdown_write();  // what socat does at end of input
    std::string got;
    ASSERT_EQ(b.receive(got, 1024, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(got, "");
    ASSERT_EQ(b.receive(got, 1024, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(got, "last");
    EXPECT_EQ(b.receive(got, 1024, deadline::after(5s)), io_status::closed);
    EXPECT_EQ(b.receive(got, 1024, deadline::after(5s)), io_status::closed);
}

TEST(UnixListener, SocketFileModeDoesNotDependOnTheUmask) {
    auto path = sock_path();
    test::scoped_unlink rm(path);
    mode_t old = ::umask(0);  // would give 0777 if the mode came from the umask
    unix_listen_options lo;
    lo.mode = 0600;
    std::optional<unix_listener> l;
    try {
        l.emplace(path, socket_type::stream, lo);
    } catch (...) {
        ::umask(old);
        throw;
    }
    EXPECT_EQ(::umask(old), 0u) << "the listener left the process umask changed";
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// A client that breaks the framing is disconnected; the listener goes on
// serving the others, in sequence and with ?all=1.
TEST(SocketChannel, ClientWithAnOversizedFrameIsDroppedAndTheListenerGoesOn) {
    for (std::string all : {"", "&all=1"}) {
        SCOPED_TRACE(all);
        auto name = test::unique_name("ipckit-bad");
        std::vector<std::string> dropped;
        open_options o;
        o.on_client_dropped = [&](const std::string& why) { dropped.push_back(why); };
        auto rx =
            open_channel("unix:@" + name + "?max_message=64" + all, channel_role::receiver, o);
        sock bad = connect_unix("@" + name, socket_type::stream, deadline::after(5s));
        ASSERT_EQ(bad.send(std::string("\xff\xff\xff\xff", 4)), io_status::ok);
        auto good = open_channel("unix:@" + name, channel_role::sender);
        ASSERT_EQ(good->send("ok"), io_status::ok);
        message m;
        ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(m.payload, "ok");
        ASSERT_EQ(dropped.size(), 1u);
        EXPECT_NE(dropped[0].find("max_message"), std::string::npos) << dropped[0];
        // The bad client was disconnected: it reads end of stream.
        std::string rest;
        EXPECT_EQ(bad.receive(rest, 16, deadline::after(5s)), io_status::closed);
    }
}

TEST(SocketChannel, TcpBracketsHoldOnlyAnIpv6Address) {
    EXPECT_THROW(open_channel("tcp://[localhost]:80", channel_role::sender), url_error);
    EXPECT_THROW(open_channel("tcp://[a b]:80", channel_role::sender), url_error);
}

TEST(PeerPolicy, ParsesUrlLists) {
    auto p = parse_peer_policy("1000,g27,0");
    EXPECT_EQ(p.uids, (std::vector<uid_t>{1000, 0}));
    EXPECT_EQ(p.gids, (std::vector<gid_t>{27}));
    EXPECT_TRUE(parse_peer_policy("any").empty());
    for (const char* bad : {"", "x", "g", "1000,", ",1", "-1", "99999999999", "any,1"})
        EXPECT_THROW(parse_peer_policy(bad), std::invalid_argument) << bad;
    EXPECT_THROW(parse_url("unix:@x?allow=bob"), url_error);
    EXPECT_THROW(parse_url("tcp://127.0.0.1:1?allow=0"), url_error);  // unix only
}

// Abstract names have no permissions: a unix:@ listener admits only its own
// user (and root) unless the URL says allow=.
TEST(SocketChannel, AbstractListenerAdmitsOnlyItsOwnUserByDefault) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    const std::string nobody_and_root = "?allow=" + std::to_string(test::kNobody) + ",0";
    for (const std::string& allow : {std::string(), std::string("?allow=any"), nobody_and_root}) {
        SCOPED_TRACE(allow);
        auto name = test::unique_name("ipckit-allow");
        auto rx = open_channel("unix:@" + name + allow, channel_role::receiver);
        auto st = test::run_unprivileged([&](const std::string&) {
            auto tx = open_channel("unix:@" + name, channel_role::sender);
            return tx->send("from nobody", deadline::after(5s)) == io_status::ok ? 0 : 1;
        });
        ASSERT_TRUE(st);
        ASSERT_LT(st->code, 90) << "could not drop to uid " << test::kNobody;
        message m;
        auto got = rx->receive(m, deadline::after(allow.empty() ? 300ms : 5s));
        if (allow.empty()) {
            EXPECT_EQ(got, io_status::timed_out) << "another user's message was read";
        } else {
            ASSERT_EQ(got, io_status::ok);
            EXPECT_EQ(m.payload, "from nobody");
        }
        // Our own user always gets in.
        auto self = open_channel("unix:@" + name, channel_role::sender);
        ASSERT_EQ(self->send("from me"), io_status::ok);
        ASSERT_EQ(rx->receive(m, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(m.payload, "from me");
    }
}
