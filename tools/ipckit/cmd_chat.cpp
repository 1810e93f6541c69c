// ipckit chat serve URL | ipckit chat join URL --name NAME
//
// The lecture's TCP chat, made robust: one epoll loop serves every client; a
// line from one client is broadcast to the others as "name: text"; joins and
// leaves are announced. Each client has a bounded output queue: a client
// that stops reading is dropped (and reported) once its queue is full, so it
// never blocks the others. The protocol is plain lines, so `nc` can join:
// the first line a client sends is its name.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "cli.hpp"
#include "ipckit/error.hpp"
#include "ipckit/socket.hpp"
#include "ipckit/url.hpp"

namespace ipckit::cli {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) {
    g_stop = 1;
}

// SIGINT/SIGTERM end the loop cleanly (so a Unix socket file is removed);
// no SA_RESTART, so epoll_wait returns EINTR and the flag is seen at once.
void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

url parse_chat_url(const std::string& text) {
    url u = parse_url(text);
    if (u.scheme != "tcp" && u.scheme != "unix")
        throw std::invalid_argument("chat needs a tcp://host:port or unix:/path|@name URL, not '" +
                                    text + "'");
    if (auto t = u.param("type"); t && *t != "stream")
        throw std::invalid_argument("chat runs over stream sockets (type=stream), not " + *t);
    return u;
}

struct chat_client {
    unique_fd fd;
    std::string name;  // empty until the first line arrives
    std::string in;    // bytes of an unfinished line
    std::string out;   // queued bytes not yet accepted by the kernel
    std::size_t out_off = 0;
    bool want_write = false;
};

class chat_server {
  public:
    chat_server(std::size_t queue_limit, std::size_t max_line, std::size_t max_clients, int sndbuf)
        : queue_limit_(queue_limit),
          max_line_(max_line),
          max_clients_(max_clients),
          sndbuf_(sndbuf) {}

