// Tour checks for shared memory: a POSIX object and a System V segment shared
// with a child (futex hand-off, no busy waiting), and the ring between
// processes (SPSC over shm:/ and MPMC with several producers).
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "ipckit/channel.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/ring.hpp"
#include "ipckit/shm.hpp"
#include "ipckit/sync.hpp"
#include "tour.hpp"

namespace ipckit::cli {
namespace {

using namespace std::chrono_literals;

// A zero-filled page: state word + text.
struct handoff {
    std::atomic<std::uint32_t> state;  // 0 empty, 1 written, 2 read
    char text[124];
};

// The child writes, the parent waits on the futex and acknowledges.
std::string exchange(handoff* h, const std::string& text,
                     const std::function<void()>& child_attach) {
    child_process child = fork_child([&] {
        int rc = 0;
        try {
            child_attach();
        } catch (...) {
            rc = 3;
        }
        std::memcpy(h->text, text.c_str(), text.size() + 1);
        h->state.store(1, std::memory_order_release);
        futex_wake(h->state, INT_MAX);
        auto until = deadline::after(5s);
        while (rc == 0 && h->state.load(std::memory_order_acquire) != 2)
            if (futex_wait(h->state, 1, until) == futex_result::timed_out) rc = 2;
        return rc;
    });
    auto until = deadline::after(5s);
    while (h->state.load(std::memory_order_acquire) == 0)
        tour_expect(futex_wait(h->state, 0, until) != futex_result::timed_out,
                    "child wrote nothing");
    std::string got(h->text, strnlen(h->text, sizeof h->text));
    h->state.store(2, std::memory_order_release);
    futex_wake(h->state, INT_MAX);
    expect_child_ok(child, 5s);
    tour_expect(got == text, "read '" + got + "'");
    return got;
}

}  // namespace

std::vector<tour_check> tour_checks_shm() {
    std::vector<tour_check> checks;
    checks.push_back({"shm", "POSIX shm_open object, child writes, futex hand-off", [] {
                          auto name = "/" + tour_name("shm");
                          auto shm = shared_memory::open(name, 4096);
                          shm_remover rm(name);
                          auto m = shm.map();
                          auto* h = new (m.data()) handoff{};
                          auto got = exchange(h, "Operating Systems Is Fun!", [&] {
                              shm_options o;
                              o.how = open_mode::open_only;
                              (void)shared_memory::open(name, 4096,
                                                        o);  // the child opens it by name too
                          });
                          return fmt::format("{} (4 KiB, mode 0600, removed)", got);
                      }});
    checks.push_back({"shm", "System V segment, child attaches, IPC_RMID", [] {
                          auto seg = sysv_shm::open(sysv_key::private_key(), 128);
                          sysv_shm_remover rm(seg.id());
                          auto at = seg.attach();
                          auto* h = new (at.data()) handoff{};
                          auto got = exchange(h, "Ola Mundo!", [] {});
                          auto info = seg.stat();
                          return fmt::format("{} (segment {}, {} attached)", got, seg.id(),
                                             info.attached);
                      }});
    checks.push_back({"ring", "shm:/ ring, child sends 1000 messages, closed after", [] {
                          auto name = "/" + tour_name("ring");
                          auto url = "shm:" + name + "?capacity=64k";
                          auto rx = open_channel(url, channel_role::receiver);
                          int rc = -1;
                          child_process child = fork_child([&] {
                              int code = 0;
                              try {
                                  auto tx = open_channel(url, channel_role::sender);
                                  for (int i = 0; i < 1000 && code == 0; ++i)
                                      if (tx->send("message " + std::to_string(i),
                                                   deadline::after(5s)) != io_status::ok)
                                          code = 1;
                              } catch (...) {
                                  code = 2;
                              }
                              return code;
                          });
                          message m;
                          int n = 0;
                          io_status st;
                          while ((st = rx->receive(m, deadline::after(5s))) == io_status::ok) {
                              tour_expect(m.payload == "message " + std::to_string(n),
                                          "out of order at " + std::to_string(n));
                              ++n;
                          }
                          tour_expect(st == io_status::closed,
                                      std::string("ended with ") + to_string(st));
                          auto es = child.wait_until(deadline::after(5s));
                          tour_expect(es && es->success(), "sender failed");
                          rc = n;
                          tour_expect(rc == 1000, "got " + std::to_string(rc) + " messages");
                          return std::string("1000 messages in order, then closed");
                      }});
    checks.push_back(
        {"ring", "mpmc ring, 3 producer processes, zero-copy loans", [] {
             ring_options o;
             o.kind = ring_kind::mpmc;
             o.capacity = 16;
             o.slot_size = 64;
             auto mem = shared_memory::memfd("tour-mpmc", ring::required_size(o));
             auto map = std::make_shared<mapping>(mem.map());
             ring::format(map->bytes(), o);
             ring consumer(map, ring_role::consumer, "tour mpmc");
             // Attached before the children so that "closed" means all are done.
             auto holder = std::make_unique<ring>(map, ring_role::producer, "tour mpmc");
             std::vector<child_process> kids;
             for (int p = 0; p < 3; ++p) {
                 kids.push_back(fork_child([&, p] {
                     int code = 0;
                     {
                         ring r(map, ring_role::producer, "tour mpmc");
                         for (std::uint32_t i = 0; i < 500 && code == 0; ++i) {
                             auto l = r.loan(8, deadline::after(5s));
                             if (l.status != io_status::ok) {
                                 code = 1;
                                 break;
                             }
                             std::uint32_t v[2] = {static_cast<std::uint32_t>(p), i};
                             std::memcpy(l.buffer.data(), v, 8);
                             r.commit(8);
                         }
                     }
                     return code;
                 }));
             }
             std::uint32_t next[3] = {0, 0, 0};
             std::vector<bool> done(kids.size(), false);
             int got = 0;
             io_status st;
             auto overall = deadline::after(10s);
             for (;;) {
                 tour_expect(!overall.expired(), "the ring check took too long");
                 auto pk = consumer.peek(deadline::after(20ms));
                 st = pk.status;
                 if (st == io_status::closed) break;
                 if (st == io_status::timed_out) {
                     // Once every child has exited, let go of the holder: the
                     // consumer then drains and sees "closed".
                     bool all = true;
                     for (std::size_t i = 0; i < kids.size(); ++i) {
                         if (!done[i]) {
                             auto es = kids[i].wait_until(deadline::immediate());
                             if (es)
                                 tour_expect(es->success(), "a producer failed: " + es->describe());
                             done[i] = es.has_value();
                         }
                         all = all && done[i];
                     }
                     if (all) holder.reset();
                     continue;
                 }
                 std::uint32_t v[2];
                 tour_expect(pk.message.size() == 8, "bad message size");
                 std::memcpy(v, pk.message.data(), 8);
                 consumer.release();
                 tour_expect(v[0] < 3 && v[1] == next[v[0]]++, "out of order");
                 ++got;
             }
             tour_expect(st == io_status::closed, std::string("ended with ") + to_string(st));
             tour_expect(got == 1500, "got " + std::to_string(got));
             return std::string("1500 items, exactly once, in order per producer");
         }});
    return checks;
}

}  // namespace ipckit::cli
