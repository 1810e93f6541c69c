// Slide "Sinais: Exemplo 1" (ex01_simple_signal_handler.c): catch SIGINT and
// say so, forever.
//
// The slide installed sig_handler with signal() and called printf() inside it.
// printf is not async-signal-safe (a SIGINT landing while main is inside
// printf can deadlock on the stdio lock or corrupt the buffer), and signal()
// has historical one-shot semantics on some systems. Here SIGINT is blocked and
// read from a signalfd in ordinary code, where printf is fine; the kernel also
// tells us who sent it.
//
//   ./ex01_simple_signal_handler [N]     N: exit after N SIGINTs (default: never)
//   kill -INT <pid>   or Ctrl-C          SIGTERM ends it cleanly
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "ipckit/signal.hpp"

int main(int argc, char** argv) try {
    const long limit = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 0;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, even into a pipe

    // Blocks SIGINT and SIGTERM before the PID is shown: nothing sent after that
    // line can reach the default action (terminate).
    ipckit::signal_listener listener(ipckit::signal_set{SIGINT, SIGTERM});
    std::printf("My PID is %d.\n", ::getpid());

    for (long n = 0; limit == 0 || n < limit;) {
        auto s = listener.wait();  // no busy loop, no sleep(1) polling
        if (!s) continue;
        if (s->signo == SIGTERM) {
            std::printf("received SIGTERM, exiting\n");
            return 0;
        }
        std::printf("received SIGINT (from pid %d)\n", static_cast<int>(s->sender_pid));
        ++n;
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "ex01: %s\n", e.what());
    return 1;
}
