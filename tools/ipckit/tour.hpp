// `ipckit tour`: every mechanism run live in real processes, one line per check.
// Each mechanism contributes tour_checks_<mechanism>() from tour_<mechanism>.cpp
// and one line in cmd_tour.cpp's list.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "ipckit/pipe.hpp"

namespace ipckit::cli {

/// One live check. run() does the work in real processes and returns a short
/// detail for the report ("3 messages, 15 bytes"); it throws on failure.
struct tour_check {
    std::string mechanism;    ///< "pipe", "fifo", "signal", ...
    std::string description;  ///< "parent -> child, 3 messages"
    std::function<std::string()> run;
};

/// Runs body in a forked child (ipckit::fork_child) and waits for it (SIGKILL
/// after timeout). Returns the child's exit code; throws std::runtime_error on
/// timeout or death by signal, naming what.
int run_in_child(const std::function<int()>& body,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Waits for a child started with ipckit::fork_child; throws unless it exits 0.
void expect_child_ok(child_process& child,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Throws std::runtime_error(what) unless condition holds.
void tour_expect(bool condition, const std::string& what);

/// Unique names for objects a check creates ("ipckit-tour-<pid>-<n>").
std::string tour_name(const std::string& kind);

std::vector<tour_check> tour_checks_signals();
std::vector<tour_check> tour_checks_pipes();
std::vector<tour_check> tour_checks_fifos();
std::vector<tour_check> tour_checks_mqueue();
std::vector<tour_check> tour_checks_sockets();
std::vector<tour_check> tour_checks_shm();
std::vector<tour_check> tour_checks_rpc();

}  // namespace ipckit::cli
