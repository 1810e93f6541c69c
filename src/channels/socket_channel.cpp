// unix:, tcp: and udp: channels. Stream sockets carry framed messages through
// stream_channel; datagram and seqpacket sockets keep message boundaries by
// themselves (one message = one datagram / record).
//
// Roles follow the lecture: the receiver is the server (binds / listens), the
// sender is the client (connects); open_options::endpoint overrides. A
// listening channel serves its clients one after another: when one closes,
// receive() accepts the next. With ?all=1 it serves every connected client
// at once, delivering messages from whichever has one ready.
#include <poll.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "channels/factories.hpp"
#include "channels/stream_channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/socket.hpp"

namespace ipckit::detail {
namespace {

// One datagram or seqpacket record per message.
class message_socket_channel final : public channel {
  public:
    message_socket_channel(std::string name, ipckit::sock sock, std::size_t max)
        : name_(std::move(name)), sock_(std::move(sock)), max_(max) {}

    io_status send(std::string_view payload, const deadline& until, std::optional<long>) override {
        if (payload.size() > max_)
            throw_error(EMSGSIZE, "send", name_,
                        "message is " + std::to_string(payload.size()) + " bytes, max_message is " +
                            std::to_string(max_));
        return sock_.send(payload, until);
    }
    io_status receive(message& out, const deadline& until) override {
        out.tag.reset();
        return sock_.receive(out.payload, max_, until);
    }
    std::size_t max_message() const noexcept override { return max_; }
    const std::string& name() const noexcept override { return name_; }
    int poll_fd() const noexcept override { return sock_.fd(); }

  private:
    std::string name_;
    ipckit::sock sock_;
    std::size_t max_;
};

struct socket_config {
    std::string name;  // for errors and name()
    socket_type type = socket_type::stream;
    stream_options stream;
    std::size_t max = default_max_message;
};

std::unique_ptr<channel> wrap_connection(const socket_config& cfg, ipckit::sock s) {
    if (cfg.type == socket_type::stream)
        return std::make_unique<stream_channel>(cfg.name, s.release_fd(), cfg.stream);
    return std::make_unique<message_socket_channel>(cfg.name, std::move(s), cfg.max);
}

// Accepts connections through a type-erased listener (Unix or TCP).
class acceptor {
  public:
    virtual ~acceptor() = default;
    virtual std::optional<ipckit::sock> accept(const deadline& until) = 0;
    virtual int fd() const noexcept = 0;
};

class unix_acceptor final : public acceptor {
  public:
    explicit unix_acceptor(unix_listener l) : l_(std::move(l)) {}
    std::optional<ipckit::sock> accept(const deadline& until) override { return l_.accept(until); }
    int fd() const noexcept override { return l_.fd(); }

  private:
    unix_listener l_;
};

class tcp_acceptor final : public acceptor {
  public:
    explicit tcp_acceptor(tcp_listener l) : l_(std::move(l)) {}
    std::optional<ipckit::sock> accept(const deadline& until) override { return l_.accept(until); }
    int fd() const noexcept override { return l_.fd(); }

  private:
    tcp_listener l_;
};

// The listening end: one connection at a time, or all at once (serve_all).
class listening_channel final : public channel {
  public:
    listening_channel(socket_config cfg, std::unique_ptr<acceptor> acc, bool serve_all,
                      std::function<void(const std::string&)> on_dropped)
        : cfg_(std::move(cfg)),
          acc_(std::move(acc)),
          all_(serve_all),
          on_dropped_(std::move(on_dropped)) {}

    io_status send(std::string_view payload, const deadline& until,
                   std::optional<long> tag) override {
        // A listening sender talks to its current client (waiting for one).
        if (current_ == nullptr) {
            auto s = acc_->accept(until);
            if (!s) return io_status::timed_out;
            conns_.push_back({wrap_connection(cfg_, std::move(*s)), false});
            current_ = conns_.back().ch.get();
        }
        auto r = current_->send(payload, until, tag);
        if (r == io_status::closed) drop(current_);
        return r;
    }

    io_status receive(message& out, const deadline& until) override {
        return all_ ? receive_any(out, until) : receive_sequential(out, until);
    }

