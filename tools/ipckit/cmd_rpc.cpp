// ipckit rpc serve URL [-n N] [--timeout T] | ipckit rpc call URL METHOD [ARGS...]
//
// A demo RPC server (echo, add, upper, date, sleep, pid) and a client for any
// ipckit::rpc server, over unix:/path, unix:@name or tcp://host:port.
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ipckit/error.hpp"
#include "ipckit/rpc.hpp"
#include "ipckit/signal.hpp"

namespace ipckit::cli {

namespace {

using std::chrono::steady_clock;

// SIGINT/SIGTERM: request_stop() is async-signal-safe; the flag also cuts a
// running `sleep` short so that the server stops at once.
std::atomic<rpc::server*> g_server{nullptr};
volatile sig_atomic_t g_stopping = 0;
void on_stop(int) {
    g_stopping = 1;
    if (auto* s = g_server.load()) s->request_stop();
}

// Error texts quote at most this much of a caller's argument.
std::string quoted(std::string_view arg) {
    constexpr std::size_t kMax = 40;
    return arg.size() <= kMax ? std::string(arg) : std::string(arg.substr(0, kMax)) + "...";
}

std::int64_t parse_int64(std::string_view word) {
    const bool plus = word.size() > 1 && word[0] == '+' && word[1] != '-';  // "+5", not "+-5"
    std::string_view digits = plus ? word.substr(1) : word;
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc::result_out_of_range)
        throw std::invalid_argument("integer out of int64 range: " + quoted(word));
    if (ec != std::errc() || end != digits.data() + digits.size())
        throw std::invalid_argument("not an integer: " + quoted(word));
    return v;
}

std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
            ++i;
        std::size_t start = i;
        while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])))
            ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

std::string add(std::string_view args) {
    std::int64_t sum = 0;
    for (auto w : words(args))
        if (__builtin_add_overflow(sum, parse_int64(w), &sum))
            throw std::invalid_argument("sum overflows int64");
    return std::to_string(sum);
}

