#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <thread>

#include "ipckit/pipe.hpp"
#include "tour.hpp"

namespace ipckit::cli {

int run_in_child(const std::function<int()>& body, std::chrono::milliseconds timeout) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int code = 98;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ipckit: tour child: %s\n", e.what());
            code = 99;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            auto status = exit_status::from_wait(st);
            if (!status.exited) throw std::runtime_error("child " + status.describe());
            return status.code;
        }
        if (std::chrono::steady_clock::now() >= until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
            throw std::runtime_error("child timed out");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void tour_expect(bool condition, const std::string& what) {
    if (!condition) throw std::runtime_error(what);
}

std::string tour_name(const std::string& kind) {
    static std::atomic<unsigned> counter{0};
    return "ipckit-tour-" + kind + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter++);
}

}  // namespace ipckit::cli
