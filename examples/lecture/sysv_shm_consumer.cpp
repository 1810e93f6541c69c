// Slides "Memória Compartilhada", System V consumer, on ipckit.
//
//   sysv_shm_consumer KEY [timeout-seconds]
//
// Finds the segment (never creates it; checks its size), waits on the state
// word until the text is complete, prints it and wakes the producer.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/shm.hpp"
#include "ipckit/sync.hpp"

namespace {

constexpr std::size_t segment_size = 128;

struct segment {
    std::atomic<std::uint32_t> state;  // 0 empty, 1 written, 2 read
    char text[segment_size - sizeof(std::atomic<std::uint32_t>)];
};

ipckit::sysv_key parse_key(const std::string& s) {
    if (!s.empty() && s[0] == '/') return ipckit::sysv_key::from_path(s);
    return ipckit::sysv_key::from_number(static_cast<key_t>(std::stol(s, nullptr, 0)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: sysv_shm_consumer KEY [timeout-seconds]\n");
        return 2;
    }
    const int timeout_s = argc > 2 ? std::atoi(argv[2]) : 30;
    auto until = ipckit::deadline::after(std::chrono::seconds(timeout_s));
    try {
        auto key = parse_key(argv[1]);
        auto seg = [&] {
            for (;;) {
                try {
                    return ipckit::sysv_shm::open(key, segment_size, ipckit::open_mode::open_only);
                } catch (const ipckit::error& e) {
                    if (e.code().value() != ENOENT || until.expired()) throw;
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                }
            }
        }();
        auto at = seg.attach();
        auto* s = reinterpret_cast<segment*>(at.data());
        while (s->state.load(std::memory_order_acquire) == 0) {
            if (ipckit::futex_wait(s->state, 0, until) == ipckit::futex_result::timed_out) {
                std::fprintf(stderr, "sysv_shm_consumer: nothing written\n");
                return 3;
            }
        }
        s->text[sizeof s->text - 1] = '\0';
        std::printf("%s\n", s->text);
        std::fflush(stdout);
        s->state.store(2, std::memory_order_release);
        ipckit::futex_wake(s->state, INT32_MAX);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sysv_shm_consumer: %s\n", e.what());
        return 1;
    }
}
