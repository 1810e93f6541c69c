// Slide "Sinais: Exemplo 3" (ex03_signal_raise.c): SIGTERM is handled instead
// of ending the program; when the alarm rings the program kills itself.
//
// The slide printed from the handler (printf is not async-signal-safe), called
// kill(getpid(), SIGKILL) from inside it, and slept in a while(1) sleep(1)
// loop. Here SIGTERM and SIGALRM are read from a signalfd in ordinary code; the
// alarm is a POSIX timer delivering SIGALRM to the same listener (si_code
// SI_TIMER tells it apart from a `kill -ALRM`); the self-kill is raise().
//
//   ./ex03_signal_raise [SECONDS]     alarm after SECONDS (default 10)
//   kill -TERM <pid>                  "Eu deveria ter finalizado..."
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "ipckit/signal.hpp"

int main(int argc, char** argv) try {
    const double seconds = argc > 1 ? std::strtod(argv[1], nullptr) : 10.0;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    ipckit::signal_listener listener(ipckit::signal_set{SIGTERM, SIGALRM});
    ipckit::signal_timer alarm(SIGALRM);
    alarm.arm(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(seconds)));
    std::printf("My PID is %d.\n", ::getpid());

    for (;;) {
        auto s = listener.wait();
        if (!s) continue;
        if (s->signo == SIGTERM) {
            std::printf("received SIGTERM\n");
            std::printf("Eu deveria ter finalizado...\n");
        } else {
            std::printf("received SIGALRM (%s)\n",
                        s->code == SI_TIMER ? "from the timer" : "sent by a process");
            std::fflush(stdout);  // SIGKILL ends us without flushing anything
            ipckit::raise_signal(SIGKILL);
        }
    }
} catch (const std::exception& e) {
    std::fprintf(stderr, "ex03: %s\n", e.what());
    return 1;
}
