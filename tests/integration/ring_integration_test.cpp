// The ring between real processes: exactly once and in order per producer
// (sequence numbers + checksums), producers killed with SIGKILL while holding
// a loan (the partial message is never delivered, the consumer gets closed),
// and a killed consumer reported to a blocked producer.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <thread>

#include "detail/ring_layout.hpp"
#include "ipckit/error.hpp"
#include "ipckit/ring.hpp"
#include "ipckit/sync.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::uint32_t checksum(const char* p, std::size_t n) {
    std::uint32_t h = 2166136261u;
    for (std::size_t i = 0; i < n; ++i)
        h = (h ^ static_cast<unsigned char>(p[i])) * 16777619u;
    return h;
}

// [u32 producer][u64 seq][payload][u32 checksum]
std::string make_message(std::uint32_t producer, std::uint64_t seq, std::size_t payload) {
    std::string m(16 + payload, '\0');
    std::memcpy(m.data(), &producer, 4);
    std::memcpy(m.data() + 4, &seq, 8);
    for (std::size_t i = 0; i < payload; ++i)
        m[12 + i] = static_cast<char>('A' + (seq * 3 + i) % 26);
    std::uint32_t c = checksum(m.data(), m.size() - 4);
    std::memcpy(m.data() + m.size() - 4, &c, 4);
    return m;
}

// Returns producer << 32 | seq, or ~0 for a damaged message.
std::uint64_t check_message(const std::string& m) {
    if (m.size() < 16) return ~std::uint64_t{0};
    std::uint32_t c, producer;
    std::uint64_t seq;
    std::memcpy(&c, m.data() + m.size() - 4, 4);
    if (c != checksum(m.data(), m.size() - 4)) return ~std::uint64_t{0};
    std::memcpy(&producer, m.data(), 4);
    std::memcpy(&seq, m.data() + 4, 8);
    return (std::uint64_t{producer} << 32) | seq;
}

// Flags and result space shared with forked children (memfd mapping).
struct board {
    std::atomic<std::uint32_t> flag[8];
    std::atomic<std::uint64_t> count[4];
    std::uint64_t results[4][16384];
};

struct shared_board {
    shared_memory shm = shared_memory::memfd("ring-board", sizeof(board));
    mapping map = shm.map();
    board* b = new (map.data()) board{};
};

bool wait_flag(std::atomic<std::uint32_t>& f, std::uint32_t value) {
    auto d = deadline::after(20s);
    for (;;) {
        std::uint32_t v = f.load(std::memory_order_acquire);
        if (v == value) return true;
        if (d.expired()) return false;
        futex_wait(f, v, deadline::after(10ms));
    }
}

void set_flag(std::atomic<std::uint32_t>& f, std::uint32_t value) {
    f.store(value, std::memory_order_release);
    futex_wake(f, INT_MAX);
}

ring_options spsc(std::size_t cap) {
    ring_options o;
    o.capacity = cap;
    return o;
}

ring_options mpmc(std::size_t slots, std::size_t slot) {
    ring_options o;
    o.kind = ring_kind::mpmc;
    o.capacity = slots;
    o.slot_size = slot;
    return o;
}

}  // namespace

TEST(RingProcesses, SpscExactlyOnceInOrder) {
    auto name = "/" + test::unique_name("ringp-spsc");
    shm_remover rm(name);
    ring c = ring::create(name, ring_role::consumer, spsc(8192));
    constexpr std::uint64_t count = 20000;
    test::forked_child producer([&] {
        ring p = ring::open(name, ring_role::producer);
        for (std::uint64_t i = 0; i < count; ++i)
            if (p.send(make_message(1, i, (i * 13) % 3000), deadline::after(20s)) != io_status::ok)
                return 1;
        return 0;
    });
    std::string out;
    std::uint64_t next = 0;
    io_status st;
    while ((st = c.receive(out, deadline::after(20s))) == io_status::ok) {
        auto id = check_message(out);
        ASSERT_EQ(id, (std::uint64_t{1} << 32) | next) << "message " << next;
        ++next;
    }
    EXPECT_EQ(st, io_status::closed);
    EXPECT_EQ(next, count);
    auto ps = producer.wait(20s);
    ASSERT_TRUE(ps && ps->success());
}

