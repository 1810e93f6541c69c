// Sockets: Unix (pathname, abstract, socketpair), TCP and UDP over IPv4/IPv6,
// peer credentials with an allow-list, and fd passing (SCM_RIGHTS).
//
// Every socket is close-on-exec; every send uses MSG_NOSIGNAL, so a closed
// peer is the value io_status::closed and never SIGPIPE. Timeouts are values
// (io_status::timed_out, std::nullopt, connect_status::timed_out).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/channel.hpp"
#include "ipckit/deadline.hpp"
#include "ipckit/fd.hpp"

namespace ipckit {

/// SOCK_STREAM (bytes), SOCK_DGRAM (datagrams) or SOCK_SEQPACKET (connected,
/// ordered, message boundaries kept; Unix only).
enum class socket_type { stream, dgram, seqpacket };

/// "stream", "dgram", "seqpacket".
const char* to_string(socket_type t) noexcept;
/// Parses "stream" | "dgram" | "seqpacket"; nullopt otherwise.
std::optional<socket_type> parse_socket_type(std::string_view text) noexcept;

/// Size of sockaddr_un::sun_path (108 on Linux): a pathname must be shorter
/// (it needs its NUL), an abstract name (without the '@') at most 107 bytes.
inline constexpr std::size_t unix_path_max = 108;

/// Who is at the other end of a connected Unix socket (SO_PEERCRED): the
/// values at connect() time, checked by the kernel, not claimed by the peer.
struct peer_credentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

/// An allow-list by uid and gid. Empty = everyone who can reach the socket.
/// A peer is allowed if its uid is in uids or its gid is in gids.
struct peer_policy {
    std::vector<uid_t> uids;
    std::vector<gid_t> gids;
    bool empty() const noexcept { return uids.empty() && gids.empty(); }
    bool allows(const peer_credentials& c) const noexcept;
};

/// An allow-list as unix: URLs write it (`?allow=`): "any" (no list), or a
/// comma list of uids and of gids prefixed with 'g' ("1000,g27"). Throws
/// std::invalid_argument naming the bad entry.
peer_policy parse_peer_policy(std::string_view text);

/// The allow-list a unix: URL listens with when it gives no `allow=`: an
/// abstract name, which has no file permissions, admits only this user and
/// root (as a 0600 socket file would); a pathname, none beyond its mode.
peer_policy default_peer_policy(std::string_view address);

/// A connected (or bound datagram) socket. Move-only; closes on destruction.
/// (Named `sock` so that `using namespace ipckit` does not hide ::socket().)
class sock {
  public:
    sock() = default;
    sock(unique_fd fd, socket_type type, std::string name) noexcept
        : fd_(std::move(fd)), type_(type), name_(std::move(name)) {}

    int fd() const noexcept { return fd_.get(); }
    bool valid() const noexcept { return fd_.valid(); }
    socket_type type() const noexcept { return type_; }
    /// What the socket was opened as ("unix:/run/x", "tcp://[::1]:80"), used in errors.
    const std::string& name() const noexcept { return name_; }
    unique_fd release_fd() noexcept { return std::move(fd_); }

    /// Sends all of bytes (streams: loops over partial sends; datagrams and
    /// seqpackets: one message). closed when the peer is gone.
    io_status send(std::string_view bytes, const deadline& until = deadline::never());
    /// Streams: up to max bytes as they come (empty + closed at EOF).
    /// Datagrams/seqpackets: one whole message; a message longer than max
    /// is consumed and throws ipckit::error(EMSGSIZE) naming both sizes
    /// (its size is learned with MSG_PEEK|MSG_TRUNC, before allocating).
    io_status receive(std::string& out, std::size_t max, const deadline& until = deadline::never());

    /// Sends bytes (at least one byte on streams) together with fds
    /// (SCM_RIGHTS, up to 253 per message). The fds stay open here.
    io_status send_fds(std::string_view bytes, std::span<const int> fds,
                       const deadline& until = deadline::never());
    /// Receives up to max bytes and the fds that came with them, close-on-exec
    /// (MSG_CMSG_CLOEXEC). At most max_fds fds are expected; if the kernel
    /// had to truncate the control data (MSG_CTRUNC), every fd that did arrive
    /// is closed and ipckit::error(EMSGSIZE) is thrown.
    io_status receive_fds(std::string& out, std::size_t max, std::vector<unique_fd>& fds,
                          std::size_t max_fds = 16, const deadline& until = deadline::never());

    /// SO_PEERCRED of a connected Unix socket.
    peer_credentials peer() const;
    /// TCP_NODELAY on or off (TCP only): small messages go out at once.
    void set_nodelay(bool on);
    /// shutdown(SHUT_WR): the peer reads EOF, we can still read.
    void shutdown_write() noexcept;
    /// Local port of an inet socket (0 for others).
    std::uint16_t local_port() const;

