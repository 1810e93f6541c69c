// Signals without unsafe handlers: signal sets and names (SIGRTMIN+n
// included), scoped masks, a signalfd listener that reports sender and
// payload, sending (kill / sigqueue / raise), timers that deliver to the
// listener, and the table of all 64 Linux signals.
//
// The safe pattern: block the signals you care about (signal_listener does
// it for you) and read them from a file descriptor in normal code, where
// printing, allocating and locking are allowed. A classic handler
// (scoped_sigaction) is offered for callers who need one; its body must be
// async-signal-safe (set a volatile sig_atomic_t flag or write to a pipe).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/deadline.hpp"
#include "ipckit/fd.hpp"

namespace ipckit {

// ---- names and the signal table ---------------------------------------------

/// What the kernel does with a signal nobody handles (signal(7)).
enum class signal_action { terminate, core, ignore, stop, cont };

/// "terminate", "core", "ignore", "stop", "continue".
std::string_view to_string(signal_action action) noexcept;

/// One row of the signal table.
struct signal_info {
    int number = 0;
    std::string name;  ///< "SIGUSR1", "SIGRTMIN+3", "SIG32" (reserved)
    signal_action default_action = signal_action::terminate;
    std::string_view description;  ///< one line, from signal(7)
    bool catchable = true;         ///< a handler / signalfd can receive it
    bool blockable = true;         ///< can be in a mask (all but SIGKILL, SIGSTOP)
    bool queued = false;           ///< realtime: every instance queued with its payload
    bool reserved = false;         ///< 32 and 33: used inside glibc (NPTL), not usable
};

/// All 64 Linux signals, numbers 1..64 in order. Realtime names follow the
/// runtime SIGRTMIN/SIGRTMAX exactly like bash's `kill -l`.
const std::vector<signal_info>& signal_table();

/// The row for signo; throws std::invalid_argument outside 1..64.
const signal_info& signal_info_of(int signo);

/// "SIGUSR1", "SIGRTMIN+3", "SIGRTMAX-1". Throws std::invalid_argument for a
/// number outside 1..64.
std::string signal_name(int signo);

/// Parses "USR1", "SIGUSR1", "usr1", "10", "RTMIN+3", "SIGRTMAX-2" and the
/// aliases (IOT, CLD, POLL, UNUSED). Throws std::invalid_argument with a clear
/// message for unknown names, numbers outside 1..64, offsets beyond the
/// realtime range and the glibc-reserved signals 32 and 33.
int parse_signal(std::string_view text);

/// True for SIGRTMIN..SIGRTMAX (the runtime values).
bool is_realtime(int signo) noexcept;

// ---- signal sets and masks ----------------------------------------------------

/// A set of signals (a validated sigset_t).
class signal_set {
  public:
    signal_set() noexcept;
    /// Throws std::invalid_argument for an invalid or reserved number.
    signal_set(std::initializer_list<int> signals);
    /// Parses every entry with parse_signal().
    static signal_set parse(const std::vector<std::string>& names);
    /// Every signal the caller may block (all but SIGKILL, SIGSTOP, 32, 33).
    static signal_set all_blockable();
    /// Wraps a kernel set (reserved signals are dropped).
    static signal_set from_native(const sigset_t& set) noexcept;

    signal_set& add(int signo);
    signal_set& remove(int signo);
    bool contains(int signo) const noexcept;
    bool empty() const noexcept;
    std::size_t size() const noexcept;
    /// Members in increasing order.
    std::vector<int> members() const;
    /// "SIGINT SIGQUIT" (empty string for the empty set).
    std::string to_string() const;
    const sigset_t& native() const noexcept { return set_; }

    friend bool operator==(const signal_set& a, const signal_set& b) noexcept;

  private:
    sigset_t set_;
};

/// The calling thread's blocked signals.
signal_set blocked_signals();
/// Signals pending for the calling thread or the process (sigpending).
signal_set pending_signals();

/// Changes the calling thread's mask (pthread_sigmask) for a scope and
/// restores the exact previous mask on destruction. Masks are per thread:
/// block before starting threads so that they inherit it. SIGKILL and SIGSTOP
/// are refused (std::invalid_argument): the kernel never lets them be blocked.
class scoped_signal_mask {
  public:
    enum class how { block, unblock, set };
    explicit scoped_signal_mask(const signal_set& signals, how mode = how::block);
    ~scoped_signal_mask();
    scoped_signal_mask(const scoped_signal_mask&) = delete;
    scoped_signal_mask& operator=(const scoped_signal_mask&) = delete;

    const signal_set& previous() const noexcept { return previous_; }

  private:
    signal_set previous_;
};

// ---- receiving: the signalfd listener ---------------------------------------

/// One received signal, as the kernel reported it.
struct received_signal {
    int signo = 0;
    pid_t sender_pid = 0;  ///< 0 when sent by the kernel (timer, fault, tty)
    uid_t sender_uid = 0;
    int code = 0;   ///< si_code: SI_USER, SI_QUEUE, SI_TKILL, SI_TIMER, ...
    int value = 0;  ///< si_value.sival_int (meaningful when has_value())
    /// True when the signal carries a payload (sigqueue, POSIX timer, mq_notify).
    bool has_value() const noexcept;
    /// "SI_USER", "SI_QUEUE", "SI_TKILL", "SI_TIMER", "SI_KERNEL", ... or "code N".
    std::string code_name() const;
    std::string name() const { return signal_name(signo); }
};

/// Receives signals as data through signalfd(SFD_CLOEXEC | SFD_NONBLOCK).
/// The constructor blocks the set in the calling thread (so the default action
/// never runs for them); the destructor discards instances still pending and
/// unblocks only what listeners blocked, once the last listener of that
/// signal in the thread is gone (listeners may be destroyed in any order); a
/// signal the thread had blocked before stays blocked. Destroy a listener on
/// the thread that created it: the mask it changed is that thread's. For
/// process-directed signals in a multithreaded program, create it before
/// starting threads (they inherit the mask), otherwise another thread may take
/// the signal. Refuses an empty set and SIGKILL/SIGSTOP (std::invalid_argument).
class signal_listener {
  public:
    explicit signal_listener(const signal_set& signals);
    ~signal_listener();
    signal_listener(const signal_listener&) = delete;
    signal_listener& operator=(const signal_listener&) = delete;

