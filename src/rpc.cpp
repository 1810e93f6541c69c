// RPC over channels: a client that calls by name and matches replies by call
// id, a server that dispatches to handlers over one channel or over a
// listening socket with an epoll loop.
#include "ipckit/rpc.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <optional>
#include <unordered_map>
#include <variant>

#include "channels/stream_channel.hpp"
#include "detail/rpc_wire.hpp"
#include "ipckit/error.hpp"
#include "ipckit/url.hpp"

namespace ipckit::rpc {
namespace wire = rpc::detail;

const char* to_string(errc code) noexcept {
    switch (code) {
        case errc::unknown_method:
            return "unknown method";
        case errc::bad_request:
            return "bad request";
        case errc::handler_failed:
            return "handler failed";
        case errc::reply_too_large:
            return "reply too large";
    }
    return "remote error";
}

namespace {

std::string remote_what(errc code, const std::string& method, const std::string& detail) {
    std::string w = method + ": " + to_string(code);
    if (code < errc::unknown_method || code > errc::reply_too_large)  // from a newer server
        w += " " + std::to_string(static_cast<unsigned>(code));
    if (!detail.empty()) w += ": " + detail;
    return w;
}

constexpr std::string_view methods_method = "rpc.methods";

// The stream-socket URLs RPC runs over; anything else is refused up front.
url stream_socket_url(std::string_view text) {
    url u = parse_url(text);
    if (u.scheme != "unix" && u.scheme != "tcp")
        throw std::invalid_argument(
            "rpc needs a stream socket URL (unix:/path, unix:@name or "
            "tcp://host:port), not " +
            u.text);
    if (auto t = u.param("type"); t && *t != "stream")
        throw std::invalid_argument("rpc needs type=stream, not type=" + *t + " (" + u.text + ")");
    if (u.frame(framing::length) != framing::length)
        throw std::invalid_argument("rpc frames its own messages: frame= must be left out (" +
                                    u.text + ")");
    return u;
}

// Receives replies on ch until the one for call id (its frame, pointing into
// reply, goes to out); earlier ids are late replies of calls that timed out.
io_status await_reply(channel& ch, message& reply, std::uint64_t id, const deadline& until,
                      wire::frame& out) {
    for (;;) {
        if (auto st = ch.receive(reply, until); st != io_status::ok) return st;
        wire::decode_failure why{};
        auto f = wire::decode(reply.payload, &why);
        if (!f || f->type == wire::kind::call)
            throw_error(EPROTO, "rpc call", ch.name(),
                        f ? "the peer sent a call, not a reply" : wire::to_string(why));
        if (f->id < id) continue;
        if (f->id > id) throw_error(EPROTO, "rpc call", ch.name(), "reply to a call never made");
        out = *f;
        return io_status::ok;
    }
}

}  // namespace

remote_error::remote_error(errc code, std::string method, std::string detail)
    : std::runtime_error(remote_what(code, method, detail)),
      code_(code),
      method_(std::move(method)),
      detail_(std::move(detail)) {}

bool valid_method_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > max_method_name) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == ':' || c == '-';
    });
}

// ---------------------------------------------------------------- client

client::client(std::string_view text, const deadline& connect_deadline) {
    url u = stream_socket_url(text);
    sock s = u.scheme == "unix" ? connect_unix(u.path, socket_type::stream, connect_deadline)
                                : connect_tcp(u.host, u.port, connect_deadline, true);
    ch_ = make_fd_channel(u.text, s.release_fd(), unique_fd{}, framing::length,
                          u.max_message(default_max_message));
}

client::client(std::unique_ptr<channel> ch) : ch_(std::move(ch)) {
    if (!ch_) throw std::invalid_argument("rpc::client needs a channel");
}

client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;
client::~client() = default;

const std::string& client::name() const noexcept {
    return ch_->name();
}

