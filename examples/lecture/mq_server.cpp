// The lecture's POSIX message queue server (slides "POSIX Message Queue -
// Exemplo"): clients send requests to the server's well-known queue, each
// naming its own reply queue; the server answers each client there with a
// fresh token number.
//
//   mq_server [/server-queue] [max-requests]     (default /ipckit-mq-server, forever)
//
// Unlike the slide, it removes its queue when it stops (also on Ctrl-C), sizes
// its receive buffer from the queue's real msgsize, never blocks on a client
// that died (replies wait at most 1 s), and validates every request.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipckit/error.hpp"
#include "ipckit/mqueue.hpp"

namespace {

volatile sig_atomic_t stop_requested = 0;
void on_stop(int) {
    stop_requested = 1;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    std::string name = argc > 1 ? argv[1] : "/ipckit-mq-server";
    long max_requests = argc > 2 ? std::atol(argv[2]) : -1;

    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    try {
        ipckit::mq_options o;
        o.mode = ipckit::open_mode::create_only;  // two servers on one name is a mistake
        o.max_messages = 8;
        o.message_size = 256;
        o.write = false;
        auto server = ipckit::message_queue::open(name, o);
        // Only after the open succeeded: a second server that fails with
        // EEXIST must not unlink the first one's queue on its way out.
        ipckit::mq_remover remover(name);
        std::printf("server: listening on %s\n", name.c_str());
        std::fflush(stdout);

        long token = 1;
        std::string request;
        for (long served = 0; max_requests < 0 || served < max_requests;) {
            // Wake up now and then to notice SIGINT/SIGTERM and exit cleanly.
            if (!server.receive_for(request, 200ms)) {
                if (stop_requested) break;
                continue;
            }
            // A request is "<reply-queue> <text>".
            auto space = request.find(' ');
            std::string reply_name = request.substr(0, space);
            std::string text = space == std::string::npos ? "" : request.substr(space + 1);
            try {
                ipckit::mq_options ro;
                ro.mode = ipckit::open_mode::open_only;
                ro.read = false;
                auto reply = ipckit::message_queue::open(reply_name, ro);
                std::string answer = "token " + std::to_string(token) + " for '" + text + "'";
                if (!reply.send_for(answer, 0, 1s)) {
                    std::fprintf(stderr, "server: %s is full, reply dropped\n", reply_name.c_str());
                    continue;
                }
                std::printf("server: %s <- token %ld\n", reply_name.c_str(), token);
                std::fflush(stdout);
                ++token;
                ++served;
            } catch (const ipckit::error& e) {
                // A bad or vanished reply queue is the client's problem, not a reason to stop.
                std::fprintf(stderr, "server: ignoring request: %s\n", e.what());
            }
        }
        std::printf("server: done, removing %s\n", name.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "server: %s\n", e.what());
        return 1;
    }
}
