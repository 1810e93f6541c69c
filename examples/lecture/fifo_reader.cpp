// The lecture's FIFO example 1, reader side: creates the FIFO and prints every
// message written to it.
//
//   fifo_reader [path] [count]     (default path /tmp/ipckit-serverfifo-<uid>;
//                                   count 0 = until Ctrl-C / SIGTERM)
//
// Unlike the slide: the FIFO is private to its user (mode 0600, exactly, under
// a per-user name or the path given, never a fixed /tmp/serverfifo with 0664);
// an existing file, a symlink or somebody else's FIFO at the path is refused
// rather than used; the reader keeps the FIFO open across writers instead of
// closing and reopening it after each EOF (the slide's window where writers
// fail and a failed re-open went unnoticed); each message is one line, so
// messages never run together and `echo msg > FIFO` works as in the slide; the
// byte count printed is the message's, and the FIFO is removed on exit.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipckit/channel.hpp"

namespace {

volatile sig_atomic_t stop_requested = 0;

void on_signal(int) {
    stop_requested = 1;
}

std::string default_path() {
    return "/tmp/ipckit-serverfifo-" + std::to_string(::geteuid());
}

}  // namespace

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : default_path();
    long count = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 0;
    if (path.empty() || path[0] != '/' || count < 0) {
        std::fprintf(stderr, "usage: fifo_reader [/absolute/path] [count]\n");
        return 2;
    }
    // Ctrl-C or SIGTERM end the loop normally, so the FIFO gets removed.
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    try {
        // Receiver role: creates the FIFO (0600) unless ours already exists,
        // and removes it when the channel closes.
        auto fifo = ipckit::open_channel("fifo:" + path + "?frame=line&max_message=4096",
                                         ipckit::channel_role::receiver);
        std::printf("reading %s\n", path.c_str());
        std::fflush(stdout);
        ipckit::message m;
        for (long got = 0; (count == 0 || got < count) && !stop_requested;) {
            // A short deadline so a signal is noticed promptly.
            auto st = fifo->receive(m, ipckit::deadline::after(std::chrono::milliseconds(200)));
            if (st == ipckit::io_status::timed_out) continue;
            if (st == ipckit::io_status::closed) break;
            ++got;
            std::printf("Received %zu bytes: %s\n", m.payload.size(), m.payload.c_str());
            std::fflush(stdout);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fifo_reader: %s\n", e.what());
        return 1;
    }
}
