#include "ipckit/deadline.hpp"

#include <limits>

namespace ipckit {

nanoseconds deadline::remaining() const noexcept {
    if (never_) return nanoseconds::max();
    // Compared before subtracting: when_ - now could overflow for a deadline
    // made with at() far in the past.
    const auto now = clock::now();
    if (when_ <= now) return nanoseconds{0};
    return std::chrono::duration_cast<nanoseconds>(when_ - now);
}

int deadline::poll_timeout_ms() const noexcept {
    if (never_) return -1;
    auto left = remaining();
    // Round up so that poll() never returns just before the deadline.
    auto ms = (left.count() + 999'999) / 1'000'000;
    if (ms > std::numeric_limits<int>::max()) return std::numeric_limits<int>::max();
    return static_cast<int>(ms);
}

timespec deadline::relative_timespec() const noexcept {
    auto left = remaining();
    if (never_) left = std::chrono::hours(24 * 365);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
    return ts;
}

timespec deadline::realtime_timespec() const noexcept {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    timespec rel = relative_timespec();
    timespec abs{now.tv_sec + rel.tv_sec, now.tv_nsec + rel.tv_nsec};
    if (abs.tv_nsec >= 1'000'000'000) {
        abs.tv_sec += 1;
        abs.tv_nsec -= 1'000'000'000;
    }
    return abs;
}

}  // namespace ipckit
