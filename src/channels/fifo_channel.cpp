// fifo:/path. The receiver owns the FIFO (creates it, open_or_create by
// default) and keeps a write end open itself, so it never sees EOF between
// writers: like a listening socket it serves one writer after another with
// no close/reopen window. The sender opens an existing FIFO and waits for a
// reader until the open deadline. A FIFO the receiver created is removed
// when its channel closes.
#include <unistd.h>

#include "channels/factories.hpp"
#include "channels/stream_channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/fifo.hpp"

namespace ipckit::detail {

std::unique_ptr<channel> open_fifo_channel(const url& u, channel_role role,
                                           const open_options& options) {
    stream_options so;
    so.frame = u.frame(framing::length);
    so.max_message = u.max_message(default_max_message);
    so.chunk_large_frames = true;  // several writers: see chunk_header
    so.lock_large_writes = true;
    so.spin = read_spin(u);
    bool owner = options.endpoint == endpoint_mode::listen ||
                 (options.endpoint == endpoint_mode::automatic && role == channel_role::receiver);
    open_mode how = u.create().value_or(owner ? open_mode::open_or_create : open_mode::open_only);
    bool created = how != open_mode::open_only && create_fifo(u.path, how, u.permissions(0600));

    if (role == channel_role::receiver) {
        unique_fd rd = open_fifo_reader(u.path, open_mode::open_only);
        widen_pipe(rd.get());
        auto keep = open_fifo_writer(u.path, deadline::immediate());  // we are the reader
        auto ch = std::make_unique<stream_channel>(u.text, std::move(rd), unique_fd{}, so);
        if (keep) ch->keep_open(std::move(*keep));
        // Like the lecture's reader: whoever made the FIFO removes it.
        // Only the creating process removes it: a forked child that inherits
        // the channel and destroys its copy must not pull the FIFO away.
        if (created)
            ch->on_close([path = u.path, creator = ::getpid()] {
                if (::getpid() == creator) remove_fifo(path);
            });
        return ch;
    }
    auto wr = open_fifo_writer(u.path, options.open_deadline);
    if (!wr) throw_error(ETIMEDOUT, "open", u.text, "no reader opened the FIFO in time");
    return std::make_unique<stream_channel>(u.text, unique_fd{}, std::move(*wr), so);
}

}  // namespace ipckit::detail
