// Maps each URL scheme to its transport. A scheme that parses but has no
// factory here says so (ENOSYS) instead of failing obscurely.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "channels/factories.hpp"
#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {
namespace {

struct transport_entry {
    std::string_view scheme;
    detail::channel_factory factory;
};

constexpr std::array transports{
    transport_entry{"stdio", &detail::open_stdio_channel},
    transport_entry{"fifo", &detail::open_fifo_channel},
    transport_entry{"mq", &detail::open_mq_channel},
    transport_entry{"sysvmq", &detail::open_sysvmq_channel},
    transport_entry{"unix", &detail::open_unix_channel},
    transport_entry{"tcp", &detail::open_tcp_channel},
    transport_entry{"udp", &detail::open_udp_channel},
    transport_entry{"shm", &detail::open_shm_channel},
};

}  // namespace

namespace detail {

std::chrono::nanoseconds read_spin(const url& u) {
    constexpr std::uint64_t max_us = 1'000'000;
    auto us = u.unsigned_param("spin_us");
    if (!us) return default_read_spin;
    if (*us > max_us)
        throw_error(EINVAL, "open", u.text,
                    "spin_us is " + std::to_string(*us) + ", at most " + std::to_string(max_us) +
                        " (one second)");
    return std::chrono::microseconds(*us);
}

}  // namespace detail

std::unique_ptr<channel> open_channel(std::string_view text, channel_role role,
                                      const open_options& options) {
    url u = parse_url(text);
    for (const auto& t : transports) {
        if (t.scheme != u.scheme) continue;
        if (t.factory == nullptr)
            throw_error(ENOSYS, "open", u.text,
                        "the " + u.scheme + ": transport is not built into this ipckit yet");
        return t.factory(u, role, options);
    }
    throw_error(ENOSYS, "open", u.text, "unknown scheme");  // parse_url rejects these first
}

const char* to_string(io_status s) noexcept {
    switch (s) {
        case io_status::ok:
            return "ok";
        case io_status::timed_out:
            return "timed out";
        case io_status::closed:
            return "closed";
    }
    return "?";
}

}  // namespace ipckit
