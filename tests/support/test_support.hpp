// Helpers shared by every test: unique object names, forked children that are
// always reaped (with a timeout), and running the built ipckit binary.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/pipe.hpp"

namespace ipckit::test {

/// "<prefix>-<pid>-<counter>-<random>": unique across parallel test runs.
std::string unique_name(std::string_view prefix);

/// A unique path under /tmp (nothing is created there).
std::string unique_path(std::string_view prefix);

/// A forked child running body(); its return value is the exit code, an
/// escaped exception exits 99 after printing what() to stderr. The destructor
/// SIGKILLs and reaps a child still running, so a failing test leaks nothing.
class forked_child {
  public:
    explicit forked_child(std::function<int()> body);
    forked_child(const forked_child&) = delete;
    forked_child& operator=(const forked_child&) = delete;
    ~forked_child();

    pid_t pid() const noexcept { return pid_; }
    /// Waits up to timeout; on timeout kills the child and returns nullopt.
    std::optional<exit_status> wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  private:
    pid_t pid_ = -1;
};

/// Runs the built `ipckit` binary with args (timeout 30 s by default).
run_result run_ipckit(const std::vector<std::string>& args, std::string_view input = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Path of the built ipckit binary.
std::string ipckit_binary();

/// Everything readable from fd until EOF or the deadline.
std::string read_all(int fd, const deadline& until);

/// A process started with spawn(), its stdout read line by line.
class line_process {
  public:
    explicit line_process(const std::vector<std::string>& argv);
    /// The next line without '\n'; an unterminated last line comes before
    /// "<eof>"; "<timeout>" if nothing completes a line in time.
    std::string line(std::chrono::milliseconds timeout = std::chrono::seconds(20));
    /// Waits up to 20 s for the exit; past that kills it and records a failure.
    exit_status finish();
    pid_t pid() const noexcept { return child_.pid(); }
    child_process& process() noexcept { return child_; }

  private:
    child_process child_;
    std::string buf_;
};

/// The errno of the ipckit::error that f throws, or 0 if it throws none.
int errno_of(const std::function<void()>& f);

/// The uid and gid tests drop to when root would bypass a permission check.
inline constexpr uid_t kNobody = 65534;

/// Runs body(dir) in a forked child that is not root: under root (as in CI)
/// the child drops to uid/gid kNobody first, because root bypasses the
/// permission checks a test may be about. dir is a fresh directory the child
/// may write; it is removed afterwards. Returns the child's exit status
/// (body's return value; 90-93 if dropping privileges failed), nullopt if
/// the directory could not be made or the child timed out.
std::optional<exit_status> run_unprivileged(const std::function<int(const std::string&)>& body);

/// Sets the process umask for its lifetime (restored even when a test fails).
class umask_guard {
  public:
    explicit umask_guard(mode_t m) noexcept;
    umask_guard(const umask_guard&) = delete;
    umask_guard& operator=(const umask_guard&) = delete;
    ~umask_guard();

  private:
    mode_t old_;
};

/// Removes a file on scope exit (unlink errors ignored).
class scoped_unlink {
  public:
    explicit scoped_unlink(std::string path) : path_(std::move(path)) {}
    ~scoped_unlink();
    const std::string& path() const noexcept { return path_; }

  private:
    std::string path_;
};

}  // namespace ipckit::test
