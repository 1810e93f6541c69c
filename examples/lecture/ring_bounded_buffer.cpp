// The lecture's bounded-buffer producer/consumer problem, solved with the
// ipckit MPMC ring: several producer processes and several consumer processes
// share one bounded buffer; no busy waiting (futex sleep), no lost or
// duplicated item, a half-written item is never seen.
//
//   ring_bounded_buffer [producers=3] [consumers=2] [items-per-producer=1000] [slots=16]
//
// Prints one line per process and a summary; exit 0 when every item was
// consumed exactly once and in order per producer.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "ipckit/ring.hpp"

namespace {

struct item {
    std::uint32_t producer;
    std::uint32_t seq;
};

constexpr int max_procs = 16;

// Per-consumer tallies, in a memfd shared by fork.
struct tally {
    std::atomic<std::uint64_t> count[max_procs];
    std::atomic<std::uint64_t> sum[max_procs];
    std::atomic<std::uint32_t> out_of_order;
};

int arg(int argc, char** argv, int i, int fallback) {
    return argc > i ? std::atoi(argv[i]) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
    const int producers = arg(argc, argv, 1, 3), consumers = arg(argc, argv, 2, 2);
    const int items = arg(argc, argv, 3, 1000), slots = arg(argc, argv, 4, 16);
    if (producers < 1 || consumers < 1 || producers > max_procs || consumers > max_procs ||
        items < 0) {
        std::fprintf(
            stderr,
            "usage: ring_bounded_buffer [producers 1-16] [consumers 1-16] [items] [slots]\n");
        return 2;
    }
    try {
        // The buffer: an anonymous memfd inherited by the children (no name to leak).
        ipckit::ring_options o;
        o.kind = ipckit::ring_kind::mpmc;
        o.capacity = static_cast<std::size_t>(slots);
        o.slot_size = sizeof(item);
        auto buffer_mem =
            ipckit::shared_memory::memfd("bounded-buffer", ipckit::ring::required_size(o));
        auto buffer = std::make_shared<ipckit::mapping>(buffer_mem.map());
        ipckit::ring::format(buffer->bytes(), o);
        auto tally_mem = ipckit::shared_memory::memfd("tally", sizeof(tally));
        auto tally_map = tally_mem.map();
        auto* t = new (tally_map.data()) tally{};

        // The parent stays attached as a producer until every producer child
        // has finished, so consumers only see "closed" at the very end.
        auto keep_open =
            std::make_unique<ipckit::ring>(buffer, ipckit::ring_role::producer, "bounded buffer");
        std::fflush(stdout);
        std::vector<pid_t> prod_pids, cons_pids;
        for (int c = 0; c < consumers; ++c) {
            pid_t pid = ::fork();
            if (pid < 0) throw std::runtime_error("fork failed");
            if (pid == 0) {
                keep_open.release();  // the parent's attachment, not ours to detach
                int code = 0;
                {  // scope: the ring detaches before _exit
                    ipckit::ring r(buffer, ipckit::ring_role::consumer, "bounded buffer");
                    std::vector<std::int64_t> last(max_procs, -1);
                    std::string msg;
                    std::uint64_t n = 0, sum = 0;
                    while (r.receive(msg, ipckit::deadline::after(std::chrono::seconds(30))) ==
                           ipckit::io_status::ok) {
                        item it{};
                        std::memcpy(&it, msg.data(), std::min(msg.size(), sizeof it));
                        if (msg.size() != sizeof it || it.producer >= max_procs) {
                            code = 4;
                            break;
                        }
                        if (static_cast<std::int64_t>(it.seq) <= last[it.producer])
                            t->out_of_order.fetch_add(1);
                        last[it.producer] = it.seq;
                        ++n;
                        sum += std::uint64_t{it.producer} * 1000003u + it.seq;
                    }
                    t->count[c].store(n);
                    t->sum[c].store(sum);
                    std::printf("consumer %d (pid %d): %llu items\n", c,
                                static_cast<int>(::getpid()), static_cast<unsigned long long>(n));
                    std::fflush(stdout);
                }
                ::_exit(code);
            }
            cons_pids.push_back(pid);
        }
        for (int p = 0; p < producers; ++p) {
            pid_t pid = ::fork();
            if (pid < 0) throw std::runtime_error("fork failed");
            if (pid == 0) {
                keep_open.release();
                int code = 0;
                {
                    ipckit::ring r(buffer, ipckit::ring_role::producer, "bounded buffer");
                    for (int i = 0; i < items; ++i) {
                        // Zero copy: fill the slot in place, then publish it.
                        auto loan =
                            r.loan(sizeof(item), ipckit::deadline::after(std::chrono::seconds(30)));
                        if (loan.status != ipckit::io_status::ok) {
                            code = 5;
                            break;
                        }
                        item it{static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(i)};
                        std::memcpy(loan.buffer.data(), &it, sizeof it);
                        r.commit(sizeof it);
                    }
                    std::printf("producer %d (pid %d): %d items\n", p, static_cast<int>(::getpid()),
                                items);
                    std::fflush(stdout);
                }
                ::_exit(code);
            }
            prod_pids.push_back(pid);
        }
        bool ok = true;
        auto reap = [&](pid_t pid) {
            int st = 0;
            while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false;
        };
        for (pid_t pid : prod_pids)
            reap(pid);
        keep_open.reset();  // last producer gone: consumers drain, then see closed
        for (pid_t pid : cons_pids)
            reap(pid);

        std::uint64_t total = 0, sum = 0, expected_sum = 0;
        for (int c = 0; c < consumers; ++c) {
            total += t->count[c].load();
            sum += t->sum[c].load();
        }
        for (int p = 0; p < producers; ++p)
            for (int i = 0; i < items; ++i)
                expected_sum += std::uint64_t(p) * 1000003u + std::uint64_t(i);
        const std::uint64_t expected = std::uint64_t(producers) * std::uint64_t(items);
        ok = ok && total == expected && sum == expected_sum && t->out_of_order.load() == 0;
        std::printf("%d producers x %d items -> %d consumers through %d slots: %llu consumed, %s\n",
                    producers, items, consumers, slots, static_cast<unsigned long long>(total),
                    ok ? "each exactly once, in order per producer" : "MISMATCH");
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ring_bounded_buffer: %s\n", e.what());
        return 1;
    }
}
