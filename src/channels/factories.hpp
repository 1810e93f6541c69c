// Private: one factory per transport, looked up by scheme in registry.cpp.
#pragma once

#include <chrono>
#include <memory>

#include "ipckit/channel.hpp"
#include "ipckit/url.hpp"

namespace ipckit::detail {

/// spin_us= of the URL (how long a receive busy-polls before it sleeps, at
/// most one second), else default_read_spin.
std::chrono::nanoseconds read_spin(const url& u);

using channel_factory = std::unique_ptr<channel> (*)(const url&, channel_role, const open_options&);

std::unique_ptr<channel> open_stdio_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_fifo_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_mq_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_sysvmq_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_unix_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_tcp_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_udp_channel(const url&, channel_role, const open_options&);
std::unique_ptr<channel> open_shm_channel(const url&, channel_role, const open_options&);

}  // namespace ipckit::detail
