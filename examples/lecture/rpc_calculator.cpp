// The classic rpcgen "remote calculator" (the lecture lists RPC among the
// message-passing mechanisms, with no program), on ipckit::rpc: a forked
// server offers add, sub, mul and div; the parent is the client.
//
//   rpc_calculator [A OP B]...     OP: add sub mul div (or + - x /)
//
// Without arguments it runs a built-in list, including a division by zero,
// which comes back as the server's error instead of killing it. Each result
// is checked against the same arithmetic done locally: exit 0 when all match.
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ipckit/pipe.hpp"
#include "ipckit/rpc.hpp"
#include "ipckit/signal.hpp"

namespace {

struct op_info {
    const char* method;
    const char* alias;
    const char* symbol;
};
constexpr op_info kOps[] = {
    {"add", "+", "+"}, {"sub", "-", "-"}, {"mul", "x", "*"}, {"div", "/", "/"}};

const op_info* find_op(const std::string& s) {
    for (const auto& op : kOps)
        if (s == op.method || s == op.alias || s == op.symbol) return &op;
    return nullptr;
}

// The calculator itself; the server runs it, the client uses it to check.
std::int64_t compute(const std::string& method, std::int64_t a, std::int64_t b) {
    std::int64_t r = 0;
    bool overflow = false;
    if (method == "add") overflow = __builtin_add_overflow(a, b, &r);
    if (method == "sub") overflow = __builtin_sub_overflow(a, b, &r);
    if (method == "mul") overflow = __builtin_mul_overflow(a, b, &r);
    if (method == "div") {
        if (b == 0) throw std::domain_error("division by zero");
        overflow = a == INT64_MIN && b == -1;
        if (!overflow) r = a / b;
    }
    if (overflow) throw std::overflow_error("result does not fit in 64 bits");
    return r;
}

std::int64_t to_int64(const std::string& s) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    const std::string shown = s.substr(0, 40);  // never echo a huge argument back
    if (ec == std::errc::result_out_of_range)
        throw std::invalid_argument("out of 64-bit range: " + shown);
    if (ec != std::errc() || end != s.data() + s.size())
        throw std::invalid_argument("not an integer: " + shown);
    return v;
}

// The wire format is ours to choose: "A B" in decimal, the result in decimal.
ipckit::rpc::handler binary_op(std::string method) {
    return [method](std::string_view args) {
        std::string text(args);
        auto space = text.find(' ');
        if (space == std::string::npos) throw std::invalid_argument("expected 'A B'");
        return std::to_string(
            compute(method, to_int64(text.substr(0, space)), to_int64(text.substr(space + 1))));
    };
}

ipckit::rpc::server* g_server = nullptr;
void on_term(int) {
    g_server->request_stop();  // async-signal-safe
}

struct problem {
    std::string a, op, b;
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<problem> problems{{"7", "add", "5"},
                                  {"7", "sub", "12"},
                                  {"6", "mul", "7"},
                                  {"84", "div", "4"},
                                  {"-9", "div", "2"},
                                  {"1", "div", "0"},
                                  {"9223372036854775807", "add", "1"}};
    if (argc > 1) {
        if ((argc - 1) % 3 != 0) {
            std::fprintf(stderr, "usage: rpc_calculator [A OP B]...  (OP: add sub mul div)\n");
            return 2;
        }
        problems.clear();
        for (int i = 1; i + 2 < argc; i += 3)
            problems.push_back({argv[i], argv[i + 1], argv[i + 2]});
    }
    for (const auto& p : problems) {
        if (!find_op(p.op)) {
            std::fprintf(stderr, "rpc_calculator: unknown operation '%s'\n", p.op.c_str());
            return 2;
        }
        try {
            to_int64(p.a), to_int64(p.b);
        } catch (const std::invalid_argument& e) {
            std::fprintf(stderr, "rpc_calculator: %s\n", e.what());
            return 2;
        }
    }
    const std::string path = "/tmp/ipckit-calc-" + std::to_string(::getpid()) + ".sock";
    try {
        // Listen before forking: the socket exists before the client
        // connects, so there is no race and no portmapper to ask.
        ipckit::rpc::server server;
        for (const auto& op : kOps)
            server.add(op.method, binary_op(op.method));
        server.listen("unix:" + path);
        auto child = ipckit::fork_child([&server] {
            g_server = &server;
            ipckit::scoped_sigaction stop(SIGTERM, &on_term);
            server.run();
            return 0;
        });
        std::printf("server pid %d on unix:%s\n", child.pid(), path.c_str());

        ipckit::rpc::client calc("unix:" + path, ipckit::deadline::after(std::chrono::seconds(5)));
        int wrong = 0;
        for (const auto& p : problems) {
            const op_info* op = find_op(p.op);
            std::optional<std::string> expected;  // nullopt: the server must refuse
            try {
                expected = std::to_string(compute(op->method, to_int64(p.a), to_int64(p.b)));
            } catch (const std::exception&) {
            }
            std::optional<std::string> got;
            std::string result;
            try {
                auto st = calc.call(op->method, p.a + " " + p.b, result,
                                    ipckit::deadline::after(std::chrono::seconds(5)));
                if (st != ipckit::io_status::ok) {
                    std::printf("%s %s %s: %s\n", p.a.c_str(), op->symbol, p.b.c_str(),
                                ipckit::to_string(st));
                    ++wrong;
                    continue;
                }
                got = result;
                std::printf("%s %s %s = %s\n", p.a.c_str(), op->symbol, p.b.c_str(),
                            result.c_str());
            } catch (const ipckit::rpc::remote_error& e) {
                // An error is a value of the call: the server keeps running.
                std::printf("%s %s %s: remote error: %s\n", p.a.c_str(), op->symbol, p.b.c_str(),
                            e.what());
            }
            if (got != expected) ++wrong;
        }
        std::fflush(stdout);
        child.kill(SIGTERM);
        auto status = child.wait();
        if (!status.success()) {
            std::fprintf(stderr, "rpc_calculator: server %s\n", status.describe().c_str());
            return 1;
        }
        if (wrong > 0) std::printf("%d result(s) wrong\n", wrong);
        return wrong == 0 ? 0 : 1;
    } catch (const std::exception& e) {  // the server object removed the socket file
        std::fprintf(stderr, "rpc_calculator: %s\n", e.what());
        return 1;
    }
}
