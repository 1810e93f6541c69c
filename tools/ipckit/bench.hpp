// `ipckit bench`: ranks every channel transport and its peers side by side.
//
// The harness (bench_harness.cpp) measures the hardware floor, then every
// candidate transport from a table of URL templates through the generic
// channel interface (a transport that is not built in is skipped with its
// reason, so a newly landed one is picked up without changes here), then the
// peer executables (bench/peers/). The writers (bench_report.cpp) turn the
// result into the human table, JSON, CSV and the HTML report. The JSON schema
// is documented in docs/bench.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ipckit::cli::bench {

/// Version of the JSON document; bump on any incompatible change.
inline constexpr int schema_version = 1;

struct options {
    std::vector<std::string> transports;  ///< filters; empty = everything
    std::vector<std::size_t> sizes{64, 1024, 64 * 1024, 1024 * 1024};
    std::uint64_t count = 10000;             ///< round trips / messages per run
    std::uint64_t byte_budget = 256u << 20;  ///< caps count * size per run
    unsigned repeat = 1;                     ///< runs per figure; the best one is kept
    int pin_parent = -1, pin_child = -1;     ///< CPUs, -1 = not pinned
    bool quick = false;
    bool progress = false;             ///< progress bar on stderr
    std::string peers_dir;             ///< empty: next to the ipckit binary
    long long inject_corruption = -1;  ///< test hook: corrupt this message
    double receive_timeout_s = 10;     ///< a message later than this is "missing"
};

struct latency_stats {
    std::uint64_t count = 0;
    std::uint64_t p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0;
    double mean_ns = 0;
};

struct throughput_stats {
    std::uint64_t count = 0;
    double seconds = 0;
    double msgs_per_s = 0;
    double mib_per_s = 0;
};

/// One contender at one message size.
struct row {
    std::string name;       ///< "fifo", "raw-fifo", "zmq-ipc", "floor-cacheline"
    std::string kind;       ///< "floor", "ipckit", "raw", "library"
    std::string mechanism;  ///< what peers are compared on: "fifo", "unix-stream", "shm"...
    std::string target;     ///< URL template, "fd pair" or the peer executable
    std::size_t size = 0;
    std::string status = "ok";  ///< "ok", "skipped" or "error"
    std::string reason;         ///< why skipped / what failed
    std::optional<latency_stats> latency;
    std::optional<throughput_stats> throughput;
    std::string throughput_skipped;  ///< reason when only latency was measured
    // Same-run ratios, filled by compute_ratios().
    std::optional<double> latency_x_floor, latency_x_best_peer, latency_x_raw;
    std::optional<double> throughput_x_floor, throughput_x_best_peer, throughput_x_raw;
};

struct machine_info {
    std::string cpu_model;
    unsigned logical_cpus = 0;
    long online_cpus = 0;
    std::string kernel;  ///< "Linux 6.1.0-18-amd64 x86_64"
    std::string compiler;
    std::string build_type;
    std::string flags;
    std::string hostname;
};

struct floor_info {
    latency_stats cacheline;  ///< two-thread cache-line ping-pong, one way
    struct copy {
        std::size_t size;
        double ns_per_copy;
        double mib_per_s;
    };
    std::vector<copy> memcpy_by_size;
    /// Floor latency of a size: cache-line hand-off + copying the bytes once.
    double latency_floor_ns(std::size_t size) const;
    double memcpy_ns(std::size_t size) const;
    double memcpy_mib_per_s(std::size_t size) const;
};

struct report {
    std::string started_at;  ///< ISO 8601 UTC
    std::string finished_at;
    machine_info machine;
    options config;
    floor_info floor;
    std::vector<row> rows;            ///< floor rows first, then by size, ranked by p50
    std::vector<std::string> errors;  ///< every failed run, one line each
    bool ok() const { return errors.empty(); }
};

/// Runs the whole benchmark. Never throws for a transport's failure: it
/// becomes an error row and an entry in errors.
report run(const options& opts);

/// Fills the ratio fields and sorts rows (floor first; per size by p50).
void compute_ratios(report& r);

/// Writers.
std::string format_table(const report& r);
std::string to_json(const report& r);
std::string to_csv(const report& r);
std::string to_html(const report& r);

/// Effective per-run message count for a size (count capped by the budget).
std::uint64_t count_for(const options& opts, std::size_t size);

}  // namespace ipckit::cli::bench

namespace ipckit::cli {

/// The short run (a few seconds) that ends `ipckit tour`: 64-byte latency and
/// throughput of every ipckit transport and the raw peers, printed as the
/// ranked table. Returns an exit code (0 ok, 1 a run failed).
int run_bench_quick_for_tour();

}  // namespace ipckit::cli
