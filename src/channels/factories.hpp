// Private: one factory per transport, looked up by scheme in registry.cpp.
#pragma once

#include <memory>

#include "ipckit/channel.hpp"
#include "ipckit/url.hpp"

namespace ipckit::detail {

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
