#include "ipckit/mqueue.hpp"

#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {
namespace {

std::string limit_text(const char* what, long value) {
    return std::string("/proc/sys/fs/mqueue/") + what + " = " +
           (value < 0 ? std::string("unknown") : std::to_string(value));
}

// True if this process could open one more file descriptor: tells EMFILE from
// RLIMIT_NOFILE apart from EMFILE caused by RLIMIT_MSGQUEUE (same errno).
bool can_open_another_fd() noexcept {
    int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

// The kernel's caps on a queue's geometry (ipc/mqueue.c, Linux >= 3.5). A
// caller with CAP_SYS_RESOURCE is exempt from msg_max and msgsize_max, but
// not from these.
constexpr long kHardMsgMax = 65536;                  // HARD_MSGMAX
constexpr long kHardMsgsizeMax = 16L * 1024 * 1024;  // HARD_MSGSIZEMAX
constexpr int kCapSysResource = 24;                  // CAP_SYS_RESOURCE, linux/capability.h

// CAP_SYS_RESOURCE in the effective set (CapEff of /proc/self/status). Only a
// hint for the message: in a user namespace the kernel checks the capability
// against the initial namespace, so the caller is treated as privileged only
// where the hard limit alone explains the failure.
bool has_cap_sys_resource() noexcept {
    std::FILE* f = std::fopen("/proc/self/status", "re");
    if (!f) return false;
    char line[256];
    bool cap = false;
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "CapEff:", 7) == 0) {
            unsigned long long eff = std::strtoull(line + 7, nullptr, 16);
            cap = (eff >> kCapSysResource) & 1U;
            break;
        }
    }
    std::fclose(f);
    return cap;
}

// "max_messages 70000 exceeds the kernel's hard limit HARD_MSGMAX = 65536 (the
// limit with CAP_SYS_RESOURCE; without it /proc/sys/fs/mqueue/msg_max = 10)".
std::string hard_limit_text(const char* what, long value, const char* hard_name, long hard,
                            const char* sysctl, long sysctl_value) {
    return std::string(what) + " " + std::to_string(value) + " exceeds the kernel's hard limit " +
           hard_name + " = " + std::to_string(hard) +
           " (the limit with CAP_SYS_RESOURCE; without it " + limit_text(sysctl, sysctl_value) +
           ")";
}

// Turns an mq_open failure caused by a limit into an error naming the limit.
[[noreturn]] void throw_open_error(int err, const std::string& name, bool creating, long maxmsg,
                                   long msgsize) {
    mq_limits lim = mq_limits::read();
    long eff_maxmsg = maxmsg > 0 ? maxmsg : lim.msg_default;
    long eff_msgsize = msgsize > 0 ? msgsize : lim.msgsize_default;
    std::string detail;
    switch (err) {
        case EINVAL:
            if (!creating) break;
            // Privileged: the sysctls do not apply, the hard limits do. If
            // neither hard limit explains the failure, the kernel did not see
            // the capability (a user namespace): the sysctls below apply.
            if (has_cap_sys_resource()) {
                if (eff_maxmsg > kHardMsgMax)
                    detail = hard_limit_text("max_messages", eff_maxmsg, "HARD_MSGMAX", kHardMsgMax,
                                             "msg_max", lim.msg_max);
                else if (eff_msgsize > kHardMsgsizeMax)
                    detail = hard_limit_text("message_size", eff_msgsize, "HARD_MSGSIZEMAX",
                                             kHardMsgsizeMax, "msgsize_max", lim.msgsize_max);
                if (!detail.empty()) break;
            }
            if (lim.msg_max >= 0 && eff_maxmsg > lim.msg_max)
                detail = "max_messages " + std::to_string(eff_maxmsg) + " exceeds " +
                         limit_text("msg_max", lim.msg_max);
            else if (lim.msgsize_max >= 0 && eff_msgsize > lim.msgsize_max)
                detail = "message_size " + std::to_string(eff_msgsize) + " exceeds " +
                         limit_text("msgsize_max", lim.msgsize_max);
            break;
        case EMFILE:
            if (creating && can_open_another_fd()) {
                detail = "RLIMIT_MSGQUEUE = " + std::to_string(lim.rlimit_bytes) +
                         " bytes per user would be exceeded: this queue needs at least " +
                         std::to_string(eff_maxmsg * eff_msgsize) +
                         " bytes (max_messages x message_size) plus overhead";
            } else {
                rlimit rl{};
                ::getrlimit(RLIMIT_NOFILE, &rl);
                detail =
                    "open file limit RLIMIT_NOFILE = " + std::to_string(rl.rlim_cur) + " reached";
            }
            break;
        case ENOSPC:
            detail = "system-wide queue limit reached: " + limit_text("queues_max", lim.queues_max);
            break;
        case ENFILE:
            detail = "system-wide open file limit reached";
            break;
        case ENOENT:
            if (!creating) detail = "no such queue";
            break;
        case EEXIST:
            detail = "queue already exists (create_only)";
            break;
        default:
            break;
    }
    throw_error(err, "mq_open", name, detail);
}

