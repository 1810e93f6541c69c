// Slides "Memória Compartilhada", System V producer, on ipckit.
//
//   sysv_shm_producer KEY [timeout-seconds]      (KEY: number, 0x hex, or a path for ftok)
//
// Creates the segment exclusively with mode 0600 (the slide: IPC_CREAT|0666,
// silently reusing a stranger's segment), writes "Olá Mundo!" with a bounded
// copy and then sleeps on a futex until the consumer says it has read it —
// instead of the slide's `while (*shm != '*') sleep(1);` busy wait on a plain
// char (a data race). The segment is removed (IPC_RMID) even on failure.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "ipckit/shm.hpp"
#include "ipckit/sync.hpp"

namespace {

constexpr std::size_t segment_size = 128;

// Zero-filled by shmget: state 0 = nothing written yet.
struct segment {
    std::atomic<std::uint32_t> state;  // 0 empty, 1 written, 2 read
    char text[segment_size - sizeof(std::atomic<std::uint32_t>)];
};
static_assert(sizeof(segment) == segment_size);

ipckit::sysv_key parse_key(const std::string& s) {
    if (!s.empty() && s[0] == '/') return ipckit::sysv_key::from_path(s);
    return ipckit::sysv_key::from_number(static_cast<key_t>(std::stol(s, nullptr, 0)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: sysv_shm_producer KEY [timeout-seconds]\n");
        return 2;
    }
    const int timeout_s = argc > 2 ? std::atoi(argv[2]) : 30;
    try {
        auto key = parse_key(argv[1]);
        auto seg = ipckit::sysv_shm::open(key, segment_size);
        ipckit::sysv_shm_remover remover(seg.id());
        std::printf("segment id %d (see ipcs -m)\n", seg.id());
        auto at = seg.attach();
        auto* s = reinterpret_cast<segment*>(at.data());
        const char message[] = "Olá Mundo!";
        static_assert(sizeof message <= sizeof s->text);
        std::memcpy(s->text, message, sizeof message);
        s->state.store(1, std::memory_order_release);
        ipckit::futex_wake(s->state, INT32_MAX);
        std::fflush(stdout);

        auto until = ipckit::deadline::after(std::chrono::seconds(timeout_s));
        while (s->state.load(std::memory_order_acquire) != 2) {
            if (ipckit::futex_wait(s->state, 1, until) == ipckit::futex_result::timed_out) {
                std::fprintf(stderr, "sysv_shm_producer: nobody read the segment within %d s\n",
                             timeout_s);
                return 3;
            }
        }
        std::printf("read by the consumer; removing segment %d\n", seg.id());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sysv_shm_producer: %s\n", e.what());
        return 1;
    }
}
