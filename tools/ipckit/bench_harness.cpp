// The `ipckit bench` harness: hardware floor, ipckit transports through the
// generic channel interface, and the peer executables, all in one run.
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#endif

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "bench_payload.h"
#include "cli.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/signal.hpp"
#include "ipckit/url.hpp"

namespace ipckit::cli::bench {
namespace {

using namespace std::chrono_literals;

std::uint64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0)
        throw_errno("sched_setaffinity", fmt::format("cpu {}", cpu));
}

/// Nearest-rank percentiles, the same rule as the peers (peer_driver.h).
latency_stats summarize(std::vector<std::uint64_t>& samples) {
    latency_stats s;
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    auto pct = [&](double p) {
        auto rank =
            static_cast<std::size_t>(p / 100.0 * static_cast<double>(samples.size()) + 0.999999);
        rank = std::clamp<std::size_t>(rank, 1, samples.size());
        return samples[rank - 1];
    };
    s.count = samples.size();
    s.p50_ns = pct(50);
    s.p90_ns = pct(90);
    s.p99_ns = pct(99);
    s.p999_ns = pct(99.9);
    s.max_ns = samples.back();
    double sum = 0;
    for (auto v : samples)
        sum += static_cast<double>(v);
    s.mean_ns = sum / static_cast<double>(samples.size());
    return s;
}

std::string read_first_line_matching(const char* path, std::string_view key) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.compare(0, key.size(), key) != 0) continue;
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        auto v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
    }
    return {};
}

machine_info describe_machine() {
    machine_info m;
    m.cpu_model = read_first_line_matching("/proc/cpuinfo", "model name");
    if (m.cpu_model.empty()) m.cpu_model = "unknown";
    m.logical_cpus = std::thread::hardware_concurrency();
    m.online_cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    utsname u{};
    if (::uname(&u) == 0) {
        m.kernel = fmt::format("{} {} {}", u.sysname, u.release, u.machine);
        m.hostname = u.nodename;
    }
#if defined(__clang__)
    m.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    m.compiler = "g++ " __VERSION__;
#endif
#ifdef IPCKIT_BENCH_BUILD_TYPE
    m.build_type = IPCKIT_BENCH_BUILD_TYPE;
#else
    m.build_type = "unknown";
#endif
#ifdef IPCKIT_BENCH_CXX_FLAGS
    m.flags = IPCKIT_BENCH_CXX_FLAGS;
#endif
#ifdef __OPTIMIZE__
    if (m.flags.find("-O") == std::string::npos) m.flags += " (optimized)";
#endif
#ifdef __SANITIZE_ADDRESS__
    m.flags += " -fsanitize=address";
#endif
    return m;
}

// ---- hardware floor ---------------------------------------------------------

/// One-way hand-off of a cache line between two threads: the lowest latency
/// any shared-memory transport could reach on this machine.
latency_stats measure_cacheline(std::uint64_t count, int cpu_a, int cpu_b) {
    // Unpinned, the scheduler may stack both threads on one CPU (the other
    // busy with a neighbour) and the figure becomes a yield round trip: put
    // them on two different allowed CPUs unless --pin chose.
    if (cpu_a < 0 || cpu_b < 0) {
        cpu_set_t allowed;
        if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) >= 2) {
            std::vector<int> cpus;
            for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
                if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
            cpu_a = cpus[0];
            cpu_b = cpus[1];
        }
    }
    struct alignas(64) line {
        std::atomic<std::uint64_t> v{0};
    };
    auto ping = std::make_unique<line>();
    auto pong = std::make_unique<line>();
    const std::uint64_t warmup = std::max<std::uint64_t>(100, count / 10);
    const std::uint64_t total = warmup + count;
    // Spinning without pause (a pause costs more than the transfer on the
    // EPYC VMs we run on, and would inflate the floor); after a few thousand
    // spins the other thread is plainly not running (both on one CPU, the
    // other taken by a neighbour), so yield instead of burning the slice.
    auto wait_for = [](std::atomic<std::uint64_t>& a, std::uint64_t value) {
        for (unsigned spins = 0; a.load(std::memory_order_acquire) < value; ++spins) {
            if (spins >= 40000) std::this_thread::yield();
        }
    };
    std::thread echo([&] {
        try {
            pin_to(cpu_b);
        } catch (...) {
        }
        // Echo whatever arrives; the main thread ends early by sending total.
        for (std::uint64_t seen = 0; seen < total;) {
            wait_for(ping->v, seen + 1);
            seen = ping->v.load(std::memory_order_acquire);
            pong->v.store(seen, std::memory_order_release);
        }
    });
    cpu_set_t saved;
    bool restore = cpu_a >= 0 && ::sched_getaffinity(0, sizeof saved, &saved) == 0;
    try {
        pin_to(cpu_a);
    } catch (...) {
    }
    // The hardware figure is what the two cores do when both are running:
    // on a shared machine a neighbour steals one of them now and then, so
    // the samples are cut into batches and the batch with the lowest p50
    // is kept (documented in docs/bench.md).
    constexpr std::uint64_t batches = 10;
    const std::uint64_t per_batch = std::max<std::uint64_t>(1, count / batches);
    std::vector<std::uint64_t> samples;
    samples.reserve(per_batch);
    latency_stats best;
    bool have_best = false;
    // Stop early (after a complete batch) when the machine is so busy that
    // the hand-offs take scheduler time slices: 2 s is enough to tell.
    const auto give_up = now_ns() + 2'000'000'000u;
    std::uint64_t i = 1;
    for (; i <= total; ++i) {
        auto t0 = now_ns();
        ping->v.store(i, std::memory_order_release);
        wait_for(pong->v, i);
        auto t1 = now_ns();
        if (i <= warmup) continue;
        samples.push_back((t1 - t0) / 2);
        if (samples.size() == per_batch || i == total) {
            latency_stats s = summarize(samples);
            if (!have_best || s.p50_ns < best.p50_ns) best = s;
            have_best = true;
            samples.clear();
            if (t1 > give_up) break;
        }
    }
    if (i < total) {
        // Tell the echo thread where we stopped: it waits for i + 1 next.
        ping->v.store(total, std::memory_order_release);
    }
    echo.join();
    if (restore) ::sched_setaffinity(0, sizeof saved, &saved);
    return best;
}

