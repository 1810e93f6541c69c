// Tour checks for anonymous pipes and FIFOs, each in real processes.
#include <unistd.h>

#include <string>
#include <vector>

#include <fmt/core.h>

#include "ipckit/channel.hpp"
#include "ipckit/fifo.hpp"
#include "ipckit/pipe.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

const std::vector<std::string> kGreetings{"hello", "from the", "other process"};

}  // namespace

std::vector<tour_check> tour_checks_pipes() {
    std::vector<tour_check> checks;
    checks.push_back(
        {"pipe", "parent -> child, 3 framed messages then EOF", [] {
             auto pc = make_pipe_channels();
             std::size_t bytes = 0;
             std::fflush(nullptr);
             // Fork by hand here: the parent must write while the child runs.
             pid_t pid = ::fork();
             if (pid == 0) {
                 pc.writer.reset();
                 message m;
                 int rc = 0;
                 for (const auto& want : kGreetings) {
                     auto st = pc.reader->receive(m, deadline::after(std::chrono::seconds(5)));
                     if (st != io_status::ok || m.payload != want) rc = 1;
                 }
                 if (pc.reader->receive(m, deadline::after(std::chrono::seconds(5))) !=
                     io_status::closed)
                     rc = 2;
                 ::_exit(rc);
             }
             tour_expect(pid > 0, "fork failed");
             child_process child(pid, {}, {}, {});
             pc.reader.reset();
             for (const auto& g : kGreetings) {
                 tour_expect(pc.writer->send(g) == io_status::ok, "send failed");
                 bytes += g.size();
             }
             pc.writer.reset();  // EOF for the child
             auto st = child.wait_until(deadline::after(std::chrono::seconds(10)));
             tour_expect(st.has_value(), "child did not finish");
             tour_expect(st->success(), "child reported " + st->describe());
             return fmt::format("{} messages, {} bytes, EOF seen", kGreetings.size(), bytes);
         }});
    checks.push_back({"pipe", "pipeline: seq 1 100 | grep 7 | wc -l", [] {
                          auto r = run_pipeline({{"seq", "1", "100"}, {"grep", "7"}, {"wc", "-l"}},
                                                {}, deadline::after(std::chrono::seconds(10)));
                          tour_expect(!r.timed_out, "pipeline timed out");
                          for (const auto& s : r.statuses)
                              tour_expect(s.success(), "a stage ended with " + s.describe());
                          tour_expect(r.out == "19\n", "expected 19 lines, got '" + r.out + "'");
                          return std::string("3 processes, output 19");
                      }});
    checks.push_back({"pipe", "safe popen: tr a-z A-Z with stdin and stdout", [] {
                          auto r = run({"tr", "a-z", "A-Z"}, "hello, pipes",
                                       deadline::after(std::chrono::seconds(10)));
                          tour_expect(r.status.success(), "tr ended with " + r.status.describe());
                          tour_expect(r.out == "HELLO, PIPES", "unexpected output '" + r.out + "'");
                          return std::string("output HELLO, PIPES");
                      }});
    return checks;
}

std::vector<tour_check> tour_checks_fifos() {
    std::vector<tour_check> checks;
    checks.push_back(
        {"fifo", "writer process -> reader, 5 messages", [] {
             std::string path = "/tmp/" + tour_name("fifo");
             std::string url = "fifo:" + path;
             fifo_remover cleanup(path);
             auto reader = open_channel(url, channel_role::receiver);
             std::fflush(nullptr);
             pid_t pid = ::fork();
             if (pid == 0) {
                 try {
                     open_options o;
                     o.open_deadline = deadline::after(std::chrono::seconds(5));
                     auto w = open_channel(url, channel_role::sender, o);
                     for (int i = 0; i < 5; ++i)
                         if (w->send("message " + std::to_string(i)) != io_status::ok) ::_exit(1);
                     ::_exit(0);
                 } catch (...) {
                     ::_exit(2);
                 }
             }
             tour_expect(pid > 0, "fork failed");
             child_process child(pid, {}, {}, {});
             message m;
             for (int i = 0; i < 5; ++i) {
                 auto st = reader->receive(m, deadline::after(std::chrono::seconds(5)));
                 tour_expect(st == io_status::ok, std::string("receive: ") + to_string(st));
                 tour_expect(m.payload == "message " + std::to_string(i),
                             "out of order: " + m.payload);
             }
             auto st = child.wait_until(deadline::after(std::chrono::seconds(5)));
             tour_expect(st && st->success(), "writer failed");
             return std::string("5 messages in order, mode 0600");
         }});
    checks.push_back(
        {"fifo", "server FIFO, two client processes", [] {
             std::string path = "/tmp/" + tour_name("fifo-server");
             std::string url = "fifo:" + path;
             fifo_remover cleanup(path);
             auto server = open_channel(url, channel_role::receiver);
             std::vector<child_process> clients;
             for (int c = 0; c < 2; ++c) {
                 std::fflush(nullptr);
                 pid_t pid = ::fork();
                 if (pid == 0) {
                     try {
                         auto w = open_channel(url, channel_role::sender);
                         for (int i = 0; i < 3; ++i)
                             w->send(fmt::format("client {} request {}", c, i));
                         ::_exit(0);
                     } catch (...) {
                         ::_exit(2);
                     }
                 }
                 tour_expect(pid > 0, "fork failed");
                 clients.emplace_back(pid, unique_fd{}, unique_fd{}, unique_fd{});
             }
             int seen[2] = {0, 0};
             message m;
             for (int i = 0; i < 6; ++i) {
                 auto st = server->receive(m, deadline::after(std::chrono::seconds(5)));
                 tour_expect(st == io_status::ok, std::string("receive: ") + to_string(st));
                 int c = m.payload.rfind("client 1", 0) == 0 ? 1 : 0;
                 tour_expect(m.payload == fmt::format("client {} request {}", c, seen[c]),
                             "unexpected message: " + m.payload);
                 ++seen[c];
             }
             for (auto& c : clients) {
                 auto st = c.wait_until(deadline::after(std::chrono::seconds(5)));
                 tour_expect(st && st->success(), "a client failed");
             }
             return std::string("6 requests, per-client order kept, reader never reopened");
         }});
    return checks;
}

}  // namespace ipckit::cli
