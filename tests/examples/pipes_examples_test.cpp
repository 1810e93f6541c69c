// Runs the lecture's pipe and FIFO programs (examples/lecture/) as real
// processes with unique paths and checks what they print.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <future>
#include <regex>
#include <thread>

#include "ipckit/fifo.hpp"
#include "ipckit/pipe.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string example(const std::string& name) {
    return std::string(IPCKIT_EXAMPLES_DIR) + "/" + name;
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_mode : 0;
}

bool wait_for_path(const std::string& path) {
    auto until = deadline::after(10s);
    // Mode 0 until the creator's chmod: a non-root writer must wait for that.
    while ((mode_of(path) & 07777) == 0) {
        if (until.expired()) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

std::future<run_result> run_async(std::vector<std::string> argv) {
    return std::async(std::launch::async,
                      [argv = std::move(argv)] { return run(argv, {}, deadline::after(30s)); });
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
        ++n;
    return n;
}

}  // namespace

// ---- simple-pipe ----------------------------------------------------------------------------

TEST(PipesExamples, SimplePipeDeliversTheLine) {
    auto r = run({example("simple_pipe")}, "Olá filho.\n", deadline::after(10s));
    EXPECT_TRUE(r.status.success()) << r.status.describe() << r.err;
    EXPECT_EQ(r.out, "PAI: Digite algo para enviar: FILHO: ...Olá filho.\n");
}

TEST(PipesExamples, SimplePipeLongLineIsNotTruncatedOrOverflowed) {
    // The slide's scanf("%40[^\n]") overflowed its 40-byte buffer here.
    std::string line(5000, 'x');
    line += " fim";
    auto r = run({example("simple_pipe")}, line + "\n", deadline::after(10s));
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "PAI: Digite algo para enviar: FILHO: ..." + line + "\n");
}

TEST(PipesExamples, SimplePipeWithNoInput) {
    auto r = run({example("simple_pipe")}, "", deadline::after(10s));
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "PAI: Digite algo para enviar: FILHO: (nada recebido)\n");
}

// ---- FIFO example 1 ---------------------------------------------------------------------------

TEST(PipesExamples, FifoReaderAndTwoWriters) {
    std::string path = test::unique_path("ipckit-ex-fifo");
    fifo_remover rm(path);
    auto reader = run_async({example("fifo_reader"), path, "6"});
    ASSERT_TRUE(wait_for_path(path));
    EXPECT_TRUE(S_ISFIFO(mode_of(path)));
    EXPECT_EQ(mode_of(path) & 07777, 0600u);  // not the slide's 0664
    auto w1 = run_async({example("fifo_writer"), path, "3", "0"});
    auto w2 = run_async({example("fifo_writer"), path, "3", "0"});
    auto r1 = w1.get();
    auto r2 = w2.get();
    EXPECT_TRUE(r1.status.success()) << r1.err;
    EXPECT_TRUE(r2.status.success()) << r2.err;
    EXPECT_EQ(count(r1.out, "Sending: Message "), 3u) << r1.out;
    auto r = reader.get();
    EXPECT_TRUE(r.status.success()) << r.err;
    // Every message whole and on its own line, with its own byte count.
    std::regex line_re(R"(Received (\d+) bytes: (Message (\d+) - Number ([0-2])))");
    std::size_t received = 0;
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), line_re), end; it != end; ++it) {
        EXPECT_EQ(std::stoul((*it)[1]), (*it)[2].length());
        ++received;
    }
    EXPECT_EQ(received, 6u) << r.out;
    EXPECT_EQ(mode_of(path), 0u);  // the reader removed its FIFO
}

TEST(PipesExamples, FifoReaderAcceptsEchoLikeTheSlide) {
    std::string path = test::unique_path("ipckit-ex-echo");
    fifo_remover rm(path);
    auto reader = run_async({example("fifo_reader"), path, "1"});
    ASSERT_TRUE(wait_for_path(path));
    auto e = run({"sh", "-c", "echo 'Armazene essa msg no fifo.' > \"$1\"", "sh", path}, {},
                 deadline::after(10s));
    EXPECT_TRUE(e.status.success()) << e.err;
    auto r = reader.get();
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("Received 26 bytes: Armazene essa msg no fifo.\n"), std::string::npos)
        << r.out;
}

TEST(PipesExamples, FifoReaderRefusesASquattedPath) {
    std::string path = test::unique_path("ipckit-ex-squat");
    test::scoped_unlink rm(path);
    ASSERT_EQ(::symlink("/etc/passwd", path.c_str()), 0);
    auto r = run({example("fifo_reader"), path, "1"}, {}, deadline::after(10s));
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
}

