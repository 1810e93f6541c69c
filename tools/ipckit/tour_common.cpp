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
    child_process child = fork_child(body);
    auto status = child.wait_until(deadline::after(timeout));
    if (!status) throw std::runtime_error("child timed out");  // killed by ~child_process
    if (!status->exited) throw std::runtime_error("child " + status->describe());
    return status->code;
}

void expect_child_ok(child_process& child, std::chrono::milliseconds timeout) {
    auto status = child.wait_until(deadline::after(timeout));
    tour_expect(status.has_value(), "child did not finish");
    tour_expect(status->success(), "child reported " + status->describe());
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
