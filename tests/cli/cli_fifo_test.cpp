// The built `ipckit` command over FIFOs, end to end: recv and send in separate
// processes, interop with cat/echo, documented messages and exit codes.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <future>
#include <sstream>
#include <thread>

#include "ipckit/channel.hpp"
#include "ipckit/fifo.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

mode_t permissions_of(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// Waits until the receiver's FIFO exists with its final mode (it is created
// with mode 0 and then chmod'ed, so a non-root writer must not race that).
bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout = 10s) {
    auto until = deadline::after(timeout);
    while (permissions_of(path) == 0) {
        if (until.expired()) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// Starts `ipckit args...` in the background; get() returns its result.
std::future<run_result> ipckit_async(std::vector<std::string> args) {
    return std::async(std::launch::async,
                      [args = std::move(args)] { return test::run_ipckit(args, {}, 30s); });
}

// A reader on a plain FIFO: the FIFO must already exist.
std::future<run_result> async_run(std::vector<std::string> argv) {
    return std::async(std::launch::async,
                      [argv = std::move(argv)] { return run(argv, {}, deadline::after(30s)); });
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST(CliFifo, RecvAndSendInSeparateProcesses) {
    std::string path = test::unique_path("ipckit-cli");
    fifo_remover rm(path);
    auto recv = ipckit_async({"recv", "fifo:" + path, "-n", "4", "--timeout", "20s"});
    ASSERT_TRUE(wait_for_path(path));
    auto s1 = test::run_ipckit({"send", "fifo:" + path, "hello", "two words", "--timeout", "10s"});
    EXPECT_EQ(s1.status.code, 0) << s1.err;
    // Without MSG arguments, each stdin line is a message.
    auto s2 = test::run_ipckit({"send", "fifo:" + path, "--timeout", "10s"}, "from\nstdin\n");
    EXPECT_EQ(s2.status.code, 0) << s2.err;
    auto r = recv.get();
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.status.success()) << r.status.describe() << " " << r.err;
    EXPECT_EQ(r.out, "hello\ntwo words\nfrom\nstdin\n");
    EXPECT_FALSE(exists(path));  // recv created the FIFO and removed it
}

TEST(CliFifo, LineFramingReadsWhatEchoWrites) {
    std::string path = test::unique_path("ipckit-cli-echo");
    fifo_remover rm(path);
    auto recv =
        ipckit_async({"recv", "fifo:" + path + "?frame=line", "-n", "3", "--timeout", "20s"});
    ASSERT_TRUE(wait_for_path(path));
    // Two separate shell writers, like `echo ... > fifo` from the slides.
    auto e1 = run({"sh", "-c", "echo 'Armazene essa msg no fifo.' > \"$1\"", "sh", path}, {},
                  deadline::after(10s));
    EXPECT_TRUE(e1.status.success()) << e1.err;
    auto e2 = run({"sh", "-c", "printf 'second\\nthird\\n' > \"$1\"", "sh", path}, {},
                  deadline::after(10s));
    EXPECT_TRUE(e2.status.success()) << e2.err;
    auto r = recv.get();
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "Armazene essa msg no fifo.\nsecond\nthird\n");
}

TEST(CliFifo, LineFramingWritesWhatCatReads) {
    std::string path = test::unique_path("ipckit-cli-cat");
    fifo_remover rm(path);
    ASSERT_TRUE(create_fifo(path));
    auto cat = async_run({"cat", path});
    auto s = test::run_ipckit(
        {"send", "fifo:" + path + "?frame=line", "first line", "second line", "--timeout", "10s"});
    EXPECT_EQ(s.status.code, 0) << s.err;
    auto r = cat.get();  // send closed its end: cat sees EOF and exits
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "first line\nsecond line\n");
}

TEST(CliFifo, LengthFramingIsNotPlainText) {
    // The default framing puts a 4-byte length before each message: what cat
    // sees is exactly that, which is why frame=line exists.
    std::string path = test::unique_path("ipckit-cli-len");
    fifo_remover rm(path);
    ASSERT_TRUE(create_fifo(path));
    auto cat = async_run({"cat", path});
    auto s = test::run_ipckit({"send", "fifo:" + path, "abc", "--timeout", "10s"});
    EXPECT_EQ(s.status.code, 0) << s.err;
    EXPECT_EQ(cat.get().out, std::string("\x03\0\0\0abc", 7));
}

