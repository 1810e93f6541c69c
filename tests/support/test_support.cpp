#include "support/test_support.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <random>
#include <thread>

namespace ipckit::test {

std::string unique_name(std::string_view prefix) {
    static std::atomic<unsigned> counter{0};
    static const unsigned salt = std::random_device{}();
    return std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter++) + "-" + std::to_string(salt % 100000);
}

std::string unique_path(std::string_view prefix) { return "/tmp/" + unique_name(prefix); }

forked_child::forked_child(std::function<int()> body) {
    std::fflush(nullptr);  // do not duplicate buffered output into the child
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        int code = 98;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child exception: %s\n", e.what());
            code = 99;
        } catch (...) {
            code = 99;
        }
        std::fflush(nullptr);
        ::_exit(code);  // no atexit handlers, no gtest teardown in the child
    }
}

forked_child::~forked_child() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st;
        ::waitpid(pid_, &st, 0);
    }
}

std::optional<exit_status> forked_child::wait(std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            pid_ = -1;
            return exit_status::from_wait(st);
        }
        if (r < 0 && errno != EINTR) return std::nullopt;
        if (std::chrono::steady_clock::now() >= until) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &st, 0);
            pid_ = -1;
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

std::string ipckit_binary() { return IPCKIT_BIN; }

run_result run_ipckit(const std::vector<std::string>& args, std::string_view input,
                      std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{ipckit_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, input, deadline::after(timeout));
}

scoped_unlink::~scoped_unlink() { ::unlink(path_.c_str()); }

}  // namespace ipckit::test