    int run(int listen_fd, const std::string& shown, peer_policy allow = {}) {
        allow_ = std::move(allow);
        ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
        if (!ep_) throw_errno("epoll_create1", shown);
        listen_fd_ = listen_fd;
        set_nonblocking(listen_fd_, true);
        add(listen_fd_, EPOLLIN);
        fmt::print("chat: serving {}\n", shown);
        std::fflush(stdout);
        std::vector<epoll_event> events(256);
        while (!g_stop) {
            if (accept_paused_ &&
                (clients_.size() < clients_at_pause_ ||
                 std::chrono::steady_clock::now() - paused_at_ >= std::chrono::seconds(1)))
                resume_accepts();
            int n = ::epoll_wait(ep_.get(), events.data(), static_cast<int>(events.size()),
                                 accept_paused_ ? 1000 : -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("epoll_wait", shown);
            }
            for (int i = 0; i < n; ++i) {
                int fd = events[i].data.fd;
                if (fd == listen_fd_) {
                    accept_all();
                    continue;
                }
                auto it = clients_.find(fd);
                if (it == clients_.end()) continue;  // dropped earlier in this batch
                if (events[i].events & EPOLLOUT) flush(it->second);
                if (clients_.count(fd) &&
                    (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                    read_from(fd);
                reap();
            }
        }
        fmt::print("chat: stopping, {} client(s) connected\n", clients_.size());
        return exit_ok;
    }

  private:
    void resume_accepts() {
        accept_paused_ = false;
        add(listen_fd_, EPOLLIN);
    }

    void add(int fd, std::uint32_t ev) {
        epoll_event e{};
        e.events = ev;
        e.data.fd = fd;
        if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &e) != 0) throw_errno("epoll_ctl", "chat");
    }
    void modify(int fd, std::uint32_t ev) {
        epoll_event e{};
        e.events = ev;
        e.data.fd = fd;
        ::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &e);
    }

    void accept_all() {
        for (;;) {
            int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EAGAIN) return;
                if (errno == EMFILE || errno == ENFILE) {
                    // Out of fds: the connection stays in the backlog and a
                    // level-triggered epoll would report it again at once, so
                    // stop watching the listener; a leaving client or the 1 s
                    // retry in run() resumes accepting.
                    fmt::print(stderr, "chat: accept4: {}; pausing accepts\n",
                               std::strerror(errno));
                    ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, listen_fd_, nullptr);
                    accept_paused_ = true;
                    paused_at_ = std::chrono::steady_clock::now();
                    clients_at_pause_ = clients_.size();
                    return;
                }
                throw_errno("accept4", "chat");
            }
            unique_fd fd(c);
            if (!allow_.empty() && !admitted(c)) continue;  // closed unread
            if (clients_.size() >= max_clients_) {
                const char full[] = "* server full\n";
                ::send(c, full, sizeof full - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                continue;
            }
            if (sndbuf_ > 0) ::setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf_, sizeof sndbuf_);
            int one = 1;
            ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
                         sizeof one);  // fails harmlessly on Unix
            add(c, EPOLLIN | EPOLLRDHUP);
            auto& cl = clients_[c];
            cl.fd = std::move(fd);
            enqueue(cl, "* welcome to ipckit chat: send your name as the first line\n");
        }
    }

    // At most a few reads per wakeup: epoll is level-triggered, so a client
    // that keeps writing is reported again, and one flooding client cannot
    // keep the loop from the others or from accept.
    // The allow-list (unix: listeners) is applied before a byte is read.
    bool admitted(int fd) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
            allow_.allows({cred.pid, cred.uid, cred.gid}))
            return true;
        fmt::print("chat: refused pid {} uid {}: not in the allow-list\n", cred.pid, cred.uid);
        std::fflush(stdout);
        return false;
    }

    void read_from(int fd) {
        auto& cl = clients_.at(fd);
        char buf[8192];
        for (int reads = 0; reads < 4; ++reads) {
            ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return;
                mark_gone(fd, "left");  // ECONNRESET and friends: gone
                return;
            }
            if (n == 0) {
                mark_gone(fd, "left");
                return;
            }
            cl.in.append(buf, static_cast<std::size_t>(n));
            std::size_t start = 0;
            for (;;) {
                auto nl = cl.in.find('\n', start);
                if (nl == std::string::npos) break;
                if (!cut_lines(fd, std::string_view(cl.in).substr(start, nl - start))) return;
                start = nl + 1;
            }
            cl.in.erase(0, start);
            // An unfinished line past the limit goes out in pieces now, so a
            // client that never sends a newline holds at most max_line bytes.
            if (cl.in.size() > max_line_) {
                std::size_t whole = cl.in.size() - cl.in.size() % max_line_;
                if (whole == cl.in.size()) whole -= max_line_;
                if (!cut_lines(fd, std::string_view(cl.in).substr(0, whole))) return;
                cl.in.erase(0, whole);
            }
        }
    }

    // Delivers text as lines of at most max_line bytes; false once the
    // client is gone.
    bool cut_lines(int fd, std::string_view text) {
        do {
            line(fd, text.substr(0, max_line_));
            if (!clients_.count(fd) || gone_.count(fd)) return false;
            text.remove_prefix(std::min(text.size(), max_line_));
        } while (!text.empty());
        return true;
    }

    void line(int fd, std::string_view text) {
        if (!text.empty() && text.back() == '\r') text.remove_suffix(1);  // telnet/nc -C
        auto& cl = clients_.at(fd);
        if (cl.name.empty()) {
            std::string name = sanitize(text);
            if (name.empty()) name = "guest";
            std::string unique = name;
            for (int k = 2; name_taken(unique); ++k)
                unique = name + "-" + std::to_string(k);
            cl.name = unique;
            std::string who;
            for (auto& [ofd, other] : clients_)
                if (ofd != fd && !other.name.empty() && !gone_.count(ofd))
                    who += (who.empty() ? "" : ", ") + other.name;
            enqueue(cl, fmt::format("* you are {}; online: {}\n", unique,
                                    who.empty() ? "nobody else" : who));
            broadcast(fd, fmt::format("* {} joined\n", unique));
            fmt::print("chat: {} joined ({} online)\n", unique, online());
            std::fflush(stdout);
            return;
        }
        broadcast(fd, fmt::format("{}: {}\n", cl.name, text));
    }

    static std::string sanitize(std::string_view s) {
        std::string out;
        for (char c : s)
            if (static_cast<unsigned char>(c) > ' ' && c != 0x7f && out.size() < 32) out += c;
        return out;
    }
    bool name_taken(const std::string& n) const {
        for (auto& [fd, c] : clients_)
            if (c.name == n) return true;
        return false;
    }
    std::size_t online() const {
        std::size_t n = 0;
        for (auto& [fd, c] : clients_)
            if (!c.name.empty() && !gone_.count(fd)) ++n;
        return n;
    }

    void broadcast(int from, const std::string& text) {
        for (auto& [fd, c] : clients_)
            if (fd != from && !c.name.empty() && !gone_.count(fd)) enqueue(c, text);
    }

    // Queues text for a client and tries to send at once. Past the queue
    // limit the client is marked as dropped instead: it never blocks anyone.
    void enqueue(chat_client& c, const std::string& text) {
        int fd = c.fd.get();
        if (gone_.count(fd)) return;
        if (c.out.size() - c.out_off + text.size() > queue_limit_) {
            mark_gone(fd, "dropped");
            return;
        }
        if (c.out_off > 0 && c.out_off == c.out.size()) {
            c.out.clear();
            c.out_off = 0;
        }
        c.out += text;
        flush(c);
    }

    void flush(chat_client& c) {
        int fd = c.fd.get();
        while (c.out_off < c.out.size()) {
            ssize_t n = ::send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) break;
                mark_gone(fd, "left");  // EPIPE / ECONNRESET: a closed peer is a value
                return;
            }
            c.out_off += static_cast<std::size_t>(n);
        }
        if (c.out_off == c.out.size()) {
            c.out.clear();
            c.out_off = 0;
        } else if (c.out_off > (1u << 16)) {
            c.out.erase(0, c.out_off);  // keep the buffer from creeping
            c.out_off = 0;
        }
        bool want = !c.out.empty();
        if (want != c.want_write) {
            c.want_write = want;
            modify(fd, EPOLLIN | EPOLLRDHUP | (want ? std::uint32_t{EPOLLOUT} : 0u));
        }
    }

    // Removal is deferred to reap() so no loop above iterates a map that
    // changes under it, and a drop caused by a broadcast cannot recurse.
    void mark_gone(int fd, const char* how) { gone_.emplace(fd, how); }

    void reap() {
        while (!gone_.empty()) {
            auto [fd, how] = *gone_.begin();
            auto it = clients_.find(fd);
            std::string name = it != clients_.end() ? it->second.name : std::string();
            std::size_t queued =
                it != clients_.end() ? it->second.out.size() - it->second.out_off : 0;
            ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
            if (it != clients_.end()) clients_.erase(it);  // closes the fd
            gone_.erase(fd);
            if (name.empty()) continue;  // never joined: nothing to announce
            if (std::string_view(how) == "dropped") {
                fmt::print("chat: dropped {}: not reading ({} bytes queued, limit {})\n", name,
                           queued, queue_limit_);
                broadcast(-1, fmt::format("* {} was dropped (not reading)\n", name));
            } else {
                fmt::print("chat: {} left ({} online)\n", name, online());
                broadcast(-1, fmt::format("* {} left\n", name));
            }
            std::fflush(stdout);
        }
    }

    std::size_t queue_limit_, max_line_, max_clients_;
    int sndbuf_;
    unique_fd ep_;
    int listen_fd_ = -1;
    bool accept_paused_ = false;
    peer_policy allow_;
    std::chrono::steady_clock::time_point paused_at_;
    std::size_t clients_at_pause_ = 0;
    std::map<int, chat_client> clients_;
    std::map<int, const char*> gone_;
};