floor_info::copy measure_memcpy(std::size_t size, std::uint64_t budget) {
    // Page-aligned buffers: two std::vectors sit 16 bytes off each other's
    // cache-line alignment, and glibc's `rep movsb` copy runs 15-30x slower
    // at 64 KiB on the AMD VMs measured here for such a pair (1.5 GB/s
    // instead of 44 GB/s), which made the floor a fraction of the transports.
    constexpr std::size_t page = 4096;
    const std::size_t bytes = (size + page - 1) / page * page;
    std::unique_ptr<unsigned char, void (*)(void*)> src(
        static_cast<unsigned char*>(std::aligned_alloc(page, bytes)), std::free),
        dst(static_cast<unsigned char*>(std::aligned_alloc(page, bytes)), std::free);
    if (!src || !dst) throw std::bad_alloc();
    std::memset(src.get(), 0x5a, size);
    std::memset(dst.get(), 0, size);
    std::uint64_t iterations = std::clamp<std::uint64_t>(budget / size, 16, 1u << 20);
    // Warm the pages and caches first.
    for (int i = 0; i < 4; ++i)
        std::memcpy(dst.get(), src.get(), size);
    auto t0 = now_ns();
    for (std::uint64_t i = 0; i < iterations; ++i) {
        std::memcpy(dst.get(), src.get(), size);
        asm volatile("" : : "r"(dst.get()) : "memory");  // keep every copy
    }
    auto t1 = now_ns();
    double ns = static_cast<double>(t1 - t0) / static_cast<double>(iterations);
    return {size, ns, static_cast<double>(size) / (ns / 1e9) / (1024.0 * 1024.0)};
}

// ---- candidates -------------------------------------------------------------

enum class source { url, pipe_pair, socket_pair };

/// One ipckit transport variant. A template's placeholders are filled per
/// run: {tmp} a unique /tmp path, {name} a unique object name, {port} a free
/// loopback port, {key} a System V key, {size} the message size, {ring} a
/// ring capacity that holds several messages of that size, {slot} the size
/// rounded up to a power of two and {slots16} sixteen such slots in bytes.
struct candidate {
    const char* name;
    const char* mechanism;
    const char* url_template;
    source src;
    bool lossy;  ///< no flow control: only latency is measured
    /// Connected both ways: the ping-pong uses one link, replies going back
    /// over it, as the raw C loops do (two links cost the reply a different
    /// wake-up on Unix sockets: 40 us instead of 21 us per 64 KiB here).
    bool both_ways = false;
};

constexpr candidate kCandidates[] = {
    {"pipe", "pipe", "", source::pipe_pair, false},
    {"socketpair", "socketpair", "", source::socket_pair, false, true},
    {"fifo", "fifo", "fifo:{tmp}", source::url, false},
    {"mq", "mq", "mq:/{name}?maxmsg=10&msgsize={size}", source::url, false},
    {"sysvmq", "sysvmq", "sysvmq:{key}", source::url, false},
    {"unix-stream", "unix-stream", "unix:@{name}?type=stream", source::url, false, true},
    {"unix-dgram", "unix-dgram", "unix:@{name}?type=dgram", source::url, false},
    {"unix-seqpacket", "unix-seqpacket", "unix:@{name}?type=seqpacket", source::url, false, true},
    {"tcp", "tcp", "tcp://127.0.0.1:{port}", source::url, false, true},
    {"udp", "udp", "udp://127.0.0.1:{port}", source::url, true},
    {"shm-spsc-poll", "shm", "shm:/{name}?mode=spsc&capacity={ring}&spin=4000000000", source::url,
     false},
    {"shm-spsc-block", "shm", "shm:/{name}?mode=spsc&capacity={ring}&spin=0", source::url, false},
    {"shm-mpmc-poll", "shm", "shm:/{name}?mode=mpmc&capacity={slots16}&slot={slot}&spin=4000000000",
     source::url, false},
    {"shm-mpmc-block", "shm", "shm:/{name}?mode=mpmc&capacity={slots16}&slot={slot}&spin=0",
     source::url, false},
};

unsigned next_unique() {
    static unsigned n = 0;
    return ++n;
}

std::uint16_t free_loopback_port() {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket", "tcp");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw_errno("bind", "127.0.0.1:0");
    return ntohs(a.sin_port);
}

std::string instantiate(std::string_view tmpl, std::size_t size) {
    unsigned n = next_unique();
    auto pid = static_cast<unsigned>(::getpid());
    std::string name = fmt::format("ipckit-bench-{}-{}", pid, n);
    std::size_t ring = 64 * 1024;
    while (ring < 4 * (size + 64))
        ring *= 2;
    std::size_t slot = 64;
    while (slot < size)
        slot *= 2;
    std::string out;
    for (std::size_t i = 0; i < tmpl.size();) {
        auto close = tmpl.find('}', i);
        if (tmpl[i] != '{' || close == std::string_view::npos) {
            out += tmpl[i++];
            continue;
        }
        auto key = tmpl.substr(i + 1, close - i - 1);
        if (key == "tmp")
            out += "/tmp/" + name;
        else if (key == "name")
            out += name;
        else if (key == "port")
            out += std::to_string(free_loopback_port());
        else if (key == "key")
            out += std::to_string(0x1b000000u | ((pid & 0xffffu) << 8) | (n & 0xffu));
        else if (key == "size")
            out += std::to_string(size);
        else if (key == "ring")
            out += std::to_string(ring);
        else if (key == "slot")
            out += std::to_string(slot);
        else if (key == "slots16")
            out += std::to_string(16 * slot);
        else
            throw std::logic_error("bench: unknown placeholder in " + std::string(tmpl));
        i = close + 1;
    }
    return out;
}

