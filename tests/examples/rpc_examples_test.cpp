// Runs the lecture's RPC program (examples/lecture/rpc_calculator).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "ipckit/pipe.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string example(const std::string& name) {
    return std::string(IPCKIT_EXAMPLES_DIR) + "/" + name;
}

// The socket path is named from the calculator's pid, printed first.
std::string socket_path(const run_result& r) {
    auto at = r.out.find("on unix:");
    if (at == std::string::npos) return {};
    return r.out.substr(at + 8, r.out.find('\n', at) - at - 8);
}

}  // namespace

TEST(RpcExamples, CalculatorBuiltInList) {
    auto r = run({example("rpc_calculator")}, {}, deadline::after(20s));
    test::scoped_unlink rm(socket_path(r));
    EXPECT_TRUE(r.status.success()) << r.status.describe() << "\n" << r.out << r.err;
    EXPECT_EQ(r.out.rfind("server pid ", 0), 0u) << r.out;
    for (const char* line :
         {"7 + 5 = 12\n", "7 - 12 = -5\n", "6 * 7 = 42\n", "84 / 4 = 21\n", "-9 / 2 = -4\n",
          "1 / 0: remote error: div: handler failed: division by zero\n",
          "9223372036854775807 + 1: remote error: add: handler failed: "})
        EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
    ASSERT_FALSE(socket_path(r).empty()) << r.out;
    EXPECT_NE(::access(socket_path(r).c_str(), F_OK), 0) << "socket file left behind";
}

TEST(RpcExamples, CalculatorFromArguments) {
    auto r = run({example("rpc_calculator"), "100", "x", "3", "10", "/", "0", "5", "sub", "8"}, {},
                 deadline::after(20s));
    test::scoped_unlink rm(socket_path(r));
    EXPECT_TRUE(r.status.success()) << r.out << r.err;
    EXPECT_NE(r.out.find("100 * 3 = 300\n10 / 0: remote error: div: handler failed: division by "
                         "zero\n5 - 8 = -3\n"),
              std::string::npos)
        << r.out;
    r = run({example("rpc_calculator"), "1", "pow", "2"}, {}, deadline::after(20s));
    EXPECT_EQ(r.status.code, 2) << r.err;
    EXPECT_NE(r.err.find("unknown operation 'pow'"), std::string::npos) << r.err;
}
