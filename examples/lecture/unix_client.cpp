// The lecture's Unix socket client: sends its standard input to the server.
//
//   unix_client [ADDRESS]      (default @myabstractsocket; /path for a file)
//
// Unlike the slide, the abstract address really starts with a NUL byte (the
// slide's "\\0" is a backslash and a zero), and a partial write is finished
// instead of being reported and dropped.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "ipckit/error.hpp"
#include "ipckit/socket.hpp"

int main(int argc, char** argv) {
    std::string address = argc > 1 ? argv[1] : "@myabstractsocket";
    try {
        ipckit::sock client = ipckit::connect_unix(address, ipckit::socket_type::stream);
        char buf[100];
        for (;;) {
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0) {
                std::perror("read stdin");
                return 1;
            }
            if (n == 0) break;
            // send() loops over partial writes; a closed server is a value.
            if (client.send(std::string_view(buf, static_cast<std::size_t>(n))) !=
                ipckit::io_status::ok) {
                std::fprintf(stderr, "unix_client: server closed the connection\n");
                return 1;
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unix_client: %s\n", e.what());
        return 1;
    }
    return 0;
}