/// Best-effort removal of what a run may have left behind (a crashed child,
/// a transport that does not unlink on close). Errors are irrelevant here.
void remove_objects(const std::string& text) {
    try {
        url u = parse_url(text);
        if (u.scheme == "fifo" || (u.scheme == "unix" && !u.path.empty() && u.path[0] == '/'))
            ::unlink(u.path.c_str());
        else if (u.scheme == "mq")
            ::mq_unlink(u.path.c_str());
        else if (u.scheme == "shm")
            ::shm_unlink(u.path.c_str());
        else if (u.scheme == "sysvmq" && u.sysv_key) {
            int id = ::msgget(static_cast<key_t>(*u.sysv_key), 0);
            if (id >= 0) ::msgctl(id, IPC_RMID, nullptr);
        }
    } catch (...) {
    }
}

// ---- one ipckit run in two processes ------------------------------------------

enum class run_mode { latency, throughput };

struct outcome {
    std::string status = "ok";  // ok, skipped, error
    std::string reason;
    std::optional<latency_stats> latency;
    std::optional<throughput_stats> throughput;
};

/// A line-based status pipe between the two processes ("OK", "SKIP why",
/// "ERR why", "GO", "DONE"), outside the channel being measured.
struct status_pipe {
    unique_fd r, w;
    static status_pipe make() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2", "bench status pipe");
        return {unique_fd(fds[0]), unique_fd(fds[1])};
    }
};

void put_line(int fd, const std::string& text) {
    std::string line = text;
    for (auto& c : line)
        if (c == '\n') c = ' ';
    line += '\n';
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the other side is gone: it will be reaped
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

/// Reads one line, waiting at most timeout; nullopt on timeout or EOF.
std::optional<std::string> get_line(int fd, std::chrono::milliseconds timeout) {
    std::string line;
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() < 0) return std::nullopt;
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        char c;
        ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::nullopt;
        if (c == '\n') return line;
        line += c;
    }
}

