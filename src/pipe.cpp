#include "ipckit/pipe.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

extern char** environ;

namespace ipckit {

pipe_pair make_pipe(bool nonblocking) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)) < 0) throw_errno("pipe2", "");
    return {unique_fd(fds[0]), unique_fd(fds[1])};
}

std::size_t pipe_capacity(int fd) {
    int r = ::fcntl(fd, F_GETPIPE_SZ);
    if (r < 0) throw_errno("fcntl(F_GETPIPE_SZ)", "fd " + std::to_string(fd));
    return static_cast<std::size_t>(r);
}

std::size_t set_pipe_capacity(int fd, std::size_t bytes) {
    if (bytes > static_cast<std::size_t>(INT32_MAX))
        throw_error(EINVAL, "fcntl(F_SETPIPE_SZ)", "fd " + std::to_string(fd),
                    "requested " + std::to_string(bytes) + " bytes");
    int r = ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(bytes));
    if (r < 0) {
        int e = errno;
        throw_error(e, "fcntl(F_SETPIPE_SZ)", "fd " + std::to_string(fd),
                    "requested " + std::to_string(bytes) + " bytes, " +
                        detail::proc_setting("/proc/sys/fs/pipe-max-size"));
    }
    return static_cast<std::size_t>(r);
}

exit_status exit_status::from_wait(int wstatus) noexcept {
    exit_status s;
    if (WIFEXITED(wstatus)) {
        s.exited = true;
        s.code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        s.signal = WTERMSIG(wstatus);
    }
    return s;
}

std::string exit_status::describe() const {
    if (exited) return "exit " + std::to_string(code);
    const char* abbrev = sigabbrev_np(signal);
    return std::string("killed by ") +
           (abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signal));
}

child_process::child_process(pid_t pid, unique_fd in, unique_fd out, unique_fd err) noexcept
    : pid_(pid), in_(std::move(in)), out_(std::move(out)), err_(std::move(err)) {}

child_process::child_process(child_process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      in_(std::move(o.in_)),
      out_(std::move(o.out_)),
      err_(std::move(o.err_)) {}

child_process& child_process::operator=(child_process&& o) noexcept {
    if (this != &o) {
        reap_or_kill();
        pid_ = std::exchange(o.pid_, -1);
        in_ = std::move(o.in_);
        out_ = std::move(o.out_);
        err_ = std::move(o.err_);
    }
    return *this;
}

child_process::~child_process() {
    reap_or_kill();
}

void child_process::reap_or_kill() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    detail::retry_eintr([&] { return ::waitpid(pid_, &st, 0); });
    pid_ = -1;
}

exit_status child_process::wait() {
    if (pid_ <= 0) throw_error(ECHILD, "waitpid", "child");
    int st = 0;
    if (detail::retry_eintr([&] { return ::waitpid(pid_, &st, 0); }) < 0)
        throw_errno("waitpid", "pid " + std::to_string(pid_));
    pid_ = -1;
    return exit_status::from_wait(st);
}

std::optional<exit_status> child_process::wait_until(const deadline& until) {
    if (pid_ <= 0) throw_error(ECHILD, "waitpid", "child");
    // No deadline (run() and run_pipeline() without one): one blocking waitpid
    // instead of waking every millisecond.
    if (until.is_never()) return wait();
    // A pidfd would avoid polling, but needs Linux 5.3 and a raw syscall;
    // a short sleep loop is enough for process lifetimes.
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            pid_ = -1;
            return exit_status::from_wait(st);
        }
        if (r < 0 && errno != EINTR) throw_errno("waitpid", "pid " + std::to_string(pid_));
        if (until.expired()) return std::nullopt;
        timespec ts{0, 1'000'000};
        ::nanosleep(&ts, nullptr);
    }
}

void child_process::kill(int sig) noexcept {
    if (pid_ > 0) ::kill(pid_, sig);
}

