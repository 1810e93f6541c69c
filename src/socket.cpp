#include "ipckit/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {

static_assert(sizeof(sockaddr_un::sun_path) == unix_path_max);

namespace {

int native_type(socket_type t) noexcept {
    switch (t) {
        case socket_type::stream:
            return SOCK_STREAM;
        case socket_type::dgram:
            return SOCK_DGRAM;
        case socket_type::seqpacket:
            return SOCK_SEQPACKET;
    }
    return SOCK_STREAM;
}

io_status to_status(detail::io_outcome o) noexcept {
    switch (o) {
        case detail::io_outcome::ok:
            return io_status::ok;
        case detail::io_outcome::timed_out:
            return io_status::timed_out;
        case detail::io_outcome::closed:
            return io_status::closed;
    }
    return io_status::closed;
}

bool is_peer_gone(int e) noexcept {
    return e == EPIPE || e == ECONNRESET || e == ECONNREFUSED;
}

// A sockaddr_un built from "/path" or "@name", with its exact length (the
// abstract name is not NUL-terminated: its length is part of the address).
struct unix_addr {
    sockaddr_un sa{};
    socklen_t len = 0;
    bool abstract = false;
    std::string display;  // "unix:/path" or "unix:@name"
};

unix_addr make_unix_addr(std::string_view address) {
    unix_addr a;
    a.sa.sun_family = AF_UNIX;
    a.display = "unix:" + std::string(address);
    if (address.empty())
        throw_error(EINVAL, "address", a.display, "empty Unix socket address: use /path or @name");
    if (address.find('\0') != std::string_view::npos)
        throw_error(EINVAL, "address", a.display, "NUL byte in Unix socket address");
    if (address.front() == '@') {
        auto name = address.substr(1);
        if (name.empty())
            throw_error(EINVAL, "address", a.display, "empty abstract name after '@'");
        if (name.size() > unix_path_max - 1)
            throw_error(ENAMETOOLONG, "address", a.display,
                        "abstract name is " + std::to_string(name.size()) +
                            " bytes, the limit is " + std::to_string(unix_path_max - 1) +
                            " (sun_path is " + std::to_string(unix_path_max) + " bytes)");
        a.abstract = true;
        a.sa.sun_path[0] = '\0';
        std::memcpy(a.sa.sun_path + 1, name.data(), name.size());
        a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        return a;
    }
    if (address.size() >= unix_path_max)
        throw_error(ENAMETOOLONG, "address", a.display,
                    "path is " + std::to_string(address.size()) + " bytes, the limit is " +
                        std::to_string(unix_path_max - 1) + " (sun_path is " +
                        std::to_string(unix_path_max) +
                        " bytes with the NUL); use a shorter path or an abstract @name");
    std::memcpy(a.sa.sun_path, address.data(), address.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + 1);
    return a;
}

unique_fd new_socket(int family, socket_type type, std::string_view object, bool nonblock = false) {
    int fd = ::socket(family, native_type(type) | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) throw_errno("socket", object);
    return unique_fd(fd);
}

// Non-blocking connect + poll so that the deadline bounds the handshake.
// Returns 0 (connected, fd blocking again), ECONNREFUSED (nobody there),
// EAGAIN (Unix: backlog full, the server is alive but busy) or ETIMEDOUT.
int connect_with_deadline(int fd, const sockaddr* sa, socklen_t len, const deadline& until,
                          std::string_view object) {
    set_nonblocking(fd, true);
    int r = ::connect(fd, sa, len);
    if (r != 0 && errno == EINTR) errno = EINPROGRESS;  // the connect goes on in the background
    if (r != 0) {
        if (errno == ECONNREFUSED || errno == ENOENT) return ECONNREFUSED;
        if (errno == EAGAIN) return EAGAIN;
        if (errno != EINPROGRESS) throw_errno("connect", object);
        auto w = detail::wait_writable(fd, until, object);
        if (w == detail::io_outcome::timed_out) return ETIMEDOUT;
        int err = 0;
        socklen_t el = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            throw_errno("getsockopt", object);
        if (err == ECONNREFUSED || err == ETIMEDOUT) return err;
        if (err != 0) throw_error(err, "connect", object);
    }
    set_nonblocking(fd, false);
    return 0;
}

connect_status to_connect_status(int code) noexcept {
    if (code == 0) return connect_status::ok;
    if (code == ETIMEDOUT) return connect_status::timed_out;
    return connect_status::refused;
}

std::string inet_display(const char* scheme, const std::string& host, std::uint16_t port) {
    return std::string(scheme) + "://" + inet_endpoint{host, port}.to_string();
}

struct addrinfo_list {
    addrinfo* head = nullptr;
    ~addrinfo_list() {
        if (head) ::freeaddrinfo(head);
    }
};

void resolve(addrinfo_list& out, const std::string& host, std::uint16_t port, int socktype,
             bool passive, std::string_view object) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    const bool any = host.empty() || host == "*";
    std::string service = std::to_string(port);
    int r = ::getaddrinfo(any ? nullptr : host.c_str(), service.c_str(), &hints, &out.head);
    if (r != 0) {
        if (r == EAI_SYSTEM) throw_errno("getaddrinfo", object);
        throw_error(r == EAI_NONAME ? ENOENT : EINVAL, "getaddrinfo", object, ::gai_strerror(r));
    }
}

