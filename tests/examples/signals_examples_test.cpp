// Runs the lecture's signal programs (ex01-ex04), sends them signals the way
// the slides did with `kill`, and checks what they print and how they end.
// Each program blocks its signals before printing "My PID is N.", so reading
// that line is the handshake: nothing sent afterwards can race their setup.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "detail/syscall.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/signal.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

// A running example with its stdout read line by line.
class example : public test::line_process {
  public:
    explicit example(const std::string& name, const std::vector<std::string>& args = {})
        : line_process(argv_for(name, args)) {}

    /// Reads "My PID is N." and returns N.
    pid_t pid_line() {
        std::string l = line();
        EXPECT_EQ(l.rfind("My PID is ", 0), 0u) << l;
        EXPECT_EQ(std::stoi(l.substr(10)), pid());
        return pid();
    }

  private:
    static std::vector<std::string> argv_for(const std::string& name,
                                             const std::vector<std::string>& args) {
        std::vector<std::string> argv{std::string(IPCKIT_EXAMPLES_DIR) + "/" + name};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    }
};

}  // namespace

TEST(SignalsExamples, Ex01CatchesEverySigintAndEndsOnSigterm) {
    example ex("ex01_simple_signal_handler");
    const pid_t pid = ex.pid_line();
    const std::string want = "received SIGINT (from pid " + std::to_string(::getpid()) + ")";
    for (int i = 0; i < 3; ++i) {
        // Standard signals coalesce: send the next one only after this one was seen.
        send_signal(pid, SIGINT);
        EXPECT_EQ(ex.line(), want) << i;
    }
    send_signal(pid, SIGTERM);
    EXPECT_EQ(ex.line(), "received SIGTERM, exiting");
    EXPECT_EQ(ex.line(), "<eof>");
    EXPECT_TRUE(ex.finish().success());
}

TEST(SignalsExamples, Ex01StopsAfterTheCountGiven) {
    example ex("ex01_simple_signal_handler", {"1"});
    const pid_t pid = ex.pid_line();
    send_signal(pid, SIGINT);
    EXPECT_EQ(ex.line().rfind("received SIGINT", 0), 0u);
    EXPECT_TRUE(ex.finish().success());
}

TEST(SignalsExamples, Ex02AlarmEndsTheLoop) {
    example ex("ex02_signal_alarm", {"0.3"});
    std::vector<std::string> lines;
    for (std::string l = ex.line(); l != "<eof>" && l != "<timeout>"; l = ex.line())
        lines.push_back(l);
    ASSERT_GE(lines.size(), 2u);
    EXPECT_EQ(lines[lines.size() - 2], "Alarme!");
    EXPECT_EQ(lines.back(), "Terminou.");
    for (std::size_t i = 0; i + 2 < lines.size(); ++i)
        EXPECT_EQ(lines[i], "Fazendo alguma coisa enquanto aguarda o alarme.");
    EXPECT_TRUE(ex.finish().success());
}

TEST(SignalsExamples, Ex03SurvivesSigtermThenKillsItselfOnSigalrm) {
    example ex("ex03_signal_raise", {"600"});  // the timer will not ring: we send SIGALRM
    const pid_t pid = ex.pid_line();
    send_signal(pid, SIGTERM);
    EXPECT_EQ(ex.line(), "received SIGTERM");
    EXPECT_EQ(ex.line(), "Eu deveria ter finalizado...");
    send_signal(pid, SIGALRM);
    EXPECT_EQ(ex.line(), "received SIGALRM (sent by a process)");
    auto st = ex.finish();
    EXPECT_FALSE(st.exited);
    EXPECT_EQ(st.signal, SIGKILL);
}

TEST(SignalsExamples, Ex03TimerRingsByItself) {
    example ex("ex03_signal_raise", {"0.05"});
    ex.pid_line();
    EXPECT_EQ(ex.line(), "received SIGALRM (from the timer)");
    auto st = ex.finish();
    EXPECT_EQ(st.signal, SIGKILL) << st.describe();
}

TEST(SignalsExamples, Ex04MaskedSignalsStayPendingUntilUnmasked) {
    example ex("ex04_signal_mask");
    const pid_t pid = ex.pid_line();
    // kill() returns once the signal is pending in the target: no sleeps needed.
    send_signal(pid, SIGINT);
    send_signal(pid, SIGQUIT);
    send_signal(pid, SIGHUP);
    EXPECT_EQ(ex.line(), "received SIGHUP; pending: SIGINT SIGQUIT");
    send_signal(pid, SIGTERM);
    EXPECT_EQ(ex.line(), "received SIGTERM; pending: SIGINT SIGQUIT; unmasking");
    // Unmasked, the pending SIGINT (lowest number first) runs its default action.
    auto st = ex.finish();
    EXPECT_FALSE(st.exited) << st.describe();
    EXPECT_EQ(st.signal, SIGINT);
}

TEST(SignalsExamples, Ex04WithNothingPendingExitsCleanly) {
    example ex("ex04_signal_mask");
    const pid_t pid = ex.pid_line();
    send_signal(pid, SIGHUP);
    EXPECT_EQ(ex.line(), "received SIGHUP; pending: none");
    send_signal(pid, SIGTERM);
    EXPECT_EQ(ex.line(), "received SIGTERM; pending: none; unmasking");
    EXPECT_TRUE(ex.finish().success());
}
