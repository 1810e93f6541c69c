// The lecture's FIFO example 2, server side: one well-known server FIFO for
// requests, one private reply FIFO per client. A request is one line,
// "<reply-fifo-path> <text>"; the answer (the text in upper case) goes to the
// client's own FIFO.
//
//   fifo_server [path] [requests]    (default /tmp/ipckit-fifo-server-<uid>;
//                                     requests 0 = until Ctrl-C / SIGTERM)
//
// Unlike the slide's version: the server FIFO is per user and mode 0600; the
// server never closes and reopens it between clients (so no client can hit
// the moment when nobody reads); a request is a bounded line (at most
// PIPE_BUF, so concurrent clients' requests never interleave); the reply path
// sent by a client is validated (absolute, plain characters) and opened
// without following symlinks, only if it is a FIFO owned by the server's own
// user, and with a deadline, so a client that died or lied cannot block or
// redirect the server; errors in one request do not stop the server.
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/fifo.hpp"

namespace {

volatile sig_atomic_t stop_requested = 0;

void on_signal(int) {
    stop_requested = 1;
}

// Only absolute paths of plain characters: no '?' (URL options), no "..".
bool valid_reply_path(const std::string& p) {
    if (p.size() < 2 || p[0] != '/' || p.size() >= PATH_MAX) return false;
    if (p.find("..") != std::string::npos) return false;
    for (unsigned char c : p)
        if (!(std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-')) return false;
    return true;
}

// Answers one request; returns false (after saying why) if it was refused.
bool answer(const std::string& request) {
    auto space = request.find(' ');
    std::string reply_path = request.substr(0, space);
    std::string text = space == std::string::npos ? "" : request.substr(space + 1);
    if (!valid_reply_path(reply_path)) {
        std::printf("server: refused request with bad reply path\n");
        return false;
    }
    // The client created its reply FIFO and is reading it; a client that is
    // gone must not block the server: give it one second.
    auto fd =
        ipckit::open_fifo_writer(reply_path, ipckit::deadline::after(std::chrono::seconds(1)));
    if (!fd) {
        std::printf("server: nobody reads %s\n", reply_path.c_str());
        return false;
    }
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0 || st.st_uid != ::geteuid()) {
        std::printf("server: %s is not owned by us\n", reply_path.c_str());
        return false;
    }
    auto reply = ipckit::make_fd_channel("fifo:" + reply_path, {}, std::move(*fd),
                                         ipckit::framing::line, PIPE_BUF);
    std::string upper = text;
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (reply->send(upper, ipckit::deadline::after(std::chrono::seconds(1))) !=
        ipckit::io_status::ok) {
        std::printf("server: could not answer %s\n", reply_path.c_str());
        return false;
    }
    std::printf("server: %s <- %s\n", reply_path.c_str(), upper.c_str());
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string path =
        argc > 1 ? argv[1] : "/tmp/ipckit-fifo-server-" + std::to_string(::geteuid());
    long requests = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 0;
    if (!valid_reply_path(path) || requests < 0) {
        std::fprintf(stderr, "usage: fifo_server [/absolute/path] [requests]\n");
        return 2;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    try {
        auto server = ipckit::open_channel(
            "fifo:" + path + "?frame=line&max_message=" + std::to_string(PIPE_BUF),
            ipckit::channel_role::receiver);
        std::printf("server: listening on %s\n", path.c_str());
        std::fflush(stdout);
        ipckit::message m;
        for (long served = 0; (requests == 0 || served < requests) && !stop_requested;) {
            auto st = server->receive(m, ipckit::deadline::after(std::chrono::milliseconds(200)));
            if (st == ipckit::io_status::timed_out) continue;
            if (st == ipckit::io_status::closed) break;
            ++served;  // refused requests count too: the server answers each once
            try {
                answer(m.payload);
            } catch (const std::exception& e) {
                std::printf("server: %s\n", e.what());
            }
            std::fflush(stdout);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fifo_server: %s\n", e.what());
        return 1;
    }
}