std::uint16_t port_of(const sockaddr_storage& ss) noexcept {
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
    return 0;
}

void close_all(std::vector<unique_fd>& fds) noexcept {
    fds.clear();
}

}  // namespace

const char* to_string(socket_type t) noexcept {
    switch (t) {
        case socket_type::stream:
            return "stream";
        case socket_type::dgram:
            return "dgram";
        case socket_type::seqpacket:
            return "seqpacket";
    }
    return "?";
}

std::optional<socket_type> parse_socket_type(std::string_view text) noexcept {
    if (text == "stream") return socket_type::stream;
    if (text == "dgram") return socket_type::dgram;
    if (text == "seqpacket") return socket_type::seqpacket;
    return std::nullopt;
}

bool peer_policy::allows(const peer_credentials& c) const noexcept {
    if (empty()) return true;
    return std::find(uids.begin(), uids.end(), c.uid) != uids.end() ||
           std::find(gids.begin(), gids.end(), c.gid) != gids.end();
}

peer_policy parse_peer_policy(std::string_view text) {
    peer_policy p;
    if (text == "any") return p;
    auto bad = [&](std::string_view entry) {
        throw std::invalid_argument("allow: '" + std::string(entry) +
                                    "' is not a uid, g<gid> or 'any' (e.g. allow=1000,g27)");
    };
    std::size_t pos = 0;
    do {
        std::size_t comma = text.find(',', pos);
        std::string_view entry =
            text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
        const bool gid = !entry.empty() && entry[0] == 'g';
        std::string_view digits = gid ? entry.substr(1) : entry;
        unsigned long v = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
            v >= static_cast<unsigned long>(static_cast<uid_t>(-1)))
            bad(entry);
        if (gid)
            p.gids.push_back(static_cast<gid_t>(v));
        else
            p.uids.push_back(static_cast<uid_t>(v));
        pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    } while (pos <= text.size());
    return p;
}

peer_policy default_peer_policy(std::string_view address) {
    peer_policy p;
    if (!address.empty() && address[0] == '@') p.uids = {::geteuid(), 0};
    return p;
}

// ---- socket ---------------------------------------------------------------

