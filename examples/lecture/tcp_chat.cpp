// The lecture's TCP chat ("Exemplo: chat"), small: one poll() loop, every
// line a client sends goes to all the others as "name: text"; the first
// line is the client's name. Join with `nc HOST PORT` or `ipckit chat join`.
//
//   tcp_chat [HOST:PORT]      (default 127.0.0.1:0 = an ephemeral port)
//
// It prints "port N" first. A client whose socket buffer is full is dropped
// instead of blocking everyone (the full-featured server with queues is
// `ipckit chat serve`).
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <vector>

#include "ipckit/error.hpp"
#include "ipckit/socket.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_term(int) {
    g_stop = 1;
}

struct member {
    ipckit::sock s;
    std::string name;
    std::string partial;
    bool gone = false;
};

// Sends without waiting; a member that cannot take the line right now is
// dropped: one slow reader must never stall the room.
void deliver(member& m, const std::string& line) {
    if (m.gone || m.name.empty()) return;
    ssize_t n = ::send(m.s.fd(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != static_cast<ssize_t>(line.size())) m.gone = true;
}

void broadcast(std::vector<member>& ms, const member* from, const std::string& line) {
    for (auto& m : ms)
        if (&m != from) deliver(m, line);
}

}  // namespace

int main(int argc, char** argv) {
    struct sigaction sa {};
    sa.sa_handler = on_term;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    try {
        auto ep = ipckit::inet_endpoint::parse(argc > 1 ? argv[1] : "127.0.0.1:0");
        ipckit::tcp_listener listener(ep.host, ep.port);
        std::printf("port %u\n", listener.port());
        std::fflush(stdout);
        std::vector<member> members;
        while (!g_stop) {
            std::vector<pollfd> fds{{listener.fd(), POLLIN, 0}};
            for (auto& m : members)
                fds.push_back({m.s.fd(), POLLIN, 0});
            if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR: check g_stop
            if (fds[0].revents & POLLIN) {
                if (auto c = listener.accept(ipckit::deadline::immediate()))
                    members.push_back({std::move(*c), {}, {}, false});
            }
            for (std::size_t i = 1; i < fds.size(); ++i) {
                if (!fds[i].revents) continue;
                auto& m = members[i - 1];
                std::string chunk;
                if (m.s.receive(chunk, 4096, ipckit::deadline::immediate()) !=
                    ipckit::io_status::ok) {
                    m.gone = true;
                    continue;
                }
                m.partial += chunk;
                for (auto nl = m.partial.find('\n'); nl != std::string::npos;
                     nl = m.partial.find('\n')) {
                    std::string text = m.partial.substr(0, nl);
                    m.partial.erase(0, nl + 1);
                    if (!text.empty() && text.back() == '\r') text.pop_back();
                    if (m.name.empty()) {
                        m.name = text.empty() ? "guest" : text;
                        broadcast(members, &m, "* " + m.name + " joined\n");
                    } else {
                        broadcast(members, &m, m.name + ": " + text + "\n");
                    }
                }
            }
            // Remove the gone, telling the others (which may drop more).
            for (bool again = true; again;) {
                again = false;
                for (std::size_t i = 0; i < members.size(); ++i) {
                    if (!members[i].gone) continue;
                    std::string name = members[i].name;
                    members.erase(members.begin() + static_cast<long>(i));
                    if (!name.empty()) broadcast(members, nullptr, "* " + name + " left\n");
                    again = true;
                    break;
                }
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcp_chat: %s\n", e.what());
        return 1;
    }
    return 0;
}
