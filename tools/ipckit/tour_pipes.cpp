// Tour checks for anonymous pipes and FIFOs, each in real processes.
#include <string>
#include <vector>

#include <fmt/core.h>

#include "ipckit/channel.hpp"
#include "ipckit/fifo.hpp"
#include "ipckit/pipe.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kGreetings{"hello", "from the", "other process"};

std::string pipe_parent_to_child() {
    auto pc = make_pipe_channels();
    // The child reads while the parent writes: fork first, then send.
    child_process child = fork_child([&] {
        pc.writer.reset();  // only the parent writes: EOF arrives when it is done
        message m;
        for (const auto& want : kGreetings)
            if (pc.reader->receive(m, deadline::after(5s)) != io_status::ok || m.payload != want)
                return 1;
        return pc.reader->receive(m, deadline::after(5s)) == io_status::closed ? 0 : 2;
    });
    pc.reader.reset();
    std::size_t bytes = 0;
    for (const auto& g : kGreetings) {
        tour_expect(pc.writer->send(g) == io_status::ok, "send failed");
        bytes += g.size();
    }
    pc.writer.reset();  // EOF for the child
    expect_child_ok(child);
    return fmt::format("{} messages, {} bytes, EOF seen", kGreetings.size(), bytes);
}

std::string fifo_writer_to_reader() {
    std::string path = "/tmp/" + tour_name("fifo");
    std::string url = "fifo:" + path;
    fifo_remover cleanup(path);
    auto reader = open_channel(url, channel_role::receiver);
    child_process child = fork_child([&] {
        open_options o;
        o.open_deadline = deadline::after(5s);
        auto w = open_channel(url, channel_role::sender, o);
        for (int i = 0; i < 5; ++i)
            if (w->send("message " + std::to_string(i)) != io_status::ok) return 1;
        return 0;
    });
    message m;
    for (int i = 0; i < 5; ++i) {
        auto st = reader->receive(m, deadline::after(5s));
        tour_expect(st == io_status::ok, std::string("receive: ") + to_string(st));
        tour_expect(m.payload == "message " + std::to_string(i), "out of order: " + m.payload);
    }
    expect_child_ok(child);
    return "5 messages in order, mode 0600";
}

std::string fifo_server_two_clients() {
    std::string path = "/tmp/" + tour_name("fifo-server");
    std::string url = "fifo:" + path;
    fifo_remover cleanup(path);
    auto server = open_channel(url, channel_role::receiver);
    std::vector<child_process> clients;
    for (int c = 0; c < 2; ++c) {
        clients.push_back(fork_child([&, c] {
            auto w = open_channel(url, channel_role::sender);
            for (int i = 0; i < 3; ++i)
                if (w->send(fmt::format("client {} request {}", c, i)) != io_status::ok) return 1;
            return 0;
        }));
    }
    int seen[2] = {0, 0};
    message m;
    for (int i = 0; i < 6; ++i) {
        auto st = server->receive(m, deadline::after(5s));
        tour_expect(st == io_status::ok, std::string("receive: ") + to_string(st));
        int c = m.payload.rfind("client 1", 0) == 0 ? 1 : 0;
        tour_expect(m.payload == fmt::format("client {} request {}", c, seen[c]),
                    "unexpected message: " + m.payload);
        ++seen[c];
    }
    for (auto& c : clients)
        expect_child_ok(c);
    return "6 requests, per-client order kept, reader never reopened";
}

}  // namespace

std::vector<tour_check> tour_checks_pipes() {
    return {
        {"pipe", "parent -> child, 3 framed messages then EOF", pipe_parent_to_child},
        {"pipe", "pipeline: seq 1 100 | grep 7 | wc -l",
         [] {
             auto r = run_pipeline({{"seq", "1", "100"}, {"grep", "7"}, {"wc", "-l"}}, {},
                                   deadline::after(10s));
             tour_expect(!r.timed_out, "pipeline timed out");
             for (const auto& s : r.statuses)
                 tour_expect(s.success(), "a stage ended with " + s.describe());
             tour_expect(r.out == "19\n", "expected 19 lines, got '" + r.out + "'");
             return std::string("3 processes, output 19");
         }},
        {"pipe", "safe popen: tr a-z A-Z with stdin and stdout",
         [] {
             auto r = run({"tr", "a-z", "A-Z"}, "hello, pipes", deadline::after(10s));
             tour_expect(r.status.success(), "tr ended with " + r.status.describe());
             tour_expect(r.out == "HELLO, PIPES", "unexpected output '" + r.out + "'");
             return std::string("output HELLO, PIPES");
         }},
    };
}

std::vector<tour_check> tour_checks_fifos() {
    return {
        {"fifo", "writer process -> reader, 5 messages", fifo_writer_to_reader},
        {"fifo", "server FIFO, two client processes", fifo_server_two_clients},
    };
}

}  // namespace ipckit::cli
