// URL parser: every scheme accepted and rejected, errors that point at the
// offending part, option rules (unknown, wrong scheme, repeated, bad value).
#include <gtest/gtest.h>

#include <string>

#include "ipckit/url.hpp"

using namespace ipckit;

namespace {

// Parses text expecting failure; returns the error for inspection.
url_error parse_error(const std::string& text) {
    try {
        parse_url(text);
    } catch (const url_error& e) {
        return e;
    }
    ADD_FAILURE() << "'" << text << "' was accepted";
    return url_error(text, 0, 0, "accepted");
}

// The error points exactly at `part` inside text (first occurrence from `from`;
// an empty part means "at the end"), and its message quotes the URL and names
// the reason.
void expect_points_at(const std::string& text, const std::string& part, const std::string& reason,
                      std::size_t from = 0) {
    SCOPED_TRACE(text);
    url_error e = parse_error(text);
    std::size_t want = part.empty() ? text.size() : text.find(part, from);
    ASSERT_NE(want, std::string::npos);
    EXPECT_EQ(e.position(), want);
    EXPECT_EQ(e.length(), part.size());
    std::string what = e.what();
    EXPECT_NE(what.find("bad URL '" + text + "'"), std::string::npos) << what;
    EXPECT_NE(what.find(reason), std::string::npos) << what;
    std::string at = part.empty() ? "(at the end)" : "(at '" + part + "')";
    EXPECT_NE(what.find(at), std::string::npos) << what;
}

}  // namespace

// ---- accepted URLs --------------------------------------------------------------

TEST(Url, Stdio) {
    auto u = parse_url("stdio:");
    EXPECT_EQ(u.scheme, "stdio");
    EXPECT_TRUE(u.path.empty());
    EXPECT_EQ(u.frame(framing::raw), framing::raw);
    EXPECT_EQ(parse_url("stdio:?frame=line").frame(framing::raw), framing::line);
}

TEST(Url, FifoWithCommonOptions) {
    auto u = parse_url("fifo:/tmp/x?create=create_only&mode=0640&frame=line&max_message=64k");
    EXPECT_EQ(u.scheme, "fifo");
    EXPECT_EQ(u.path, "/tmp/x");
    EXPECT_EQ(u.text, "fifo:/tmp/x?create=create_only&mode=0640&frame=line&max_message=64k");
    EXPECT_EQ(u.create(), open_mode::create_only);
    EXPECT_EQ(u.permissions(), 0640u);
    EXPECT_EQ(u.frame(framing::length), framing::line);
    EXPECT_EQ(u.max_message(1), 65536u);
    EXPECT_EQ(u.param("mode"), "0640");
    EXPECT_EQ(u.param("nothing"), std::nullopt);
}

TEST(Url, DefaultsWhenOptionsAreAbsent) {
    auto u = parse_url("fifo:/tmp/x");
    EXPECT_EQ(u.create(), std::nullopt);
    EXPECT_EQ(u.permissions(), 0600u);
    EXPECT_EQ(u.permissions(0644), 0644u);
    EXPECT_EQ(u.frame(framing::length), framing::length);
    EXPECT_EQ(u.max_message(123), 123u);
    EXPECT_TRUE(u.params.empty());
}

TEST(Url, CreateModes) {
    EXPECT_EQ(parse_url("fifo:/a?create=open_only").create(), open_mode::open_only);
    EXPECT_EQ(parse_url("fifo:/a?create=open_or_create").create(), open_mode::open_or_create);
    EXPECT_EQ(parse_url("fifo:/a?create=create_only").create(), open_mode::create_only);
}

TEST(Url, PosixMessageQueue) {
    auto u = parse_url("mq:/jobs?maxmsg=10&msgsize=8k&priority=5");
    EXPECT_EQ(u.scheme, "mq");
    EXPECT_EQ(u.path, "/jobs");
    EXPECT_EQ(u.unsigned_param("maxmsg"), 10u);
    EXPECT_EQ(u.unsigned_param("msgsize"), 8192u);
    EXPECT_EQ(u.unsigned_param("priority"), 5u);
    EXPECT_EQ(u.unsigned_param("absent"), std::nullopt);
    // NAME_MAX characters after the slash is the longest accepted name.
    EXPECT_NO_THROW(parse_url("mq:/" + std::string(255, 'q')));
}

