// The lecture's POSIX message queue client: creates its own reply queue
// (/ipckit-mq-client-<pid>), sends requests to the server's queue and prints
// each answer.
//
//   mq_client [/server-queue] [requests]     (default /ipckit-mq-server, 3)
//
// Unlike the slide, the reply queue is removed on every exit path (RAII), the
// client waits a bounded time for the server to appear and for each answer,
// and a missing server is a clear error instead of a hang.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/mqueue.hpp"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    std::string server_name = argc > 1 ? argv[1] : "/ipckit-mq-server";
    int requests = argc > 2 ? std::atoi(argv[2]) : 3;
    std::string my_name = "/ipckit-mq-client-" + std::to_string(::getpid());

    try {
        ipckit::mq_options mine;
        mine.mode = ipckit::open_mode::create_only;
        mine.max_messages = 4;
        mine.message_size = 256;
        mine.write = false;
        auto replies = ipckit::message_queue::open(my_name, mine);
        ipckit::mq_remover remover(my_name);  // ours now: removed however we leave

        // The server may still be starting: retry for up to 5 s.
        ipckit::mq_options so;
        so.mode = ipckit::open_mode::open_only;
        so.read = false;
        ipckit::message_queue server;
        for (auto until = std::chrono::steady_clock::now() + 5s;;) {
            try {
                server = ipckit::message_queue::open(server_name, so);
                break;
            } catch (const ipckit::error& e) {
                if (e.code().value() != ENOENT || std::chrono::steady_clock::now() > until) throw;
                std::this_thread::sleep_for(20ms);
            }
        }

        std::string answer;
        for (int i = 1; i <= requests; ++i) {
            std::string request = my_name + " request " + std::to_string(i);
            if (!server.send_for(request, 0, 5s)) {
                std::fprintf(stderr, "client: server queue stays full\n");
                return 1;
            }
            if (!replies.receive_for(answer, 5s)) {
                std::fprintf(stderr, "client: no answer within 5 s\n");
                return 1;
            }
            std::printf("client %d: %s\n", static_cast<int>(::getpid()), answer.c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "client: %s\n", e.what());
        return 1;
    }
}
