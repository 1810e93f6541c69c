// Tour checks for RPC: a server process and its clients, over a Unix
// pathname socket and over TCP with concurrent client processes.
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "ipckit/pipe.hpp"
#include "ipckit/rpc.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

using namespace std::chrono_literals;

// The server is built and listening in the parent (clients may connect at
// once), then run() in a forked child until a client calls "stop".
child_process fork_server(rpc::server& server) {
    server.add("stop", [&server](std::string_view) {
        server.request_stop();
        return std::string();
    });
    return fork_child([&server] { return server.run(deadline::after(30s)) ? 0 : 1; });
}

std::string call(rpc::client& c, std::string_view method, std::string_view args) {
    std::string result;
    auto st = c.call(method, args, result, deadline::after(10s));
    tour_expect(st == io_status::ok, fmt::format("call {}: {}", method, to_string(st)));
    return result;
}

// Stops the server child; the reply to "stop" may or may not get out first.
void stop_server(rpc::client& c, child_process& server) {
    std::string ignored;
    c.call("stop", "", ignored, deadline::after(10s));
    expect_child_ok(server);
}

}  // namespace

std::vector<tour_check> tour_checks_rpc() {
    std::vector<tour_check> checks;
    checks.push_back(
        {"rpc", "unix pathname socket: add, 100 KiB echo, unknown method", [] {
             const std::string path = "/tmp/" + tour_name("rpc") + ".sock";
             {
                 rpc::server server;
                 server.add("echo", [](std::string_view a) { return std::string(a); });
                 server.add("add", [](std::string_view a) {
                     std::istringstream in{std::string(a)};
                     long sum = 0, v = 0;
                     while (in >> v)
                         sum += v;
                     return std::to_string(sum);
                 });
                 server.listen("unix:" + path);
                 auto child = fork_server(server);
                 rpc::client c("unix:" + path, deadline::after(10s));
                 tour_expect(call(c, "add", "2 3 4") == "9", "add \"2 3 4\" did not return 9");
                 const std::string big(100 * 1024, 'r');
                 tour_expect(call(c, "echo", big) == big, "100 KiB echo came back different");
                 bool refused = false;
                 try {
                     call(c, "no_such_method", "");
                 } catch (const rpc::remote_error& e) {
                     refused = e.code() == rpc::errc::unknown_method;
                 }
                 tour_expect(refused, "an unknown method did not give remote_error unknown_method");
                 stop_server(c, child);
             }
             tour_expect(::access(path.c_str(), F_OK) != 0, "socket file left behind");
             return std::string("3 calls, 100 KiB echo, unknown method refused");
         }});
    checks.push_back({"rpc", "tcp loopback, 8 client processes x 100 calls", [] {
                          constexpr int kClients = 8, kCalls = 100;
                          rpc::server server;
                          server.add("square", [](std::string_view a) {
                              long v = std::stol(std::string(a));
                              return std::to_string(v * v);
                          });
                          server.listen("tcp://127.0.0.1:0");
                          const std::string url = server.address();
                          auto child = fork_server(server);
                          std::vector<child_process> clients;
                          for (int k = 0; k < kClients; ++k)
                              clients.push_back(fork_child([&url, k] {
                                  rpc::client c(url, deadline::after(10s));
                                  std::string r;
                                  for (int i = 0; i < kCalls; ++i) {
                                      long v = k * 1000 + i;
                                      if (c.call("square", std::to_string(v), r,
                                                 deadline::after(10s)) != io_status::ok ||
                                          r != std::to_string(v * v))
                                          return 1;
                                  }
                                  return 0;
                              }));
                          for (auto& cl : clients)
                              expect_child_ok(cl, 30s);
                          rpc::client c(url, deadline::after(10s));
                          stop_server(c, child);
                          return fmt::format("{} calls from {} clients on port {}",
                                             kClients * kCalls, kClients,
                                             url.substr(url.rfind(':') + 1));
                      }});
    return checks;
}

}  // namespace ipckit::cli