int run_join(const url& u, const std::string& name, const deadline& connect_until) {
    std::string shown = u.text;
    sock s = u.scheme == "tcp" ? connect_tcp(u.host, u.port, connect_until)
                               : connect_unix(u.path, socket_type::stream, connect_until);
    if (s.send(name + "\n") != io_status::ok) throw_error(ECONNRESET, "send", shown);
    bool stdin_open = true;
    std::string pending;  // stdin bytes up to the last newline go out together
    char buf[8192];
    for (;;) {
        pollfd p[2] = {{s.fd(), POLLIN, 0},
                       {STDIN_FILENO, static_cast<short>(stdin_open ? POLLIN : 0), 0}};
        int n = ::poll(p, stdin_open ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR) {
                if (g_stop) return exit_ok;
                continue;
            }
            throw_errno("poll", shown);
        }
        if (p[0].revents) {
            ssize_t r = ::recv(s.fd(), buf, sizeof buf, MSG_DONTWAIT);
            if (r < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNRESET)
                throw_errno("recv", shown);
            if (r == 0 || (r < 0 && errno == ECONNRESET)) {
                if (stdin_open) fmt::print(stderr, "chat: server closed the connection\n");
                return exit_ok;
            }
            if (r > 0) {
                std::fwrite(buf, 1, static_cast<std::size_t>(r), stdout);
                std::fflush(stdout);
            }
        }
        if (stdin_open && p[1].revents) {
            ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
            if (r < 0 && errno != EINTR && errno != EAGAIN) throw_errno("read", "stdin");
            if (r == 0) {
                // Send an unterminated last line, then tell the server we are
                // done; it announces our leave and closes, which ends the loop.
                if (!pending.empty()) s.send(pending + "\n");
                stdin_open = false;
                s.shutdown_write();
            } else if (r > 0) {
                pending.append(buf, static_cast<std::size_t>(r));
                auto last = pending.rfind('\n');
                if (last != std::string::npos) {
                    if (s.send(std::string_view(pending).substr(0, last + 1)) != io_status::ok) {
                        fmt::print(stderr, "chat: server closed the connection\n");
                        return exit_ok;
                    }
                    pending.erase(0, last + 1);
                }
            }
        }
    }
}

}  // namespace

