// Runs the lecture's message queue programs (POSIX and System V server +
// clients) as real processes and checks every client got its own answers.
#include <fcntl.h>
#include <mqueue.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "ipckit/mqueue.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/sysv.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string example(const std::string& name) {
    return std::string(IPCKIT_EXAMPLES_DIR) + "/" + name;
}

std::string read_all(unique_fd& fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return out;
    }
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
        ++n;
    return n;
}

// Runs two clients concurrently against a server already started.
std::array<run_result, 2> run_two_clients(const std::vector<std::string>& argv) {
    std::array<run_result, 2> results;
    std::thread t([&] { results[1] = run(argv, {}, deadline::after(20s)); });
    results[0] = run(argv, {}, deadline::after(20s));
    t.join();
    return results;
}

}  // namespace

TEST(MqueueExamples, PosixServerAnswersEachClientOnItsOwnQueue) {
    std::string server_name = std::string("/").append(test::unique_name("ipckit-mqex"));
    mq_remover rm(server_name);  // in case the server is killed
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto server = spawn({example("mq_server"), server_name, "4"}, so);
    auto clients = run_two_clients({example("mq_client"), server_name, "2"});
    for (const auto& c : clients) {
        EXPECT_TRUE(c.status.success()) << c.status.describe() << c.err;
        EXPECT_EQ(count(c.out, "for 'request 1'"), 1u) << c.out;
        EXPECT_EQ(count(c.out, "for 'request 2'"), 1u) << c.out;
    }
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st) << "server did not finish";
    EXPECT_TRUE(st->success()) << st->describe();
    std::string out = read_all(server.stdout_pipe());
    EXPECT_EQ(count(out, "<- token"), 4u) << out;
    EXPECT_NE(out.find("removing " + server_name), std::string::npos);
    EXPECT_FALSE(message_queue::remove(server_name)) << "server left its queue behind";
    // Each client removed its reply queue.
    std::string all = clients[0].out + clients[1].out;
    for (auto pos = all.find("client "); pos != std::string::npos;
         pos = all.find("client ", pos + 1)) {
        std::string pid = all.substr(pos + 7, all.find(':', pos) - pos - 7);
        EXPECT_FALSE(message_queue::remove("/ipckit-mq-client-" + pid));
    }
}

TEST(MqueueExamples, SecondPosixServerLeavesTheFirstOnesQueueAlone) {
    std::string server_name = std::string("/").append(test::unique_name("ipckit-mqex2"));
    mq_remover rm(server_name);
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto first = spawn({example("mq_server"), server_name, "1"}, so);
    // Wait until the first server has created its queue (asked of mq_open:
    // /dev/mqueue is not mounted everywhere).
    auto queue_exists = [&] {
        mqd_t q = ::mq_open(server_name.c_str(), O_RDONLY | O_CLOEXEC);
        if (q == static_cast<mqd_t>(-1)) return false;
        ::mq_close(q);
        return true;
    };
    for (auto until = std::chrono::steady_clock::now() + 10s;
         !queue_exists() && std::chrono::steady_clock::now() < until;)
        std::this_thread::sleep_for(10ms);
    auto second = run({example("mq_server"), server_name, "1"}, {}, deadline::after(20s));
    EXPECT_EQ(second.status.code, 1) << second.status.describe();
    EXPECT_NE(second.err.find("File exists"), std::string::npos) << second.err;
    // The first server's queue survived the second's failure: a client is served.
    auto client = run({example("mq_client"), server_name, "1"}, {}, deadline::after(20s));
    EXPECT_TRUE(client.status.success()) << client.status.describe() << client.err;
    EXPECT_EQ(count(client.out, "for 'request 1'"), 1u) << client.out;
    auto st = first.wait_until(deadline::after(20s));
    ASSERT_TRUE(st) << "first server did not finish";
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(MqueueExamples, PosixClientRejectsBadQueueName) {
    auto r = run({example("mq_client"), "no-slash", "1"}, {}, deadline::after(20s));
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("must start with '/'"), std::string::npos) << r.err;
}

TEST(MqueueExamples, SysvServerAnswersByMessageType) {
    test::scoped_unlink keyfile(test::unique_path("ipckit-sysvex"));
    std::ofstream(keyfile.path()) << "key";
    auto key = sysv_key::from_path(keyfile.path(), 'q');
    sysv_message_queue::remove(key);  // a stale queue from an old file with the same inode
    struct remover {
        sysv_key k;
        ~remover() {
            try {
                sysv_message_queue::remove(k);
            } catch (...) {
            }
        }
    } rm{key};

    spawn_options so;
    so.out = stdio_mode::pipe;
    auto server = spawn({example("sysvmq_server"), keyfile.path(), "4"}, so);
    auto clients = run_two_clients({example("sysvmq_client"), keyfile.path(), "2"});
    for (const auto& c : clients) {
        EXPECT_TRUE(c.status.success()) << c.status.describe() << c.err;
        EXPECT_EQ(count(c.out, "for 'request 1'"), 1u) << c.out;
        EXPECT_EQ(count(c.out, "for 'request 2'"), 1u) << c.out;
    }
    auto st = server.wait_until(deadline::after(20s));
    ASSERT_TRUE(st) << "server did not finish";
    EXPECT_TRUE(st->success()) << st->describe();
    std::string out = read_all(server.stdout_pipe());
    EXPECT_EQ(count(out, "<- token"), 4u) << out;
    EXPECT_FALSE(sysv_message_queue::remove(key)) << "server left its queue behind";
}

TEST(MqueueExamples, SysvClientReportsMissingKeyFile) {
    auto r =
        run({example("sysvmq_client"), "/nonexistent/ipckit-key", "1"}, {}, deadline::after(20s));
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("ftok /nonexistent/ipckit-key"), std::string::npos) << r.err;
}
