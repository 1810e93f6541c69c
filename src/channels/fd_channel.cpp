// Channels over descriptors the caller already has, and the anonymous pipe pair.
#include "channels/stream_channel.hpp"
#include "ipckit/pipe.hpp"

namespace ipckit {

std::unique_ptr<channel> make_fd_channel(std::string name, unique_fd read_fd, unique_fd write_fd,
                                         framing frame, std::size_t max_message) {
    detail::stream_options so;
    so.frame = frame;
    so.max_message = max_message;
    if (!write_fd.valid())
        return std::make_unique<detail::stream_channel>(std::move(name), std::move(read_fd), so);
    return std::make_unique<detail::stream_channel>(std::move(name), std::move(read_fd),
                                                    std::move(write_fd), so);
}

pipe_channels make_pipe_channels(framing frame, std::size_t max_message) {
    detail::stream_options so;
    so.frame = frame;
    so.max_message = max_message;
    // Large frames as chunk records: processes that share this pipe after
    // fork() may all write to it (each process's records carry its own
    // writer id), and the reader starts on a large message one page in.
    so.chunk_large_frames = true;
    pipe_pair p = make_pipe();
    detail::widen_pipe(p.write_end.get());
    pipe_channels out;
    out.reader = std::make_unique<detail::stream_channel>("pipe (read end)", std::move(p.read_end),
                                                          unique_fd{}, so);
    out.writer = std::make_unique<detail::stream_channel>("pipe (write end)", unique_fd{},
                                                          std::move(p.write_end), so);
    return out;
}

}  // namespace ipckit