    /// Waits for the next signal until the deadline; nullopt on timeout.
    std::optional<received_signal> wait(const deadline& until = deadline::never());
    /// Takes a pending signal without blocking; nullopt if none.
    std::optional<received_signal> try_receive();

    /// Pollable (POLLIN) while a signal of the set is pending.
    int fd() const noexcept { return fd_.get(); }
    const signal_set& signals() const noexcept { return signals_; }

  private:
    signal_set signals_;
    signal_set added_;  // signals it counts as blocked by listeners (not by the user)
    unique_fd fd_;
};

// ---- the classic handler, for callers who need one --------------------------

/// Options of scoped_sigaction.
struct sigaction_options {
    bool restart = true;      ///< SA_RESTART: restart interrupted system calls
    signal_set also_block{};  ///< extra signals blocked while the handler runs
};

/// Installs a handler with sigaction(2) (never signal(2): no SysV one-shot
/// reset, no race while re-installing) and restores the previous action on
/// destruction. The handler runs asynchronously: it may only call
/// async-signal-safe functions (signal-safety(7)). Set a `volatile
/// sig_atomic_t` flag or write one byte to a non-blocking pipe and save/restore
/// errno; never printf, malloc, locks or C++ streams. Prefer signal_listener.
class scoped_sigaction {
  public:
    using handler_fn = void (*)(int);
    using info_handler_fn = void (*)(int, siginfo_t*, void*);

    scoped_sigaction(int signo, handler_fn handler, const sigaction_options& options = {});
    scoped_sigaction(int signo, info_handler_fn handler, const sigaction_options& options = {});
    /// SIG_IGN / SIG_DFL.
    static scoped_sigaction ignore(int signo);
    static scoped_sigaction default_action(int signo);
    ~scoped_sigaction();
    scoped_sigaction(scoped_sigaction&& other) noexcept;
    scoped_sigaction& operator=(scoped_sigaction&&) = delete;
    scoped_sigaction(const scoped_sigaction&) = delete;

    int signo() const noexcept { return signo_; }

  private:
    scoped_sigaction(int signo, const struct sigaction& action);
    int signo_ = 0;
    struct sigaction previous_ {};
    bool active_ = false;
};

/// For applications, never from inside a library: sets SIGPIPE to SIG_IGN
/// for the whole process, for good, and tells ipckit. Writes to pipes and
/// FIFOs then skip the signal-mask change around each write that otherwise
/// keeps SIGPIPE from killing the caller (two system calls per write, about
/// half the cost of a 64-byte pipe send on the 2-vCPU VM we measure on).
/// A write to a pipe whose reader is gone still reports closed. Do not
/// restore SIGPIPE afterwards: ipckit would no longer protect the writes.
void ignore_sigpipe_process_wide();

// ---- sending ----------------------------------------------------------------

/// kill(pid, signo) to one process (pid > 0). pid 0 and negative values are
/// refused (std::invalid_argument): kill(-1) would signal every process you
/// own; use send_signal_to_group for a process group. A missing process is
/// ipckit::error ESRCH ("kill pid 123: No such process").
void send_signal(pid_t pid, int signo);
/// kill(-pgid, signo): every process of the group.
void send_signal_to_group(pid_t pgid, int signo);
/// sigqueue(pid, signo, value): the signal carries value (si_value), and
/// realtime signals are queued in order. sigqueue addresses exactly one
/// process: pid <= 0 is refused (std::invalid_argument). Standard signals
/// coalesce, so a second pending instance (and its value) is lost.
void queue_signal(pid_t pid, int signo, int value);
/// raise(signo) to the calling thread.
void raise_signal(int signo);
/// kill(pid, 0): true if the process exists (EPERM counts as existing).
bool process_exists(pid_t pid);

// ---- timers -------------------------------------------------------------------

/// An alarm that delivers a signal (SIGALRM by default) with a payload,
/// built on a POSIX timer (timer_create, CLOCK_MONOTONIC, SIGEV_SIGNAL). Its
/// signals reach a signal_listener with code SI_TIMER and the given value.
/// Unlike alarm(2) there can be many, and sub-second ones.
class signal_timer {
  public:
    explicit signal_timer(int signo = SIGALRM, int value = 0);
    ~signal_timer();
    signal_timer(const signal_timer&) = delete;
    signal_timer& operator=(const signal_timer&) = delete;

    /// Fires once after `after`, then every `interval` if non-zero. A zero
    /// `after` fires immediately (1 ns).
    void arm(std::chrono::nanoseconds after,
             std::chrono::nanoseconds interval = std::chrono::nanoseconds::zero());
    void disarm();
    /// Expirations that were merged because the previous signal was still pending.
    int overruns() const;
    int signo() const noexcept { return signo_; }

  private:
    void* timer_ = nullptr;  // timer_t
    int signo_;
};

}  // namespace ipckit