TEST(RingProcesses, MpmcSeveralProducersAndConsumers) {
    auto name = "/" + test::unique_name("ringp-mpmc");
    shm_remover rm(name);
    shared_board sb;
    constexpr int producers = 3, consumers = 2;
    constexpr std::uint64_t per_producer = 4000;
    // The parent holds a producer attachment until every child producer is
    // done, so that consumers cannot see "closed" between two producers.
    auto holder = std::make_unique<ring>(ring::create(name, ring_role::producer, mpmc(32, 256)));
    std::vector<std::unique_ptr<test::forked_child>> kids;
    for (int k = 0; k < consumers; ++k)
        kids.push_back(std::make_unique<test::forked_child>([&, k] {
            ring c = ring::open(name, ring_role::consumer);
            std::string out;
            std::uint64_t n = 0;
            while (c.receive(out, deadline::after(20s)) == io_status::ok) {
                if (n >= 16384) return 3;
                sb.b->results[k][n++] = check_message(out);
            }
            sb.b->count[k].store(n);
            return 0;
        }));
    std::vector<std::unique_ptr<test::forked_child>> prods;
    for (int id = 0; id < producers; ++id)
        prods.push_back(std::make_unique<test::forked_child>([&, id] {
            ring p = ring::open(name, ring_role::producer);
            for (std::uint64_t i = 0; i < per_producer; ++i)
                if (p.send(make_message(static_cast<std::uint32_t>(id), i, i % 200),
                           deadline::after(20s)) != io_status::ok)
                    return 1;
            return 0;
        }));
    for (auto& p : prods) {
        auto st = p->wait(30s);
        ASSERT_TRUE(st && st->success());
    }
    holder.reset();  // last producer gone: consumers drain and see closed
    for (auto& k : kids) {
        auto st = k->wait(30s);
        ASSERT_TRUE(st && st->success()) << (st ? st->describe() : "timeout");
    }
    std::map<std::uint64_t, int> seen;
    for (int k = 0; k < consumers; ++k) {
        std::map<std::uint32_t, std::int64_t> last;
        for (std::uint64_t i = 0; i < sb.b->count[k].load(); ++i) {
            std::uint64_t id = sb.b->results[k][i];
            ASSERT_NE(id, ~std::uint64_t{0}) << "damaged message";
            auto producer = static_cast<std::uint32_t>(id >> 32);
            auto seq = static_cast<std::int64_t>(id & 0xffffffffu);
            auto [it, fresh] = last.try_emplace(producer, -1);
            EXPECT_LT(it->second, seq) << "out of order for producer " << producer;
            it->second = seq;
            seen[id]++;
        }
    }
    EXPECT_EQ(seen.size(), producers * per_producer);
    for (auto& [id, n] : seen)
        ASSERT_EQ(n, 1) << "duplicate " << id;
}

TEST(RingProcesses, SpscProducerKilledHoldingLoan) {
    auto name = "/" + test::unique_name("ringp-kill");
    shm_remover rm(name);
    shared_board sb;
    ring c = ring::create(name, ring_role::consumer, spsc(4096));
    constexpr std::uint64_t complete = 10;
    test::forked_child producer([&] {
        ring p = ring::open(name, ring_role::producer);
        for (std::uint64_t i = 0; i < complete; ++i)
            p.send(make_message(7, i, 40));
        auto l = p.loan(500);
        std::memset(l.buffer.data(), 'P', l.buffer.size());  // half-written, never committed
        set_flag(sb.b->flag[0], 1);
        ::pause();
        return 2;
    });
    ASSERT_TRUE(wait_flag(sb.b->flag[0], 1));
    ::kill(producer.pid(), SIGKILL);  // not reaped yet: a zombie must count as dead
    std::string out;
    for (std::uint64_t i = 0; i < complete; ++i) {
        ASSERT_EQ(c.receive(out, deadline::after(10s)), io_status::ok);
        ASSERT_EQ(check_message(out), (std::uint64_t{7} << 32) | i);
    }
    EXPECT_EQ(c.receive(out, deadline::after(10s)), io_status::closed);
    auto st = producer.wait(10s);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->signal, SIGKILL);
}