bool readable_now(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

/// The four channel ends of a two-way link: [direction][0 = receiver, 1 = sender].
/// Direction 0 goes parent -> child, direction 1 child -> parent.
struct link_ends {
    std::string urls[2];
    std::unique_ptr<channel> ends[2][2];
};

link_ends prepare(const candidate& c, std::size_t size, int directions) {
    link_ends l;
    for (int d = 0; d < directions; ++d) {
        switch (c.src) {
            case source::url:
                l.urls[d] = instantiate(c.url_template, size);
                break;
            case source::pipe_pair: {
                auto p = make_pipe_channels();
                l.ends[d][0] = std::move(p.reader);
                l.ends[d][1] = std::move(p.writer);
                break;
            }
            case source::socket_pair: {
                int sv[2];
                if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
                    throw_errno("socketpair", "unix stream");
                unique_fd a(sv[0]), b(sv[1]);
                l.ends[d][0] = make_fd_channel("socketpair[0]", std::move(a), unique_fd{});
                l.ends[d][1] = make_fd_channel("socketpair[1]", std::move(b), unique_fd{});
                break;
            }
        }
    }
    return l;
}

bool retryable_open_error(int e) {
    return e == ENOENT || e == ECONNREFUSED || e == ENXIO;
}

/// The receiver creates the object; the sender may get there first, so it
/// retries "not there yet" errors until the deadline, or until the other
/// process has written its status line: it does so only after its own open
/// returned, so one more attempt then either connects (status OK: the
/// listener exists now; the attempt that failed came just before it) or
/// fails for good (its open failed and nothing will ever be there).
std::unique_ptr<channel> obtain(link_ends& l, int dir, channel_role role, int other_status_fd) {
    int idx = role == channel_role::receiver ? 0 : 1;
    if (l.ends[dir][idx]) return std::move(l.ends[dir][idx]);
    open_options o;
    auto until = std::chrono::steady_clock::now() + 10s;
    o.open_deadline = deadline::after(10s);
    bool last_attempt = false;
    for (;;) {
        try {
            return open_channel(l.urls[dir], role, o);
        } catch (const ipckit::error& e) {
            if (role != channel_role::sender || !retryable_open_error(e.code().value()) ||
                std::chrono::steady_clock::now() > until || last_attempt)
                throw;
        }
        if (readable_now(other_status_fd))
            last_attempt = true;
        else
            std::this_thread::sleep_for(1ms);
    }
}

/// "OK", or the reason this side cannot run the size ("SKIP ..." / "ERR ...").
std::string open_status_of(const std::exception_ptr& ep) {
    try {
        std::rethrow_exception(ep);
    } catch (const ipckit::error& e) {
        int code = e.code().value();
        if (code == ENOSYS) return std::string("SKIP not built in: ") + e.what();
        if (code == EMSGSIZE || code == EINVAL || code == ENOSPC || code == ENOMEM)
            return std::string("SKIP size limit: ") + e.what();
        return std::string("ERR ") + e.what();
    } catch (const url_error& e) {
        return std::string("SKIP URL not accepted by this ipckit: ") + e.what();
    } catch (const std::exception& e) {
        return std::string("ERR ") + e.what();
    }
}

std::string check_size(const channel& ch, std::size_t size) {
    if (ch.max_message() < size)
        return fmt::format("SKIP size limit: {} bytes exceeds max_message() = {} of {}", size,
                           ch.max_message(), ch.name());
    return "OK";
}

/// Turns a send/receive failure inside a measured loop into a status line.
std::string io_failure(const char* what, std::uint64_t i, io_status s) {
    return fmt::format("ERR {} of message {}: {}", what, i, to_string(s));
}

std::string io_exception(const char* what, std::uint64_t i, const std::exception& e) {
    if (auto* ie = dynamic_cast<const ipckit::error*>(&e); ie && ie->code().value() == EMSGSIZE)
        return fmt::format("SKIP size limit: {}", e.what());
    return fmt::format("ERR {} of message {}: {}", what, i, e.what());
}

int child_main(const candidate& c, link_ends& l, run_mode mode, std::size_t size,
               std::uint64_t total, const options& opts, int to_parent, int from_parent) {
    std::unique_ptr<channel> in, out;
    std::string status = "OK";
    try {
        in = obtain(l, 0, channel_role::receiver, from_parent);
        if (mode == run_mode::latency && !c.both_ways)
            out = obtain(l, 1, channel_role::sender, from_parent);
        status = check_size(*in, size);
        if (status == "OK" && out) status = check_size(*out, size);
    } catch (...) {
        status = open_status_of(std::current_exception());
    }
    // Ends this process does not use must close, or a reader never sees EOF.
    for (auto& d : l.ends)
        for (auto& e : d)
            e.reset();
    put_line(to_parent, status);
    if (status != "OK") return 0;
    auto go = get_line(from_parent, 60s);
    if (!go || *go != "GO") return 0;

    auto until = deadline::after(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(opts.receive_timeout_s * 6)));
    channel* reply = out ? out.get() : in.get();  // both-ways links reply on `in`
    message m;
    for (std::uint64_t i = 0; i < total; ++i) {
        try {
            io_status s = in->receive(m, until);
            if (s != io_status::ok) {
                put_line(to_parent,
                         fmt::format("ERR message {} never arrived: {}", i, to_string(s)));
                return 1;
            }
            const auto* p = reinterpret_cast<const unsigned char*>(m.payload.data());
            int c = bp_check(p, m.payload.size(), size, i, mode == run_mode::throughput);
            if (c != BP_OK) {
                put_line(to_parent,
                         fmt::format("ERR message {}: {} ({} bytes received, {} expected)", i,
                                     bp_describe(c), m.payload.size(), size));
                return 1;
            }
            if (mode == run_mode::latency) {
                s = reply->send(m.payload, until);
                if (s != io_status::ok) {
                    put_line(to_parent, io_failure("reply", i, s));
                    return 1;
                }
            }
        } catch (const std::exception& e) {
            put_line(to_parent, io_exception("receive", i, e));
            return 1;
        }
    }
    put_line(to_parent, "DONE");
    return 0;
}

outcome from_status(const std::string& line) {
    outcome o;
    if (line.rfind("SKIP ", 0) == 0) {
        o.status = "skipped";
        o.reason = line.substr(5);
    } else if (line.rfind("ERR ", 0) == 0) {
        o.status = "error";
        o.reason = line.substr(4);
    } else {
        o.status = "error";
        o.reason = "unexpected status from the other process: " + line;
    }
    return o;
}

void reap(pid_t pid, bool kill_first) {
    if (pid <= 0) return;
    if (kill_first) ::kill(pid, SIGKILL);
    for (int i = 0; i < 1000; ++i) {
        int ws = 0;
        pid_t r = ::waitpid(pid, &ws, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) return;
        std::this_thread::sleep_for(5ms);
    }
    ::kill(pid, SIGKILL);
    int ws = 0;
    while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
}