io_status client::call(std::string_view method, std::string_view args, std::string& result,
                       const deadline& until) {
    if (!valid_method_name(method))
        throw_error(EINVAL, "rpc call", ch_->name(),
                    "invalid method name \"" + std::string(method.substr(0, 64)) +
                        "\": 1 to 255 letters, digits or _.:-");
    // A call that timed out is still owed its reply: take it (and drop it)
    // before sending, so this call never writes while the server is still
    // writing that reply (two large frames in flight both ways would block
    // both ends) and replies cannot cross.
    wire::frame f;
    if (awaiting_ != 0) {
        if (auto st = await_reply(*ch_, reply_, awaiting_, until, f); st != io_status::ok)
            return st;
        awaiting_ = 0;
    }
    const std::uint64_t id = next_id_++;
    buf_.clear();
    wire::encode({wire::kind::call, 0, id, method, args}, buf_);
    // timed_out: nothing sent, or a call torn because the server took no byte
    // of it for the stall limit (the channel reads closed from then on).
    if (auto st = ch_->send(buf_, until); st != io_status::ok) return st;
    awaiting_ = id;
    if (auto st = await_reply(*ch_, reply_, id, until, f); st != io_status::ok) return st;
    awaiting_ = 0;
    if (f.type == wire::kind::error)
        throw remote_error(static_cast<errc>(f.error_code), std::string(method),
                           std::string(f.body));
    result.assign(f.body);
    return io_status::ok;
}

io_status client::methods(std::vector<std::string>& names, const deadline& until) {
    std::string text;
    names.clear();
    if (auto st = call(methods_method, {}, text, until); st != io_status::ok) return st;
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t end = std::min(text.find('\n', pos), text.size());
        if (end > pos) names.emplace_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    return io_status::ok;
}

// ---------------------------------------------------------------- server

namespace {

// One accepted connection of a listening server. Its unsent reply (out)
// blocks further reading, so a client that stops reading costs the server
// one reply, not an unbounded queue.
struct connection {
    connection(unique_fd f, std::string n, std::size_t max)
        : fd(std::move(f)), name(std::move(n)), decoder(framing::length, max, name) {}
    unique_fd fd;
    std::string name;
    ipckit::detail::frame_decoder decoder;
    std::string in;  // bytes read but not yet fed while a reply was pending
    std::size_t in_pos = 0;
    std::string out;  // the framed reply not yet accepted by the kernel
    std::size_t out_pos = 0;
    bool watching_out = false;
};

struct counters {
    std::atomic<std::uint64_t> accepted{0}, refused{0}, calls{0}, errors{0}, dropped{0};
    std::atomic<std::uint64_t> rejected{0};  // by the unix listener's allow-list
    std::atomic<std::size_t> active{0};
};

}  // namespace

struct server::impl {
    std::map<std::string, handler, std::less<>> handlers;
    // request_stop() records the requesting process and wakes run() through
    // an eventfd. After fork() the eventfd is shared until the child's first
    // run() makes its own, so the pid, not the wake-up, says who stops.
    std::atomic<int> stop_fd{-1};
    std::atomic<pid_t> stop_requested_by{0};
    unique_fd stop_owner;
    pid_t stop_pid = 0;
    unique_fd spare_fd;  // given up to accept-and-close when out of descriptors
    std::variant<std::monostate, unix_listener, tcp_listener> listener;
    int listen_fd = -1;
    std::string address;
    listen_options options;
    std::size_t max_message = default_max_message;
    unique_fd ep;
    pid_t ep_pid = 0;
    std::unordered_map<int, std::unique_ptr<connection>> conns;
    counters stats;
    std::string reply;  // serve(): the encoded reply
    message incoming;
    std::vector<char> scratch = std::vector<char>(64 * 1024);

