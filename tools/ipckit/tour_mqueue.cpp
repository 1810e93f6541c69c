// Tour checks for POSIX and System V message queues, each in real processes.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "ipckit/mqueue.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/sysv.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

using namespace std::chrono_literals;

mq_options small_queue(bool read, bool write) {
    mq_options o;
    o.max_messages = 4;
    o.message_size = 128;
    o.read = read;
    o.write = write;
    return o;
}

}  // namespace

std::vector<tour_check> tour_checks_mqueue() {
    std::vector<tour_check> checks;
    checks.push_back({"mq", "child sends priorities 1, 9, 5; parent receives 9, 5, 1", [] {
                          std::string name = fmt::format("/{}", tour_name("mq"));
                          mq_remover cleanup(name);
                          auto q = message_queue::open(name, small_queue(true, false));
                          auto child = fork_child([&] {
                              mq_options o = small_queue(false, true);
                              o.mode = open_mode::open_only;
                              auto w = message_queue::open(name, o);
                              w.send("low", 1);
                              w.send("urgent", 9);
                              w.send("normal", 5);
                              return 0;
                          });
                          expect_child_ok(child);
                          std::string out;
                          std::vector<unsigned> got;
                          for (int i = 0; i < 3; ++i) {
                              auto prio = q.receive_for(out, 5s);
                              tour_expect(prio.has_value(),
                                          "message " + std::to_string(i) + " missing");
                              got.push_back(*prio);
                          }
                          tour_expect(got == std::vector<unsigned>{9, 5, 1},
                                      fmt::format("order was {}, {}, {}", got[0], got[1], got[2]));
                          return std::string("order 9, 5, 1, queue removed after");
                      }});
    checks.push_back(
        {"mq", "request/reply: server answers on the client's own queue", [] {
             std::string server_name = fmt::format("/{}", tour_name("mq-server"));
             std::string reply_name = fmt::format("/{}", tour_name("mq-client"));
             mq_remover rm_server(server_name), rm_reply(reply_name);
             auto requests = message_queue::open(server_name, small_queue(true, false));
             auto replies = message_queue::open(reply_name, small_queue(true, false));
             auto server = fork_child([&] {
                 std::string req;
                 if (!requests.receive_for(req, 5s)) return 1;
                 mq_options o = small_queue(false, true);
                 o.mode = open_mode::open_only;
                 auto reply = message_queue::open(req.substr(0, req.find(' ')), o);
                 return reply.send_for("token 1", 0, 5s) ? 0 : 2;
             });
             mq_options o = small_queue(false, true);
             o.mode = open_mode::open_only;
             message_queue::open(server_name, o).send(reply_name + " give me a token");
             std::string answer;
             tour_expect(replies.receive_for(answer, 5s).has_value(), "no answer from the server");
             tour_expect(answer == "token 1", "unexpected answer '" + answer + "'");
             expect_child_ok(server);
             return std::string("answer 'token 1' on ") + reply_name;
         }});
    checks.push_back({"sysvmq", "child sends types 3, 1, 2; receive by type -2, -2, 0", [] {
                          auto q = sysv_message_queue::open(sysv_key::private_key());
                          sysv_msg_remover cleanup(q);
                          auto child = fork_child([&] {
                              for (long t : {3L, 1L, 2L})
                                  if (q.send(t, "type " + std::to_string(t)) != io_status::ok)
                                      return 1;
                              return 0;
                          });
                          expect_child_ok(child);
                          sysv_message m;
                          std::vector<long> got;
                          for (long selector : {-2L, -2L, 0L}) {
                              tour_expect(
                                  q.receive(m, selector, deadline::after(5s)) == io_status::ok,
                                  "receive by type " + std::to_string(selector) + " failed");
                              got.push_back(m.type);
                          }
                          tour_expect(got == std::vector<long>{1, 2, 3},
                                      fmt::format("types were {}, {}, {}", got[0], got[1], got[2]));
                          auto st = q.stat();
                          return fmt::format("types 1, 2, 3 (last sender pid {}, id {})",
                                             st.last_send_pid, q.id());
                      }});
    checks.push_back({"sysvmq", "queue removed while a child waits: receive reports closed", [] {
                          auto q = sysv_message_queue::open(sysv_key::private_key());
                          sysv_msg_remover cleanup(q);
                          auto child = fork_child([&] {
                              sysv_message m;
                              return q.receive(m) == io_status::closed ? 0 : 1;  // blocks in msgrcv
                          });
                          std::this_thread::sleep_for(50ms);
                          tour_expect(q.remove(), "IPC_RMID failed");
                          expect_child_ok(child);
                          return std::string("EIDRM seen as closed");
                      }});
    return checks;
}

}  // namespace ipckit::cli