// Runs one mq_(timed)send / mq_(timed)receive until it succeeds or the
// deadline passes. op(abs) calls the untimed variant when abs is null.
// Returns false on timeout. A non-blocking descriptor answers EAGAIN at once;
// then we wait for readiness with poll(), which Linux supports on mqd_t.
template <class Op>
bool run_until(Op&& op, int fd, short events, const deadline& until, const char* opname,
               const std::string& name) {
    for (;;) {
        int r;
        if (until.is_never()) {
            r = op(nullptr);
        } else {
            timespec ts = until.realtime_timespec();  // recomputed after each EINTR
            r = op(&ts);
        }
        if (r == 0) return true;
        int err = errno;
        if (err == EINTR) continue;
        if (err == ETIMEDOUT || err == EAGAIN) {
            if (until.expired()) return false;
            if (err == ETIMEDOUT) continue;  // CLOCK_REALTIME stepped: retry with time left
            pollfd p{fd, events, 0};
            if (::poll(&p, 1, until.poll_timeout_ms()) < 0 && errno != EINTR)
                throw_errno("poll", name);
            continue;
        }
        errno = err;
        throw_errno(opname, name);
    }
}

}  // namespace

mq_limits mq_limits::read() noexcept {
    mq_limits l;
    l.msg_max = detail::read_proc_long("/proc/sys/fs/mqueue/msg_max");
    l.msgsize_max = detail::read_proc_long("/proc/sys/fs/mqueue/msgsize_max");
    l.msg_default = detail::read_proc_long("/proc/sys/fs/mqueue/msg_default");
    l.msgsize_default = detail::read_proc_long("/proc/sys/fs/mqueue/msgsize_default");
    l.queues_max = detail::read_proc_long("/proc/sys/fs/mqueue/queues_max");
    rlimit rl{};
    if (::getrlimit(RLIMIT_MSGQUEUE, &rl) == 0)
        l.rlimit_bytes = rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long long>(rl.rlim_cur);
    return l;
}

void message_queue::validate_name(std::string_view name) {
    std::string shown(name);
    if (name.empty() || name.front() != '/')
        throw_error(EINVAL, "mq_open", shown, "a queue name must start with '/', e.g. /jobs");
    if (name.size() == 1) throw_error(EINVAL, "mq_open", shown, "the name after '/' is empty");
    if (name.find('/', 1) != std::string_view::npos)
        throw_error(EINVAL, "mq_open", shown, "a queue name has no '/' after the first");
    if (name.find('\0') != std::string_view::npos)
        throw_error(EINVAL, "mq_open", shown, "a queue name cannot contain a NUL byte");
    if (name.size() - 1 > NAME_MAX)
        throw_error(
            EINVAL, "mq_open", shown.substr(0, 40) + "...",
            "name is " + std::to_string(name.size() - 1) +
                " characters after '/', the limit is NAME_MAX = " + std::to_string(NAME_MAX));
    if (name == "/." || name == "/..")
        throw_error(EINVAL, "mq_open", shown, "'.' and '..' are not queue names");
}

message_queue message_queue::open(std::string_view name_view, const mq_options& o) {
    validate_name(name_view);
    std::string name(name_view);
    if (!o.read && !o.write)
        throw_error(EINVAL, "mq_open", name, "open for reading, writing or both");
    if (o.max_messages < 0 || o.message_size < 0)
        throw_error(EINVAL, "mq_open", name, "max_messages and message_size must be >= 0");
    if ((o.max_messages == 0) != (o.message_size == 0) && o.mode != open_mode::open_only)
        throw_error(EINVAL, "mq_open", name,
                    "give both max_messages and message_size, or neither (system defaults)");

    int flags = (o.read && o.write) ? O_RDWR : o.read ? O_RDONLY : O_WRONLY;
    flags |= O_CLOEXEC;  // Linux sets it on every mqd_t anyway; say so explicitly
    if (o.nonblocking) flags |= O_NONBLOCK;
    bool creating = o.mode != open_mode::open_only;
    if (creating) flags |= O_CREAT;
    if (o.mode == open_mode::create_only) flags |= O_EXCL;

    mq_attr attr{};
    mq_attr* attr_ptr = nullptr;
    if (creating && o.max_messages > 0) {
        attr.mq_maxmsg = o.max_messages;
        attr.mq_msgsize = o.message_size;
        attr_ptr = &attr;
    }
    mqd_t q = detail::retry_eintr([&] {
        return ::mq_open(name.c_str(), flags, static_cast<mode_t>(o.permissions), attr_ptr);
    });
    if (q == static_cast<mqd_t>(-1))
        throw_open_error(errno, name, creating, o.max_messages, o.message_size);
    return message_queue(unique_fd(static_cast<int>(q)), std::move(name));
}

