#include "support/test_support.hpp"

#include <dirent.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <random>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit::test {

std::string unique_name(std::string_view prefix) {
    static std::atomic<unsigned> counter{0};
    static const unsigned salt = std::random_device{}();
    return std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter++) + "-" + std::to_string(salt % 100000);
}

std::string unique_path(std::string_view prefix) {
    return "/tmp/" + unique_name(prefix);
}

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

std::string ipckit_binary() {
    return IPCKIT_BIN;
}

run_result run_ipckit(const std::vector<std::string>& args, std::string_view input,
                      std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{ipckit_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, input, deadline::after(timeout));
}

std::string read_all(int fd, const deadline& until) {
    std::string out;
    char buf[4096];
    for (;;) {
        std::size_t got = 0;
        auto st =
            detail::read_some(fd, std::as_writable_bytes(std::span(buf)), until, "read_all", got);
        if (st != detail::io_outcome::ok || got == 0) return out;
        out.append(buf, got);
    }
}

line_process::line_process(const std::vector<std::string>& argv) {
    spawn_options o;
    o.out = stdio_mode::pipe;
    child_ = spawn(argv, o);
}

std::string line_process::line(std::chrono::milliseconds timeout) {
    auto until = deadline::after(timeout);
    for (;;) {
        auto nl = buf_.find('\n');
        if (nl != std::string::npos) {
            std::string l = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            return l;
        }
        char chunk[512];
        std::size_t got = 0;
        auto st = detail::read_some(child_.stdout_pipe().get(),
                                    std::as_writable_bytes(std::span(chunk)), until, "stdout", got);
        if (st != detail::io_outcome::ok) return "<timeout>";
        if (got == 0) return buf_.empty() ? "<eof>" : std::exchange(buf_, {});
        buf_.append(chunk, got);
    }
}

exit_status line_process::finish() {
    auto st = child_.wait_until(deadline::after(std::chrono::seconds(20)));
    if (!st) {
        child_.kill(SIGKILL);
        ADD_FAILURE() << "process " << child_.pid() << " did not end";
        return child_.wait();
    }
    return *st;
}

scoped_unlink::~scoped_unlink() {
    ::unlink(path_.c_str());
}

int errno_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ipckit::error& e) {
        return e.code().value();
    }
    return 0;
}

umask_guard::umask_guard(mode_t m) noexcept : old_(::umask(m)) {}
umask_guard::~umask_guard() {
    ::umask(old_);
}

std::optional<exit_status> run_unprivileged(const std::function<int(const std::string&)>& body) {
    char tmpl[] = "/tmp/ipckit-nobody-XXXXXX";
    if (!::mkdtemp(tmpl)) return std::nullopt;
    const std::string dir = tmpl;
    const bool root = ::geteuid() == 0;
    if (root && ::chown(dir.c_str(), kNobody, kNobody) != 0) return std::nullopt;
    std::optional<exit_status> st;
    {
        forked_child child([&] {
            if (root) {
                if (::setgroups(0, nullptr) != 0) return 90;
                if (::setresgid(kNobody, kNobody, kNobody) != 0) return 91;
                if (::setresuid(kNobody, kNobody, kNobody) != 0) return 92;
                if (::geteuid() != kNobody) return 93;
            }
            return body(dir);
        });
        st = child.wait();
    }
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") ::unlink((dir + "/" + n).c_str());
        }
        ::closedir(d);
    }
    ::rmdir(dir.c_str());
    return st;
}

}  // namespace ipckit::test