outcome run_ipckit_once(const candidate& c, std::size_t size, run_mode mode, const options& opts) {
    const std::uint64_t count = count_for(opts, size);
    const std::uint64_t warmup =
        mode == run_mode::latency ? std::max<std::uint64_t>(10, count / 10) : 0;
    const std::uint64_t total = count + warmup;
    link_ends l = prepare(c, size, mode == run_mode::latency && !c.both_ways ? 2 : 1);
    status_pipe up = status_pipe::make(), down = status_pipe::make();
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork", "bench child");
    if (pid == 0) {
        int code = 1;
        try {
            up.r.reset();
            down.w.reset();
            pin_to(opts.pin_child);
            code = child_main(c, l, mode, size, total, opts, up.w.get(), down.r.get());
        } catch (const std::exception& e) {
            put_line(up.w.get(), std::string("ERR child: ") + e.what());
        }
        ::_exit(code);
    }
    up.w.reset();
    down.r.reset();
    auto cleanup = [&](bool kill_child) {
        reap(pid, kill_child);
        for (auto& u : l.urls)
            if (!u.empty()) remove_objects(u);
    };

    std::unique_ptr<channel> out, in;
    std::string mine = "OK";
    try {
        pin_to(opts.pin_parent);
        out = obtain(l, 0, channel_role::sender, up.r.get());
        if (mode == run_mode::latency && !c.both_ways)
            in = obtain(l, 1, channel_role::receiver, up.r.get());
        mine = check_size(*out, size);
        if (mine == "OK" && in) mine = check_size(*in, size);
    } catch (...) {
        mine = open_status_of(std::current_exception());
    }
    for (auto& d : l.ends)
        for (auto& e : d)
            e.reset();
    if (mine != "OK") {
        // The receiver usually knows better (it created the object and saw
        // the size limit; we only saw "no such queue" afterwards).
        if (auto theirs = get_line(up.r.get(), readable_now(up.r.get()) ? 1000ms : 0ms);
            theirs && *theirs != "OK")
            mine = *theirs;
        out.reset();
        in.reset();
        cleanup(true);
        return from_status(mine);
    }
    auto theirs = get_line(up.r.get(), 15s);
    if (!theirs || *theirs != "OK") {
        out.reset();
        in.reset();
        cleanup(true);
        if (!theirs)
            return from_status("ERR the receiving process did not open its end within 15 s");
        return from_status(*theirs);
    }
    put_line(down.w.get(), "GO");

    auto timeout = std::chrono::duration<double>(opts.receive_timeout_s * 6);
    auto until = deadline::after(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
    // One buffer per body; message i goes out in bufs[i % BP_BODIES].
    std::array<std::string, BP_BODIES> bufs;
    std::array<std::uint64_t, BP_BODIES> body_hash{};
    for (unsigned b = 0; b < BP_BODIES; ++b) {
        bufs[b].assign(size, '\0');
        body_hash[b] = bp_fill(reinterpret_cast<unsigned char*>(bufs[b].data()), size, b);
    }
    auto stamp = [&](std::uint64_t i) -> std::string& {
        std::string& buf = bufs[i % BP_BODIES];
        bp_stamp(reinterpret_cast<unsigned char*>(buf.data()), size, i, body_hash[i % BP_BODIES]);
        return buf;
    };
    outcome result;
    std::optional<std::string> failure;
    // The child explains a failure better than we can (it saw the bad bytes).
    auto child_reason = [&](std::string fallback) {
        auto line = get_line(up.r.get(), 2s);
        return line && line->rfind("ERR ", 0) == 0 ? *line : "ERR " + fallback;
    };
    if (mode == run_mode::latency) {
        std::vector<std::uint64_t> samples;
        samples.reserve(count);
        message m;
        for (std::uint64_t i = 0; i < total && !failure; ++i) {
            try {
                const std::string& buf = stamp(i);
                auto t0 = now_ns();
                io_status s = out->send(buf, until);
                if (s == io_status::ok) s = (in ? in : out)->receive(m, until);
                auto t1 = now_ns();
                if (s != io_status::ok) {
                    failure = child_reason(fmt::format("round trip {}: {}", i, to_string(s)));
                    break;
                }
                int ck = bp_check(reinterpret_cast<const unsigned char*>(m.payload.data()),
                                  m.payload.size(), size, i, 0);
                if (ck != BP_OK) failure = fmt::format("ERR reply {}: {}", i, bp_describe(ck));
                if (i >= warmup) samples.push_back((t1 - t0) / 2);
            } catch (const std::exception& e) {
                failure = io_exception("round trip", i, e);
            }
        }
        if (!failure) {
            auto done = get_line(up.r.get(), 10s);
            if (!done || *done != "DONE")
                failure = done ? *done : "ERR the echo process did not finish";
        }
        if (!failure) result.latency = summarize(samples);
    } else {
        auto t0 = now_ns();
        for (std::uint64_t i = 0; i < total && !failure; ++i) {
            try {
                std::string& buf = stamp(i);
                bool inject = static_cast<long long>(i) == opts.inject_corruption;
                if (inject) buf[size / 2] ^= 0x5a;  // test hook: the receiver must notice
                io_status s = out->send(buf, until);
                if (inject) buf[size / 2] ^= 0x5a;
                if (s != io_status::ok)
                    failure = child_reason(fmt::format("send of message {}: {}", i, to_string(s)));
            } catch (const std::exception& e) {
                failure = io_exception("send", i, e);
                if (failure->rfind("ERR", 0) == 0) failure = child_reason(failure->substr(4));
            }
        }
        if (!failure) {
            auto done = get_line(up.r.get(),
                                 std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
            auto t1 = now_ns();
            if (!done)
                failure = "ERR the receiver did not confirm the stream (messages missing?)";
            else if (*done != "DONE")
                failure = *done;
            else {
                throughput_stats t;
                t.count = count;
                t.seconds = static_cast<double>(t1 - t0) / 1e9;
                t.msgs_per_s = static_cast<double>(count) / t.seconds;
                t.mib_per_s = t.msgs_per_s * static_cast<double>(size) / (1024.0 * 1024.0);
                result.throughput = t;
            }
        }
    }
    out.reset();
    in.reset();
    cleanup(failure.has_value());
    if (failure) return from_status(*failure);
    return result;
}

// ---- peers ------------------------------------------------------------------

struct peer {
    std::string path;
    std::string name, kind, mechanism;
};

std::string default_peers_dir() {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : self.parent_path().string();
}

std::vector<peer> discover_peers(const options& opts, std::vector<std::string>& notes) {
    std::string dir = opts.peers_dir;
    if (dir.empty())
        if (const char* env = std::getenv("IPCKIT_PEERS_DIR"); env && *env) dir = env;
    if (dir.empty()) dir = default_peers_dir();
    std::vector<peer> peers;
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        auto fname = e.path().filename().string();
        if (fname.rfind("ipckit-peer-", 0) == 0 && ::access(e.path().c_str(), X_OK) == 0)
            files.push_back(e.path());
    }
    if (ec) notes.push_back(fmt::format("no peers: cannot list {}: {}", dir, ec.message()));
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        try {
            auto r = ipckit::run({f.string(), "info"}, {}, deadline::after(10s));
            auto j = nlohmann::json::parse(r.out);
            peers.push_back({f.string(), j.at("name").get<std::string>(),
                             j.at("kind").get<std::string>(),
                             j.at("mechanism").get<std::string>()});
        } catch (const std::exception& e) {
            notes.push_back(fmt::format("peer {} ignored: {}", f.string(), e.what()));
        }
    }
    return peers;
}

