// `ipckit signal list|send|watch` end to end, including `kill` and
// `kill --queue` feeding a watcher.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "detail/syscall.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/signal.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;
using ipckit::test::run_ipckit;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        out.push_back(l);
    return out;
}

// `ipckit signal watch ...` running in the background, read line by line.
class watcher : public test::line_process {
  public:
    explicit watcher(const std::vector<std::string>& args) : line_process(argv_for(args)) {}

  private:
    static std::vector<std::string> argv_for(const std::vector<std::string>& args) {
        std::vector<std::string> argv{test::ipckit_binary(), "signal", "watch"};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    }
};

pid_t missing_pid() {
    int pid_max = 4194304;
    std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
    return pid_max;  // valid pids are below pid_max
}

}  // namespace

TEST(SignalCli, ListIsTheWholeTable) {
    auto r = run_ipckit({"signal", "list"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 65u);  // header + 64
    EXPECT_NE(lines[0].find("DEFAULT"), std::string::npos);
    EXPECT_NE(lines[9].find("SIGKILL"), std::string::npos);
    EXPECT_NE(lines[9].find("terminate  no    no"), std::string::npos) << lines[9];
    EXPECT_NE(lines[35].find("SIGRTMIN+1"), std::string::npos) << lines[35];
}

TEST(SignalCli, ListJsonMatchesTheLibraryTable) {
    auto r = run_ipckit({"signal", "list", "--json"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 64u);
    for (const auto& row : signal_table()) {
        auto j = nlohmann::json::parse(lines[row.number - 1]);
        EXPECT_EQ(j["number"], row.number);
        EXPECT_EQ(j["name"], row.name);
        EXPECT_EQ(j["default_action"], std::string(to_string(row.default_action)));
        EXPECT_EQ(j["catchable"], row.catchable);
        EXPECT_EQ(j["queued"], row.queued);
    }
}

TEST(SignalCli, SendBadInputIsAUsageError) {
    auto r = run_ipckit({"signal", "send", std::to_string(::getpid()), "FOO"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("ipckit: signal \"FOO\": unknown signal"), std::string::npos) << r.err;
    r = run_ipckit({"signal", "send", std::to_string(::getpid()), "65"});
    EXPECT_EQ(r.status.code, 2);
    r = run_ipckit({"signal", "send", "abc", "USR1"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("not a pid"), std::string::npos) << r.err;
    // A payload needs sigqueue, which cannot address a process group.
    r = run_ipckit(
        {"signal", "send", "--value", "3", "--", "-" + std::to_string(::getpgrp()), "RTMIN"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("not a process group"), std::string::npos) << r.err;
}

TEST(SignalCli, SendToAMissingProcessSaysSo) {
    const std::string pid = std::to_string(missing_pid());
    auto r = run_ipckit({"signal", "send", pid, "TERM"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err, "ipckit: kill pid " + pid + ": No such process\n");
    r = run_ipckit({"signal", "send", pid, "RTMIN+1", "--value", "5"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err, "ipckit: sigqueue pid " + pid + ": No such process\n");
    // Signal 0 is kill's existence probe: a missing pid fails, this one is there.
    r = run_ipckit({"signal", "send", pid, "0"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_EQ(r.err, "ipckit: kill pid " + pid + ": No such process\n");
    r = run_ipckit({"signal", "send", std::to_string(::getpid()), "0"});
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST(SignalCli, WatchReportsKillAndKillQueueAndIpckitSend) {
    watcher w({"USR1", "RTMIN+3", "-n", "3", "--json"});
    auto first = nlohmann::json::parse(w.line());  // written after the signals are blocked
    ASSERT_EQ(first["pid"], w.pid());
    EXPECT_EQ(first["watching"], nlohmann::json::array({"SIGUSR1", "SIGRTMIN+3"}));
    const std::string pid = std::to_string(w.pid());

    auto k = run({"kill", "-s", "USR1", pid}, {}, deadline::after(10s));
    ASSERT_TRUE(k.status.success()) << k.err;
    auto j = nlohmann::json::parse(w.line());
    EXPECT_EQ(j["signal"], "SIGUSR1");
    EXPECT_EQ(j["code"], "SI_USER");
    EXPECT_EQ(j["sender_uid"], ::getuid());
    EXPECT_TRUE(j["value"].is_null());

    k = run({"kill", "-s", "RTMIN+3", "--queue", "42", pid}, {}, deadline::after(10s));
    ASSERT_TRUE(k.status.success()) << k.err;
    j = nlohmann::json::parse(w.line());
    EXPECT_EQ(j["signal"], "SIGRTMIN+3");
    EXPECT_EQ(j["number"], SIGRTMIN + 3);
    EXPECT_EQ(j["code"], "SI_QUEUE");
    EXPECT_EQ(j["value"], 42);

    auto s = run_ipckit({"signal", "send", pid, "SIGRTMIN+3", "--value", "-7"});
    ASSERT_TRUE(s.status.success()) << s.err;
    j = nlohmann::json::parse(w.line());
    EXPECT_EQ(j["value"], -7);
    EXPECT_GT(j["sender_pid"].get<int>(), 0);

    EXPECT_EQ(w.line(), "<eof>");
    EXPECT_TRUE(w.finish().success());
}

TEST(SignalCli, WatchHumanOutputQueuesRealtimeInOrder) {
    watcher w({"RTMIN+2", "-n", "3"});
    const std::string first = w.line();
    ASSERT_EQ(first, "pid " + std::to_string(w.pid()));
    // Queued from here before the watcher reads: all three must arrive, in order.
    for (int v : {1, 2, 3})
        queue_signal(w.pid(), SIGRTMIN + 2, v);
    for (int v : {1, 2, 3}) {
        std::string want = "SIGRTMIN+2 (" + std::to_string(SIGRTMIN + 2) + ") from pid " +
                           std::to_string(::getpid()) + " uid " + std::to_string(::getuid()) +
                           " SI_QUEUE value " + std::to_string(v);
        EXPECT_EQ(w.line(), want);
    }
    EXPECT_TRUE(w.finish().success());
}

TEST(SignalCli, WatchTimesOutWithExit3) {
    auto r = run_ipckit({"signal", "watch", "USR2", "--timeout", "100ms"});
    EXPECT_EQ(r.status.code, 3);
    EXPECT_NE(r.err.find("timed out after 0 signal(s)"), std::string::npos) << r.err;
}

TEST(SignalCli, WatchRefusesSigkill) {
    auto r = run_ipckit({"signal", "watch", "KILL", "-n", "1"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("SIGKILL cannot be blocked, caught or ignored"), std::string::npos)
        << r.err;
    r = run_ipckit({"signal", "watch", "BOGUS"});
    EXPECT_EQ(r.status.code, 2);
    r = run_ipckit({"signal", "watch", "--timeout", "soon"});
    EXPECT_EQ(r.status.code, 2);
}

TEST(SignalCli, HelpHasExamples) {
    for (const char* sub : {"list", "send", "watch"}) {
        auto r = run_ipckit({"signal", sub, "--help"});
        EXPECT_TRUE(r.status.success()) << sub;
        EXPECT_NE(r.out.find("Example"), std::string::npos) << sub;
    }
}
