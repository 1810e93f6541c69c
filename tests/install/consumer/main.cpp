// Uses the installed headers and shared library: parses a URL and moves one
// message through a pipe channel. Prints "consumer ok" on success. The
// umbrella header proves every installed header compiles on its own terms.
#include <ipckit/ipckit.hpp>

#include <cstdio>

int main() {
    try {
        auto u = ipckit::parse_url("fifo:/tmp/consumer?frame=line");
        if (u.frame(ipckit::framing::length) != ipckit::framing::line) return 1;
        if (!ipckit::rpc::valid_method_name("add")) return 1;
        auto pipe = ipckit::make_pipe_channels();
        if (pipe.writer->send("through the installed library") != ipckit::io_status::ok) return 2;
        ipckit::message m;
        if (pipe.reader->receive(m, ipckit::deadline::after(std::chrono::seconds(5))) !=
            ipckit::io_status::ok)
            return 3;
        std::printf("consumer ok: %s\n", m.payload.c_str());
        return m.payload == "through the installed library" ? 0 : 4;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 5;
    }
}