TEST(Url, SysvKeyDecimalHexAndPath) {
    auto dec = parse_url("sysvmq:1234");
    EXPECT_EQ(dec.sysv_key, 1234);
    EXPECT_TRUE(dec.path.empty());
    auto hex = parse_url("sysvmq:0x1F2e");
    EXPECT_EQ(hex.sysv_key, 0x1f2e);
    // Keys are key_t (int32): 0xffffffff is the key -1 as ipcs shows it.
    EXPECT_EQ(parse_url("sysvmq:0xffffffff").sysv_key, -1);
    auto path = parse_url("sysvmq:/etc/passwd?id=7&type=-3");
    EXPECT_EQ(path.sysv_key, std::nullopt);
    EXPECT_EQ(path.path, "/etc/passwd");
    EXPECT_EQ(path.unsigned_param("id"), 7u);
    EXPECT_EQ(path.signed_param("type"), -3);
}

TEST(Url, UnixPathAbstractAndType) {
    auto p = parse_url("unix:/run/x.sock?type=seqpacket");
    EXPECT_EQ(p.path, "/run/x.sock");
    EXPECT_EQ(p.param("type"), "seqpacket");
    auto a = parse_url("unix:@name?type=dgram");
    EXPECT_EQ(a.path, "@name");
    EXPECT_EQ(parse_url("unix:@n?type=stream").param("type"), "stream");
    // sun_path holds 108 bytes including the terminating NUL.
    EXPECT_NO_THROW(parse_url("unix:/" + std::string(106, 's')));
}

TEST(Url, TcpUdpHostsAndPorts) {
    auto t = parse_url("tcp://127.0.0.1:7000?nodelay=1");
    EXPECT_EQ(t.scheme, "tcp");
    EXPECT_EQ(t.host, "127.0.0.1");
    EXPECT_EQ(t.port, 7000);
    auto v6 = parse_url("tcp://[::1]:80");
    EXPECT_EQ(v6.host, "::1");
    EXPECT_EQ(v6.port, 80);
    auto name = parse_url("udp://localhost:0");
    EXPECT_EQ(name.scheme, "udp");
    EXPECT_EQ(name.host, "localhost");
    EXPECT_EQ(name.port, 0);
    EXPECT_EQ(parse_url("udp://[fe80::1%25]:65535").port, 65535);
}

TEST(Url, SharedMemoryCapacityAndMode) {
    auto u = parse_url("shm:/ring?capacity=1M&mode=mpmc");
    EXPECT_EQ(u.path, "/ring");
    EXPECT_EQ(u.unsigned_param("capacity"), 1u << 20);
    EXPECT_EQ(u.param("mode"), "mpmc");
    // mode=spsc|mpmc is the ring mode, not permissions: these stay default.
    EXPECT_EQ(u.permissions(), 0600u);
    EXPECT_EQ(parse_url("shm:/ring?mode=0640").permissions(), 0640u);
    EXPECT_NO_THROW(parse_url("shm:/ring?mode=spsc"));
}

// ---- rejected URLs: the error points at the bad part -----------------------------

TEST(UrlErrors, MissingOrUnknownScheme) {
    expect_points_at("/tmp/x", "/tmp/x", "missing scheme");
    expect_points_at("ftp:/x", "ftp", "unknown scheme 'ftp'");
    auto e = parse_error(":x");
    EXPECT_EQ(e.position(), 0u);
    EXPECT_NE(std::string(e.what()).find("missing scheme"), std::string::npos);
    parse_error("");
    parse_error("FIFO:/tmp/x");  // schemes are lower case
}

TEST(UrlErrors, NulByte) {
    std::string text("fifo:/tmp/a\0b", 13);
    auto e = parse_error(text);
    EXPECT_EQ(e.position(), 11u);
    EXPECT_EQ(e.length(), 1u);
    // The whole message survives: the NUL is shown escaped, not embedded.
    EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'fifo:/tmp/a\\x00b'"), std::string::npos) << e.what();
}

