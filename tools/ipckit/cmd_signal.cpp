// ipckit signal list [--json] | send PID SIGNAL [--value N] | watch [SIGNAL...]
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ipckit/signal.hpp"

namespace ipckit::cli {
namespace {

std::string yes_no(bool b) {
    return b ? "yes" : "no";
}

int do_list(bool json) {
    for (const auto& row : signal_table()) {
        if (json) {
            nlohmann::json j{{"number", row.number},
                             {"name", row.name},
                             {"default_action", to_string(row.default_action)},
                             {"description", row.description},
                             {"catchable", row.catchable},
                             {"blockable", row.blockable},
                             {"queued", row.queued},
                             {"reserved", row.reserved}};
            fmt::print("{}\n", j.dump());
            continue;
        }
        if (row.number == 1)
            fmt::print("{:>3}  {:<12} {:<9}  {:<5} {:<5} {:<5}  {}\n", "NUM", "NAME", "DEFAULT",
                       "CATCH", "BLOCK", "QUEUE", "DESCRIPTION");
        fmt::print("{:>3}  {:<12} {:<9}  {:<5} {:<5} {:<5}  {}\n", row.number, row.name,
                   row.reserved ? "reserved" : to_string(row.default_action), yes_no(row.catchable),
                   yes_no(row.blockable), yes_no(row.queued), row.description);
    }
    return exit_ok;
}

// "123" -> one process; "-123" -> process group 123.
struct target {
    pid_t id = 0;
    bool group = false;
};

target parse_target(const std::string& text) {
    std::string digits = text;
    target t;
    if (!digits.empty() && digits[0] == '-') {
        t.group = true;
        digits.erase(0, 1);
    }
    std::size_t used = 0;
    long value = 0;
    try {
        value = std::stol(digits, &used);
    } catch (...) {
        used = 0;
    }
    if (digits.empty() || used != digits.size() || value <= 0 || value > 0x3fffffff ||
        !std::isdigit(static_cast<unsigned char>(digits[0])))
        throw std::invalid_argument("signal send " + text +
                                    ": not a pid (use PID, or -PGID for a process group)");
    t.id = static_cast<pid_t>(value);
    return t;
}

int do_send(const std::string& target_text, const std::string& signal_text,
            const std::optional<int>& value) {
    const target t = parse_target(target_text);
    // 0 is kill's existence probe (kill -0): checks the target, sends nothing.
    const int signo = signal_text == "0" ? 0 : parse_signal(signal_text);
    if (t.group) {
        if (value)
            throw std::invalid_argument("signal send " + target_text +
                                        ": --value needs sigqueue, which addresses one process, "
                                        "not a process group");
        send_signal_to_group(t.id, signo);
    } else if (value) {
        queue_signal(t.id, signo, *value);
    } else {
        send_signal(t.id, signo);
    }
    return exit_ok;
}

nlohmann::json received_json(const received_signal& r) {
    nlohmann::json j{{"signal", r.name()},         {"number", r.signo},
                     {"sender_pid", r.sender_pid}, {"sender_uid", r.sender_uid},
                     {"code", r.code_name()},      {"value", nullptr}};
    if (r.has_value()) j["value"] = r.value;
    return j;
}

std::string received_text(const received_signal& r) {
    std::string line = fmt::format("{} ({}) from pid {} uid {} {}", r.name(), r.signo, r.sender_pid,
                                   r.sender_uid, r.code_name());
    if (r.has_value()) line += fmt::format(" value {}", r.value);
    return line;
}

// The default watch set: what people send by hand and every realtime
// signal. SIGINT and SIGTSTP stay out so that Ctrl-C / Ctrl-Z still work.
signal_set default_watch_set() {
    signal_set s{SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGWINCH, SIGCONT};
    for (int n = SIGRTMIN; n <= SIGRTMAX; ++n)
        s.add(n);
    return s;
}

int do_watch(const std::vector<std::string>& names, std::size_t count, const std::string& timeout,
             bool json) {
    const signal_set set = names.empty() ? default_watch_set() : signal_set::parse(names);
    const deadline until =
        timeout.empty() ? deadline::never() : deadline::after(*parse_duration(timeout));
    signal_listener listener(set);  // blocks them before anyone learns our pid
    if (json) {
        nlohmann::json names = nlohmann::json::array();
        for (int s : set.members())
            names.push_back(signal_name(s));
        nlohmann::json j{{"pid", ::getpid()}, {"watching", names}};
        fmt::print("{}\n", j.dump());
    } else {
        fmt::print("pid {}\n", ::getpid());
        if (stderr_is_tty()) fmt::print(stderr, "watching: {}\n", set.to_string());
    }
    std::fflush(stdout);
    for (std::size_t n = 0; count == 0 || n < count; ++n) {
        auto r = listener.wait(until);
        if (!r) {
            print_error(fmt::format("signal watch: timed out after {} signal(s)", n));
            return exit_timeout;
        }
        if (json)
            fmt::print("{}\n", received_json(*r).dump());
        else
            fmt::print("{}\n", received_text(*r));
        std::fflush(stdout);  // readers (tests, pipes) see each line as it comes
    }
    return exit_ok;
}

}  // namespace

void register_signal(CLI::App& app, verb& v) {
    struct options {
        bool json = false;
        std::string pid, signal;
        std::optional<int> value;
        std::vector<std::string> watch;
        std::size_t count = 0;
        std::string timeout;
    };
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand("signal", "List, send and watch signals");
    cmd->require_subcommand(1);
    cmd->footer(
        "Examples:\n"
        "  ipckit signal list\n"
        "  ipckit signal watch USR1 RTMIN+3 -n 2 &     prints its pid first\n"
        "  ipckit signal send 1234 USR1\n"
        "  ipckit signal send 1234 RTMIN+3 --value 42  (same as: kill -s RTMIN+3 -q 42 1234)");

    auto* list =
        cmd->add_subcommand("list", "The table of all 64 Linux signals (kill -l + signal(7))");
    list->add_flag("--json", o->json, "One JSON object per signal");
    list->footer("Example:\n  ipckit signal list --json | grep RTMIN");

    auto* send =
        cmd->add_subcommand("send", "Send a signal (kill), or queue one with a payload (sigqueue)");
    send->add_option("pid", o->pid, "Process id, or -PGID for a process group")->required();
    send->add_option("signal", o->signal, "USR1, SIGUSR1, 10, RTMIN+3, ... (0: existence check)")
        ->required();
    send->add_option("--value", o->value, "Integer payload: uses sigqueue (one process only)");
    send->footer(
        "Signal 0 sends nothing: it checks that the process exists and may be signalled.\n"
        "Exit status: 0 sent, 1 failed (e.g. no such process), 2 bad arguments.\n"
        "Examples:\n"
        "  ipckit signal send 1234 TERM\n"
        "  ipckit signal send 1234 0                     is process 1234 there?\n"
        "  ipckit signal send 1234 RTMIN+1 --value 7\n"
        "  ipckit signal send -- -1234 HUP              process group 1234");

    auto* watch =
        cmd->add_subcommand("watch", "Print every signal received, with sender and payload");
    watch->add_option("signals", o->watch,
                      "Signals to watch (default: HUP QUIT USR1 USR2 ALRM TERM WINCH CONT "
                      "and every realtime signal)");
    watch->add_option("-n,--count", o->count, "Stop after N signals")->check(count_validator());
    watch->add_option("-t,--timeout", o->timeout, "Give up after this long (exit 3)")
        ->check(duration_validator());
    watch->add_flag("--json", o->json, "JSON lines: first {pid, watching}, then one per signal");
    watch->footer(
        "Prints its pid on the first line (after the signals are blocked, so nothing sent\n"
        "after that line is lost), then one line per signal. Realtime signals queue in\n"
        "order with their payloads; standard ones coalesce while pending.\n"
        "Exit status: 0 after N signals, 3 on timeout.\n"
        "Examples:\n"
        "  ipckit signal watch USR1 RTMIN+3 -n 2\n"
        "  kill -s RTMIN+3 --queue 42 <pid>             (procps / util-linux kill)");

    v.app = cmd;
    v.action = [o, list, send, watch]() -> int {
        if (list->parsed()) return do_list(o->json);
        if (send->parsed()) return do_send(o->pid, o->signal, o->value);
        if (watch->parsed()) return do_watch(o->watch, o->count, o->timeout, o->json);
        return exit_usage;
    };
}

}  // namespace ipckit::cli