outcome run_peer_once(const peer& pr, std::size_t size, run_mode mode, const options& opts) {
    std::uint64_t count = count_for(opts, size);
    std::vector<std::string> argv{pr.path, mode == run_mode::latency ? "latency" : "throughput",
                                  std::to_string(size), std::to_string(count)};
    if (mode == run_mode::latency)
        argv.push_back(std::to_string(std::max<std::uint64_t>(10, count / 10)));
    argv.push_back(std::to_string(opts.pin_parent));
    argv.push_back(std::to_string(opts.pin_child));
    auto r = ipckit::run(argv, {}, deadline::after(std::chrono::seconds(180)));
    outcome o;
    auto fail = [&](std::string why) {
        o.status = "error";
        auto err = r.err;
        while (!err.empty() && err.back() == '\n')
            err.pop_back();
        o.reason = why + (err.empty() ? "" : ": " + err);
        return o;
    };
    if (r.timed_out) return fail("timed out after 180 s");
    if (!r.status.exited || r.status.code != 0) return fail(pr.name + " " + r.status.describe());
    try {
        auto j = nlohmann::json::parse(r.out);
        if (j.contains("skipped")) {
            o.status = "skipped";
            o.reason = j["skipped"].get<std::string>();
            return o;
        }
        if (mode == run_mode::latency) {
            latency_stats s;
            s.count = j.at("count").get<std::uint64_t>();
            s.p50_ns = j.at("p50_ns").get<std::uint64_t>();
            s.p90_ns = j.at("p90_ns").get<std::uint64_t>();
            s.p99_ns = j.at("p99_ns").get<std::uint64_t>();
            s.p999_ns = j.at("p999_ns").get<std::uint64_t>();
            s.max_ns = j.at("max_ns").get<std::uint64_t>();
            s.mean_ns = j.at("mean_ns").get<double>();
            o.latency = s;
        } else {
            throughput_stats t;
            t.count = j.at("count").get<std::uint64_t>();
            t.seconds = j.at("seconds").get<double>();
            t.msgs_per_s = static_cast<double>(t.count) / t.seconds;
            t.mib_per_s = t.msgs_per_s * static_cast<double>(size) / (1024.0 * 1024.0);
            o.throughput = t;
        }
    } catch (const std::exception& e) {
        return fail(std::string("unreadable output: ") + e.what());
    }
    return o;
}

// ---- orchestration -------------------------------------------------------------

/// The best of repeated runs: lowest p50, highest throughput. The first
/// failure (error or skip) ends the series and is what gets reported.
class best_kept {
  public:
    bool over() const noexcept { return best_ && best_->status != "ok"; }
    bool ok() const noexcept { return best_ && best_->status == "ok"; }
    void add(outcome o) {
        if (!best_ || o.status != "ok") {
            if (!over()) best_ = std::move(o);
            return;
        }
        if (over()) return;
        if (o.latency && best_->latency && o.latency->p50_ns < best_->latency->p50_ns)
            best_->latency = o.latency;
        if (o.throughput && best_->throughput &&
            o.throughput->msgs_per_s > best_->throughput->msgs_per_s)
            best_->throughput = o.throughput;
    }
    outcome get() const { return best_.value_or(outcome{}); }

  private:
    std::optional<outcome> best_;
};

bool selected(const options& opts, const std::string& name, const std::string& kind,
              const std::string& mechanism) {
    if (opts.transports.empty()) return true;
    for (const auto& t : opts.transports) {
        if (t == name || t == kind || t == mechanism || t == "all") return true;
        if (name.rfind(t + "-", 0) == 0) return true;  // "shm" -> shm-spsc-poll
        if (kind == "ipckit" && t == "ipckit") return true;
        if (kind != "ipckit" && t == "peers") return true;
    }
    return false;
}

class progress_bar {
  public:
    progress_bar(bool on, std::size_t total) : on_(on), total_(total) {}
    void step(const std::string& what) {
        ++done_;
        if (!on_) return;
        constexpr int width = 30;
        int filled = total_ ? static_cast<int>(done_ * width / total_) : width;
        std::fprintf(stderr, "\r\033[K[%.*s%*s] %zu/%zu %s", filled,
                     "==============================", width - filled, "", done_, total_,
                     what.c_str());
        std::fflush(stderr);
    }
    ~progress_bar() {
        if (on_) std::fprintf(stderr, "\r\033[K");
    }

  private:
    bool on_;
    std::size_t total_;
    std::size_t done_ = 0;
};

std::string size_label(std::size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0) return fmt::format("{} MiB", n >> 20);
    if (n >= 1024 && n % 1024 == 0) return fmt::format("{} KiB", n >> 10);
    return fmt::format("{} B", n);
}

void fill_row(row& r, outcome lat, outcome tput) {
    r.latency = lat.latency;
    r.throughput = tput.throughput;
    if (lat.status == "error" || tput.status == "error") {
        r.status = "error";
        r.reason = lat.status == "error" ? lat.reason : tput.reason;
    } else if (lat.status == "skipped") {
        r.status = "skipped";
        r.reason = lat.reason;
    } else if (tput.status == "skipped") {
        r.throughput_skipped = tput.reason;
    }
}

}  // namespace

std::uint64_t count_for(const options& opts, std::size_t size) {
    std::uint64_t by_budget = opts.byte_budget / std::max<std::size_t>(size, 1);
    return std::max<std::uint64_t>(std::min<std::uint64_t>(opts.count, by_budget),
                                   std::min<std::uint64_t>(opts.count, 20));
}