std::string upper(std::string_view args) {
    std::string out(args);
    for (char& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

deadline g_serve_until = deadline::never();  // serve --timeout: sleep stops there too

std::string sleep_ms(std::string_view args) {
    auto w = words(args);
    std::int64_t ms = -1;
    try {
        if (w.size() == 1) ms = parse_int64(w[0]);
    } catch (const std::invalid_argument&) {
    }
    if (ms < 0 || ms > 60000)
        throw std::invalid_argument("sleep takes milliseconds 0..60000, not '" + quoted(args) +
                                    "'");
    // Slices of at most 50 ms: a stop signal or the end of serve --timeout
    // is seen within one slice, even if it lands just before a nanosleep.
    const deadline done = deadline::after(std::chrono::milliseconds(ms));
    while (!done.expired()) {
        if (g_stopping || g_serve_until.expired())
            throw std::runtime_error("interrupted: the server is stopping");
        auto slice =
            std::min<std::chrono::nanoseconds>(done.remaining(), std::chrono::milliseconds(50));
        timespec ts{0, static_cast<long>(slice.count())};
        ::nanosleep(&ts, nullptr);
    }
    return fmt::format("slept {} ms", ms);
}

struct serve_log {
    bool quiet = false, json = false;
    bool broken = false;  // stdout went away (e.g. `| head -1`): stop logging, keep serving
    std::uint64_t max_calls = 0, calls = 0;
    rpc::server* server = nullptr;
};

// Wraps a handler: one log line (or JSON object) per call, and the -n limit.
rpc::handler logged(std::string name, rpc::handler h, std::shared_ptr<serve_log> log) {
    return [name = std::move(name), h = std::move(h), log](std::string_view args) {
        const auto start = steady_clock::now();
        std::string result, failure;
        std::exception_ptr ep;
        try {
            result = h(args);
        } catch (const std::exception& e) {
            ep = std::current_exception();
            failure = e.what();
        }
        const auto us =
            std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start)
                .count();
        if (log->broken) {
        } else if (log->json) {
            nlohmann::ordered_json j{{"method", name},
                                     {"status", ep ? "error" : "ok"},
                                     {"bytes_in", args.size()},
                                     {"bytes_out", result.size()},
                                     {"microseconds", us}};
            if (ep) j["error"] = failure;
            fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else if (!log->quiet) {
            if (ep)
                fmt::print("rpc: {} error: {} ({} bytes in, {} us)\n", name, escape_bytes(failure),
                           args.size(), us);
            else
                fmt::print("rpc: {} ok ({} -> {} bytes, {} us)\n", name, args.size(), result.size(),
                           us);
        }
        if (std::fflush(stdout) != 0 || std::ferror(stdout)) log->broken = true;
        if (++log->calls == log->max_calls) log->server->request_stop();
        if (ep) std::rethrow_exception(ep);
        return result;
    };
}

struct options {
    std::string url, method, timeout;
    std::vector<std::string> args;
    std::uint64_t max_calls = 0;
    bool quiet = false, json = false, raw = false;
};

int do_serve(const options& o) {
    const deadline until =
        o.timeout.empty() ? deadline::never() : deadline::after(*parse_duration(o.timeout));
    rpc::server server;
    auto log =
        std::make_shared<serve_log>(serve_log{o.quiet, o.json, false, o.max_calls, 0, &server});
    g_serve_until = until;
    ignore_sigpipe_process_wide();  // a reader of our log that goes away must not kill us
    const std::vector<std::pair<std::string, rpc::handler>> methods{
        {"echo", [](std::string_view a) { return std::string(a); }},
        {"add", add},
        {"upper", upper},
        {"date", [](std::string_view) { return utc_now(); }},
        {"sleep", sleep_ms},
        {"pid", [](std::string_view) { return std::to_string(::getpid()); }},
    };
    std::string names;
    for (const auto& [name, h] : methods) {
        server.add(name, logged(name, h, log));
        names += (names.empty() ? "" : ", ") + name;
    }
    g_server = &server;
    sigaction_options sa;
    sa.restart = false;
    scoped_sigaction on_int(SIGINT, &on_stop, sa), on_term(SIGTERM, &on_stop, sa);
    server.listen(o.url);
    if (o.json) {
        nlohmann::ordered_json j{{"serving", server.address()},
                                 {"methods", nlohmann::json::array()}};
        for (const auto& m : methods)
            j["methods"].push_back(m.first);
        fmt::print("{}\n", j.dump());
    } else {
        fmt::print("rpc: serving {} (methods: {})\n", server.address(), names);
    }
    if (std::fflush(stdout) != 0) log->broken = true;
    const bool stopped = server.run(until);
    g_server = nullptr;
    if (!o.quiet && !o.json && !log->broken) {
        auto st = server.stats();
        fmt::print("rpc: {}, {} call(s), {} error(s)\n", stopped ? "stopped" : "timeout reached",
                   st.calls, st.errors);
    }
    return exit_ok;
}

int do_call(const options& o) {
    const std::string where = fmt::format("rpc {} {}", o.method, o.url);
    if (!rpc::valid_method_name(o.method)) {
        print_error(
            fmt::format("{}: invalid method name (1 to 255 letters, digits or _.:-)", where));
        return exit_usage;
    }
    // Arguments first (stdin may be slow): --timeout covers the call only.
    // stdin is read up to max_message, never without bound.
    const std::size_t max = parse_url(o.url).max_message(default_max_message);
    std::string args;
    if (o.args.size() == 1 && o.args[0] == "-") {
        char buf[65536];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
            args.append(buf, n);
            if (args.size() > max) {
                print_error(fmt::format("{}: arguments from stdin exceed max_message ({} bytes)",
                                        where, max));
                return exit_failure;
            }
        }
    } else {
        for (const auto& a : o.args)
            args += (args.empty() ? "" : " ") + a;
    }
    const deadline until =
        o.timeout.empty() ? deadline::never() : deadline::after(*parse_duration(o.timeout));
    std::optional<rpc::client> connected;
    try {
        connected.emplace(o.url, until);  // a URL that is not unix: / tcp: is a usage error
    } catch (const error& e) {
        if (e.code().value() != ETIMEDOUT) throw;
        print_error(fmt::format("{}: timed out after {} (no connection)", where, o.timeout));
        return exit_timeout;
    }
    rpc::client& client = *connected;
    const auto start = steady_clock::now();
    std::string result;
    std::vector<std::string> names;
    io_status st = io_status::ok;
    try {
        st = o.method == "rpc.methods" ? client.methods(names, until)
                                       : client.call(o.method, args, result, until);
    } catch (const rpc::remote_error& e) {
        // The server's text is escaped like a result: it must not drive our terminal.
        print_error(
            fmt::format("{}: {}: {}", where, rpc::to_string(e.code()), escape_bytes(e.detail())));
        return exit_failure;
    }
    if (st == io_status::timed_out) {
        print_error(fmt::format("{}: timed out after {} (no reply)", where, o.timeout));
        return exit_timeout;
    }
    if (st == io_status::closed) {
        print_error(where + ": server closed the connection");
        return exit_failure;
    }
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start).count();
    if (o.json) {
        nlohmann::ordered_json j{{"method", o.method}};
        if (o.method == "rpc.methods") {
            j["result"] = names;
        } else {  // like recv: "result" for UTF-8 text, "result_hex" otherwise
            auto m = message_json(message{result, {}}, 0);
            if (m.contains("payload"))
                j["result"] = m["payload"];
            else
                j["result_hex"] = m["payload_hex"];
        }
        j["microseconds"] = us;
        fmt::print("{}\n", j.dump());
    } else if (o.method == "rpc.methods") {
        for (const auto& n : names)
            fmt::print("{}\n", n);
    } else {
        if (o.raw)
            std::fwrite(result.data(), 1, result.size(), stdout);
        else
            std::fputs(escape_bytes(result).c_str(), stdout);
        std::fputc('\n', stdout);
    }
    return exit_ok;
}

}  // namespace