    std::size_t max_message() const noexcept override { return cfg_.max; }
    const std::string& name() const noexcept override { return cfg_.name; }
    int poll_fd() const noexcept override {
        return current_ != nullptr && !all_ ? current_->poll_fd() : acc_->fd();
    }

  private:
    struct connection {
        std::unique_ptr<channel> ch;
        bool hot;  // returned a message last time: may hold more buffered
    };

    void drop(channel* c) {
        if (current_ == c) current_ = nullptr;
        conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                                    [c](const connection& x) { return x.ch.get() == c; }),
                     conns_.end());
    }

    io_status receive_sequential(message& out, const deadline& until) {
        for (;;) {
            if (current_ == nullptr) {
                auto s = acc_->accept(until);
                if (!s) return io_status::timed_out;
                conns_.push_back({wrap_connection(cfg_, std::move(*s)), false});
                current_ = conns_.back().ch.get();
            }
            auto r = receive_or_drop(*current_, out, until);
            if (r && *r != io_status::closed) return *r;
            if (r) drop(current_);  // this client is done (or died mid-frame): next one
        }
    }

    // One client's protocol error must not end the listener: that client is
    // disconnected (its rejected frame stays buffered, so it would throw
    // again) and nullopt says it is gone.
    std::optional<io_status> receive_or_drop(channel& c, message& out, const deadline& until) {
        try {
            return c.receive(out, until);
        } catch (const error& e) {
            int code = e.code().value();
            if (code != EMSGSIZE && code != EPROTO && code != EBADMSG) throw;
            if (on_dropped_) on_dropped_(e.what());
            drop(&c);
            return std::nullopt;
        }
    }

    io_status receive_any(message& out, const deadline& until) {
        for (;;) {
            // Connections that just delivered may have more already buffered
            // in user space, where poll cannot see it.
            for (std::size_t i = 0; i < conns_.size(); ++i) {
                if (!conns_[i].hot) continue;
                if (auto r = try_one(i, out); r) return *r;
            }
            std::vector<pollfd> fds;
            fds.push_back({acc_->fd(), POLLIN, 0});
            for (const auto& c : conns_)
                fds.push_back({c.ch->poll_fd(), POLLIN, 0});
            int n = ::poll(fds.data(), fds.size(), until.poll_timeout_ms());
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("poll", cfg_.name);
            }
            if (n == 0) {
                if (until.expired()) return io_status::timed_out;
                continue;
            }
            // Connections first (their indices shift when one is dropped).
            for (std::size_t k = fds.size(); k-- > 1;) {
                if (fds[k].revents == 0) continue;
                if (auto r = try_one(k - 1, out); r) return *r;
            }
            if (fds[0].revents & POLLIN) {
                if (auto s = acc_->accept(deadline::immediate()))
                    conns_.push_back({wrap_connection(cfg_, std::move(*s)), false});
            }
        }
    }

    // Reads what one connection has without waiting: a message, or nothing.
    std::optional<io_status> try_one(std::size_t i, message& out) {
        channel* c = conns_[i].ch.get();
        auto got = receive_or_drop(*c, out, deadline::immediate());
        if (!got) return std::nullopt;
        auto r = *got;
        if (r == io_status::ok) {
            conns_[i].hot = true;
            current_ = c;  // replies (send) go to whoever spoke last
            return r;
        }
        conns_[i].hot = false;
        if (r == io_status::closed) drop(c);
        return std::nullopt;
    }

    socket_config cfg_;
    std::unique_ptr<acceptor> acc_;
    bool all_;
    std::vector<connection> conns_;
    channel* current_ = nullptr;
    std::function<void(const std::string&)> on_dropped_;
};

bool listens(channel_role role, const open_options& o) {
    if (o.endpoint == endpoint_mode::listen) return true;
    if (o.endpoint == endpoint_mode::connect) return false;
    return role == channel_role::receiver;
}

bool flag(const url& u, std::string_view key) {
    auto v = u.param(key);
    return v && (*v == "1" || *v == "true");
}

}  // namespace