    void new_stop_fd() {
        unique_fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!fd) throw_errno("eventfd", "rpc server");
        stop_fd.store(fd.get());
        stop_owner = std::move(fd);
        stop_pid = ::getpid();
    }

    // Appends the answer to one call to out (after whatever prefix it holds:
    // the frame header's room in listening mode). False when msg is not an
    // RPC call at all (the connection cannot be trusted to be in sync).
    bool dispatch(std::string_view msg, std::size_t limit, wire::decode_failure* why,
                  std::string& out) {
        auto f = wire::decode(msg, why);
        if (!f || f->type != wire::kind::call) {
            if (f && why) *why = wire::decode_failure::bad_kind;
            return false;
        }
        const std::size_t prefix = out.size();
        auto answer_error = [&](errc code, std::string_view detail) {
            out.resize(prefix);
            // A long explanation (a handler's what()) is cut to fit the reply.
            detail = detail.substr(
                0, limit > wire::wire_header_size ? limit - wire::wire_header_size : 0);
            wire::encode({wire::kind::error, static_cast<std::uint16_t>(code), f->id, {}, detail},
                         out);
            stats.errors.fetch_add(1, std::memory_order_relaxed);
        };
        stats.calls.fetch_add(1, std::memory_order_relaxed);
        if (!valid_method_name(f->method)) {
            answer_error(errc::bad_request, "invalid method name");
            return true;
        }
        auto it = handlers.find(f->method);
        if (it == handlers.end() && f->method != methods_method) {
            answer_error(errc::unknown_method, "see rpc.methods");
            return true;
        }
        try {
            std::string result;
            if (it != handlers.end()) {
                result = it->second(f->body);
            } else {
                for (const auto& [name, h] : handlers)
                    result.append(name).push_back('\n');
                result.append(methods_method).push_back('\n');
            }
            if (result.size() + wire::wire_header_size > limit) {
                answer_error(errc::reply_too_large, "result is " + std::to_string(result.size()) +
                                                        " bytes, max_message is " +
                                                        std::to_string(limit));
                return true;
            }
            wire::encode({wire::kind::result, 0, f->id, {}, result}, out);
        } catch (const std::exception& e) {
            answer_error(errc::handler_failed, e.what());
        } catch (...) {
            answer_error(errc::handler_failed, "a non-standard exception");
        }
        return true;
    }

    void watch(int fd, std::uint32_t events, int op) {
        epoll_event e{};
        e.events = events;
        e.data.fd = fd;
        if (::epoll_ctl(ep.get(), op, fd, &e) != 0) throw_errno("epoll_ctl", address);
    }

    void close_connection(int fd, bool protocol_violation) {
        if (protocol_violation) stats.dropped.fetch_add(1, std::memory_order_relaxed);
        ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr);
        conns.erase(fd);
        stats.active.store(conns.size(), std::memory_order_relaxed);
    }

    std::optional<sock> accept_one() {
        if (auto* l = std::get_if<unix_listener>(&listener))
            return l->accept(deadline::immediate());
        return std::get<tcp_listener>(listener).accept(deadline::immediate());
    }

    // Out of descriptors, a pending connection would keep the listener
    // readable forever: free the spare descriptor, accept and close it.
    void shed_one_connection() {
        spare_fd.reset();
        int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
            ::close(c);
            stats.refused.fetch_add(1, std::memory_order_relaxed);
        }
        spare_fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }

    void accept_all() {
        // A bounded batch, so a flood of connections cannot starve the clients.
        for (int i = 0; i < 64; ++i) {
            std::optional<sock> s;
            try {
                s = accept_one();
            } catch (const ipckit::error& e) {
                const int code = e.code().value();
                if (code != EMFILE && code != ENFILE) throw;
                shed_one_connection();
                continue;
            }
            if (auto* l = std::get_if<unix_listener>(&listener))
                stats.rejected.store(l->rejected(), std::memory_order_relaxed);
            if (!s) return;
            if (conns.size() >= options.max_clients) {
                stats.refused.fetch_add(1, std::memory_order_relaxed);
                continue;  // s closes here
            }
            stats.accepted.fetch_add(1, std::memory_order_relaxed);
            std::string name = address + " (client " + std::to_string(stats.accepted.load()) + ")";
            unique_fd fd = s->release_fd();
            int raw = fd.get();
            auto c = std::make_unique<connection>(std::move(fd), std::move(name), max_message);
            watch(raw, EPOLLIN, EPOLL_CTL_ADD);
            conns.emplace(raw, std::move(c));
            stats.active.store(conns.size(), std::memory_order_relaxed);
        }
    }

    // Writes what it can of c.out. False when the peer is gone.
    bool flush(connection& c) {
        while (c.out_pos < c.out.size()) {
            ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_pos, c.out.size() - c.out_pos,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                c.out_pos += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (!c.watching_out) watch(c.fd.get(), EPOLLOUT, EPOLL_CTL_MOD);
                c.watching_out = true;
                return true;
            }
            return false;  // EPIPE, ECONNRESET, ...
        }
        c.out.clear();
        c.out_pos = 0;
        if (c.watching_out) watch(c.fd.get(), EPOLLIN, EPOLL_CTL_MOD);
        c.watching_out = false;
        return true;
    }

    // Feeds bytes to c's decoder and answers complete calls while no reply
    // is pending. Returns the bytes consumed, or nullopt when c was closed.
    std::optional<std::size_t> consume(connection& c, const char* data, std::size_t size) {
        std::size_t used = 0;
        while (used < size && c.out.empty()) {
            try {
                used += c.decoder.feed(data + used, size - used);
            } catch (const std::exception&) {  // a frame above max_message, or no memory for it
                close_connection(c.fd.get(), true);
                return std::nullopt;
            }
            if (!c.decoder.message_ready()) continue;
            c.decoder.take(incoming.payload);
            wire::decode_failure why{};
            // The reply is encoded behind room for its frame header: one copy.
            c.out.assign(ipckit::detail::frame_header_size, '\0');
            if (!dispatch(incoming.payload, max_message, &why, c.out)) {
                close_connection(c.fd.get(), true);
                return std::nullopt;
            }
            ipckit::detail::encode_frame_header(
                static_cast<std::uint32_t>(c.out.size() - ipckit::detail::frame_header_size),
                reinterpret_cast<unsigned char*>(c.out.data()));
            if (!flush(c)) {
                close_connection(c.fd.get(), false);
                return std::nullopt;
            }
        }
        return used;
    }

    void on_event(int fd, std::uint32_t events) {
        auto it = conns.find(fd);
        if (it == conns.end()) return;
        connection& c = *it->second;
        if (!c.out.empty()) {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
            if (!flush(c)) return close_connection(fd, false);
            if (!c.out.empty()) return;
        }
        // Calls read earlier while a reply was pending come first.
        if (c.in_pos < c.in.size()) {
            auto used = consume(c, c.in.data() + c.in_pos, c.in.size() - c.in_pos);
            if (!used) return;
            c.in_pos += *used;
            if (c.in_pos == c.in.size()) {
                c.in.clear();
                c.in_pos = 0;
            }
        }
        // A reply is pending again: read nothing (an EOF read now, from a
        // client that half-closed, would drop it unsent).
        if (!c.out.empty()) return;
        // A bounded number of reads per event keeps one busy client from
        // starving the others (epoll is level-triggered: it comes back).
        for (int i = 0; i < 16; ++i) {
            ssize_t n = ::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            if (n <= 0) return close_connection(fd, false);  // EOF or reset
            auto size = static_cast<std::size_t>(n);
            auto used = consume(c, scratch.data(), size);
            if (!used) return;
            if (*used < size) {  // a reply is pending: keep the rest for later
                c.in.assign(scratch.data() + *used, size - *used);
                c.in_pos = 0;
            }
            // Read nothing more until the pending reply is out: an EOF read
            // now (a client that half-closed) would drop it unsent.
            if (!c.out.empty()) return;
        }
    }
};