io_status sock::send(std::string_view bytes, const deadline& until) {
    if (type_ == socket_type::stream) {
        return to_status(detail::write_all(
            fd(), std::as_bytes(std::span(bytes.data(), bytes.size())), until, name_));
    }
    for (;;) {
        ssize_t n = ::send(fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return io_status::ok;  // datagrams go out whole or not at all
        if (errno == EINTR) continue;
        if (is_peer_gone(errno) || errno == ENOTCONN) return io_status::closed;
        if (errno == EMSGSIZE)
            throw_error(EMSGSIZE, "send", name_,
                        "message is " + std::to_string(bytes.size()) +
                            " bytes, more than the sock accepts in one datagram");
        if (errno != EAGAIN && errno != ENOBUFS) throw_errno("send", name_);
        auto w = detail::wait_writable(fd(), until, name_);
        if (w != detail::io_outcome::ok) return to_status(w);
    }
}

io_status sock::receive(std::string& out, std::size_t max, const deadline& until) {
    std::vector<unique_fd> none;
    return receive_fds(out, max, none, 0, until);
}

io_status sock::send_fds(std::string_view bytes, std::span<const int> fds, const deadline& until) {
    if (fds.empty()) return send(bytes, until);
    if (fds.size() > 253)
        throw_error(EINVAL, "sendmsg", name_,
                    std::to_string(fds.size()) + " fds, the kernel limit is 253 per message");
    if (bytes.empty() && type_ == socket_type::stream)
        throw_error(EINVAL, "sendmsg", name_, "fds need at least one data byte on a stream socket");
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    std::string_view rest = bytes;
    bool fds_sent = false;
    for (;;) {
        iovec iov{const_cast<char*>(rest.data()), rest.size()};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        if (!fds_sent) {
            mh.msg_control = control.data();
            mh.msg_controllen = control.size();
            cmsghdr* c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
        }
        ssize_t n = ::sendmsg(fd(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (is_peer_gone(errno) || errno == ENOTCONN) return io_status::closed;
            if (errno != EAGAIN) throw_errno("sendmsg", name_);
            auto w = detail::wait_writable(fd(), until, name_);
            if (w != detail::io_outcome::ok) return to_status(w);
            continue;
        }
        fds_sent = true;  // the fds travel with the first byte that went out
        if (type_ != socket_type::stream) return io_status::ok;
        rest.remove_prefix(static_cast<std::size_t>(n));
        if (rest.empty()) return io_status::ok;
        // The rest of the bytes go out without control data.
        return to_status(detail::write_all(fd(), std::as_bytes(std::span(rest.data(), rest.size())),
                                           until, name_));
    }
}

io_status sock::receive_fds(std::string& out, std::size_t max, std::vector<unique_fd>& fds,
                            std::size_t max_fds, const deadline& until) {
    fds.clear();
    const bool message = type_ != socket_type::stream;
    for (;;) {
        if (!until.is_never()) {
            auto w = detail::wait_readable(fd(), until, name_);
            if (w != detail::io_outcome::ok) return to_status(w);
        }
        std::size_t want = max;
        if (message) {
            // Learn the message size first so an oversized one is rejected
            // before anything of its size is allocated.
            ssize_t n = ::recv(fd(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (is_peer_gone(errno)) return io_status::closed;
                if (errno != EAGAIN) throw_errno("recv", name_);
                auto w = detail::wait_readable(fd(), until, name_);
                if (w != detail::io_outcome::ok) return to_status(w);
                continue;
            }
            want = static_cast<std::size_t>(n);
            if (want > max) {
                char sink;
                [[maybe_unused]] auto ignored = ::recv(fd(), &sink, 1, MSG_DONTWAIT);  // drop it
                throw_error(EMSGSIZE, "recv", name_,
                            "message is " + std::to_string(want) + " bytes, max_message is " +
                                std::to_string(max));
            }
        }
        out.resize(want);
        std::vector<char> control(max_fds ? CMSG_SPACE(sizeof(int) * max_fds) : 0);
        iovec iov{out.data(), out.size()};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control.empty() ? nullptr : control.data();
        mh.msg_controllen = control.size();
        ssize_t n = ::recvmsg(fd(), &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (is_peer_gone(errno)) return io_status::closed;
            if (errno != EAGAIN) throw_errno("recvmsg", name_);
            auto w = detail::wait_readable(fd(), until, name_);
            if (w != detail::io_outcome::ok) return to_status(w);
            continue;
        }
        // Take ownership of every fd that arrived before looking at anything
        // else, so none can leak whatever happens next.
        for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int received;
                std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                fds.emplace_back(received);
            }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            std::size_t arrived = fds.size();
            close_all(fds);
            throw_error(EMSGSIZE, "recvmsg", name_,
                        "control data truncated (MSG_CTRUNC): more fds were sent than the " +
                            std::to_string(max_fds) + " expected; the " + std::to_string(arrived) +
                            " that arrived were closed");
        }
        out.resize(static_cast<std::size_t>(n));
        if (n == 0 && !message) return io_status::closed;  // stream EOF
        if (n == 0 && type_ == socket_type::seqpacket) {
            // A zero-length read on seqpacket is either EOF or an empty
            // record. EOF: the peer is gone (POLLHUP) or shut down writing
            // (POLLRDHUP, as socat does at end of input) and no record with
            // bytes is queued behind this one. (An empty record sent just
            // before the shutdown reads as the end: the kernel tells them
            // apart nowhere.)
            pollfd p{fd(), POLLIN | POLLRDHUP, 0};
            if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) &&
                ::recv(fd(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT) <= 0)
                return io_status::closed;
        }
        return io_status::ok;
    }
}