std::unique_ptr<channel> open_unix_channel(const url& u, channel_role role, const open_options& o) {
    socket_config cfg;
    cfg.name = u.text;
    if (auto t = u.param("type")) cfg.type = *parse_socket_type(*t);
    cfg.max = u.max_message(default_max_message);
    cfg.stream.frame = u.frame(framing::length);
    cfg.stream.max_message = cfg.max;
    if (cfg.type != socket_type::stream && u.param("frame"))
        throw_error(EINVAL, "open", u.text,
                    "frame= applies to type=stream only: " + std::string(to_string(cfg.type)) +
                        " sockets keep message boundaries");
    if (cfg.type != socket_type::stream && u.param("spin_us"))
        throw_error(EINVAL, "open", u.text,
                    "spin_us= applies to type=stream only (a " + std::string(to_string(cfg.type)) +
                        " receive waits in the kernel at once)");
    cfg.stream.spin = read_spin(u);
    const bool serve_all = flag(u, "all");
    if (listens(role, o)) {
        unix_listen_options lo;
        lo.mode = u.permissions(0600);
        auto allow = u.param("allow");
        lo.allow = allow ? parse_peer_policy(*allow) : default_peer_policy(u.path);
        unix_listener l(u.path, cfg.type, lo);
        if (cfg.type == socket_type::dgram) {
            // A bound datagram sock receives from everyone; the file is
            // removed with the channel, so keep the listener alive inside it.
            struct bound_dgram final : channel {
                bound_dgram(socket_config c, unix_listener l)
                    : cfg(std::move(c)), lst(std::move(l)) {}
                io_status send(std::string_view, const deadline&, std::optional<long>) override {
                    throw_error(EDESTADDRREQ, "send", cfg.name,
                                "a bound unix dgram sock receives; the sender connects to it");
                }
                io_status receive(message& out, const deadline& until) override {
                    out.tag.reset();
                    return lst.bound().receive(out.payload, cfg.max, until);
                }
                std::size_t max_message() const noexcept override { return cfg.max; }
                const std::string& name() const noexcept override { return cfg.name; }
                int poll_fd() const noexcept override { return lst.fd(); }
                socket_config cfg;
                unix_listener lst;
            };
            return std::make_unique<bound_dgram>(std::move(cfg), std::move(l));
        }
        return std::make_unique<listening_channel>(std::move(cfg),
                                                   std::make_unique<unix_acceptor>(std::move(l)),
                                                   serve_all, o.on_client_dropped);
    }
    return wrap_connection(cfg, connect_unix(u.path, cfg.type, o.open_deadline));
}

std::unique_ptr<channel> open_tcp_channel(const url& u, channel_role role, const open_options& o) {
    socket_config cfg;
    cfg.type = socket_type::stream;
    cfg.max = u.max_message(default_max_message);
    cfg.stream.frame = u.frame(framing::length);
    cfg.stream.max_message = cfg.max;
    cfg.stream.spin = read_spin(u);
    const bool nodelay = !u.param("nodelay") || flag(u, "nodelay");
    if (listens(role, o)) {
        tcp_listener l(u.host, u.port);
        cfg.name = u.port != 0 ? u.text : "tcp://" + inet_endpoint{u.host, l.port()}.to_string();
        return std::make_unique<listening_channel>(std::move(cfg),
                                                   std::make_unique<tcp_acceptor>(std::move(l)),
                                                   flag(u, "all"), o.on_client_dropped);
    }
    cfg.name = u.text;
    return wrap_connection(cfg, connect_tcp(u.host, u.port, o.open_deadline, nodelay));
}

std::unique_ptr<channel> open_udp_channel(const url& u, channel_role role, const open_options& o) {
    std::size_t max = std::min(u.max_message(udp_max_payload), udp_max_payload);
    if (listens(role, o)) {
        ipckit::sock s = bind_udp(u.host, u.port);
        std::string name =
            u.port != 0 ? u.text : "udp://" + inet_endpoint{u.host, s.local_port()}.to_string();
        return std::make_unique<message_socket_channel>(std::move(name), std::move(s), max);
    }
    return std::make_unique<message_socket_channel>(u.text, connect_udp(u.host, u.port), max);
}

}  // namespace ipckit::detail