double floor_info::latency_floor_ns(std::size_t size) const {
    return static_cast<double>(cacheline.p50_ns) + memcpy_ns(size);
}

double floor_info::memcpy_ns(std::size_t size) const {
    for (const auto& c : memcpy_by_size)
        if (c.size == size) return c.ns_per_copy;
    return 0;
}

double floor_info::memcpy_mib_per_s(std::size_t size) const {
    for (const auto& c : memcpy_by_size)
        if (c.size == size) return c.mib_per_s;
    return 0;
}

report run(const options& opts) {
    // Like the raw C peers (signal(SIGPIPE, SIG_IGN)), the bench ignores
    // SIGPIPE process-wide and says so to ipckit, so pipe and FIFO writes are
    // compared without the per-write mask change a library must otherwise do.
    ipckit::ignore_sigpipe_process_wide();
    report rep;
    rep.started_at = utc_now();
    rep.machine = describe_machine();
    rep.config = opts;
    for (auto s : opts.sizes)
        if (s < BP_MIN_SIZE)
            throw std::invalid_argument(
                fmt::format("bench: message size {} is below the minimum of {} bytes "
                            "(sequence, checksum and trailer)",
                            s, BP_MIN_SIZE));

    std::vector<std::string> notes;
    std::vector<peer> peers = discover_peers(opts, notes);
    std::vector<const candidate*> cands;
    for (const auto& c : kCandidates)
        if (selected(opts, c.name, "ipckit", c.mechanism)) cands.push_back(&c);
    std::vector<const peer*> chosen_peers;
    for (const auto& p : peers)
        if (selected(opts, p.name, p.kind, p.mechanism)) chosen_peers.push_back(&p);
    (void)notes;  // a missing peer directory only means fewer rows
    // A filter that matches nothing is a typo, not an empty benchmark.
    for (const auto& t : opts.transports) {
        options one;
        one.transports = {t};
        bool any = false;
        std::string known;
        for (const auto& c : kCandidates) {
            any = any || selected(one, c.name, "ipckit", c.mechanism);
            known += std::string(known.empty() ? "" : ", ") + c.name;
        }
        for (const auto& p : peers) {
            any = any || selected(one, p.name, p.kind, p.mechanism);
            known += ", " + p.name;
        }
        if (!any)
            throw std::invalid_argument("bench --transports: nothing is called '" + t +
                                        "'; known: " + known +
                                        ", or a kind: ipckit, raw, library, peers");
    }

    progress_bar bar(opts.progress, 1 + (cands.size() + chosen_peers.size()) * opts.sizes.size());

    // The floor first, in the same run, so every figure reads as a ratio.
    rep.floor.cacheline = measure_cacheline(std::clamp<std::uint64_t>(opts.count, 2000, 20000),
                                            opts.pin_parent, opts.pin_child);
    for (auto s : opts.sizes)
        rep.floor.memcpy_by_size.push_back(
            measure_memcpy(s, opts.quick ? (16u << 20) : (256u << 20)));
    bar.step("hardware floor");
    for (auto s : opts.sizes) {
        row f;
        f.name = "floor";
        f.kind = "floor";
        f.mechanism = "hardware";
        f.target = "cache-line ping-pong + memcpy";
        f.size = s;
        latency_stats l = rep.floor.cacheline;
        auto add = static_cast<std::uint64_t>(rep.floor.memcpy_ns(s) + 0.5);
        l.p50_ns += add;
        l.p90_ns += add;
        l.p99_ns += add;
        l.p999_ns += add;
        l.max_ns += add;
        l.mean_ns += static_cast<double>(add);
        f.latency = l;
        throughput_stats t;
        t.mib_per_s = rep.floor.memcpy_mib_per_s(s);
        t.msgs_per_s = t.mib_per_s * 1024.0 * 1024.0 / static_cast<double>(s);
        t.count = 0;
        t.seconds = 0;
        f.throughput = t;
        rep.rows.push_back(f);
    }

    std::map<std::string, std::string> not_built;  // candidate -> reason, skip further sizes
    for (auto s : opts.sizes) {
        // One ipckit transport and the peers of its mechanism (or peers
        // alone), measured in rounds: with --repeat N, each round runs every
        // one of them once, so a slow phase of the machine (a neighbour, the
        // hypervisor moving a vCPU) hits both sides of the "wrapper vs raw
        // loop" ratio alike instead of all the runs of one side.
        auto measure_group = [&](const candidate* c, const std::vector<const peer*>& peers) {
            const bool c_built = c && !not_built.count(c->name);
            best_kept c_lat, c_tput;
            std::vector<best_kept> p_lat(peers.size()), p_tput(peers.size());
            auto guarded = [&](run_mode m) {
                try {
                    return run_ipckit_once(*c, s, m, opts);
                } catch (const std::exception& e) {
                    outcome o;
                    o.status = "error";
                    o.reason = e.what();
                    return o;
                }
            };
            for (unsigned round = 0; round < opts.repeat; ++round) {
                if (c_built && !c_lat.over()) {
                    if (round == 0) bar.step(fmt::format("{} {}", c->name, size_label(s)));
                    c_lat.add(guarded(run_mode::latency));
                    if (c_lat.ok() && !c->lossy) c_tput.add(guarded(run_mode::throughput));
                }
                for (std::size_t i = 0; i < peers.size(); ++i) {
                    if (p_lat[i].over()) continue;
                    if (round == 0) bar.step(fmt::format("{} {}", peers[i]->name, size_label(s)));
                    p_lat[i].add(run_peer_once(*peers[i], s, run_mode::latency, opts));
                    if (p_lat[i].ok())
                        p_tput[i].add(run_peer_once(*peers[i], s, run_mode::throughput, opts));
                }
            }
            if (c) {
                row r;
                r.name = c->name;
                r.kind = "ipckit";
                r.mechanism = c->mechanism;
                r.target = c->src == source::url         ? c->url_template
                           : c->src == source::pipe_pair ? "make_pipe_channels()"
                                                         : "make_fd_channel(socketpair)";
                r.size = s;
                if (!c_built) {
                    bar.step(fmt::format("{} {}", c->name, size_label(s)));
                    r.status = "skipped";
                    r.reason = not_built[c->name];
                } else {
                    outcome lat = c_lat.get();
                    if (lat.status == "skipped" && (lat.reason.rfind("not built in", 0) == 0 ||
                                                    lat.reason.rfind("URL not accepted", 0) == 0))
                        not_built[c->name] = lat.reason;
                    outcome tput;
                    if (lat.status != "ok") {
                        tput = lat;
                    } else if (c->lossy) {
                        tput.status = "skipped";
                        tput.reason = "no flow control: a one-way stream drops messages";
                    } else {
                        tput = c_tput.get();
                    }
                    fill_row(r, lat, tput);
                    if (r.status == "error")
                        rep.errors.push_back(
                            fmt::format("{} {}: {}", r.name, size_label(s), r.reason));
                }
                rep.rows.push_back(r);
            }
            for (std::size_t i = 0; i < peers.size(); ++i) {
                row r;
                r.name = peers[i]->name;
                r.kind = peers[i]->kind;
                r.mechanism = peers[i]->mechanism;
                r.target = peers[i]->path;
                r.size = s;
                outcome lat = p_lat[i].get();
                fill_row(r, lat, lat.status != "ok" ? lat : p_tput[i].get());
                if (r.status == "error")
                    rep.errors.push_back(fmt::format("{} {}: {}", r.name, size_label(s), r.reason));
                rep.rows.push_back(r);
            }
        };
        std::vector<const peer*> pending = chosen_peers;
        for (const auto* c : cands) {
            std::vector<const peer*> mine;
            for (auto it = pending.begin(); it != pending.end();) {
                if ((*it)->mechanism == c->mechanism) {
                    mine.push_back(*it);
                    it = pending.erase(it);
                } else {
                    ++it;
                }
            }
            measure_group(c, mine);
        }
        for (const auto* p : pending)
            measure_group(nullptr, {p});
    }
    rep.finished_at = utc_now();
    compute_ratios(rep);
    return rep;
}