TEST(CliFifo, BadUrlIsAUsageError) {
    auto r = test::run_ipckit({"recv", "fifo:relative/path", "--timeout", "1s"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_EQ(r.err,
              "ipckit: bad URL 'fifo:relative/path': path must be absolute (at 'relative/path')\n");
    auto s = test::run_ipckit({"send", "ftp://host/x", "hi"});
    EXPECT_EQ(s.status.code, 2);
    EXPECT_TRUE(contains(s.err, "ipckit: bad URL 'ftp://host/x': unknown scheme 'ftp'")) << s.err;
    auto o = test::run_ipckit({"send", "fifo:/tmp/x?colour=red", "hi"});
    EXPECT_EQ(o.status.code, 2);
    EXPECT_TRUE(contains(o.err, "unknown option 'colour'")) << o.err;
}

TEST(CliFifo, UsageErrorsExitTwo) {
    EXPECT_EQ(test::run_ipckit({}).status.code, 2);
    EXPECT_EQ(test::run_ipckit({"no-such-verb"}).status.code, 2);
    EXPECT_EQ(test::run_ipckit({"recv"}).status.code, 2);  // URL is required
    auto d = test::run_ipckit({"recv", "fifo:/tmp/x", "--timeout", "soon"});
    EXPECT_EQ(d.status.code, 2);
    EXPECT_TRUE(contains(d.err, "duration")) << d.err;
}

TEST(CliFifo, MissingObjectIsAFailureNamingIt) {
    std::string path = test::unique_path("ipckit-cli-missing");
    auto r = test::run_ipckit({"send", "fifo:" + path, "hi", "--timeout", "2s"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err, "ipckit: open fifo:" + path + ": No such file or directory\n");
    EXPECT_FALSE(exists(path));  // a sender never creates the receiver's FIFO
}

TEST(CliFifo, TimeoutsExitThree) {
    std::string path = test::unique_path("ipckit-cli-timeout");
    fifo_remover rm(path);
    auto r = test::run_ipckit({"recv", "fifo:" + path, "--timeout", "200ms"});
    EXPECT_EQ(r.status.code, 3);
    EXPECT_TRUE(contains(r.err, "ipckit: recv fifo:" + path + ": timed out")) << r.err;
    EXPECT_EQ(r.out, "");
    // A FIFO nobody reads: the sender gives up opening it.
    ASSERT_TRUE(create_fifo(path));
    auto s = test::run_ipckit({"send", "fifo:" + path, "hi", "--timeout", "200ms"});
    EXPECT_EQ(s.status.code, 3);
    EXPECT_TRUE(contains(s.err, "ipckit: open fifo:" + path)) << s.err;
    EXPECT_TRUE(contains(s.err, "timed out")) << s.err;
}

TEST(CliHelp, EveryVerbHasHelpWithAnExample) {
    auto top = test::run_ipckit({"--help"});
    EXPECT_EQ(top.status.code, 0);
    EXPECT_TRUE(contains(top.out, "Exit codes")) << top.out;
    EXPECT_TRUE(contains(top.out, "Examples")) << top.out;
    // The verbs are listed under "Subcommands:", one per line.
    std::vector<std::string> verbs;
    std::istringstream in(top.out);
    std::string line;
    bool in_list = false;
    while (std::getline(in, line)) {
        if (line.rfind("Subcommands:", 0) == 0 || line.rfind("SUBCOMMANDS:", 0) == 0) {
            in_list = true;
            continue;
        }
        if (!in_list) continue;
        if (line.empty() || line[0] != ' ') break;
        std::istringstream words(line);
        std::string verb;
        words >> verb;
        if (!verb.empty()) verbs.push_back(verb);
    }
    ASSERT_GE(verbs.size(), 3u) << top.out;
    for (const char* must : {"send", "recv", "tour"})
        EXPECT_NE(std::find(verbs.begin(), verbs.end(), must), verbs.end()) << must;
    for (const auto& verb : verbs) {
        SCOPED_TRACE(verb);
        auto h = test::run_ipckit({verb, "--help"});
        EXPECT_EQ(h.status.code, 0) << h.err;
        EXPECT_TRUE(contains(h.out, "Example")) << h.out;
        EXPECT_TRUE(contains(h.out, "ipckit " + verb)) << h.out;
    }
}

TEST(CliHelp, Version) {
    auto v = test::run_ipckit({"--version"});
    EXPECT_EQ(v.status.code, 0);
    EXPECT_EQ(v.out.rfind("ipckit ", 0), 0u) << v.out;
    EXPECT_TRUE(contains(v.out, ".")) << v.out;
}

namespace {

// Sends payloads from this process to a `recv` started with extra args.
run_result recv_payloads(const std::vector<std::string>& payloads,
                         const std::vector<std::string>& extra) {
    std::string path = test::unique_path("ipckit-cli-bin");
    fifo_remover rm(path);
    std::vector<std::string> args{
        "recv", "fifo:" + path, "-n", std::to_string(payloads.size()), "--timeout", "20s"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto recv = ipckit_async(args);
    if (!wait_for_path(path)) return recv.get();
    open_options o;
    o.open_deadline = deadline::after(10s);
    auto ch = open_channel("fifo:" + path, channel_role::sender, o);
    for (const auto& p : payloads)
        EXPECT_EQ(ch->send(p, deadline::after(10s)), io_status::ok);
    return recv.get();
}

}  // namespace

TEST(CliRecv, JsonOutputShape) {
    auto r =
        recv_payloads({"hello", "", std::string("\x00\xff\x01", 3), "caf\xc3\xa9"}, {"--json"});
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out,
              "{\"seq\":0,\"size\":5,\"payload\":\"hello\"}\n"
              "{\"seq\":1,\"size\":0,\"payload\":\"\"}\n"
              "{\"seq\":2,\"size\":3,\"payload_hex\":\"00ff01\"}\n"
              "{\"seq\":3,\"size\":5,\"payload\":\"café\"}\n");
}

TEST(CliRecv, BinaryPayloadsAreEscapedUnlessRaw) {
    std::string bin("a\0b\n\t\\\x7f\xfe", 8);
    auto r = recv_payloads({bin, "plain"}, {});
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "a\\x00b\\n\\t\\\\\\x7f\\xfe\nplain\n");
    auto raw = recv_payloads({bin}, {"--raw"});
    EXPECT_TRUE(raw.status.success()) << raw.err;
    EXPECT_EQ(raw.out, bin + "\n");
}