void register_rpc(CLI::App& app, verb& v) {
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand("rpc", "Remote procedure calls: a demo server and a client");
    cmd->require_subcommand(1);
    cmd->footer(
        "A call carries a method name and argument bytes; the reply is result bytes or\n"
        "the server's error (unknown method, handler failed, ...). See docs/rpc.md.\n"
        "Examples:\n"
        "  ipckit rpc serve unix:@calc & sleep 0.2\n"
        "  ipckit rpc call unix:@calc add 2 3            # prints 5\n"
        "  ipckit rpc call unix:@calc rpc.methods");
    const char* url_help = "unix:/path, unix:@name or tcp://host:port";

    auto* serve = cmd->add_subcommand("serve", "Serve the demo methods until SIGINT/SIGTERM");
    serve->footer(
        "Methods: echo (returns ARGS), add (sum of signed integers), upper (ASCII\n"
        "uppercase), date (UTC, ISO 8601), sleep (ARGS ms, 0..60000), pid.\n"
        "Prints 'rpc: serving URL (methods: ...)' first (with the real port for :0;\n"
        "with --json {\"serving\": URL, \"methods\": [...]}), then one line per call of a\n"
        "demo method unless -q (the closing summary also counts rpc.methods and refused\n"
        "calls). A sleep is cut short by a stop or the end of --timeout. Exit status 0\n"
        "when stopped by a signal, -n or --timeout.\n"
        "Example:\n"
        "  ipckit rpc serve tcp://127.0.0.1:0 -n 10 --json");
    serve->add_option("url", o->url, url_help)->required();
    serve
        ->add_option("-n,--max-calls", o->max_calls,
                     "Stop after N calls of demo methods (0: no limit)")
        ->check(count_validator());
    serve->add_option("-t,--timeout", o->timeout, "Stop after this long (500ms, 15s, 2m)")
        ->check(duration_validator());
    serve->add_flag("-q,--quiet", o->quiet, "No line per call");
    serve->add_flag("--json", o->json,
                    "One JSON object per call: method, status, bytes_in, bytes_out, "
                    "microseconds, error");

    auto* call = cmd->add_subcommand("call", "Call METHOD with ARGS and print the result");
    call->footer(
        "ARGS are joined with single spaces; a single '-' reads the arguments from stdin.\n"
        "The result is printed with non-printable bytes escaped (\\xHH) unless --raw;\n"
        "'rpc.methods' lists the server's methods, one per line.\n"
        "Arguments starting with '-' need '--' before the first argument\n"
        "(ipckit rpc call URL echo -- -n x); negative numbers pass as they are.\n"
        "Exit status: 0 ok, 1 remote error / refused / server closed / stdin above\n"
        "max_message, 2 bad URL or method name, 3 no connection or no reply within\n"
        "--timeout ('rpc METHOD URL: timed out after T').\n"
        "Examples:\n"
        "  ipckit rpc call unix:@calc add 2 3 -4\n"
        "  head -c 1000 /etc/services | ipckit rpc call tcp://127.0.0.1:7000 echo - --raw\n"
        "  ipckit rpc call unix:/tmp/calc.sock sleep 2000 --timeout 500ms --json");
    call->add_option("url", o->url, url_help)->required();
    call->add_option("method", o->method, "Method name (e.g. add, rpc.methods)")->required();
    call->add_option("args", o->args, "Arguments, joined with spaces ('-' = stdin)");
    call->add_option("-t,--timeout", o->timeout, "Give up after this long (exit 3)")
        ->check(duration_validator());
    call->add_flag("--json", o->json,
                   "Print {method, result, microseconds} (the call, not the connect)");
    call->add_flag("--raw", o->raw, "Print the result bytes unescaped");

    v.app = cmd;
    v.action = [o, serve]() -> int { return serve->parsed() ? do_serve(*o) : do_call(*o); };
}

}  // namespace ipckit::cli
