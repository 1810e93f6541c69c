// The lecture's socketpair example: parent and child exchange a greeting
// over an unnamed pair of connected Unix sockets.
//
// The slide sent sizeof(HELLORESPONSE) bytes of HELLOREQUEST (the wrong
// string's size: a truncated, unterminated request) and printed the buffer
// with %s although read() does not NUL-terminate. Here each message is one
// SOCK_SEQPACKET record, received whole with its exact length.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "ipckit/error.hpp"
#include "ipckit/socket.hpp"

namespace {
constexpr std::string_view kRequest = "Hello, how are you?";
constexpr std::string_view kResponse = "I am fine, thanks.";
}  // namespace

int main() {
    try {
        auto [parent_end, child_end] = ipckit::make_socket_pair(ipckit::socket_type::seqpacket);
        std::fflush(stdout);
        pid_t pid = ::fork();
        if (pid < 0) ipckit::throw_errno("fork", "socketpair_hello");
        std::string buf;
        if (pid == 0) {  // child: uses its end only
            { auto unused = std::move(parent_end); }
            if (child_end.send(kRequest) != ipckit::io_status::ok) ::_exit(1);
            if (child_end.receive(buf, 1024) != ipckit::io_status::ok) ::_exit(1);
            std::printf("FILHO recv: %s\n", buf.c_str());
            std::fflush(stdout);
            ::_exit(0);
        }
        { auto unused = std::move(child_end); }
        if (parent_end.receive(buf, 1024) != ipckit::io_status::ok) return 1;
        std::printf("PAI recv: %s\n", buf.c_str());
        std::fflush(stdout);
        if (parent_end.send(kResponse) != ipckit::io_status::ok) return 1;
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "socketpair_hello: %s\n", e.what());
        return 1;
    }
}
