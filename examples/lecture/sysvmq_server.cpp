// The lecture's queue server, System V version: one queue for everybody.
// Requests travel as type 1; the server answers each client with the
// client's pid as the message type, so every client receives only its own
// answers (msgrcv by type) and no per-client reply queue is needed.
//
//   sysvmq_server KEYFILE [max-requests]   (key = ftok(KEYFILE, 'q'))
//
// Unlike slide-style code, the queue is created 0600 with IPC_EXCL, removed on
// exit (also on Ctrl-C), and a client's pid is parsed and checked.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "ipckit/sysv.hpp"

namespace {

volatile sig_atomic_t stop_requested = 0;
void on_stop(int) {
    stop_requested = 1;
}

constexpr long request_type = 1;

}  // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    if (argc < 2) {
        std::fprintf(stderr, "usage: sysvmq_server KEYFILE [max-requests]\n");
        return 2;
    }
    long max_requests = argc > 2 ? std::atol(argv[2]) : -1;
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    try {
        auto key = ipckit::sysv_key::from_path(argv[1], 'q');
        auto q = ipckit::sysv_message_queue::open(key, ipckit::open_mode::create_only);
        ipckit::sysv_msg_remover remover(q);
        std::printf("server: listening on sysvmq:%s\n", key.to_string().c_str());
        std::fflush(stdout);

        long token = 1;
        ipckit::sysv_message request;
        for (long served = 0; max_requests < 0 || served < max_requests;) {
            auto s = q.receive(request, request_type, ipckit::deadline::after(200ms));
            if (s == ipckit::io_status::closed) break;  // somebody removed the queue
            if (s == ipckit::io_status::timed_out) {
                if (stop_requested) break;
                continue;
            }
            // A request is "<client-pid> <text>"; the pid becomes the reply type.
            char* end = nullptr;
            long pid = std::strtol(request.data.c_str(), &end, 10);
            if (pid <= request_type || end == request.data.c_str()) {
                std::fprintf(stderr, "server: ignoring malformed request\n");
                continue;
            }
            std::string text = *end == ' ' ? std::string(end + 1) : std::string();
            std::string answer = "token " + std::to_string(token) + " for '" + text + "'";
            if (q.send(pid, answer, ipckit::deadline::after(1s)) != ipckit::io_status::ok) {
                std::fprintf(stderr, "server: reply to %ld dropped\n", pid);
                continue;
            }
            std::printf("server: type %ld <- token %ld\n", pid, token);
            std::fflush(stdout);
            ++token;
            ++served;
        }
        // Answers live in the same queue: removing it at once would destroy
        // those not yet collected. Give clients up to 2 s to drain it.
        for (auto until = ipckit::deadline::after(2s); !until.expired();) {
            if (q.stat().messages == 0) break;
            std::this_thread::sleep_for(10ms);
        }
        std::printf("server: done, removing the queue\n");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "server: %s\n", e.what());
        return 1;
    }
}
