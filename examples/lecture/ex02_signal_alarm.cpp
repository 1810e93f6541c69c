// Slide "Sinais: Exemplo 2" (ex02_signal_alarm.c): an alarm ends a work loop.
//
// The slide's handler called puts() (not async-signal-safe) and re-installed
// itself with signal() (needed only under the old System V one-shot semantics,
// and racy there: a second SIGALRM before the re-install kills the process).
// This is the one lecture program where a handler is the right tool: the loop
// is busy working, so the handler only sets a volatile sig_atomic_t flag,
// installed once with sigaction (scoped_sigaction), and main prints. The timer
// is a POSIX timer (signal_timer), so sub-second alarms work too.
//
//   ./ex02_signal_alarm [SECONDS]      default 10, like the slide's alarm(10)
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "ipckit/signal.hpp"

namespace {

// The only state a handler may touch: a lock-free flag.
volatile sig_atomic_t keep_going = 1;

void catch_alarm(int) {
    keep_going = 0;
}  // async-signal-safe: one store

void do_stuff() {
    std::puts("Fazendo alguma coisa enquanto aguarda o alarme.");
    // 100 ms of "work". nanosleep returns early (EINTR) when the alarm arrives,
    // so the flag is seen at once rather than after the nap.
    timespec nap{0, 100'000'000};
    ::nanosleep(&nap, nullptr);
}

}  // namespace

int main(int argc, char** argv) try {
    const double seconds = argc > 1 ? std::strtod(argv[1], nullptr) : 10.0;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    ipckit::scoped_sigaction handler(SIGALRM, &catch_alarm);  // sigaction, not signal()
    ipckit::signal_timer alarm(SIGALRM);
    alarm.arm(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(seconds)));

    while (keep_going)
        do_stuff();

    std::puts("Alarme!");  // printed by main, not by the handler
    std::puts("Terminou.");
    return EXIT_SUCCESS;
} catch (const std::exception& e) {
    std::fprintf(stderr, "ex02: %s\n", e.what());
    return 1;
}