void compute_ratios(report& rep) {
    for (auto& r : rep.rows) {
        if (r.status != "ok" || r.kind == "floor") continue;
        const row* best_peer_lat = nullptr;
        const row* best_peer_tput = nullptr;
        const row* raw = nullptr;
        for (const auto& o : rep.rows) {
            if (o.size != r.size || o.status != "ok") continue;
            if (o.kind == "raw" || o.kind == "library") {
                if (o.latency &&
                    (!best_peer_lat || o.latency->p50_ns < best_peer_lat->latency->p50_ns))
                    best_peer_lat = &o;
                if (o.throughput && (!best_peer_tput || o.throughput->msgs_per_s >
                                                            best_peer_tput->throughput->msgs_per_s))
                    best_peer_tput = &o;
            }
            if (r.kind == "ipckit" && o.kind == "raw" && o.mechanism == r.mechanism) raw = &o;
        }
        if (r.latency && r.latency->p50_ns > 0) {
            double p50 = static_cast<double>(r.latency->p50_ns);
            double fl = rep.floor.latency_floor_ns(r.size);
            if (fl > 0) r.latency_x_floor = p50 / fl;
            if (best_peer_lat)
                r.latency_x_best_peer = p50 / static_cast<double>(best_peer_lat->latency->p50_ns);
            if (raw && raw->latency)
                r.latency_x_raw = p50 / static_cast<double>(raw->latency->p50_ns);
        }
        if (r.throughput && r.throughput->msgs_per_s > 0) {
            double mps = r.throughput->msgs_per_s;
            double fl =
                rep.floor.memcpy_mib_per_s(r.size) * 1024.0 * 1024.0 / static_cast<double>(r.size);
            if (fl > 0) r.throughput_x_floor = fl / mps;
            if (best_peer_tput)
                r.throughput_x_best_peer = best_peer_tput->throughput->msgs_per_s / mps;
            if (raw && raw->throughput) r.throughput_x_raw = raw->throughput->msgs_per_s / mps;
        }
    }
    // Floor rows first; then per size (in the order given) ranked by p50;
    // skipped and failed rows last in each size.
    std::vector<std::size_t> size_order;
    for (const auto& r : rep.rows)
        if (std::find(size_order.begin(), size_order.end(), r.size) == size_order.end())
            size_order.push_back(r.size);
    auto size_rank = [&](std::size_t s) {
        return std::find(size_order.begin(), size_order.end(), s) - size_order.begin();
    };
    std::stable_sort(rep.rows.begin(), rep.rows.end(), [&](const row& a, const row& b) {
        bool fa = a.kind == "floor", fb = b.kind == "floor";
        if (fa != fb) return fa;
        if (a.size != b.size) return size_rank(a.size) < size_rank(b.size);
        bool ma = a.status == "ok" && a.latency, mb = b.status == "ok" && b.latency;
        if (ma != mb) return ma;
        if (ma) return a.latency->p50_ns < b.latency->p50_ns;
        return false;
    });
}

}  // namespace ipckit::cli::bench
