// ipckit tour: every mechanism live in real processes, one line per check.
#include <chrono>
#include <exception>

#include <fmt/color.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "cli.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

// Every mechanism's checks, in the lecture's order. One line per mechanism.
std::vector<tour_check> all_checks() {
    std::vector<tour_check> all;
    for (auto source : {
             &tour_checks_signals,
             &tour_checks_pipes,
             &tour_checks_fifos,
             &tour_checks_mqueue,
             &tour_checks_sockets,
             &tour_checks_shm,
             &tour_checks_rpc,
         }) {
        auto part = source();
        all.insert(all.end(), std::make_move_iterator(part.begin()),
                   std::make_move_iterator(part.end()));
    }
    return all;
}

}  // namespace

void register_tour(CLI::App& app, verb& v) {
    struct options {
        bool json = false;
        bool no_bench = false;
        std::string only;
    };
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand("tour", "Run every IPC mechanism live, one line per check");
    cmd->footer(
        "Each check runs in real processes over real kernel objects, which it names\n"
        "uniquely and removes. Then a short benchmark (64 B, a few seconds) ranks every\n"
        "transport against the hardware floor and the peers (skipped with --only,\n"
        "--json or --no-bench). Exit status 0 only if every check passes.\n"
        "Examples:\n"
        "  ipckit tour\n"
        "  ipckit tour --only fifo\n"
        "  ipckit tour --json");
    cmd->add_flag("--json", o->json, "One JSON object per check instead of the table");
    cmd->add_option("--only", o->only, "Run only the checks of this mechanism (e.g. fifo)");
    cmd->add_flag("--no-bench", o->no_bench, "Skip the closing benchmark table");
    v.app = cmd;
    v.action = [o]() -> int {
        auto checks = all_checks();
        const bool color = !o->json && stdout_is_tty();
        std::size_t passed = 0, ran = 0;
        for (const auto& c : checks) {
            if (!o->only.empty() && c.mechanism != o->only) continue;
            ++ran;
            auto start = std::chrono::steady_clock::now();
            std::string detail, failure;
            try {
                detail = c.run();
            } catch (const std::exception& e) {
                failure = e.what();
            }
            double ms =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
            bool ok = failure.empty();
            passed += ok;
            if (o->json) {
                nlohmann::json j{{"mechanism", c.mechanism},
                                 {"check", c.description},
                                 {"ok", ok},
                                 {"ms", ms},
                                 {"detail", ok ? detail : failure}};
                fmt::print("{}\n", j.dump());
            } else {
                auto tag = ok ? std::string("PASS") : std::string("FAIL");
                if (color)
                    tag = fmt::format(
                        fmt::fg(ok ? fmt::terminal_color::green : fmt::terminal_color::red), "{}",
                        tag);
                fmt::print("{}  {:<8} {:<58} {:>9.2f} ms  {}\n", tag, c.mechanism, c.description,
                           ms, ok ? detail : failure);
            }
            std::fflush(stdout);
        }
        if (ran == 0) {
            print_error("tour: no check matches --only " + o->only);
            return exit_usage;
        }
        if (!o->json) fmt::print("{}/{} checks passed\n", passed, ran);
        if (passed != ran) return exit_failure;
        if (o->json || o->no_bench || !o->only.empty()) return exit_ok;
        fmt::print("\nShort benchmark (64 B; ipckit bench for the full table):\n");
        std::fflush(stdout);
        return run_bench_quick_for_tour();
    };
}

}  // namespace ipckit::cli