  private:
    unique_fd fd_;
    socket_type type_ = socket_type::stream;
    std::string name_;
};

/// A pair of connected Unix sockets (socketpair), close-on-exec: the
/// lecture's parent/child channel, the usual carrier for fd passing.
std::pair<sock, sock> make_socket_pair(socket_type type = socket_type::stream);

/// Options of a Unix listener.
struct unix_listen_options {
    unsigned mode = 0600;  ///< permissions of a pathname socket file
    int backlog = 128;
    peer_policy allow;  ///< checked on accept, before a byte is read
};

/// A bound Unix socket: listening (stream/seqpacket) or receiving (dgram).
///
/// Address: "/path" (a file in the filesystem) or "@name" (abstract: no file,
/// gone with the last fd, and reachable by anyone in the network namespace,
/// so an abstract listener must rely on its allow-list, not on permissions).
/// A pathname socket is created with `mode` (0600) from the start: the
/// socket is fchmod'ed before bind, then the file chmod'ed, so no window exists where
/// others could connect. If the path holds a socket file whose server is
/// dead (a connect probe is refused), it is replaced; a live server's socket
/// is never stolen (EADDRINUSE); any other kind of file is an error
/// (EEXIST). The destructor unlinks the file it created (if still the same),
/// in the process that created it only (not in a forked child).
class unix_listener {
  public:
    unix_listener() = default;
    unix_listener(std::string_view address, socket_type type,
                  const unix_listen_options& options = {});
    unix_listener(unix_listener&&) noexcept;
    unix_listener& operator=(unix_listener&&) noexcept;
    ~unix_listener();

    /// Accepts the next allowed peer (accept4, close-on-exec); peers refused
    /// by the allow-list are closed unread and skipped. nullopt on timeout.
    /// Stream/seqpacket only.
    std::optional<sock> accept(const deadline& until = deadline::never());
    /// The bound socket itself (dgram: receive from it).
    sock& bound() noexcept { return sock_; }
    int fd() const noexcept { return sock_.fd(); }
    const std::string& address() const noexcept { return address_; }
    /// Peers the allow-list refused so far.
    std::size_t rejected() const noexcept { return rejected_; }

  private:
    void cleanup() noexcept;
    sock sock_;
    std::string address_;
    peer_policy allow_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    bool owns_file_ = false;
    pid_t owner_pid_ = 0;
    std::size_t rejected_ = 0;
};

/// Outcome of a connect that can legitimately fail.
enum class connect_status { ok, refused, timed_out };

/// Connects to a Unix address ("/path" or "@name"). A missing socket file or
/// a dead server is refused, never an exception.
connect_status try_connect_unix(std::string_view address, socket_type type, sock& out,
                                const deadline& until = deadline::never());
/// Same, throwing ipckit::error(ECONNREFUSED / ETIMEDOUT) on failure.
sock connect_unix(std::string_view address, socket_type type,
                  const deadline& until = deadline::never());

/// Removes the socket file at path if it is a socket (ENOENT is fine).
/// Throws for anything that is not a socket.
void remove_unix_socket(std::string_view path);

/// A host and port: "host:port", "[v6addr]:port" or "v4addr:port".
struct inet_endpoint {
    std::string host;
    std::uint16_t port = 0;
    /// Parses the forms above; throws std::invalid_argument pointing at the bad part.
    static inet_endpoint parse(std::string_view text);
    /// "host:port" or "[v6]:port".
    std::string to_string() const;
};

/// A TCP listener (SO_REUSEADDR, accept4). host "" or "*" = all addresses;
/// port 0 = an ephemeral port (see port()).
class tcp_listener {
  public:
    tcp_listener() = default;
    tcp_listener(const std::string& host, std::uint16_t port, int backlog = 128);
    /// nullopt on timeout. Accepted sockets have TCP_NODELAY set.
    std::optional<sock> accept(const deadline& until = deadline::never());
    std::uint16_t port() const { return sock_.local_port(); }
    int fd() const noexcept { return sock_.fd(); }
    const std::string& name() const noexcept { return sock_.name(); }

  private:
    sock sock_;
};

/// Resolves host (getaddrinfo) and connects to the first address that
/// answers, non-blocking connect + poll so the deadline holds for the
/// whole attempt. TCP_NODELAY is set when nodelay.
connect_status try_connect_tcp(const std::string& host, std::uint16_t port, sock& out,
                               const deadline& until = deadline::never(), bool nodelay = true);
sock connect_tcp(const std::string& host, std::uint16_t port,
                 const deadline& until = deadline::never(), bool nodelay = true);

/// A UDP socket bound to host:port (port 0 = ephemeral).
sock bind_udp(const std::string& host, std::uint16_t port);
/// A UDP socket connected to host:port: send() goes there, receive() only
/// accepts datagrams from there. (UDP has no handshake: a missing receiver
/// may show up later as closed on send/receive, from ICMP port unreachable.)
sock connect_udp(const std::string& host, std::uint16_t port);

/// Largest UDP payload over IPv4 (65535 - 20 - 8).
inline constexpr std::size_t udp_max_payload = 65507;

}  // namespace ipckit
