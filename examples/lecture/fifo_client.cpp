// The lecture's FIFO example 2, client side: creates its own reply FIFO, sends
// requests to the server's FIFO and prints each answer.
//
//   fifo_client [server-path] [requests]   (default /tmp/ipckit-fifo-server-<uid>, 3)
//
// Unlike the slide's version: the reply FIFO is created exclusively (mode
// 0600, create_only: nothing pre-planted is reused) and removed on every exit
// path; opening the server's FIFO and waiting for each answer have deadlines,
// so a missing or dead server is a clear error rather than a hang; requests
// are single lines below PIPE_BUF, so they never mix with other clients'.
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipckit/channel.hpp"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    std::string server_path =
        argc > 1 ? argv[1] : "/tmp/ipckit-fifo-server-" + std::to_string(::geteuid());
    long requests = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 3;
    if (server_path.empty() || server_path[0] != '/' || requests < 0) {
        std::fprintf(stderr, "usage: fifo_client [/server/path] [requests]\n");
        return 2;
    }
    std::string reply_path =
        "/tmp/ipckit-fifo-client-" + std::to_string(::geteuid()) + "-" + std::to_string(::getpid());
    try {
        // Our reply FIFO first, so it exists before the server answers; the
        // channel that created it removes it when it closes.
        auto replies = ipckit::open_channel(
            "fifo:" + reply_path +
                "?create=create_only&frame=line&max_message=" + std::to_string(PIPE_BUF),
            ipckit::channel_role::receiver);
        ipckit::open_options opts;
        opts.open_deadline = ipckit::deadline::after(5s);
        auto server = ipckit::open_channel("fifo:" + server_path + "?frame=line",
                                           ipckit::channel_role::sender, opts);
        ipckit::message answer;
        for (long i = 1; i <= requests; ++i) {
            std::string request =
                reply_path + " hello " + std::to_string(i) + " from " + std::to_string(::getpid());
            if (server->send(request, ipckit::deadline::after(5s)) != ipckit::io_status::ok) {
                std::fprintf(stderr, "fifo_client: the server closed %s\n", server_path.c_str());
                return 1;
            }
            auto st = replies->receive(answer, ipckit::deadline::after(5s));
            if (st != ipckit::io_status::ok) {
                std::fprintf(stderr, "fifo_client: no answer within 5 s\n");
                return 1;
            }
            std::printf("client %d: %s\n", static_cast<int>(::getpid()), answer.payload.c_str());
            std::fflush(stdout);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fifo_client: %s\n", e.what());
        return 1;
    }
}
