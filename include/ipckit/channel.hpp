// One interface for "send a whole message / receive a whole message", shared
// by every transport and opened from a URL (see url.hpp).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ipckit/deadline.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/url.hpp"

namespace ipckit {

/// Routine outcomes of a channel operation: never exceptions.
enum class io_status {
    ok,         ///< the whole message went out / came in
    timed_out,  ///< the deadline passed first; nothing was sent / consumed
    closed,     ///< the peer is gone (EOF, EPIPE, queue removed, ring owner dead)
};

/// Human name of a status ("ok", "timed out", "closed").
const char* to_string(io_status s) noexcept;

/// One message: its bytes plus optional transport metadata.
struct message {
    std::string payload;      ///< arbitrary bytes (not NUL-terminated text)
    std::optional<long> tag;  ///< POSIX mq priority or System V message type
};

/// Who this end is; decides the lecture's default roles (the receiver owns the
/// FIFO / queue / listening socket / ring, the sender connects to it).
enum class channel_role { sender, receiver };

/// Overrides the default role-based choice of who creates or listens.
enum class endpoint_mode { automatic, listen, connect };

/// Default bound on one message for framed transports (16 MiB).
inline constexpr std::size_t default_max_message = 16u << 20;

/// A message channel. Implementations are not thread-safe unless they say so.
class channel {
  public:
    virtual ~channel() = default;
    channel() = default;
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;

    /// Sends one whole message. tag is the priority / type where the transport
    /// has one (ignored otherwise). A message longer than max_message() throws
    /// ipckit::error(EMSGSIZE) naming both sizes, before anything is sent.
    virtual io_status send(std::string_view payload, const deadline& until = deadline::never(),
                           std::optional<long> tag = std::nullopt) = 0;

    /// Receives one whole message into out (its buffer is reused). On
    /// timed_out or closed, out is left unspecified and nothing is lost: a
    /// later call continues where this one stopped.
    virtual io_status receive(message& out, const deadline& until = deadline::never()) = 0;

    /// Largest payload this channel sends or accepts.
    virtual std::size_t max_message() const noexcept = 0;

    /// The URL (or description) this channel was opened from.
    virtual const std::string& name() const noexcept = 0;

    /// A descriptor that polls readable when receive() may make progress,
    /// or -1 when the transport has none (e.g. the shared-memory ring).
    virtual int poll_fd() const noexcept { return -1; }
};

/// Options for open_channel().
struct open_options {
    endpoint_mode endpoint = endpoint_mode::automatic;
    /// How long opening may wait for a peer (a FIFO writer waits for a reader,
    /// a TCP connect for the handshake). Timing out throws ipckit::error(ETIMEDOUT).
    deadline open_deadline = deadline::never();
    /// Listening stream sockets (unix:, tcp://): a client that breaks the
    /// framing (a frame above max_message, a malformed chunk) is disconnected
    /// and the listener goes on with the others; this hears why (e.g. to log
    /// it). Without it the client is dropped silently.
    std::function<void(const std::string& why)> on_client_dropped;
};

/// Opens the channel named by url (see url.hpp for the schemes). Throws
/// url_error for a malformed URL, ipckit::error for a failed system call and
/// ipckit::error(ENOSYS) for a scheme whose transport is not built in.
std::unique_ptr<channel> open_channel(std::string_view url, channel_role role,
                                      const open_options& options = {});

/// A framed channel over descriptors you already have: an inherited pipe end,
/// a socketpair end (pass it as read_fd and leave write_fd empty to use it
/// both ways), a connected stream socket. The channel owns the fds and puts
/// them in O_NONBLOCK mode (a read-only fd stays blocking when a write fd
/// is given too). A receive busy-polls for 10 us before it sleeps, when the
/// process may use two CPUs or more, with reads that never wait whatever
/// the fd's mode. With framing::length, max_message must fit the
/// 4-byte frame header: above 2^32-2 it throws ipckit::error(EINVAL) (as
/// does make_pipe_channels).
std::unique_ptr<channel> make_fd_channel(std::string name, unique_fd read_fd, unique_fd write_fd,
                                         framing frame = framing::length,
                                         std::size_t max_message = default_max_message);

/// Both ends of an anonymous pipe as channels: fork, then the parent keeps one
/// and the child the other (close the end you do not use). Several forked
/// processes may send on one writer: a frame up to PIPE_BUF (4096 bytes with
/// its header) is one atomic write, a larger one goes as atomic chunk records
/// that the reader reassembles per writer process (docs/pipes-fifos.md). With
/// framing::line, lines longer than PIPE_BUF from several writers may
/// interleave.
struct pipe_channels {
    std::unique_ptr<channel> reader;
    std::unique_ptr<channel> writer;
};
pipe_channels make_pipe_channels(framing frame = framing::length,
                                 std::size_t max_message = default_max_message);

}  // namespace ipckit