void register_chat(CLI::App& app, verb& v) {
    struct options {
        std::string url;
        std::string name;
        std::string queue_limit = "256k";
        std::size_t max_line = 4096;
        std::size_t max_clients = 1000;
        std::string sndbuf = "32k";
        std::string timeout;
    };
    auto o = std::make_shared<options>();
    auto* cmd =
        app.add_subcommand("chat", "A multi-client chat over tcp:// or unix: (epoll server)");
    cmd->require_subcommand(1);
    cmd->footer(
        "Plain lines: the first line a client sends is its name; every other line is\n"
        "broadcast to the others as 'name: text'. A client that stops reading is\n"
        "dropped once its queue is full; it never blocks the others.\n"
        "Examples:\n"
        "  ipckit chat serve tcp://0.0.0.0:7000\n"
        "  ipckit chat join tcp://127.0.0.1:7000 --name ana\n"
        "  nc 127.0.0.1 7000          (type your name, then chat)\n"
        "  ipckit chat serve unix:@chat  &  ipckit chat join unix:@chat --name bob");

    auto* serve = cmd->add_subcommand("serve", "Serve a chat on URL until SIGINT/SIGTERM");
    serve->footer(
        "Prints 'chat: serving URL' (with the real port when :0 was asked), then one\n"
        "line per join, leave and dropped client.\n"
        "Example:\n"
        "  ipckit chat serve tcp://127.0.0.1:0 --queue-limit 64k");
    serve->add_option("url", o->url, "tcp://host:port or unix:/path | unix:@name")->required();
    serve->add_option("--queue-limit", o->queue_limit,
                      "Bytes queued for one client before it is dropped (default 256k)");
    serve->add_option("--max-line", o->max_line, "Longer lines are cut (default 4096)")
        ->check(count_validator());
    serve->add_option("--max-clients", o->max_clients, "Refuse clients past this (default 1000)")
        ->check(count_validator());
    serve->add_option("--sndbuf", o->sndbuf,
                      "Kernel send buffer per client, bounds memory (default 32k; 0 = system)");

    auto* join = cmd->add_subcommand("join", "Join a chat: stdin lines go out, messages print");
    join->footer(
        "Ends when the server closes the connection; at end of input the client\n"
        "leaves (the server announces it).\n"
        "Example:\n"
        "  ipckit chat join tcp://127.0.0.1:7000 --name ana");
    join->add_option("url", o->url, "tcp://host:port or unix:/path | unix:@name")->required();
    join->add_option("--name", o->name, "Your name in the chat")->required();
    join->add_option("-t,--timeout", o->timeout, "Give up connecting after this long")
        ->check(duration_validator());

    v.app = cmd;
    v.action = [o, serve, join]() -> int {
        install_stop_handlers();
        url u = parse_chat_url(o->url);
        if (join->parsed()) {
            if (o->name.empty() || o->name.find('\n') != std::string::npos)
                throw std::invalid_argument("chat join: --name must be one non-empty line");
            deadline until = o->timeout.empty() ? deadline::never()
                                                : deadline::after(*parse_duration(o->timeout));
            return run_join(u, o->name, until);
        }
        (void)serve;
        auto limit = parse_size(o->queue_limit);
        auto sndbuf = parse_size(o->sndbuf);
        if (!limit || *limit < 64)
            throw std::invalid_argument(
                "chat serve: --queue-limit must be a size >= 64 (e.g. 256k)");
        if (!sndbuf || *sndbuf > (1u << 30))
            throw std::invalid_argument("chat serve: --sndbuf must be a size (e.g. 32k)");
        if (o->max_line == 0) throw std::invalid_argument("chat serve: --max-line must be > 0");
        chat_server server(*limit, o->max_line, o->max_clients, static_cast<int>(*sndbuf));
        if (u.scheme == "tcp") {
            tcp_listener l(u.host, u.port);
            std::string shown = "tcp://" + inet_endpoint{u.host, l.port()}.to_string();
            return server.run(l.fd(), shown);
        }
        unix_listen_options lo;
        lo.mode = u.permissions(0600);
        auto allow = u.param("allow");
        lo.allow = allow ? parse_peer_policy(*allow) : default_peer_policy(u.path);
        unix_listener l(u.path, socket_type::stream, lo);
        return server.run(l.fd(), u.text, lo.allow);
    };
}

}  // namespace ipckit::cli
