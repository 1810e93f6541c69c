// Slides "Memória Compartilhada", POSIX producer (the "OS" object), on ipckit.
//
//   shm_posix_producer [/name] [timeout-seconds]
//
// Creates the object (create_only, mode 0600, size reserved), writes the
// message with a bounded copy, publishes it with a release store on a state
// word and waits (futex, bounded) until the consumer says it has read it; then
// the creator, not the reader, removes the name.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "ipckit/shm.hpp"
#include "ipckit/sync.hpp"

namespace {

// The object's layout. A new object is zero-filled, so state 0 means "not
// written yet" without any initialisation race.
struct os_object {
    std::atomic<std::uint32_t> state;  // 0 empty, 1 written, 2 read
    char text[4096 - sizeof(std::atomic<std::uint32_t>)];
};
static_assert(sizeof(os_object) == 4096);

}  // namespace

int main(int argc, char** argv) {
    const std::string name = argc > 1 ? argv[1] : "/ipckit-OS";
    const int timeout_s = argc > 2 ? std::atoi(argv[2]) : 30;
    try {
        auto shm = ipckit::shared_memory::open(name, sizeof(os_object));
        ipckit::shm_remover remover(name);  // removed even if we fail below
        auto map = shm.map();
        auto* obj = reinterpret_cast<os_object*>(map.data());

        const std::string message = std::string("Operating Systems ") + "Is Fun!";
        if (message.size() >= sizeof obj->text) {
            std::fprintf(stderr, "message too long for the object\n");
            return 1;
        }
        std::memcpy(obj->text, message.c_str(), message.size() + 1);  // bounded, NUL included
        obj->state.store(1, std::memory_order_release);
        ipckit::futex_wake(obj->state, INT32_MAX);
        std::printf("wrote %zu bytes to %s\n", message.size(), name.c_str());
        std::fflush(stdout);

        auto until = ipckit::deadline::after(std::chrono::seconds(timeout_s));
        while (obj->state.load(std::memory_order_acquire) != 2) {
            if (ipckit::futex_wait(obj->state, 1, until) == ipckit::futex_result::timed_out) {
                std::fprintf(stderr, "shm_posix_producer: no consumer read %s within %d s\n",
                             name.c_str(), timeout_s);
                return 3;
            }
        }
        std::printf("consumer has read it; removing %s\n", name.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shm_posix_producer: %s\n", e.what());
        return 1;
    }
}
