// Tour checks for sockets: Unix stream/dgram/seqpacket, socketpair with fd
// passing, TCP and UDP, each between real processes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "ipckit/channel.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/socket.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kLines{"hello", "from the", "other process"};

// A child sends kLines to url; rx (already listening / bound) receives them.
std::string child_sends(channel& rx, const std::string& url) {
    auto child = fork_child([&] {
        open_options o;
        o.open_deadline = deadline::after(5s);
        auto tx = open_channel(url, channel_role::sender, o);
        for (const auto& l : kLines)
            if (tx->send(l, deadline::after(5s)) != io_status::ok) return 1;
        return 0;
    });
    message m;
    std::size_t bytes = 0;
    for (const auto& want : kLines) {
        auto st = rx.receive(m, deadline::after(10s));
        tour_expect(st == io_status::ok, std::string("receive: ") + to_string(st));
        tour_expect(m.payload == want, "got '" + m.payload + "', expected '" + want + "'");
        bytes += m.payload.size();
    }
    expect_child_ok(child);
    return fmt::format("{} messages, {} bytes", kLines.size(), bytes);
}

}  // namespace

std::vector<tour_check> tour_checks_sockets() {
    std::vector<tour_check> checks;
    checks.push_back(
        {"socket", "unix stream, pathname 0600, child -> server", [] {
             std::string path = "/tmp/" + tour_name("sock") + ".sock";
             std::string detail;
             {
                 auto rx = open_channel("unix:" + path, channel_role::receiver);
                 struct stat st {};
                 tour_expect(::lstat(path.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600,
                             "socket file is not mode 0600");
                 auto child = fork_child([&] {
                     auto tx = open_channel("unix:" + path, channel_role::sender);
                     for (const auto& l : kLines)
                         if (tx->send(l) != io_status::ok) return 1;
                     return 0;
                 });
                 message m;
                 for (const auto& want : kLines) {
                     tour_expect(rx->receive(m, deadline::after(10s)) == io_status::ok,
                                 "receive failed");
                     tour_expect(m.payload == want, "wrong message '" + m.payload + "'");
                 }
                 expect_child_ok(child);
                 detail = "3 framed messages, file mode 0600";
             }
             tour_expect(::access(path.c_str(), F_OK) != 0, "socket file left behind");
             return detail + ", removed";
         }});
    checks.push_back({"socket", "unix dgram, abstract @name, child -> server", [] {
                          std::string url = "unix:@" + tour_name("dgram") + "?type=dgram";
                          auto rx = open_channel(url, channel_role::receiver);
                          return child_sends(*rx, url);
                      }});
    checks.push_back({"socket", "unix seqpacket, peer credentials (SO_PEERCRED)", [] {
                          std::string name = "@" + tour_name("seq");
                          unix_listener l(name, socket_type::seqpacket);
                          auto child = fork_child([&] {
                              sock s =
                                  connect_unix(name, socket_type::seqpacket, deadline::after(5s));
                              return s.send("record") == io_status::ok ? 0 : 1;
                          });
                          auto s = l.accept(deadline::after(10s));
                          tour_expect(s.has_value(), "no connection");
                          auto cred = s->peer();
                          tour_expect(cred.pid == child.pid(), "peer pid is not the child's");
                          std::string got;
                          tour_expect(s->receive(got, 64, deadline::after(10s)) == io_status::ok &&
                                          got == "record",
                                      "record not received whole");
                          expect_child_ok(child);
                          return fmt::format("peer pid {} uid {}, 1 record", cred.pid, cred.uid);
                      }});
    checks.push_back(
        {"socket", "socketpair: hello exchange + pass a pipe fd", [] {
             // No structured binding: clang 14 cannot capture one in a lambda.
             auto pair = make_socket_pair();
             auto& parent = pair.first;
             auto& child_end = pair.second;
             auto p = make_pipe();
             auto child = fork_child([&] {
                 std::string got;
                 std::vector<unique_fd> fds;
                 if (child_end.receive_fds(got, 64, fds, 4, deadline::after(5s)) != io_status::ok)
                     return 1;
                 if (got != "Hello, how are you?" || fds.size() != 1) return 2;
                 const char via[] = "through the passed fd";
                 if (::write(fds[0].get(), via, sizeof via - 1) != sizeof via - 1) return 3;
                 return child_end.send("I am fine, thanks.") == io_status::ok ? 0 : 4;
             });
             int w = p.write_end.get();
             tour_expect(parent.send_fds("Hello, how are you?", std::span<const int>(&w, 1)) ==
                             io_status::ok,
                         "sendmsg failed");
             p.write_end.reset();
             std::string reply, part;
             while (reply.size() < 18 &&
                    parent.receive(part, 64, deadline::after(10s)) == io_status::ok)
                 reply += part;
             tour_expect(reply == "I am fine, thanks.", "reply was '" + reply + "'");
             char buf[64];
             ssize_t n = ::read(p.read_end.get(), buf, sizeof buf);
             tour_expect(
                 n > 0 && std::string(buf, static_cast<std::size_t>(n)) == "through the passed fd",
                 "nothing came through the passed fd");
             expect_child_ok(child);
             return std::string("request + reply, 1 fd passed (SCM_RIGHTS)");
         }});
    checks.push_back({"socket", "tcp loopback, ephemeral port, child -> server", [] {
                          auto rx = open_channel("tcp://127.0.0.1:0", channel_role::receiver);
                          return child_sends(*rx, rx->name()) + " on port " +
                                 rx->name().substr(rx->name().rfind(':') + 1);
                      }});
    checks.push_back({"socket", "udp loopback datagrams, child -> server", [] {
                          auto rx = open_channel("udp://127.0.0.1:0", channel_role::receiver);
                          std::string url = rx->name();
                          auto child = fork_child([&] {
                              auto tx = open_channel(url, channel_role::sender);
                              for (const auto& l : kLines)
                                  if (tx->send(l) != io_status::ok) return 1;
                              return 0;
                          });
                          message m;
                          for (const auto& want : kLines) {
                              tour_expect(rx->receive(m, deadline::after(10s)) == io_status::ok,
                                          "datagram lost");
                              tour_expect(m.payload == want, "wrong datagram '" + m.payload + "'");
                          }
                          expect_child_ok(child);
                          return fmt::format("{} datagrams", kLines.size());
                      }});
    return checks;
}

}  // namespace ipckit::cli
