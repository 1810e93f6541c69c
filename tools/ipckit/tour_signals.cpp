// Tour checks for signals: a parent signals a child that has blocked the
// signals and reads them from a signalfd, then reports what it received.
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "detail/syscall.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/signal.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

constexpr auto kWait = std::chrono::seconds(5);

std::string read_line(int fd) {
    std::string out;
    char c;
    std::size_t got = 0;
    while (detail::read_some(fd, std::as_writable_bytes(std::span(&c, 1)), deadline::after(kWait),
                             "tour pipe", got) == detail::io_outcome::ok &&
           got == 1 && c != '\n')
        out += c;
    return out;
}

void write_line(int fd, const std::string& line) {
    std::string l = line + "\n";
    detail::write_all(fd, std::as_bytes(std::span(l.data(), l.size())), deadline::after(kWait),
                      "tour pipe");
}

// Forks a child that blocks `signals` (through a listener), says "ready", and
// runs body(listener, to_parent, from_parent). The parent, once the child is
// ready (so nothing it sends can hit a default action), runs parent(pid,
// to_child) and returns the child's report line.
std::string with_listening_child(
    signal_set signals, const std::function<std::string(signal_listener&, int from_parent)>& body,
    const std::function<void(pid_t, int to_child)>& parent) {
    auto up = make_pipe();    // child -> parent: "ready", then the report
    auto down = make_pipe();  // parent -> child: "sent"
    child_process child = fork_child([&] {
        up.read_end.reset();
        down.write_end.reset();
        signal_listener listener(signals);
        write_line(up.write_end.get(), "ready");
        write_line(up.write_end.get(), body(listener, down.read_end.get()));
        return 0;
    });
    const pid_t pid = child.pid();
    up.write_end.reset();
    down.read_end.reset();
    tour_expect(read_line(up.read_end.get()) == "ready", "child did not get ready");
    parent(pid, down.write_end.get());
    std::string report = read_line(up.read_end.get());
    expect_child_ok(child, kWait);
    return report;
}

}  // namespace

std::vector<tour_check> tour_checks_signals() {
    std::vector<tour_check> checks;
    checks.push_back(
        {"signal", "parent -> child: SIGUSR1, then SIGRTMIN+1 with a payload", [] {
             const int rt = SIGRTMIN + 1;
             const pid_t me = ::getpid();
             auto report = with_listening_child(
                 signal_set{SIGUSR1, rt},
                 [](signal_listener& l, int) {
                     std::string out;
                     for (int i = 0; i < 2; ++i) {
                         auto r = l.wait(deadline::after(kWait));
                         if (!r) return std::string("timed out");
                         out +=
                             fmt::format("{}:{}:{}:{};", r->name(), r->sender_pid, r->code_name(),
                                         r->has_value() ? std::to_string(r->value) : "-");
                     }
                     return out;
                 },
                 [rt](pid_t child, int) {
                     send_signal(child, SIGUSR1);
                     queue_signal(child, rt, 42);
                 });
             const std::string want =
                 fmt::format("SIGUSR1:{}:SI_USER:-;SIGRTMIN+1:{}:SI_QUEUE:42;", me, me);
             tour_expect(report == want,
                         "child reported '" + report + "', expected '" + want + "'");
             return fmt::format("child saw SIGUSR1 from pid {}, SIGRTMIN+1 value 42", me);
         }});
    checks.push_back(
        {"signal", "3x SIGRTMIN+2 queue in order; 3x SIGUSR2 coalesce", [] {
             const int rt = SIGRTMIN + 2;
             auto report = with_listening_child(
                 signal_set{SIGUSR2, rt},
                 [rt](signal_listener& l, int from_parent) {
                     if (read_line(from_parent) != "sent") return std::string("no 'sent'");
                     // Everything is pending now; read it all without waiting.
                     int usr2 = 0;
                     std::string values;
                     while (auto r = l.try_receive()) {
                         if (r->signo == SIGUSR2) ++usr2;
                         if (r->signo == rt) values += std::to_string(r->value);
                     }
                     return fmt::format("{} {}", usr2, values);
                 },
                 [rt](pid_t child, int to_child) {
                     for (int v = 1; v <= 3; ++v) {
                         send_signal(child, SIGUSR2);
                         queue_signal(child, rt, v);
                     }
                     write_line(to_child, "sent");
                 });
             tour_expect(report == "1 123", "child reported '" + report + "', expected '1 123'");
             return std::string("realtime: 3 received (1,2,3); standard: 3 sent, 1 received");
         }});
    checks.push_back({"signal", "timer delivers SIGALRM to a signalfd listener", [] {
                          signal_listener listener(signal_set{SIGALRM});
                          signal_timer timer(SIGALRM, 7);
                          timer.arm(std::chrono::milliseconds(5));
                          auto r = listener.wait(deadline::after(kWait));
                          tour_expect(r.has_value(), "no SIGALRM within 5 s");
                          tour_expect(r->code == SI_TIMER && r->value == 7,
                                      "unexpected " + r->code_name());
                          return std::string("SIGALRM SI_TIMER value 7 after 5 ms");
                      }});
    return checks;
}

}  // namespace ipckit::cli
