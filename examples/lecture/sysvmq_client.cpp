// The System V queue client: sends "<pid> request N" as type 1 and receives
// its answers by selecting message type == its own pid.
//
//   sysvmq_client KEYFILE [requests]      (default 3)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/sysv.hpp"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    if (argc < 2) {
        std::fprintf(stderr, "usage: sysvmq_client KEYFILE [requests]\n");
        return 2;
    }
    int requests = argc > 2 ? std::atoi(argv[2]) : 3;
    long me = ::getpid();
    try {
        auto key = ipckit::sysv_key::from_path(argv[1], 'q');
        // The server may still be starting: retry for up to 5 s.
        ipckit::sysv_message_queue q;
        for (auto until = std::chrono::steady_clock::now() + 5s;;) {
            try {
                q = ipckit::sysv_message_queue::open(key, ipckit::open_mode::open_only);
                break;
            } catch (const ipckit::error& e) {
                if (e.code().value() != ENOENT || std::chrono::steady_clock::now() > until) throw;
                std::this_thread::sleep_for(20ms);
            }
        }
        ipckit::sysv_message answer;
        for (int i = 1; i <= requests; ++i) {
            std::string request = std::to_string(me) + " request " + std::to_string(i);
            if (q.send(1, request, ipckit::deadline::after(5s)) != ipckit::io_status::ok) {
                std::fprintf(stderr, "client: could not send (queue full or removed)\n");
                return 1;
            }
            auto s = q.receive(answer, me, ipckit::deadline::after(5s));
            if (s != ipckit::io_status::ok) {
                std::fprintf(stderr, "client: no answer (%s)\n", ipckit::to_string(s));
                return 1;
            }
            std::printf("client %ld: %s\n", me, answer.data.c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "client: %s\n", e.what());
        return 1;
    }
}
