// Slides "Memória Compartilhada", POSIX consumer (the "OS" object), on ipckit.
//
//   shm_posix_consumer [/name] [timeout-seconds]
//
// Opens the object read-write only to acknowledge (open_only: it never creates
// it), checks its size before mapping, waits on the state word instead of
// reading a half-written string, prints it and tells the producer; it does not
// unlink what it did not create.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/shm.hpp"
#include "ipckit/sync.hpp"

namespace {

struct os_object {
    std::atomic<std::uint32_t> state;  // 0 empty, 1 written, 2 read
    char text[4096 - sizeof(std::atomic<std::uint32_t>)];
};

}  // namespace

int main(int argc, char** argv) {
    const std::string name = argc > 1 ? argv[1] : "/ipckit-OS";
    const int timeout_s = argc > 2 ? std::atoi(argv[2]) : 30;
    auto until = ipckit::deadline::after(std::chrono::seconds(timeout_s));
    try {
        ipckit::shm_options o;
        o.how = ipckit::open_mode::open_only;
        // The producer may not have created it yet: retry until the deadline.
        auto shm = [&] {
            for (;;) {
                try {
                    return ipckit::shared_memory::open(name, sizeof(os_object), o);
                } catch (const ipckit::error& e) {
                    if (e.code().value() != ENOENT && e.code().value() != EINVAL) throw;
                    if (until.expired()) throw;
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                }
            }
        }();
        auto map = shm.map();
        auto* obj = reinterpret_cast<os_object*>(map.data());
        while (obj->state.load(std::memory_order_acquire) == 0) {
            if (ipckit::futex_wait(obj->state, 0, until) == ipckit::futex_result::timed_out) {
                std::fprintf(stderr, "shm_posix_consumer: nothing written to %s\n", name.c_str());
                return 3;
            }
        }
        // Never trust the other side to have terminated the string.
        obj->text[sizeof obj->text - 1] = '\0';
        std::printf("%s\n", obj->text);
        std::fflush(stdout);
        obj->state.store(2, std::memory_order_release);
        ipckit::futex_wake(obj->state, INT32_MAX);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shm_posix_consumer: %s\n", e.what());
        return 1;
    }
}
