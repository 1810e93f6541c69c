// The lecture's Unix socket server (slides "Exemplo Socket - UNIX/LOCAL"):
// waits for clients one after another and prints what each one sends.
//
//   unix_server [ADDRESS] [--clients N]
//
// ADDRESS is /path (a socket file, created 0600 and removed at exit) or
// @name (abstract, the slides' "\0myabstractsocket"); default @myabstractsocket.
// Without --clients it serves forever, like the slide.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ipckit/error.hpp"
#include "ipckit/socket.hpp"

int main(int argc, char** argv) {
    std::string address = "@myabstractsocket";
    long clients = -1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
            clients = std::atol(argv[++i]);
        else
            address = argv[i];
    }
    try {
        ipckit::unix_listener server(address, ipckit::socket_type::stream);
        std::printf("listening on %s\n", address.c_str());
        std::fflush(stdout);
        for (long served = 0; clients < 0 || served < clients; ++served) {
            auto client = server.accept();  // no deadline: wait like accept(2)
            if (!client) continue;
            std::string buf;
            // Print exactly the bytes received: the slide's "%.s" printed none
            // of them, and a raw read is not a C string.
            while (client->receive(buf, 100) == ipckit::io_status::ok)
                std::printf("read %zu bytes: %.*s\n", buf.size(), static_cast<int>(buf.size()),
                            buf.data());
            std::printf("EOF\n");
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unix_server: %s\n", e.what());
        return 1;
    }
    return 0;
}
