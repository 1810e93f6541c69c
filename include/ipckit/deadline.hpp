// Deadlines and timeouts shared by every blocking call.
#pragma once

#include <chrono>
#include <ctime>

namespace ipckit {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

/// A point in time (steady clock) after which a blocking call gives up.
/// deadline::never() blocks forever; a timeout is always reported as a value.
class deadline {
  public:
    /// Never expires.
    static constexpr deadline never() noexcept { return deadline{}; }
    /// Expires `timeout` from now; a zero or negative timeout means "poll once".
    static deadline after(nanoseconds timeout) noexcept { return deadline{clock::now() + timeout}; }
    static constexpr deadline at(clock::time_point when) noexcept { return deadline{when}; }
    /// Already expired: try once, never block. Needs no clock read, so a
    /// polling loop of try-calls costs no clock_gettime per turn.
    static constexpr deadline immediate() noexcept { return deadline{clock::time_point{}}; }

    bool is_never() const noexcept { return never_; }
    /// True for deadline::immediate(): expired before it was made.
    bool is_immediate() const noexcept { return !never_ && when_ == clock::time_point{}; }
    bool expired() const noexcept { return !never_ && clock::now() >= when_; }
    clock::time_point when() const noexcept { return when_; }

    /// Time left (zero once expired; nanoseconds::max() for never).
    nanoseconds remaining() const noexcept;
    /// Time left for poll(2): -1 for never, else milliseconds rounded up.
    int poll_timeout_ms() const noexcept;
    /// Absolute CLOCK_REALTIME timespec (mq_timedsend, sem_timedwait, ...).
    timespec realtime_timespec() const noexcept;
    /// Relative timespec of the time left (futex, ppoll, sigtimedwait).
    timespec relative_timespec() const noexcept;

  private:
    constexpr deadline() noexcept = default;
    explicit constexpr deadline(clock::time_point when) noexcept : never_(false), when_(when) {}
    bool never_ = true;
    clock::time_point when_{};
};

}  // namespace ipckit