peer_credentials sock::peer() const {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        throw_errno("getsockopt(SO_PEERCRED)", name_);
    return {cred.pid, cred.uid, cred.gid};
}

void sock::set_nodelay(bool on) {
    int v = on ? 1 : 0;
    if (::setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
        throw_errno("setsockopt(TCP_NODELAY)", name_);
}

void sock::shutdown_write() noexcept {
    ::shutdown(fd(), SHUT_WR);
}

std::uint16_t sock::local_port() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw_errno("getsockname", name_);
    return port_of(ss);
}

std::pair<sock, sock> make_socket_pair(socket_type type) {
    int sv[2];
    if (::socketpair(AF_UNIX, native_type(type) | SOCK_CLOEXEC, 0, sv) != 0)
        throw_errno("socketpair", std::string("unix ") + to_string(type));
    return {sock(unique_fd(sv[0]), type, "socketpair[0]"),
            sock(unique_fd(sv[1]), type, "socketpair[1]")};
}

// ---- Unix ------------------------------------------------------------------

unix_listener::unix_listener(std::string_view address, socket_type type,
                             const unix_listen_options& options)
    : address_(address), allow_(options.allow) {
    unix_addr a = make_unix_addr(address);
    unique_fd fd = new_socket(AF_UNIX, type, a.display);
    if (!a.abstract) {
        std::string path(address);
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                throw_error(EEXIST, "bind", a.display, "the path exists and is not a socket");
            // A socket file: is a server still behind it? Probe with a connect.
            unique_fd probe = new_socket(AF_UNIX, type, a.display, true);
            int r = ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a.sa), a.len);
            if (r == 0 || errno == EINPROGRESS || errno == EAGAIN)
                throw_error(EADDRINUSE, "bind", a.display, "a live server is listening there");
            if (errno != ECONNREFUSED && errno != EPROTOTYPE)
                throw_errno("connect (stale sock probe)", a.display);
            if (errno == EPROTOTYPE)
                throw_error(EADDRINUSE, "bind", a.display, "a sock of another type is bound there");
            // Refused: the file is a leftover of a dead server.
            if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", a.display);
        } else if (errno != ENOENT) {
            throw_errno("lstat", a.display);
        }
        // bind() creates the file with the socket inode's mode less the
        // umask: narrowing the inode first means the file never exists with
        // wider permissions, without touching the process-wide umask (which
        // other threads share). chmod below then sets the exact mode.
        if (::fchmod(fd.get(), options.mode & 0777) != 0) throw_errno("fchmod", a.display);
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.sa), a.len) != 0)
            throw_errno("bind", a.display);
        owns_file_ = true;
        owner_pid_ = ::getpid();
        if (::lstat(path.c_str(), &st) == 0) {
            dev_ = st.st_dev;
            ino_ = st.st_ino;
        }
        if (::chmod(path.c_str(), options.mode & 07777) != 0) {
            int e = errno;
            cleanup();
            throw_error(e, "chmod", a.display);
        }
    } else if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.sa), a.len) != 0) {
        throw_errno("bind", a.display);
    }
    if (type != socket_type::dgram && ::listen(fd.get(), options.backlog) != 0) {
        int e = errno;
        cleanup();
        throw_error(e, "listen", a.display);
    }
    sock_ = sock(std::move(fd), type, a.display);
}

unix_listener::unix_listener(unix_listener&& o) noexcept
    : sock_(std::move(o.sock_)),
      address_(std::move(o.address_)),
      allow_(std::move(o.allow_)),
      dev_(o.dev_),
      ino_(o.ino_),
      owns_file_(std::exchange(o.owns_file_, false)),
      owner_pid_(o.owner_pid_),
      rejected_(o.rejected_) {}

unix_listener& unix_listener::operator=(unix_listener&& o) noexcept {
    if (this != &o) {
        cleanup();
        sock_ = std::move(o.sock_);
        address_ = std::move(o.address_);
        allow_ = std::move(o.allow_);
        dev_ = o.dev_;
        ino_ = o.ino_;
        owns_file_ = std::exchange(o.owns_file_, false);
        owner_pid_ = o.owner_pid_;
        rejected_ = o.rejected_;
    }
    return *this;
}