bool message_queue::remove(std::string_view name_view) {
    validate_name(name_view);
    std::string name(name_view);
    if (::mq_unlink(name.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw_errno("mq_unlink", name);
}

mq_attributes message_queue::attributes() const {
    mq_attr a{};
    if (::mq_getattr(fd_.get(), &a) != 0) throw_errno("mq_getattr", name_);
    msgsize_ = a.mq_msgsize;
    return mq_attributes{a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs, (a.mq_flags & O_NONBLOCK) != 0};
}

long message_queue::message_size() const {
    if (msgsize_ == 0) attributes();
    return msgsize_;
}

void message_queue::set_nonblocking(bool on) {
    mq_attr a{};
    a.mq_flags = on ? O_NONBLOCK : 0;
    if (::mq_setattr(fd_.get(), &a, nullptr) != 0) throw_errno("mq_setattr", name_);
}

bool message_queue::removed() const {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw_errno("fstat", name_);
    return st.st_nlink == 0;
}

bool message_queue::send_until(std::string_view data, unsigned priority, const deadline& until) {
    if (priority >= mq_priority_limit)
        throw_error(EINVAL, "mq_send", name_,
                    "priority " + std::to_string(priority) + " is above the maximum " +
                        std::to_string(mq_priority_limit - 1));
    long size = message_size();
    if (data.size() > static_cast<std::size_t>(size))
        throw_error(EMSGSIZE, "mq_send", name_,
                    "message is " + std::to_string(data.size()) + " bytes, queue msgsize is " +
                        std::to_string(size));
    return run_until(
        [&](const timespec* abs) {
            return abs ? ::mq_timedsend(fd_.get(), data.data(), data.size(), priority, abs)
                       : ::mq_send(fd_.get(), data.data(), data.size(), priority);
        },
        fd_.get(), POLLOUT, until, "mq_send", name_);
}

void message_queue::send(std::string_view data, unsigned priority) {
    send_until(data, priority, deadline::never());
}

bool message_queue::try_send(std::string_view data, unsigned priority) {
    return send_until(data, priority, deadline::immediate());
}

std::optional<unsigned> message_queue::receive_until(std::string& out, const deadline& until) {
    // mq_receive refuses buffers smaller than the queue's msgsize. Growing
    // `out` to msgsize after a short message would zero-fill the difference
    // on every call (8 KiB per 64-byte message by default): then the message
    // goes to a scratch buffer and only its bytes are copied out.
    const auto size = static_cast<std::size_t>(message_size());
    const bool direct = out.size() >= size;
    if (!direct && scratch_.size() < size) scratch_.resize(size);
    char* buf = direct ? out.data() : scratch_.data();
    unsigned prio = 0;
    ssize_t got = 0;
    bool ok = run_until(
        [&](const timespec* abs) -> int {
            got = abs ? ::mq_timedreceive(fd_.get(), buf, size, &prio, abs)
                      : ::mq_receive(fd_.get(), buf, size, &prio);
            return got < 0 ? -1 : 0;
        },
        fd_.get(), POLLIN, until, "mq_receive", name_);
    if (!ok) {
        out.clear();
        return std::nullopt;
    }
    if (direct)
        out.resize(static_cast<std::size_t>(got));
    else
        out.assign(buf, static_cast<std::size_t>(got));
    return prio;
}

unsigned message_queue::receive(std::string& out) {
    return *receive_until(out, deadline::never());
}

mq_message message_queue::receive() {
    mq_message m;
    m.priority = receive(m.data);
    return m;
}

std::optional<unsigned> message_queue::try_receive(std::string& out) {
    return receive_until(out, deadline::immediate());
}

mq_remover::~mq_remover() {
    if (!name_.empty()) ::mq_unlink(name_.c_str());
}

}  // namespace ipckit
