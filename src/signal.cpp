#include "ipckit/signal.hpp"

#include <pthread.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <stdexcept>
#include <string>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {
namespace {

constexpr int kMaxSignal = 64;  // _NSIG - 1 on Linux

struct standard_row {
    int number;
    const char* name;
    signal_action action;
    const char* description;
};

// signal(7), x86/arm/generic numbering (the one `kill -l` prints here).
constexpr standard_row kStandard[] = {
    {SIGHUP, "SIGHUP", signal_action::terminate,
     "Hangup of the controlling terminal or death of the controlling process"},
    {SIGINT, "SIGINT", signal_action::terminate, "Interrupt from the keyboard (Ctrl-C)"},
    {SIGQUIT, "SIGQUIT", signal_action::core, "Quit from the keyboard (Ctrl-\\)"},
    {SIGILL, "SIGILL", signal_action::core, "Illegal instruction"},
    {SIGTRAP, "SIGTRAP", signal_action::core, "Trace or breakpoint trap"},
    {SIGABRT, "SIGABRT", signal_action::core, "Abort signal from abort()"},
    {SIGBUS, "SIGBUS", signal_action::core, "Bus error (bad memory access)"},
    {SIGFPE, "SIGFPE", signal_action::core, "Floating-point or integer arithmetic exception"},
    {SIGKILL, "SIGKILL", signal_action::terminate, "Kill (cannot be caught, blocked or ignored)"},
    {SIGUSR1, "SIGUSR1", signal_action::terminate, "User-defined signal 1"},
    {SIGSEGV, "SIGSEGV", signal_action::core, "Invalid memory reference"},
    {SIGUSR2, "SIGUSR2", signal_action::terminate, "User-defined signal 2"},
    {SIGPIPE, "SIGPIPE", signal_action::terminate, "Broken pipe: write to a pipe with no readers"},
    {SIGALRM, "SIGALRM", signal_action::terminate, "Timer signal from alarm()"},
    {SIGTERM, "SIGTERM", signal_action::terminate, "Termination request"},
    {SIGSTKFLT, "SIGSTKFLT", signal_action::terminate, "Stack fault on coprocessor (unused)"},
    {SIGCHLD, "SIGCHLD", signal_action::ignore, "Child stopped, continued or terminated"},
    {SIGCONT, "SIGCONT", signal_action::cont, "Continue if stopped"},
    {SIGSTOP, "SIGSTOP", signal_action::stop,
     "Stop the process (cannot be caught, blocked or ignored)"},
    {SIGTSTP, "SIGTSTP", signal_action::stop, "Stop typed at the terminal (Ctrl-Z)"},
    {SIGTTIN, "SIGTTIN", signal_action::stop, "Terminal input for a background process"},
    {SIGTTOU, "SIGTTOU", signal_action::stop, "Terminal output for a background process"},
    {SIGURG, "SIGURG", signal_action::ignore, "Urgent condition on a socket"},
    {SIGXCPU, "SIGXCPU", signal_action::core, "CPU time limit exceeded"},
    {SIGXFSZ, "SIGXFSZ", signal_action::core, "File size limit exceeded"},
    {SIGVTALRM, "SIGVTALRM", signal_action::terminate, "Virtual alarm clock"},
    {SIGPROF, "SIGPROF", signal_action::terminate, "Profiling timer expired"},
    {SIGWINCH, "SIGWINCH", signal_action::ignore, "Window resize"},
    {SIGIO, "SIGIO", signal_action::terminate, "I/O now possible (also SIGPOLL)"},
    {SIGPWR, "SIGPWR", signal_action::terminate, "Power failure"},
    {SIGSYS, "SIGSYS", signal_action::core, "Bad system call"},
};

struct alias {
    const char* name;
    int number;
};
constexpr alias kAliases[] = {
    {"SIGIOT", SIGABRT}, {"SIGCLD", SIGCHLD}, {"SIGPOLL", SIGIO}, {"SIGUNUSED", SIGSYS}};

bool reserved(int signo) noexcept {
    return signo > SIGSYS && signo < SIGRTMIN;
}

std::string realtime_name(int signo) {
    // Same split as bash and util-linux: the lower half counts up from
    // SIGRTMIN, the upper half down from SIGRTMAX.
    const int rtmin = SIGRTMIN, rtmax = SIGRTMAX;
    const int offset = signo - rtmin;
    if (offset == 0) return "SIGRTMIN";
    if (signo == rtmax) return "SIGRTMAX";
    if (offset <= (rtmax - rtmin) / 2) return "SIGRTMIN+" + std::to_string(offset);
    return "SIGRTMAX-" + std::to_string(rtmax - signo);
}

std::vector<signal_info> build_table() {
    std::vector<signal_info> table(kMaxSignal);
    for (int n = 1; n <= kMaxSignal; ++n) {
        signal_info& row = table[n - 1];
        row.number = n;
        row.default_action = signal_action::terminate;
        row.catchable = row.blockable = (n != SIGKILL && n != SIGSTOP);
        row.queued = n > SIGSYS;  // the kernel queues every signal >= 32
        if (n <= SIGSYS) continue;
        if (reserved(n)) {
            row.name = "SIG" + std::to_string(n);
            row.description = "Realtime, reserved by glibc for threads (cancellation, setxid)";
            row.reserved = true;
            row.catchable = row.blockable = false;
        } else {
            row.name = realtime_name(n);
            row.description = "Realtime signal: queued with its payload, delivered in order";
        }
    }
    for (const auto& s : kStandard) {
        signal_info& row = table[s.number - 1];
        row.name = s.name;
        row.default_action = s.action;
        row.description = s.description;
    }
    return table;
}

std::string upper(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

[[noreturn]] void bad_signal(std::string_view text, std::string_view why) {
    throw std::invalid_argument("signal \"" + std::string(text) + "\": " + std::string(why));
}

void check_number(int signo) {
    if (signo < 1 || signo > kMaxSignal)
        throw std::invalid_argument("signal " + std::to_string(signo) +
                                    ": no such signal (Linux signals are 1-64)");
    if (reserved(signo))
        throw std::invalid_argument("signal " + std::to_string(signo) +
                                    ": reserved by glibc for its threads (use SIGRTMIN+n)");
}

void check_blockable(const signal_set& set, std::string_view operation) {
    for (int s : {SIGKILL, SIGSTOP}) {
        if (set.contains(s))
            throw std::invalid_argument(std::string(operation) + " " + signal_name(s) + ": " +
                                        signal_name(s) +
                                        " cannot be blocked, caught or ignored (the kernel "
                                        "always acts on it)");
    }
}

std::optional<int> parse_int(std::string_view text) {
    int value = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

void set_mask(int how, const sigset_t* set, sigset_t* old, std::string_view object) {
    int rc = ::pthread_sigmask(how, set, old);
    if (rc != 0) throw_error(rc, "pthread_sigmask", object);
}

}  // namespace

// ---- names and table -----------------------------------------------------------

std::string_view to_string(signal_action action) noexcept {
    switch (action) {
        case signal_action::terminate:
            return "terminate";
        case signal_action::core:
            return "core";
        case signal_action::ignore:
            return "ignore";
        case signal_action::stop:
            return "stop";
        case signal_action::cont:
            return "continue";
    }
    return "?";
}

const std::vector<signal_info>& signal_table() {
    static const std::vector<signal_info> table = build_table();
    return table;
}

const signal_info& signal_info_of(int signo) {
    if (signo < 1 || signo > kMaxSignal)
        throw std::invalid_argument("signal " + std::to_string(signo) +
                                    ": no such signal (Linux signals are 1-64)");
    return signal_table()[signo - 1];
}

std::string signal_name(int signo) {
    return signal_info_of(signo).name;
}

bool is_realtime(int signo) noexcept {
    return signo >= SIGRTMIN && signo <= SIGRTMAX;
}

int parse_signal(std::string_view text) {
    const std::string original(text);
    std::string name = upper(text);
    if (name.empty()) bad_signal(original, "empty signal name");
    if (std::isdigit(static_cast<unsigned char>(name[0]))) {
        auto n = parse_int(name);
        if (!n || *n < 1 || *n > kMaxSignal)
            bad_signal(original, "no such signal (Linux signals are 1-64)");
        if (reserved(*n))
            bad_signal(original, "reserved by glibc for its threads (use SIGRTMIN+n)");
        return *n;
    }
    if (name.rfind("SIG", 0) != 0) name = "SIG" + name;
    for (const auto& s : kStandard)
        if (name == s.name) return s.number;
    for (const auto& a : kAliases)
        if (name == a.name) return a.number;
    const int rtmin = SIGRTMIN, rtmax = SIGRTMAX;
    auto realtime = [&](std::string_view base, int origin, int sign) -> std::optional<int> {
        if (name.rfind(base, 0) != 0) return std::nullopt;
        std::string_view rest = std::string_view(name).substr(base.size());
        if (rest.empty()) return origin;
        if (rest[0] != (sign > 0 ? '+' : '-'))
            bad_signal(original, std::string("expected ") + std::string(base.substr(3)) +
                                     (sign > 0 ? "+n" : "-n"));
        auto n = parse_int(rest.substr(1));
        if (!n || *n < 0 || *n > rtmax - rtmin)
            bad_signal(original,
                       "realtime offset out of range (0-" + std::to_string(rtmax - rtmin) + ")");
        return origin + sign * *n;
    };
    if (auto n = realtime("SIGRTMIN", rtmin, +1)) return *n;
    if (auto n = realtime("SIGRTMAX", rtmax, -1)) return *n;
    bad_signal(original,
               "unknown signal (expected a name like USR1 or SIGUSR1, a number 1-64, "
               "or RTMIN+n / RTMAX-n; see `ipckit signal list`)");
}

// ---- signal_set ------------------------------------------------------------------

signal_set::signal_set() noexcept {
    ::sigemptyset(&set_);
}

signal_set::signal_set(std::initializer_list<int> signals) : signal_set() {
    for (int s : signals)
        add(s);
}

signal_set signal_set::parse(const std::vector<std::string>& names) {
    signal_set set;
    for (const auto& n : names)
        set.add(parse_signal(n));
    return set;
}

signal_set signal_set::all_blockable() {
    signal_set set;
    for (const auto& row : signal_table())
        if (row.blockable) set.add(row.number);
    return set;
}

signal_set signal_set::from_native(const sigset_t& native) noexcept {
    signal_set set;
    for (int n = 1; n <= kMaxSignal; ++n)
        if (!reserved(n) && ::sigismember(&native, n) == 1) ::sigaddset(&set.set_, n);
    return set;
}

signal_set& signal_set::add(int signo) {
    check_number(signo);
    ::sigaddset(&set_, signo);
    return *this;
}

signal_set& signal_set::remove(int signo) {
    check_number(signo);
    ::sigdelset(&set_, signo);
    return *this;
}

bool signal_set::contains(int signo) const noexcept {
    return signo >= 1 && signo <= kMaxSignal && ::sigismember(&set_, signo) == 1;
}

// Not sigisemptyset(): glibc 2.36 only looks at the first word there, so a set
// holding only realtime signals would read as empty.
bool signal_set::empty() const noexcept {
    return size() == 0;
}

std::size_t signal_set::size() const noexcept {
    std::size_t n = 0;
    for (int s = 1; s <= kMaxSignal; ++s)
        n += contains(s) ? 1 : 0;
    return n;
}

std::vector<int> signal_set::members() const {
    std::vector<int> out;
    for (int s = 1; s <= kMaxSignal; ++s)
        if (contains(s)) out.push_back(s);
    return out;
}

std::string signal_set::to_string() const {
    std::string out;
    for (int s : members()) {
        if (!out.empty()) out += ' ';
        out += signal_name(s);
    }
    return out;
}

bool operator==(const signal_set& a, const signal_set& b) noexcept {
    for (int s = 1; s <= kMaxSignal; ++s)
        if (a.contains(s) != b.contains(s)) return false;
    return true;
}

signal_set blocked_signals() {
    sigset_t current;
    set_mask(SIG_BLOCK, nullptr, &current, "(query)");
    return signal_set::from_native(current);
}

signal_set pending_signals() {
    sigset_t pending;
    if (::sigpending(&pending) != 0) throw_errno("sigpending", "");
    return signal_set::from_native(pending);
}

// ---- scoped_signal_mask -------------------------------------------------------------

scoped_signal_mask::scoped_signal_mask(const signal_set& signals, how mode) {
    if (mode != how::unblock) check_blockable(signals, "pthread_sigmask");
    const int h = mode == how::block ? SIG_BLOCK : mode == how::unblock ? SIG_UNBLOCK : SIG_SETMASK;
    sigset_t old;
    set_mask(h, &signals.native(), &old, signals.to_string());
    previous_ = signal_set::from_native(old);
}

scoped_signal_mask::~scoped_signal_mask() {
    // Exact restore: the mask as it was when this scope began.
    ::pthread_sigmask(SIG_SETMASK, &previous_.native(), nullptr);
}

// ---- received_signal / signal_listener -----------------------------------------------

bool received_signal::has_value() const noexcept {
    return code == SI_QUEUE || code == SI_TIMER || code == SI_MESGQ;
}

std::string received_signal::code_name() const {
    switch (code) {
        case SI_USER:
            return "SI_USER";
        case SI_KERNEL:
            return "SI_KERNEL";
        case SI_QUEUE:
            return "SI_QUEUE";
        case SI_TIMER:
            return "SI_TIMER";
        case SI_MESGQ:
            return "SI_MESGQ";
        case SI_ASYNCIO:
            return "SI_ASYNCIO";
        case SI_SIGIO:
            return "SI_SIGIO";
        case SI_TKILL:
            return "SI_TKILL";
        default:
            break;
    }
    if (signo == SIGCHLD) {
        switch (code) {
            case CLD_EXITED:
                return "CLD_EXITED";
            case CLD_KILLED:
                return "CLD_KILLED";
            case CLD_DUMPED:
                return "CLD_DUMPED";
            case CLD_TRAPPED:
                return "CLD_TRAPPED";
            case CLD_STOPPED:
                return "CLD_STOPPED";
            case CLD_CONTINUED:
                return "CLD_CONTINUED";
            default:
                break;
        }
    }
    return "code " + std::to_string(code);
}

namespace {
// Per thread (masks are per thread): how many live listeners of this thread
// hold each signal blocked. A signal the thread had blocked before any
// listener is not counted and is never unblocked by a listener.
thread_local int t_listener_blocks[kMaxSignal + 1] = {};
}  // namespace

signal_listener::signal_listener(const signal_set& signals) : signals_(signals) {
    if (signals.empty())
        throw std::invalid_argument("signalfd: empty signal set (name at least one signal)");
    check_blockable(signals, "signalfd");
    // Block first: a signal arriving between signalfd() and the block would run
    // its default action.
    sigset_t old;
    set_mask(SIG_BLOCK, &signals.native(), &old, signals.to_string());
    const signal_set before = signal_set::from_native(old);
    // Ours to count: signals that were not blocked, and signals blocked only
    // because another listener of this thread blocked them (a second listener
    // of SIGUSR1 keeps it blocked when the first one goes).
    signal_set newly;
    for (int s : signals.members()) {
        if (!before.contains(s)) newly.add(s);
        if (!before.contains(s) || t_listener_blocks[s] > 0) added_.add(s);
    }
    int fd = ::signalfd(-1, &signals.native(), SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        ::pthread_sigmask(SIG_UNBLOCK, &newly.native(), nullptr);
        throw_error(e, "signalfd", signals.to_string());
    }
    fd_.reset(fd);
    for (int s : added_.members())
        ++t_listener_blocks[s];
}

signal_listener::~signal_listener() {
    // Unblock only what no other listener of this thread still needs. A count
    // already at zero means the listener is destroyed on another thread than
    // the one that made it: that thread's mask is not ours to change.
    signal_set release;
    for (int s : added_.members())
        if (t_listener_blocks[s] > 0 && --t_listener_blocks[s] == 0) release.add(s);
    if (release.empty()) return;
    // Discard what is still pending so that unblocking does not run the
    // default action (often: terminate) for a signal meant for this listener.
    const timespec zero{0, 0};
    while (::sigtimedwait(&release.native(), nullptr, &zero) > 0) {
    }
    ::pthread_sigmask(SIG_UNBLOCK, &release.native(), nullptr);
}

std::optional<received_signal> signal_listener::try_receive() {
    signalfd_siginfo info{};
    ssize_t n = detail::retry_eintr([&] { return ::read(fd_.get(), &info, sizeof info); });
    if (n < 0) {
        if (errno == EAGAIN) return std::nullopt;
        throw_errno("read signalfd", signals_.to_string());
    }
    if (n != static_cast<ssize_t>(sizeof info))
        throw_error(EIO, "read signalfd", signals_.to_string(), "short read");
    received_signal r;
    r.signo = static_cast<int>(info.ssi_signo);
    r.sender_pid = static_cast<pid_t>(info.ssi_pid);
    r.sender_uid = static_cast<uid_t>(info.ssi_uid);
    r.code = info.ssi_code;
    r.value = info.ssi_int;
    return r;
}

std::optional<received_signal> signal_listener::wait(const deadline& until) {
    for (;;) {
        if (auto r = try_receive()) return r;
        if (detail::wait_readable(fd_.get(), until, signals_.to_string()) ==
            detail::io_outcome::timed_out)
            return try_receive();  // last look: never lose a signal that raced the timeout
    }
}

// ---- scoped_sigaction ------------------------------------------------------------------

namespace {
struct sigaction make_action(const sigaction_options& options) {
    struct sigaction sa {};
    sa.sa_mask = options.also_block.native();
    sa.sa_flags = options.restart ? SA_RESTART : 0;
    return sa;
}
}  // namespace

scoped_sigaction::scoped_sigaction(int signo, const struct sigaction& action) : signo_(signo) {
    check_number(signo);
    if (signo == SIGKILL || signo == SIGSTOP)
        throw std::invalid_argument("sigaction " + signal_name(signo) + ": " + signal_name(signo) +
                                    " cannot be blocked, caught or ignored (the kernel always "
                                    "acts on it)");
    if (::sigaction(signo, &action, &previous_) != 0) throw_errno("sigaction", signal_name(signo));
    active_ = true;
}

scoped_sigaction::scoped_sigaction(int signo, handler_fn handler, const sigaction_options& options)
    : scoped_sigaction(signo, [&] {
          auto sa = make_action(options);
          sa.sa_handler = handler;
          return sa;
      }()) {}

scoped_sigaction::scoped_sigaction(int signo, info_handler_fn handler,
                                   const sigaction_options& options)
    : scoped_sigaction(signo, [&] {
          auto sa = make_action(options);
          sa.sa_flags |= SA_SIGINFO;
          sa.sa_sigaction = handler;
          return sa;
      }()) {}

scoped_sigaction scoped_sigaction::ignore(int signo) {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    return scoped_sigaction(signo, sa);
}

scoped_sigaction scoped_sigaction::default_action(int signo) {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    return scoped_sigaction(signo, sa);
}

scoped_sigaction::scoped_sigaction(scoped_sigaction&& other) noexcept
    : signo_(other.signo_),
      previous_(other.previous_),
      active_(std::exchange(other.active_, false)) {}

scoped_sigaction::~scoped_sigaction() {
    if (active_) ::sigaction(signo_, &previous_, nullptr);
}

// ---- sending ---------------------------------------------------------------------------

namespace {
std::string pid_object(pid_t pid) {
    return "pid " + std::to_string(pid);
}

void check_sendable(int signo) {
    if (signo == 0) return;  // existence probe
    check_number(signo);
}
}  // namespace

void send_signal(pid_t pid, int signo) {
    check_sendable(signo);
    if (pid <= 0)
        throw std::invalid_argument("kill " + pid_object(pid) +
                                    ": refusing pid <= 0 (0 and -1 signal whole groups or every "
                                    "process you own; use send_signal_to_group)");
    if (::kill(pid, signo) != 0) throw_errno("kill", pid_object(pid));
}

void send_signal_to_group(pid_t pgid, int signo) {
    check_sendable(signo);
    if (pgid <= 1)
        throw std::invalid_argument("kill process group " + std::to_string(pgid) +
                                    ": not a process group id (must be > 1)");
    if (::kill(-pgid, signo) != 0) throw_errno("kill", "process group " + std::to_string(pgid));
}

void queue_signal(pid_t pid, int signo, int value) {
    check_sendable(signo);
    if (pid <= 0)
        throw std::invalid_argument("sigqueue " + pid_object(pid) +
                                    ": a payload goes to exactly one process (pid > 0); process "
                                    "groups and broadcasts cannot carry one");
    sigval v{};
    v.sival_int = value;
    if (::sigqueue(pid, signo, v) != 0) {
        if (errno == EAGAIN)
            throw_error(EAGAIN, "sigqueue", pid_object(pid),
                        "the receiver's queue of pending signals is full (RLIMIT_SIGPENDING)");
        throw_errno("sigqueue", pid_object(pid));
    }
}

void ignore_sigpipe_process_wide() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (::sigaction(SIGPIPE, &ignore, nullptr) != 0) throw_errno("sigaction", "SIGPIPE");
    detail::note_sigpipe_ignored();
}

void raise_signal(int signo) {
    check_number(signo);
    int rc = ::raise(signo);
    if (rc != 0) throw_errno("raise", signal_name(signo));
}

bool process_exists(pid_t pid) {
    if (pid <= 0) throw std::invalid_argument("kill " + pid_object(pid) + ": not a process id");
    if (::kill(pid, 0) == 0) return true;
    if (errno == EPERM) return true;
    if (errno == ESRCH) return false;
    throw_errno("kill", pid_object(pid));
}

// ---- signal_timer ------------------------------------------------------------------------

signal_timer::signal_timer(int signo, int value) : signo_(signo) {
    check_number(signo);
    sigevent ev{};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = signo;
    ev.sigev_value.sival_int = value;
    timer_t id{};
    if (::timer_create(CLOCK_MONOTONIC, &ev, &id) != 0)
        throw_errno("timer_create", signal_name(signo));
    timer_ = id;
}

signal_timer::~signal_timer() {
    ::timer_delete(static_cast<timer_t>(timer_));
}

namespace {
timespec to_timespec(std::chrono::nanoseconds d) {
    if (d.count() < 0) d = std::chrono::nanoseconds::zero();
    return timespec{static_cast<time_t>(d.count() / 1000000000),
                    static_cast<long>(d.count() % 1000000000)};
}
}  // namespace

void signal_timer::arm(std::chrono::nanoseconds after, std::chrono::nanoseconds interval) {
    itimerspec spec{};
    spec.it_value = to_timespec(after);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    spec.it_interval = to_timespec(interval);
    if (::timer_settime(static_cast<timer_t>(timer_), 0, &spec, nullptr) != 0)
        throw_errno("timer_settime", signal_name(signo_));
}

void signal_timer::disarm() {
    itimerspec spec{};
    if (::timer_settime(static_cast<timer_t>(timer_), 0, &spec, nullptr) != 0)
        throw_errno("timer_settime", signal_name(signo_));
}

int signal_timer::overruns() const {
    int n = ::timer_getoverrun(static_cast<timer_t>(timer_));
    if (n < 0) throw_errno("timer_getoverrun", signal_name(signo_));
    return n;
}

}  // namespace ipckit