TEST(RingProcesses, MpmcProducerKilledHoldingLoanIsSkipped) {
    auto name = "/" + test::unique_name("ringp-mkill");
    shm_remover rm(name);
    shared_board sb;
    ring c = ring::create(name, ring_role::consumer, mpmc(8, 64));
    test::forked_child victim([&] {
        ring p = ring::open(name, ring_role::producer);
        for (std::uint64_t i = 0; i < 3; ++i)
            p.send(make_message(1, i, 8));
        auto l = p.loan(64);  // claims a slot, never commits
        std::memset(l.buffer.data(), 'X', l.buffer.size());
        set_flag(sb.b->flag[0], 1);
        ::pause();
        return 2;
    });
    test::forked_child survivor([&] {
        ring p = ring::open(name, ring_role::producer);
        set_flag(sb.b->flag[1], 1);
        if (!wait_flag(sb.b->flag[2], 1)) return 1;
        for (std::uint64_t i = 0; i < 20; ++i)
            if (p.send(make_message(2, i, 16), deadline::after(20s)) != io_status::ok) return 1;
        return 0;
    });
    ASSERT_TRUE(wait_flag(sb.b->flag[0], 1));
    ASSERT_TRUE(wait_flag(sb.b->flag[1], 1));
    ::kill(victim.pid(), SIGKILL);
    set_flag(sb.b->flag[2], 1);
    std::string out;
    std::map<std::uint32_t, std::uint64_t> next;
    io_status st;
    while ((st = c.receive(out, deadline::after(20s))) == io_status::ok) {
        auto id = check_message(out);
        ASSERT_NE(id, ~std::uint64_t{0}) << "partial message delivered";
        auto producer = static_cast<std::uint32_t>(id >> 32);
        ASSERT_EQ(id & 0xffffffffu, next[producer]++);
    }
    EXPECT_EQ(st, io_status::closed);
    EXPECT_EQ(next[1], 3u);
    EXPECT_EQ(next[2], 20u);
    auto ss = survivor.wait(20s);
    ASSERT_TRUE(ss && ss->success());
}

// An mpmc consumer killed holding a peeked slot left it "taken, not released"
// for good: one lap later every producer waited on it, and with another
// consumer alive nobody was ever told. A producer stuck behind it now finds
// the holder dead (its claim) and releases the slot itself.
TEST(RingProcesses, MpmcConsumerKilledHoldingPeekDoesNotBlockProducers) {
    auto name = "/" + test::unique_name("ringp-cpeek");
    shm_remover rm(name);
    shared_board sb;
    constexpr std::size_t slots = 4;
    auto p = std::make_unique<ring>(ring::create(name, ring_role::producer, mpmc(slots, 64)));
    test::forked_child victim([&] {
        ring c = ring::open(name, ring_role::consumer);
        auto pk = c.peek(deadline::after(20s));
        if (pk.status != io_status::ok) return 1;
        set_flag(sb.b->flag[0], 1);
        ::pause();  // killed holding the peek
        return 2;
    });
    ASSERT_EQ(p->send(make_message(1, 0, 8), deadline::after(10s)), io_status::ok);
    ASSERT_TRUE(wait_flag(sb.b->flag[0], 1));
    test::forked_child survivor([&] {
        ring c = ring::open(name, ring_role::consumer);
        set_flag(sb.b->flag[1], 1);
        std::string out;
        std::uint64_t n = 0;
        while (c.receive(out, deadline::after(20s)) == io_status::ok)
            sb.b->results[0][n++] = check_message(out);
        sb.b->count[0].store(n);
        return 0;
    });
    ASSERT_TRUE(wait_flag(sb.b->flag[1], 1));
    ::kill(victim.pid(), SIGKILL);  // not reaped yet: a zombie must count as dead
    for (std::uint64_t i = 1; i <= slots + 1; ++i)
        ASSERT_EQ(p->send(make_message(1, i, 8), deadline::after(10s)), io_status::ok) << i;
    p.reset();  // the survivor drains and sees closed
    auto st = survivor.wait(20s);
    ASSERT_TRUE(st && st->success()) << (st ? st->describe() : "timeout");
    ASSERT_EQ(sb.b->count[0].load(), slots + 1);
    for (std::uint64_t i = 0; i < slots + 1; ++i)
        EXPECT_EQ(sb.b->results[0][i], (std::uint64_t{1} << 32) | (i + 1)) << i;
}

