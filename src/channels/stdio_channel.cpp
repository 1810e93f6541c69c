// stdio: reads stdin, writes stdout; raw by default so it composes with any
// tool. The descriptors are duplicated (not taken over) and left blocking:
// O_NONBLOCK would leak into the terminal's shared file description.
#include "channels/factories.hpp"
#include "channels/stream_channel.hpp"

namespace ipckit::detail {

std::unique_ptr<channel> open_stdio_channel(const url& u, channel_role, const open_options&) {
    stream_options so;
    so.frame = u.frame(framing::raw);
    so.max_message = u.max_message(default_max_message);
    so.make_nonblocking = false;
    return std::make_unique<stream_channel>(u.text, dup_cloexec(0), dup_cloexec(1), so);
}

}  // namespace ipckit::detail