unix_listener::~unix_listener() {
    cleanup();
}

void unix_listener::cleanup() noexcept {
    if (!owns_file_) return;
    owns_file_ = false;
    // A forked child (a worker sharing the listener) leaves the file to the
    // process that created it, whose clients still connect through it.
    if (::getpid() != owner_pid_) return;
    // Only remove the file we created: another server may have replaced it.
    struct stat st {};
    if (::lstat(address_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ &&
        st.st_ino == ino_)
        ::unlink(address_.c_str());
}

namespace {

// Waits for and accepts one connection (close-on-exec, left blocking: sends
// use MSG_DONTWAIT); nullopt when the deadline passes first.
std::optional<unique_fd> accept_connection(int listen_fd, const deadline& until,
                                           const std::string& name) {
    for (;;) {
        if (detail::wait_readable(listen_fd, until, name) == detail::io_outcome::timed_out)
            return std::nullopt;
        int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
            throw_errno("accept4", name);
        }
        unique_fd cfd(c);
        set_nonblocking(c, false);
        return cfd;
    }
}

}  // namespace

std::optional<sock> unix_listener::accept(const deadline& until) {
    if (sock_.type() == socket_type::dgram)
        throw_error(EOPNOTSUPP, "accept", sock_.name(), "a datagram sock has no connections");
    for (;;) {
        auto cfd = accept_connection(fd(), until, sock_.name());
        if (!cfd) return std::nullopt;
        sock s(std::move(*cfd), sock_.type(), sock_.name());
        if (!allow_.empty() && !allow_.allows(s.peer())) {
            ++rejected_;  // closed unread: not one byte of a refused peer is looked at
            continue;
        }
        return s;
    }
}

connect_status try_connect_unix(std::string_view address, socket_type type, sock& out,
                                const deadline& until) {
    unix_addr a = make_unix_addr(address);
    unique_fd fd = new_socket(AF_UNIX, type, a.display);
    for (;;) {
        int r = connect_with_deadline(fd.get(), reinterpret_cast<const sockaddr*>(&a.sa), a.len,
                                      until, a.display);
        if (r == 0) break;
        if (r == EAGAIN) {
            // Backlog full: the server is alive but busy; retry until the deadline.
            if (until.expired()) return connect_status::timed_out;
            ::poll(nullptr, 0, 5);
            fd = new_socket(AF_UNIX, type, a.display);
            continue;
        }
        return to_connect_status(r);
    }
    out = sock(std::move(fd), type, a.display);
    return connect_status::ok;
}

sock connect_unix(std::string_view address, socket_type type, const deadline& until) {
    sock s;
    auto r = try_connect_unix(address, type, s, until);
    if (r == connect_status::refused)
        throw_error(ECONNREFUSED, "connect", "unix:" + std::string(address),
                    "no server is listening there");
    if (r == connect_status::timed_out)
        throw_error(ETIMEDOUT, "connect", "unix:" + std::string(address));
    return s;
}

void remove_unix_socket(std::string_view path) {
    std::string p(path);
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw_errno("lstat", "unix:" + p);
    }
    if (!S_ISSOCK(st.st_mode)) throw_error(EINVAL, "remove", "unix:" + p, "not a socket");
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", "unix:" + p);
}

// ---- inet ------------------------------------------------------------------

inet_endpoint inet_endpoint::parse(std::string_view text) {
    auto bad = [&](const std::string& why) -> std::invalid_argument {
        return std::invalid_argument("bad address '" + std::string(text) + "': " + why);
    };
    inet_endpoint e;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) throw bad("missing ']' after IPv6 address");
        e.host = std::string(text.substr(1, close - 1));
        auto rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':') throw bad("expected ':port' after ']'");
        port_text = rest.substr(1);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) throw bad("expected host:port");
        e.host = std::string(text.substr(0, colon));
        if (e.host.find(':') != std::string::npos)
            throw bad("an IPv6 address needs brackets: [addr]:port");
        port_text = text.substr(colon + 1);
    }
    if (port_text.empty() || port_text.size() > 5 ||
        !std::all_of(port_text.begin(), port_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; }))
        throw bad("port must be a number 0-65535 (at '" + std::string(port_text) + "')");
    unsigned long p = std::stoul(std::string(port_text));
    if (p > 65535) throw bad("port must be a number 0-65535 (at '" + std::string(port_text) + "')");
    e.port = static_cast<std::uint16_t>(p);
    return e;
}