child_process fork_child(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork", "");
    if (pid == 0) {
        int code = 99;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ipckit: child %d: %s\n", static_cast<int>(::getpid()), e.what());
        } catch (...) {
            std::fprintf(stderr, "ipckit: child %d: unknown exception\n",
                         static_cast<int>(::getpid()));
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return child_process(pid, unique_fd{}, unique_fd{}, unique_fd{});
}

namespace {

// Owns posix_spawn file actions.
struct file_actions {
    posix_spawn_file_actions_t fa;
    file_actions() { posix_spawn_file_actions_init(&fa); }
    ~file_actions() { posix_spawn_file_actions_destroy(&fa); }
};

}  // namespace

child_process spawn(const std::vector<std::string>& argv, const spawn_options& options) {
    if (argv.empty()) throw_error(EINVAL, "spawn", "", "empty argument list");
    file_actions actions;
    unique_fd parent_in, parent_out, parent_err;
    pipe_pair in_pipe, out_pipe, err_pipe;  // kept open until posix_spawn returns

    auto wire = [&](stdio_mode mode, int explicit_fd, int target, bool child_reads, pipe_pair& p,
                    unique_fd& parent_end) {
        if (explicit_fd >= 0) {
            posix_spawn_file_actions_adddup2(&actions.fa, explicit_fd, target);
        } else if (mode == stdio_mode::pipe) {
            p = make_pipe();
            int child_end = child_reads ? p.read_end.get() : p.write_end.get();
            posix_spawn_file_actions_adddup2(&actions.fa, child_end, target);
            parent_end = std::move(child_reads ? p.write_end : p.read_end);
        } else if (mode == stdio_mode::null) {
            posix_spawn_file_actions_addopen(&actions.fa, target, "/dev/null",
                                             child_reads ? O_RDONLY : O_WRONLY, 0);
        }
    };
    wire(options.in, options.stdin_fd, 0, true, in_pipe, parent_in);
    wire(options.out, options.stdout_fd, 1, false, out_pipe, parent_out);
    wire(options.err, -1, 2, false, err_pipe, parent_err);

    // The child starts with default signal dispositions and an empty mask,
    // whatever the parent blocked (e.g. SIGPIPE around pipe writes).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty, all_defaults;
    sigemptyset(&empty);
    sigfillset(&all_defaults);
    sigdelset(&all_defaults, SIGKILL);
    sigdelset(&all_defaults, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all_defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> cargv;
    for (const auto& a : argv)
        cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, cargv[0], &actions.fa, &attr, cargv.data(), environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw_error(rc, "spawn", argv[0]);
    return child_process(pid, std::move(parent_in), std::move(parent_out), std::move(parent_err));
}

namespace {

// Pumps input into `in` and drains `out`/`err` until all are done or the
// deadline passes. Returns false on timeout.
bool pump(unique_fd& in, std::string_view input, unique_fd& out, std::string& out_text,
          unique_fd* err, std::string* err_text, const deadline& until) {
    std::size_t sent = 0;
    if (in && input.empty()) in.reset();
    if (in) set_nonblocking(in.get(), true);
    char buf[65536];
    for (;;) {
        pollfd fds[3];
        int n = 0;
        int in_i = -1, out_i = -1, err_i = -1;
        if (in) {
            in_i = n;
            fds[n++] = {in.get(), POLLOUT, 0};
        }
        if (out) {
            out_i = n;
            fds[n++] = {out.get(), POLLIN, 0};
        }
        if (err && *err) {
            err_i = n;
            fds[n++] = {err->get(), POLLIN, 0};
        }
        if (n == 0) return true;
        int r = ::poll(fds, static_cast<nfds_t>(n), until.poll_timeout_ms());
        if (r < 0) {
            if (errno == EINTR) continue;
            throw_errno("poll", "child pipes");
        }
        if (r == 0) {
            if (until.expired()) return false;
            continue;
        }
        if (in_i >= 0 && fds[in_i].revents) {
            detail::sigpipe_guard guard;
            ssize_t w = ::write(in.get(), input.data() + sent, input.size() - sent);
            guard.after_write(w, input.size() - sent);
            if (w > 0) sent += static_cast<std::size_t>(w);
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == input.size()) in.reset();
        }
        auto drain = [&](int idx, unique_fd& fd, std::string& text) {
            if (idx < 0 || !fds[idx].revents) return;
            ssize_t got = ::read(fd.get(), buf, sizeof buf);
            if (got > 0)
                text.append(buf, static_cast<std::size_t>(got));
            else if (got == 0 || (errno != EINTR && errno != EAGAIN))
                fd.reset();
        };
        drain(out_i, out, out_text);
        if (err) drain(err_i, *err, *err_text);
    }
}

}  // namespace

run_result run(const std::vector<std::string>& argv, std::string_view input,
               const deadline& until) {
    spawn_options opts;
    opts.in = stdio_mode::pipe;
    opts.out = stdio_mode::pipe;
    opts.err = stdio_mode::pipe;
    child_process child = spawn(argv, opts);
    run_result result;
    if (!pump(child.stdin_pipe(), input, child.stdout_pipe(), result.out, &child.stderr_pipe(),
              &result.err, until)) {
        result.timed_out = true;
        child.kill(SIGKILL);
        result.status = child.wait();
        return result;
    }
    auto st = child.wait_until(until);
    if (!st) {
        result.timed_out = true;
        child.kill(SIGKILL);
        st = child.wait();
    }
    result.status = *st;
    return result;
}

pipeline_result run_pipeline(const std::vector<std::vector<std::string>>& stages,
                             std::string_view input, const deadline& until) {
    if (stages.empty()) throw_error(EINVAL, "pipeline", "", "no stages");
    std::vector<child_process> children;
    unique_fd first_in, last_out, carry;
    for (std::size_t i = 0; i < stages.size(); ++i) {
        spawn_options opts;
        if (i == 0)
            opts.in = stdio_mode::pipe;
        else
            opts.stdin_fd = carry.get();
        pipe_pair link;
        if (i + 1 < stages.size()) {
            link = make_pipe();
            opts.stdout_fd = link.write_end.get();
        } else {
            opts.out = stdio_mode::pipe;
        }
        children.push_back(spawn(stages[i], opts));
        if (i == 0) first_in = std::move(children.back().stdin_pipe());
        if (i + 1 < stages.size())
            carry = std::move(link.read_end);  // write end closes here
        else
            last_out = std::move(children.back().stdout_pipe());
    }
    carry.reset();
    pipeline_result result;
    bool ok = pump(first_in, input, last_out, result.out, nullptr, nullptr, until);
    for (auto& c : children) {
        std::optional<exit_status> st;
        if (ok) st = c.wait_until(until);
        if (!st) {
            result.timed_out = true;
            c.kill(SIGKILL);
            st = c.wait();
        }
        result.statuses.push_back(*st);
    }
    return result;
}

}  // namespace ipckit
