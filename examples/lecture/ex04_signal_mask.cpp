// Slide "Sinais: Exemplo 4" (ex04_signal_mask.c): SIGINT and SIGQUIT are
// masked, so they stay pending; SIGHUP still gets through.
//
// The slide installed a printf()-ing handler with signal() for all three and
// used sigprocmask (unspecified in multithreaded programs) with a global
// sigset_t. Here the mask is a scoped pthread_sigmask that restores the old
// mask, SIGHUP is read from a signalfd, and the program shows what is pending,
// which is the point of the slide. On SIGTERM it unmasks: a pending SIGINT is
// then delivered and its default action ends the program, as the kernel does.
//
//   ./ex04_signal_mask
//   kill -INT <pid>; kill -QUIT <pid>   nothing happens (pending)
//   kill -HUP <pid>                     "received SIGHUP; pending: SIGINT SIGQUIT"
//   kill -TERM <pid>                    unmask and end
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include "ipckit/signal.hpp"

int main() try {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const ipckit::signal_set masked{SIGINT, SIGQUIT};
    // SIGKILL and SIGSTOP cannot be masked; ipckit refuses them with a message.
    // A shell starts `cmd &` with SIGINT and SIGQUIT ignored; restore the default
    // action so that unmasking at the end shows what the kernel does with them.
    auto int_default = ipckit::scoped_sigaction::default_action(SIGINT);
    auto quit_default = ipckit::scoped_sigaction::default_action(SIGQUIT);
    ipckit::scoped_signal_mask mask(masked);
    ipckit::signal_listener listener(ipckit::signal_set{SIGHUP, SIGTERM});
    std::printf("My PID is %d.\n", ::getpid());

    for (;;) {
        auto s = listener.wait();
        if (!s) continue;
        ipckit::signal_set pending;
        for (int sig : masked.members())
            if (ipckit::pending_signals().contains(sig)) pending.add(sig);
        const std::string list = pending.empty() ? "none" : pending.to_string();
        if (s->signo == SIGHUP) {
            std::printf("received SIGHUP; pending: %s\n", list.c_str());
            continue;
        }
        std::printf("received SIGTERM; pending: %s; unmasking\n", list.c_str());
        break;
    }
    // ~listener, then ~mask: the old mask comes back and whatever is pending
    // is delivered now (SIGINT first: lowest number), with its default action.
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "ex04: %s\n", e.what());
    return 1;
}
