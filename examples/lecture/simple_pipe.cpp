// The lecture's `simple-pipe`: the parent reads a line and sends it to its
// child through an anonymous pipe; the child prints it.
//
//   simple_pipe            (type a line, or: echo 'Olá filho.' | simple_pipe)
//
// Unlike the slide: the line has any length (the slide's scanf("%40[^\n]")
// writes 41 bytes into a 40-byte buffer); exactly the bytes typed are sent
// (the slide wrote sizeof(buffer) bytes, i.e. uninitialised garbage after the
// text, and the child printed a buffer that need not be NUL-terminated); every
// message is framed, so the child gets it whole however the pipe splits it; and
// every call is checked, the pipe is close-on-exec and the child is reaped.
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/pipe.hpp"

namespace {

// The child: one message, or the news that the parent sent nothing.
int child_main(ipckit::channel& reader) {
    ipckit::message m;
    switch (reader.receive(m)) {
        case ipckit::io_status::ok:
            std::printf("FILHO: ...%s\n", m.payload.c_str());
            break;
        case ipckit::io_status::closed:
            std::printf("FILHO: (nada recebido)\n");
            break;
        case ipckit::io_status::timed_out:  // impossible without a deadline
            return 1;
    }
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main() {
    try {
        // 1 MiB is plenty for a typed line and bounds what the child accepts.
        auto pipe = ipckit::make_pipe_channels(ipckit::framing::length, 1 << 20);
        std::fflush(nullptr);  // nothing buffered may be printed twice
        pid_t pid = ::fork();
        if (pid < 0) ipckit::throw_errno("fork", "simple_pipe");
        if (pid == 0) {
            pipe.writer.reset();  // or the child would never see end of stream
            int rc = 1;
            try {
                rc = child_main(*pipe.reader);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "FILHO: %s\n", e.what());
            }
            std::fflush(nullptr);
            ::_exit(rc);
        }
        ipckit::child_process child(pid, {}, {}, {});  // reaped even if we throw
        pipe.reader.reset();

        std::printf("PAI: Digite algo para enviar: ");
        std::fflush(stdout);
        std::string line;
        if (std::getline(std::cin, line)) {
            if (line.size() > pipe.writer->max_message()) {
                std::fprintf(stderr, "PAI: linha longa demais (%zu bytes, máximo %zu)\n",
                             line.size(), pipe.writer->max_message());
            } else if (pipe.writer->send(line) != ipckit::io_status::ok) {
                std::fprintf(stderr, "PAI: o filho fechou o pipe\n");
            }
        }
        pipe.writer.reset();  // end of stream for the child
        auto status = child.wait();
        if (!status.success()) {
            std::fprintf(stderr, "PAI: filho terminou com %s\n", status.describe().c_str());
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "simple_pipe: %s\n", e.what());
        return 1;
    }
}