TEST(RingProcesses, ConsumerKilledIsClosedForABlockedProducer) {
    auto name = "/" + test::unique_name("ringp-ckill");
    shm_remover rm(name);
    shared_board sb;
    ring p = ring::create(name, ring_role::producer, spsc(1024));
    test::forked_child consumer([&] {
        ring c = ring::open(name, ring_role::consumer);
        set_flag(sb.b->flag[0], 1);
        ::pause();
        return 2;
    });
    ASSERT_TRUE(wait_flag(sb.b->flag[0], 1));
    while (p.try_send(std::string(100, 'f')) == io_status::ok) {
    }
    while (p.try_send("more") == io_status::ok) {
    }
    EXPECT_EQ(p.send("more", deadline::after(50ms)), io_status::timed_out);  // alive, just slow
    ::kill(consumer.pid(), SIGKILL);
    EXPECT_EQ(p.send("more", deadline::after(10s)), io_status::closed);
}

// A consumer killed while asleep in the futex leaves its waiter bit set;
// the next consumer to attach clears it, or every publish would make a
// futex_wake system call for nobody.
TEST(RingProcesses, ConsumerKilledAsleepLeavesNoWaiterBehind) {
    for (ring_kind kind : {ring_kind::spsc, ring_kind::mpmc}) {
        SCOPED_TRACE(to_string(kind));
        auto name = "/" + test::unique_name("ringp-waiter");
        shm_remover rm(name);
        ring p = ring::create(name, ring_role::producer,
                              kind == ring_kind::spsc ? spsc(1024) : mpmc(8, 64));
        auto view = shared_memory::open(name, 0, {.how = open_mode::open_only}).map();
        const auto& h = *reinterpret_cast<const ring::layout*>(view.data());
        test::forked_child sleeper([&] {
            ring c = ring::open(name, ring_role::consumer);
            std::string out;
            c.receive(out);  // nothing comes: sleeps until killed
            return 2;
        });
        auto until = deadline::after(20s);
        while (h.consumer_waiters.load() == 0 && !until.expired())
            std::this_thread::sleep_for(1ms);
        ASSERT_NE(h.consumer_waiters.load(), 0u) << "the child never went to sleep";
        ::kill(sleeper.pid(), SIGKILL);
        auto st = sleeper.wait(10s);
        ASSERT_TRUE(st.has_value());
        ring c = ring::open(name, ring_role::consumer);
        EXPECT_EQ(h.consumer_waiters.load(), 0u);
        ASSERT_EQ(p.send("after", deadline::after(10s)), io_status::ok);
        std::string out;
        ASSERT_EQ(c.receive(out, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(out, "after");
    }
}

TEST(RingProcesses, ChannelSendRecvBetweenProcesses) {
    auto name = "/" + test::unique_name("ringp-chan");
    shm_remover rm(name);
    auto url = "shm:" + name + "?capacity=4k";
    // The sender starts first and waits for the receiver to create the ring.
    test::forked_child sender([&] {
        auto tx = open_channel(url, channel_role::sender);
        for (int i = 0; i < 100; ++i)
            if (tx->send("msg " + std::to_string(i), deadline::after(10s)) != io_status::ok)
                return 1;
        return 0;
    });
    auto rx = open_channel(url, channel_role::receiver);
    message m;
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(rx->receive(m, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(m.payload, "msg " + std::to_string(i));
    }
    EXPECT_EQ(rx->receive(m, deadline::after(10s)), io_status::closed);
    auto st = sender.wait(10s);
    ASSERT_TRUE(st && st->success());
}