server::server() : impl_(std::make_unique<impl>()) {
    impl_->new_stop_fd();
}
server::~server() = default;

void server::add(std::string name, handler h) {
    if (!valid_method_name(name))
        throw std::invalid_argument("rpc method name \"" + name.substr(0, 64) +
                                    "\" is invalid: 1 to 255 letters, digits or _.:-");
    if (name.rfind("rpc.", 0) == 0)
        throw std::invalid_argument("rpc method name \"" + name + "\" is reserved (rpc.*)");
    if (!h) throw std::invalid_argument("rpc method \"" + name + "\" has an empty handler");
    if (!impl_->handlers.emplace(name, std::move(h)).second)
        throw std::invalid_argument("rpc method \"" + name + "\" is already registered");
}

io_status server::serve(channel& ch, const deadline& until) {
    for (;;) {
        if (auto st = ch.receive(impl_->incoming, until); st != io_status::ok) return st;
        wire::decode_failure why{};
        impl_->reply.clear();
        if (!impl_->dispatch(impl_->incoming.payload, ch.max_message(), &why, impl_->reply))
            throw_error(EPROTO, "rpc serve", ch.name(), wire::to_string(why));
        if (auto st = ch.send(impl_->reply, until); st != io_status::ok) return st;
    }
}

void server::listen(std::string_view text, const listen_options& options) {
    if (impl_->listen_fd >= 0) throw std::invalid_argument("rpc server is already listening");
    url u = stream_socket_url(text);
    impl_->options = options;
    impl_->max_message = u.max_message(options.max_message);
    if (u.scheme == "unix") {
        unix_listen_options lo;
        lo.mode = u.permissions(options.mode);
        lo.allow = options.allow;
        auto& l = impl_->listener.emplace<unix_listener>(u.path, socket_type::stream, lo);
        impl_->listen_fd = l.fd();
        impl_->address = "unix:" + u.path;
    } else {
        auto& l = impl_->listener.emplace<tcp_listener>(u.host, u.port);
        impl_->listen_fd = l.fd();
        impl_->address = "tcp://" + inet_endpoint{u.host, l.port()}.to_string();
    }
    impl_->spare_fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

const std::string& server::address() const noexcept {
    return impl_->address;
}

bool server::run(const deadline& until) {
    impl& m = *impl_;
    if (m.listen_fd < 0) throw std::invalid_argument("rpc server: run() before listen()");
    // After fork() each process gets its own epoll set and stop event: the
    // kernel objects are shared with the parent otherwise.
    if (!m.ep || m.ep_pid != ::getpid()) {
        m.conns.clear();
        m.stats.active.store(0);
        if (m.stop_pid != ::getpid()) m.new_stop_fd();
        m.ep.reset(::epoll_create1(EPOLL_CLOEXEC));
        if (!m.ep) throw_errno("epoll_create1", m.address);
        m.ep_pid = ::getpid();
        m.watch(m.listen_fd, EPOLLIN, EPOLL_CTL_ADD);
        m.watch(m.stop_fd.load(), EPOLLIN, EPOLL_CTL_ADD);
    }
    epoll_event events[64];
    for (;;) {
        // The eventfd only wakes us; the pid says whether this process asked.
        if (m.stop_requested_by.load() == ::getpid()) {
            m.stop_requested_by.store(0);
            std::uint64_t count;
            [[maybe_unused]] ssize_t r = ::read(m.stop_fd.load(), &count, sizeof count);
            return true;
        }
        int n = ::epoll_wait(m.ep.get(), events, 64, until.poll_timeout_ms());
        if (n < 0 && errno != EINTR) throw_errno("epoll_wait", m.address);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == m.stop_fd.load()) {
                std::uint64_t count;
                [[maybe_unused]] ssize_t r = ::read(fd, &count, sizeof count);  // non-blocking
            } else if (fd == m.listen_fd) {
                m.accept_all();
            } else {
                m.on_event(fd, events[i].events);
            }
        }
        if (m.stop_requested_by.load() == ::getpid()) continue;
        if (until.expired()) return false;
    }
}

void server::request_stop() noexcept {
    int saved = errno;  // a signal handler must leave errno as it found it
    impl_->stop_requested_by.store(::getpid());
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(impl_->stop_fd.load(), &one, sizeof one);
    errno = saved;
}

server_stats server::stats() const noexcept {
    const counters& c = impl_->stats;
    return {c.accepted.load(), c.refused.load() + c.rejected.load(),
            c.calls.load(),    c.errors.load(),
            c.dropped.load(),  c.active.load()};
}

}  // namespace ipckit::rpc
