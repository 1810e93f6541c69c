// `ipckit bench`: every channel transport and its peers, ranked side by side.
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <fmt/core.h>

#include "bench.hpp"
#include "cli.hpp"
#include "ipckit/url.hpp"

namespace ipckit::cli {
namespace {

constexpr const char* kBenchFooter =
    R"(Measures, in one run: the hardware floor (cache-line ping-pong between two
threads, memcpy bandwidth), then every ipckit transport through the channel
interface and every peer found next to the ipckit binary (raw-syscall C loops,
Boost.Interprocess, ZeroMQ). A transport that is not built in, or cannot carry
a size, is listed as skipped with the reason. A corrupt, missing or reordered
message fails the run (exit 1). Figures are noisy on a busy machine: read the
same-run ratios. The JSON/CSV schema is in docs/bench.md.
Examples:
  ipckit bench --quick
  ipckit bench --transports fifo,pipe,shm --sizes 64,4k --pin 0,1
  ipckit bench --json bench.json --report bench.html)";

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("write " + path + ": cannot open for writing");
    out << content;
    out.close();
    if (!out) throw std::runtime_error("write " + path + ": write failed");
}

struct bench_args {
    std::string transports, sizes, pin, json, csv, report, peers_dir;
    std::uint64_t count = 0;
    unsigned repeat = 1;
    bool quick = false, quiet = false;
    long long inject = -1;
};

int run_bench(const bench_args& a) {
    bench::options o;
    o.quick = a.quick;
    if (a.quick) {
        o.count = 300;
        o.byte_budget = 16u << 20;
        o.sizes = {64, 64 * 1024};
    }
    if (a.count) o.count = a.count;
    o.repeat = a.repeat;
    if (!a.transports.empty()) o.transports = split_list(a.transports);
    if (!a.sizes.empty()) {
        o.sizes.clear();
        for (const auto& s : split_list(a.sizes)) {
            auto v = parse_size(s);
            if (!v || *v == 0 || *v > (1u << 30))
                throw std::invalid_argument("bench --sizes: not a size (e.g. 64, 1k, 64k, 1M): " +
                                            s);
            o.sizes.push_back(static_cast<std::size_t>(*v));
        }
        if (o.sizes.empty()) throw std::invalid_argument("bench --sizes: empty list");
    }
    if (!a.pin.empty()) {
        auto cpus = split_list(a.pin);
        if (cpus.size() != 2)
            throw std::invalid_argument("bench --pin: expected two CPUs, e.g. 0,1: " + a.pin);
        try {
            o.pin_parent = std::stoi(cpus[0]);
            o.pin_child = std::stoi(cpus[1]);
        } catch (const std::exception&) {
            throw std::invalid_argument("bench --pin: not CPU numbers: " + a.pin);
        }
        if (o.pin_parent < 0 || o.pin_child < 0)
            throw std::invalid_argument("bench --pin: CPUs are >= 0");
    }
    o.peers_dir = a.peers_dir;
    o.inject_corruption = a.inject;
    o.progress = !a.quiet && stderr_is_tty();

    bench::report r = bench::run(o);
    std::fputs(bench::format_table(r).c_str(), stdout);
    std::fflush(stdout);
    if (!a.json.empty()) write_file(a.json, bench::to_json(r));
    if (!a.csv.empty()) write_file(a.csv, bench::to_csv(r));
    if (!a.report.empty()) write_file(a.report, bench::to_html(r));
    if (!r.ok()) {
        for (const auto& e : r.errors)
            print_error("bench " + e);
        return exit_failure;
    }
    return exit_ok;
}

}  // namespace

void register_bench(CLI::App& app, verb& v) {
    auto args = std::make_shared<bench_args>();
    auto* cmd = app.add_subcommand(
        "bench", "Rank every channel transport and its peers (latency, throughput)");
    cmd->footer(kBenchFooter);
    cmd->add_option(
        "--transports", args->transports,
        "Comma list of transports, peers, mechanisms or kinds (ipckit, raw, library, peers); "
        "'shm' selects every shm-* variant. Default: all");
    cmd->add_option("--sizes", args->sizes,
                    "Comma list of message sizes (default 64,1k,64k,1M; minimum 24)");
    cmd->add_option("--count", args->count,
                    "Round trips / messages per run (default 10000; capped by a byte budget)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100000000}));
    cmd->add_option("--repeat", args->repeat,
                    "Runs per figure, in rounds over a transport and its peers; the best is kept "
                    "(default 1)")
        ->check(CLI::Range(1u, 100u));
    cmd->add_option("--pin", args->pin, "Pin the two processes to these CPUs, e.g. 0,1");
    cmd->add_flag("--quick", args->quick, "Short run: sizes 64,64k, 300 messages");
    cmd->add_flag("--quiet,-q", args->quiet, "No progress bar");
    cmd->add_option("--json", args->json, "Write every figure and the machine description as JSON");
    cmd->add_option("--csv", args->csv, "Write every figure as CSV");
    cmd->add_option("--report", args->report, "Write a self-contained HTML report with charts");
    cmd->add_option("--peers-dir", args->peers_dir,
                    "Where the ipckit-peer-* executables are (default: $IPCKIT_PEERS_DIR, else "
                    "next to ipckit)");
    // Test hook (hidden): corrupt one byte of this message of every
    // throughput run, to prove the receiver's verification fails the run.
    cmd->add_option("--inject-corruption", args->inject)->group("");
    v.app = cmd;
    v.action = [args] {
        if (args->inject >= 0)
            ::setenv("IPCKIT_BENCH_INJECT_CORRUPTION", std::to_string(args->inject).c_str(), 1);
        return run_bench(*args);
    };
}

int run_bench_quick_for_tour() {
    bench::options o;
    o.quick = true;
    o.count = 300;
    o.byte_budget = 1u << 20;
    o.sizes = {64};
    o.progress = stderr_is_tty();
    try {
        bench::report r = bench::run(o);
        std::fputs(bench::format_table(r).c_str(), stdout);
        std::fflush(stdout);
        for (const auto& e : r.errors)
            print_error("bench " + e);
        return r.ok() ? exit_ok : exit_failure;
    } catch (const std::exception& e) {
        print_error(std::string("bench: ") + e.what());
        return exit_failure;
    }
}

}  // namespace ipckit::cli
