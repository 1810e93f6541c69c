// Anonymous pipes and child processes wired to them: a safe popen and a
// shell-free pipeline (the lecture's `ps aux | grep` done from C++).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/deadline.hpp"
#include "ipckit/fd.hpp"

namespace ipckit {

/// Both ends of a pipe, close-on-exec.
struct pipe_pair {
    unique_fd read_end;
    unique_fd write_end;
};

/// pipe2(O_CLOEXEC), optionally O_NONBLOCK on both ends.
pipe_pair make_pipe(bool nonblocking = false);

/// Bytes the pipe buffers before a writer blocks (F_GETPIPE_SZ).
std::size_t pipe_capacity(int fd);
/// Asks for at least bytes of buffer (F_SETPIPE_SZ); returns the size granted
/// (the kernel rounds up to a power-of-two number of pages). EPERM past
/// /proc/sys/fs/pipe-max-size is reported with that limit.
std::size_t set_pipe_capacity(int fd, std::size_t bytes);

/// How a child process ended.
struct exit_status {
    bool exited = false;  ///< returned from main / called exit
    int code = 0;         ///< exit code when exited
    int signal = 0;       ///< terminating signal otherwise
    bool success() const noexcept { return exited && code == 0; }
    /// "exit 0", "exit 3", "killed by SIGKILL".
    std::string describe() const;
    static exit_status from_wait(int wstatus) noexcept;
};

/// What a child's standard stream is connected to.
enum class stdio_mode { inherit, pipe, null };

struct spawn_options {
    stdio_mode in = stdio_mode::inherit;
    stdio_mode out = stdio_mode::inherit;
    stdio_mode err = stdio_mode::inherit;
    /// If set, becomes the child's stdin / stdout (overrides in / out).
    int stdin_fd = -1;
    int stdout_fd = -1;
};

/// A running child process. The destructor kills (SIGKILL) and reaps a child
/// that was neither waited for nor detached, so no zombie outlives it.
class child_process {
  public:
    child_process() = default;
    child_process(pid_t pid, unique_fd in, unique_fd out, unique_fd err) noexcept;
    child_process(child_process&&) noexcept;
    child_process& operator=(child_process&&) noexcept;
    ~child_process();

    pid_t pid() const noexcept { return pid_; }
    /// Parent's ends of the pipes requested with stdio_mode::pipe.
    unique_fd& stdin_pipe() noexcept { return in_; }
    unique_fd& stdout_pipe() noexcept { return out_; }
    unique_fd& stderr_pipe() noexcept { return err_; }

    /// Blocks until the child ends.
    exit_status wait();
    /// Waits until the deadline; nullopt if still running. With
    /// deadline::never() it is wait(): one blocking waitpid, no polling.
    std::optional<exit_status> wait_until(const deadline& until);
    /// Sends sig (no-op once reaped).
    void kill(int sig) noexcept;

  private:
    void reap_or_kill() noexcept;
    pid_t pid_ = -1;
    unique_fd in_, out_, err_;
};

/// fork(2) running body() in the child, which then _exits with body's return
/// value (no atexit handlers, no destructors of the parent's objects). An
/// exception escaping body prints "ipckit: child <pid>: <what>" on stderr and
/// exits 99. Buffered stdio is flushed before the fork, so nothing is written
/// twice. The returned handle kills and reaps the child if it is dropped
/// without wait(). Only fork from a single-threaded process, or call only
/// async-signal-safe functions in body.
child_process fork_child(const std::function<int()>& body);

/// Starts argv[0] (searched in PATH) without a shell. Only fds 0-2 are
/// inherited: every ipckit fd is close-on-exec. Throws ipckit::error if the
/// program cannot be started (e.g. "spawn nosuchprog: No such file or directory").
child_process spawn(const std::vector<std::string>& argv, const spawn_options& options = {});

/// Result of run().
struct run_result {
    exit_status status;
    std::string out;         ///< everything the child wrote to stdout
    std::string err;         ///< everything it wrote to stderr
    bool timed_out = false;  ///< deadline passed: the child was killed
};

/// A safe popen: feeds input to the child's stdin, collects stdout and stderr
/// concurrently (no deadlock on full pipes), waits for the exit. On timeout
/// the child is killed with SIGKILL and timed_out is set.
run_result run(const std::vector<std::string>& argv, std::string_view input = {},
               const deadline& until = deadline::never());

/// Result of run_pipeline(): the last stage's output and every stage's status.
struct pipeline_result {
    std::vector<exit_status> statuses;
    std::string out;
    bool timed_out = false;
};

/// Runs stages connected stdout -> stdin, like `a | b | c` without a shell.
pipeline_result run_pipeline(const std::vector<std::vector<std::string>>& stages,
                             std::string_view input = {},
                             const deadline& until = deadline::never());

}  // namespace ipckit