TEST(PipesExamples, FifoWriterWithoutFifoIsAClearError) {
    std::string path = test::unique_path("ipckit-ex-nofifo");
    auto r = run({example("fifo_writer"), path, "1", "0"}, {}, deadline::after(10s));
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err, "fifo_writer: open fifo:" + path + ": No such file or directory\n");
    EXPECT_EQ(mode_of(path), 0u);
    EXPECT_EQ(run({example("fifo_writer"), "relative"}, {}, deadline::after(10s)).status.code, 2);
}

// ---- FIFO example 2 ---------------------------------------------------------------------------

TEST(PipesExamples, FifoServerAnswersEachClientOnItsOwnFifo) {
    std::string path = test::unique_path("ipckit-ex-server");
    fifo_remover rm(path);
    auto server = run_async({example("fifo_server"), path, "6"});
    ASSERT_TRUE(wait_for_path(path));
    EXPECT_EQ(mode_of(path) & 07777, 0600u);
    auto c1 = run_async({example("fifo_client"), path, "3"});
    auto c2 = run_async({example("fifo_client"), path, "3"});
    for (auto* f : {&c1, &c2}) {
        auto r = f->get();
        EXPECT_TRUE(r.status.success()) << r.status.describe() << " " << r.err;
        // "client <pid>: HELLO <i> FROM <pid>", the same pid twice: its own answers.
        std::regex re(R"(client (\d+): HELLO ([1-3]) FROM (\d+)\n)");
        std::size_t answers = 0;
        for (std::sregex_iterator it(r.out.begin(), r.out.end(), re), end; it != end; ++it) {
            EXPECT_EQ((*it)[1], (*it)[3]) << r.out;
            EXPECT_EQ(std::stoi((*it)[2]), static_cast<int>(++answers));
            // The reply FIFO is gone once the client has exited.
            std::string reply_fifo = "/tmp/ipckit-fifo-client-" + std::to_string(::geteuid()) +
                                     "-" + std::string((*it)[1]);
            EXPECT_EQ(mode_of(reply_fifo), 0u) << reply_fifo;
        }
        EXPECT_EQ(answers, 3u) << r.out;
    }
    auto s = server.get();
    EXPECT_TRUE(s.status.success()) << s.err;
    EXPECT_EQ(count(s.out, "server: /tmp/ipckit-fifo-client-"), 6u) << s.out;
    EXPECT_EQ(mode_of(path), 0u);
}

TEST(PipesExamples, FifoServerRefusesBadReplyPathsAndKeepsServing) {
    std::string path = test::unique_path("ipckit-ex-server-bad");
    std::string plain_file = test::unique_path("ipckit-ex-notafifo");
    fifo_remover rm(path);
    test::scoped_unlink rm_file(plain_file);
    { unique_fd f(::open(plain_file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)); }
    auto server = run_async({example("fifo_server"), path, "4"});
    ASSERT_TRUE(wait_for_path(path));
    // Hostile or broken requests, written like any other client would.
    auto bad = run({"sh", "-c",
                    "printf '%s\\n' \"relative hi\" \"/tmp/x?create=open_or_create hi\" "
                    "\"$2 hi\" > \"$1\"",
                    "sh", path, plain_file},
                   {}, deadline::after(10s));
    EXPECT_TRUE(bad.status.success()) << bad.err;
    auto c = run({example("fifo_client"), path, "1"}, {}, deadline::after(20s));
    EXPECT_TRUE(c.status.success()) << c.err;
    EXPECT_NE(c.out.find(": HELLO 1 FROM "), std::string::npos) << c.out;
    auto s = server.get();
    EXPECT_TRUE(s.status.success()) << s.err;
    EXPECT_EQ(count(s.out, "refused request with bad reply path"), 2u) << s.out;
    EXPECT_NE(s.out.find("server: open fifo:" + plain_file), std::string::npos) << s.out;
    EXPECT_TRUE(S_ISREG(mode_of(plain_file)));
    struct stat st {};
    ASSERT_EQ(::stat(plain_file.c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 0);  // nothing was written into the plain file
}

TEST(PipesExamples, FifoClientWithoutServerFailsInsteadOfHanging) {
    std::string path = test::unique_path("ipckit-ex-noserver");
    fifo_remover rm(path);
    ASSERT_TRUE(create_fifo(path));  // exists, but nobody reads it
    auto r = run({example("fifo_client"), path, "1"}, {}, deadline::after(20s));
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
}