TEST(UrlErrors, Stdio) {
    expect_points_at("stdio:/dev/tty", "/dev/tty", "stdio: takes no path");
}

TEST(UrlErrors, FifoPath) {
    expect_points_at("fifo:tmp/x", "tmp/x", "path must be absolute");
    auto e = parse_error("fifo:");
    EXPECT_EQ(e.position(), 5u);
    EXPECT_NE(std::string(e.what()).find("path is missing"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(at the end)"), std::string::npos);
    std::string longp = "/" + std::string(5000, 'p');
    expect_points_at("fifo:" + longp, longp, "longer than PATH_MAX");
}

TEST(UrlErrors, PosixNames) {
    expect_points_at("mq:jobs", "jobs", "must start with '/'");
    expect_points_at("mq:/", "/", "empty after '/'");
    expect_points_at("mq:/a/b", "/", "must not contain another '/'", 4);
    std::string longn = "/" + std::string(256, 'n');
    expect_points_at("mq:" + longn, longn, "NAME_MAX");
    expect_points_at("shm:ring", "ring", "shared memory name must start with '/'");
}

TEST(UrlErrors, SysvKeys) {
    expect_points_at("sysvmq:12ab", "12ab", "key must be a number");
    expect_points_at("sysvmq:0xZZ", "0xZZ", "key must be a number");
    expect_points_at("sysvmq:0", "0", "IPC_PRIVATE");
    expect_points_at("sysvmq:0x0", "0x0", "IPC_PRIVATE");
    expect_points_at("sysvmq:4294967296", "4294967296", "32 bits");
    expect_points_at("sysvmq:-5", "-5", "key must be a number");
    auto e = parse_error("sysvmq:");
    EXPECT_NE(std::string(e.what()).find("key or /path is missing"), std::string::npos);
    expect_points_at("sysvmq:/etc/passwd?id=0", "0", "id must be 1..255", 19);
    expect_points_at("sysvmq:/etc/passwd?id=256", "256", "id must be 1..255");
    expect_points_at("sysvmq:5?type=x", "x", "type must be an integer");
}

TEST(UrlErrors, UnixSockets) {
    expect_points_at("unix:@", "@", "abstract name is empty");
    expect_points_at("unix:rel.sock", "rel.sock", "path must be absolute");
    std::string longp = "/" + std::string(107, 's');  // 108 bytes: no room for the NUL
    expect_points_at("unix:" + longp, longp, "sun_path holds at most 107");
    std::string longa = "@" + std::string(108, 'a');
    expect_points_at("unix:" + longa, longa, "abstract name longer than 107");
    expect_points_at("unix:/s?type=raw", "raw", "type must be stream, dgram or seqpacket");
    parse_error("unix:");
}

TEST(UrlErrors, TcpUdp) {
    expect_points_at("tcp:127.0.0.1:80", "127.0.0.1:80", "must look like tcp://host:port");
    expect_points_at("tcp://127.0.0.1:99999", "99999", "port must be a number 0..65535");
    expect_points_at("tcp://127.0.0.1:http", "http", "port must be a number");
    expect_points_at("udp://localhost", "localhost", "port is missing");
    expect_points_at("tcp://[::1]", "", "port is missing after ']'");
    expect_points_at("tcp://[::1:80", "[::1:80", "unterminated '['");
    expect_points_at("tcp://[]:80", "[]", "empty IPv6 address");
    expect_points_at("tcp://::1:80", "::1", "IPv6 address must be in brackets");
    expect_points_at("tcp://ho st:80", "ho st", "host has an invalid character");
    auto e = parse_error("tcp://:80");
    EXPECT_NE(std::string(e.what()).find("host is missing"), std::string::npos);
    parse_error("tcp://");
    parse_error("tcp://1.2.3.4:");
    parse_error("tcp://1.2.3.4:-1");
}

// ---- options ------------------------------------------------------------------------

TEST(UrlOptions, UnknownOption) {
    expect_points_at("fifo:/x?colour=red", "colour", "unknown option 'colour'");
    expect_points_at("fifo:/x?frame=line&bogus=1", "bogus", "unknown option 'bogus'");
}

TEST(UrlOptions, OptionThatDoesNotApplyToTheScheme) {
    expect_points_at("fifo:/x?capacity=4k", "capacity", "'capacity' does not apply to fifo:");
    expect_points_at("mq:/q?frame=line", "frame", "'frame' does not apply to mq:");
    expect_points_at("stdio:?create=create_only", "create", "does not apply to stdio:");
    expect_points_at("tcp://h:1?mode=0600", "mode", "does not apply to tcp:");
    expect_points_at("udp://h:1?frame=raw", "frame", "does not apply to udp:");
    expect_points_at("shm:/r?maxmsg=3", "maxmsg", "does not apply to shm:");
    expect_points_at("udp://h:1?spin_us=5", "spin_us", "does not apply to udp:");
    expect_points_at("shm:/r?spin_us=5", "spin_us", "does not apply to shm:");
}

TEST(UrlOptions, RepeatedOption) {
    expect_points_at("fifo:/x?frame=line&frame=raw", "frame", "'frame' repeated", 19);
}

TEST(UrlOptions, BadValuesPointAtTheValue) {
    expect_points_at("fifo:/x?frame=lines", "lines", "frame must be length, line or raw");
    expect_points_at("fifo:/x?create=always", "always", "create must be create_only");
    expect_points_at("fifo:/x?mode=0900", "0900", "mode must be octal permissions");
    expect_points_at("fifo:/x?mode=01777", "01777", "mode must be octal permissions");
    expect_points_at("shm:/r?mode=fast", "fast", "must be spsc, mpmc or octal");
    expect_points_at("fifo:/x?max_message=0", "0", "positive size", 8);
    expect_points_at("fifo:/x?max_message=4G", "4G", "below 4 GiB");
    expect_points_at("fifo:/x?max_message=12q", "12q", "positive size");
    expect_points_at("mq:/q?priority=32768", "32768", "MQ_PRIO_MAX");
    expect_points_at("mq:/q?maxmsg=-1", "-1", "non-negative integer");
    expect_points_at("tcp://h:1?nodelay=yes", "yes", "must be 0, 1, true or false");
    expect_points_at("shm:/r?capacity=", "", "capacity must be a positive size");
    expect_points_at("tcp://h:1?spin_us=5us", "5us", "non-negative integer");
}

TEST(UrlOptions, MalformedQuery) {
    expect_points_at("fifo:/x?", "?", "empty query");
    expect_points_at("fifo:/x?frame", "frame", "option must be key=value");
    expect_points_at("fifo:/x?=line", "=line", "option must be key=value");
    expect_points_at("fifo:/x?frame=line&", "&", "trailing '&'");
    expect_points_at("fifo:/x?frame=line&&mode=0600", "&", "empty option", 19);
}

TEST(UrlOptions, MaxMessageLimitIsJustBelow4GiB) {
    EXPECT_EQ(parse_url("fifo:/x?max_message=4294967294").max_message(0), 4294967294u);
    parse_error("fifo:/x?max_message=4294967295");
}

// ---- parse_size -----------------------------------------------------------------------

TEST(ParseSize, PlainAndSuffixed) {
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("4096"), 4096u);
    EXPECT_EQ(parse_size("64k"), 65536u);
    EXPECT_EQ(parse_size("64K"), 65536u);
    EXPECT_EQ(parse_size("16M"), 16u << 20);
    EXPECT_EQ(parse_size("1G"), 1u << 30);
    EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSize, Rejects) {
    for (const char* bad : {"", "k", "-1", "1.5M", "12 k", "0x10", "1m", "1g", "1T", "1kk",
                            "18446744073709551616", "17179869184G"}) {
        EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
    }
}

// A unix: listener always replaces a stale socket file and never a live
// one: create= has no meaning there and is refused, not ignored.
TEST(UrlOptions, CreateDoesNotApplyToUnixSockets) {
    try {
        parse_url("unix:/tmp/s.sock?create=create_only");
        ADD_FAILURE() << "create= accepted on unix:";
    } catch (const url_error& e) {
        EXPECT_NE(std::string(e.what()).find("does not apply to unix:"), std::string::npos)
            << e.what();
    }
}
