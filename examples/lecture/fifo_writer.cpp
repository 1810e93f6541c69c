// The lecture's FIFO example 1, writer side: sends N messages to the reader's
// FIFO.
//
//   fifo_writer [path] [N] [interval_ms]   (defaults: /tmp/ipckit-serverfifo-<uid>,
//                                           5 messages, 1000 ms apart as in the slide)
//
// Unlike the slide: the FIFO must already exist and is not created by the
// writer; opening does not hang forever when no reader is there (gives up after
// 10 s with a message); a symlink or a non-FIFO at the path is refused; every
// write is checked and a vanished reader is reported instead of killing the
// process with SIGPIPE; each message is one line, so consecutive messages do
// not run together in the reader's buffer.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "ipckit/channel.hpp"

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : "/tmp/ipckit-serverfifo-" + std::to_string(::geteuid());
    long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 5;
    long interval_ms = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 1000;
    if (path.empty() || path[0] != '/' || n < 0 || interval_ms < 0) {
        std::fprintf(stderr, "usage: fifo_writer [/absolute/path] [N] [interval_ms]\n");
        return 2;
    }
    try {
        ipckit::open_options opts;
        opts.open_deadline = ipckit::deadline::after(std::chrono::seconds(10));
        auto fifo = ipckit::open_channel("fifo:" + path + "?frame=line&max_message=4096",
                                         ipckit::channel_role::sender, opts);
        for (long value = 0; value < n; ++value) {
            std::string msg =
                "Message " + std::to_string(::getpid()) + " - Number " + std::to_string(value);
            std::printf("Sending: %s\n", msg.c_str());
            std::fflush(stdout);
            if (fifo->send(msg) != ipckit::io_status::ok) {
                std::fprintf(stderr, "fifo_writer: the reader closed %s\n", path.c_str());
                return 1;
            }
            if (value + 1 < n) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fifo_writer: %s\n", e.what());
        return 1;
    }
}
