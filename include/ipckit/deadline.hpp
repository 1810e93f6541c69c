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
    /// Expires `timeout` from now; a zero or negative timeout means "poll once"
    /// (the deadline is now). A timeout too large for the clock (nanoseconds::max(), hours::max())
    /// saturates to never() instead of wrapping into the past.
    static deadline after(nanoseconds timeout) noexcept {
        const clock::time_point now = clock::now();
        if (timeout <= nanoseconds::zero()) return deadline{now};
        // now >= 0 on a steady clock, so max() - now cannot overflow.
        if (now.time_since_epoch().count() >= 0 && timeout > clock::time_point::max() - now)
            return never();
        return deadline{now + timeout};
    }
    /// The same for any other duration (seconds, hours, duration<double>):
    /// saturated before it is converted to nanoseconds, where hours::max()
    /// would overflow.
    template <class Rep, class Period>
    static deadline after(std::chrono::duration<Rep, Period> timeout) noexcept {
        using wide = std::chrono::duration<long double, std::nano>;
        const clock::time_point now = clock::now();
        const long double t = std::chrono::duration_cast<wide>(timeout).count();
        if (!(t > 0)) return deadline{now};  // zero, negative (or NaN): poll once
        // Compared in long double, which cannot overflow; one second of margin
        // keeps its rounding away from the edge of the clock's range.
        const long double room = static_cast<long double>(nanoseconds::max().count()) -
                                 static_cast<long double>(now.time_since_epoch().count());
        if (t >= room - 1e9L) return never();
        return deadline{now + std::chrono::duration_cast<nanoseconds>(timeout)};
    }
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