std::string inet_endpoint::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

tcp_listener::tcp_listener(const std::string& host, std::uint16_t port, int backlog) {
    std::string display = inet_display("tcp", host, port);
    addrinfo_list ai;
    resolve(ai, host, port, SOCK_STREAM, true, display);
    int last_errno = EADDRNOTAVAIL;
    // With no host, prefer the IPv6 wildcard (it also accepts IPv4 unless
    // IPV6_V6ONLY is forced by the system).
    std::vector<addrinfo*> order;
    for (addrinfo* p = ai.head; p; p = p->ai_next)
        order.push_back(p);
    std::stable_sort(order.begin(), order.end(), [&](addrinfo* a, addrinfo* b) {
        return (host.empty() || host == "*") && a->ai_family == AF_INET6 &&
               b->ai_family != AF_INET6;
    });
    for (addrinfo* p : order) {
        int fd = ::socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        unique_fd owner(fd);
        int one = 1;
        // A restarted server must be able to bind while old connections sit in TIME_WAIT.
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, p->ai_addr, p->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
            last_errno = errno;
            continue;
        }
        sock_ = sock(std::move(owner), socket_type::stream, display);
        return;
    }
    throw_error(last_errno, "bind", display);
}

std::optional<sock> tcp_listener::accept(const deadline& until) {
    for (;;) {
        auto cfd = accept_connection(fd(), until, sock_.name());
        if (!cfd) return std::nullopt;
        sock s(std::move(*cfd), socket_type::stream, sock_.name());
        s.set_nodelay(true);
        return s;
    }
}

connect_status try_connect_tcp(const std::string& host, std::uint16_t port, sock& out,
                               const deadline& until, bool nodelay) {
    std::string display = inet_display("tcp", host, port);
    addrinfo_list ai;
    resolve(ai, host, port, SOCK_STREAM, false, display);
    connect_status last = connect_status::refused;
    for (addrinfo* p = ai.head; p; p = p->ai_next) {
        int fd = ::socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        unique_fd owner(fd);
        connect_status r;
        try {
            r = to_connect_status(
                connect_with_deadline(fd, p->ai_addr, p->ai_addrlen, until, display));
        } catch (const error&) {
            // e.g. ENETUNREACH for an IPv6 address on a v4-only host: try the next.
            if (p->ai_next == nullptr) throw;
            continue;
        }
        if (r == connect_status::ok) {
            out = sock(std::move(owner), socket_type::stream, display);
            if (nodelay) out.set_nodelay(true);
            return r;
        }
        last = r;
        if (r == connect_status::timed_out) return r;
    }
    return last;
}

sock connect_tcp(const std::string& host, std::uint16_t port, const deadline& until, bool nodelay) {
    sock s;
    auto r = try_connect_tcp(host, port, s, until, nodelay);
    std::string display = inet_display("tcp", host, port);
    if (r == connect_status::refused) throw_error(ECONNREFUSED, "connect", display);
    if (r == connect_status::timed_out) throw_error(ETIMEDOUT, "connect", display);
    return s;
}

namespace {

// A UDP socket bound to (bind) or connected to (!bind) the first address of
// host:port that works.
sock open_udp(const std::string& host, std::uint16_t port, bool bind) {
    std::string display = inet_display("udp", host, port);
    addrinfo_list ai;
    resolve(ai, host, port, SOCK_DGRAM, bind, display);
    int last_errno = EADDRNOTAVAIL;
    for (addrinfo* p = ai.head; p; p = p->ai_next) {
        int fd = ::socket(p->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        unique_fd owner(fd);
        int rc =
            bind ? ::bind(fd, p->ai_addr, p->ai_addrlen) : ::connect(fd, p->ai_addr, p->ai_addrlen);
        if (rc != 0) {
            last_errno = errno;
            continue;
        }
        return sock(std::move(owner), socket_type::dgram, display);
    }
    throw_error(last_errno, bind ? "bind" : "connect", display);
}

}  // namespace

sock bind_udp(const std::string& host, std::uint16_t port) {
    return open_udp(host, port, true);
}

sock connect_udp(const std::string& host, std::uint16_t port) {
    return open_udp(host, port, false);
}

}  // namespace ipckit
