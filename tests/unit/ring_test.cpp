// The ring in one process: geometry checks, corrupt headers, wrap-around with
// every size, full/empty with timeouts, zero-copy, closed detection, and
// threaded SPSC/MPMC exactly-once-in-order runs (these also run under TSan:
// both sides share one mapping, so TSan sees every access).
#include "ipckit/ring.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "detail/copy.hpp"
#include "detail/ring_layout.hpp"
#include "ipckit/error.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const mapping> memory_for(const ring_options& o) {
    auto shm = shared_memory::memfd("ring-test", ring::required_size(o));
    auto m = std::make_shared<mapping>(shm.map());
    ring::format(m->bytes(), o);
    return m;
}

ring_options spsc(std::size_t cap) {
    ring_options o;
    o.kind = ring_kind::spsc;
    o.capacity = cap;
    return o;
}

ring_options mpmc(std::size_t slots, std::size_t slot_size) {
    ring_options o;
    o.kind = ring_kind::mpmc;
    o.capacity = slots;
    o.slot_size = slot_size;
    return o;
}

// A message that checks itself: [u32 producer][u64 seq][payload][u32 checksum].
std::uint32_t checksum(const char* p, std::size_t n) {
    std::uint32_t h = 2166136261u;
    for (std::size_t i = 0; i < n; ++i)
        h = (h ^ static_cast<unsigned char>(p[i])) * 16777619u;
    return h;
}

std::string make_message(std::uint32_t producer, std::uint64_t seq, std::size_t payload) {
    std::string m(4 + 8 + payload + 4, '\0');
    std::memcpy(m.data(), &producer, 4);
    std::memcpy(m.data() + 4, &seq, 8);
    for (std::size_t i = 0; i < payload; ++i)
        m[12 + i] = static_cast<char>('a' + (seq + i) % 26);
    std::uint32_t c = checksum(m.data(), m.size() - 4);
    std::memcpy(m.data() + m.size() - 4, &c, 4);
    return m;
}

struct parsed {
    std::uint32_t producer;
    std::uint64_t seq;
};

// Throws if the message is damaged.
parsed parse_message(const std::string& m) {
    if (m.size() < 16) throw std::runtime_error("short message " + std::to_string(m.size()));
    std::uint32_t c;
    std::memcpy(&c, m.data() + m.size() - 4, 4);
    if (c != checksum(m.data(), m.size() - 4)) throw std::runtime_error("bad checksum");
    parsed p{};
    std::memcpy(&p.producer, m.data(), 4);
    std::memcpy(&p.seq, m.data() + 4, 8);
    return p;
}

std::string pattern(std::size_t n, unsigned salt) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 7 + salt) & 0xff);
    return s;
}

int error_code(const std::function<void()>& f) {
    try {
        f();
    } catch (const error& e) {
        return e.code().value();
    }
    return 0;
}

}  // namespace

TEST(RingGeometry, CapacityMustBeAPowerOfTwoAndLargeEnough) {
    EXPECT_THROW(ring::required_size(spsc(1000)), std::invalid_argument);
    EXPECT_THROW(ring::required_size(spsc(0)), std::invalid_argument);
    EXPECT_THROW(ring::required_size(spsc(32)), std::invalid_argument);  // below 64
    EXPECT_NO_THROW(ring::required_size(spsc(64)));
    EXPECT_THROW(ring::required_size(mpmc(3, 64)), std::invalid_argument);
    EXPECT_THROW(ring::required_size(mpmc(1, 64)), std::invalid_argument);
    EXPECT_THROW(ring::required_size(mpmc(4, 0)), std::invalid_argument);
    EXPECT_NO_THROW(ring::required_size(mpmc(2, 1)));
    try {
        ring::required_size(spsc(1000));
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
    }
    std::vector<std::byte> small(100);
    EXPECT_THROW(ring::format(small, spsc(4096)), std::invalid_argument);
    // slots * stride must not wrap: 2^58 slots of 64 bytes is 2^64, i.e. 0.
    EXPECT_THROW(ring::required_size(mpmc(std::size_t{1} << 58, 32)), std::invalid_argument);
    EXPECT_THROW(ring::required_size(mpmc(std::size_t{1} << 63, 1 << 20)), std::invalid_argument);
}

// A header whose geometry wraps the size computation is refused on attach
// (it was accepted as a 576-byte ring, and the next receive read far outside).
TEST(RingHeader, MpmcGeometryThatOverflowsIsRefused) {
    const auto o = mpmc(4, 32);
    const auto m = memory_for(o);
    auto& h = *reinterpret_cast<ring::layout*>(m->data());
    h.capacity = std::uint64_t{1} << 58;
    h.total_size = sizeof(ring::layout) + 64;  // what the wrapped product gives
    EXPECT_EQ(error_code([&] { ring r(m, ring_role::consumer, "wrap"); }), EPROTO);
}

// Geometry is read once, at attach: a peer that rewrites the header later
// cannot widen a bounds check (a huge length then crashed the reader).
TEST(RingHeader, HeaderRewrittenAfterAttachDoesNotMoveBoundsChecks) {
    {
        const auto m = memory_for(spsc(4096));
        ring p(m, ring_role::producer, "rewrite");
        ring c(m, ring_role::consumer, "rewrite");
        ASSERT_EQ(p.try_send("hello"), io_status::ok);
        auto& h = *reinterpret_cast<ring::layout*>(m->data());
        h.capacity = std::uint64_t{1} << 40;
        reinterpret_cast<ring_record*>(m->data() + sizeof(ring::layout))->length = 0x7ffffff0;
        std::string out;
        EXPECT_EQ(error_code([&] { (void)c.try_receive(out); }), EPROTO);
        EXPECT_EQ(c.capacity(), 4096u);
    }
    {
        const auto m = memory_for(mpmc(4, 32));
        ring p(m, ring_role::producer, "rewrite");
        ring c(m, ring_role::consumer, "rewrite");
        ASSERT_EQ(p.try_send("hello"), io_status::ok);
        auto& h = *reinterpret_cast<ring::layout*>(m->data());
        h.slot_size = std::uint64_t{1} << 40;
        auto* slot = reinterpret_cast<ring_slot*>(m->data() + sizeof(ring::layout));
        slot->length = 0x7ffffff0;
        std::string out;
        EXPECT_EQ(error_code([&] { (void)c.try_receive(out); }), EPROTO);
        EXPECT_EQ(c.max_message(), 32u);
    }
}

TEST(RingHeader, CorruptOrForeignHeaderIsAClearError) {
    const auto o = spsc(4096);
    auto shm = shared_memory::memfd("corrupt", ring::required_size(o));
    auto m = std::make_shared<mapping>(shm.map());
    // Zero-filled: the creator has not finished.
    EXPECT_EQ(error_code([&] { ring r(m, ring_role::consumer, "zero"); }), EAGAIN);
    // Random bytes: not a ring.
    for (std::size_t i = 0; i < m->size(); ++i)
        m->data()[i] = static_cast<std::byte>(i * 131 + 7);
    try {
        ring r(m, ring_role::consumer, "garbage");
        FAIL() << "attached to garbage";
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), EPROTO);
        EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos) << e.what();
    }
    // A valid magic with broken geometry fields.
    auto corrupt_field = [&](auto mutate) {
        ring::format(m->bytes(), o);
        mutate(*reinterpret_cast<ring::layout*>(m->data()));
        return error_code([&] { ring r(m, ring_role::consumer, "corrupt"); });
    };
    EXPECT_EQ(corrupt_field([](ring::layout& h) { h.version = 99; }), EPROTO);
    EXPECT_EQ(corrupt_field([](ring::layout& h) { h.kind = 7; }), EPROTO);
    EXPECT_EQ(corrupt_field([](ring::layout& h) { h.capacity = 1000; }), EPROTO);
    EXPECT_EQ(corrupt_field([](ring::layout& h) { h.capacity = std::uint64_t{1} << 30; }), EPROTO);
    EXPECT_EQ(corrupt_field([](ring::layout& h) { h.header_size = 8; }), EPROTO);
    EXPECT_EQ(corrupt_field([](ring::layout& h) { h.total_size += 64; }), EPROTO);
    // A record stamp that does not match its position (garbage, or a header
    // from another place) is detected when reading, never followed.
    for (std::uint32_t bad : {2u, 0xffffffffu, ring_stamp(8, false), ring_stamp(0, false) ^ 4}) {
        SCOPED_TRACE(bad);
        ring::format(m->bytes(), o);
        ring c(m, ring_role::consumer, "stamp");
        reinterpret_cast<ring_record*>(m->data() + sizeof(ring::layout))->stamp.store(bad);
        std::string out;
        EXPECT_EQ(error_code([&] { (void)c.try_receive(out); }), EPROTO);
    }
    // A record whose length runs past the data area.
    ring::format(m->bytes(), o);
    {
        ring p(m, ring_role::producer, "rec");
        ring c(m, ring_role::consumer, "rec");
        ASSERT_EQ(p.try_send("hello"), io_status::ok);
        reinterpret_cast<ring_record*>(m->data() + sizeof(ring::layout))->length = 100000;
        std::string out;
        EXPECT_EQ(error_code([&] { (void)c.try_receive(out); }), EPROTO);
    }
}

// The consumer's tail is written by a peer: a corrupt one (ahead of the
// producer, or more than a capacity behind, or misaligned) is EPROTO, never
// a count of free bytes that makes the producer zero past the data area.
TEST(RingHeader, CorruptTailIsAnErrorNotAWriteOutOfBounds) {
    const auto o = spsc(64);
    const std::size_t ring_bytes = ring::required_size(o);
    auto shm = shared_memory::memfd("tail", ring_bytes + 8192);
    auto m = std::make_shared<mapping>(shm.map());
    ring::format(m->bytes(), o);
    std::byte* canary = m->data() + ring_bytes;
    std::memset(canary, 0x5c, 8192);
    auto canary_intact = [&] {
        for (std::size_t i = 0; i < 8192; ++i)
            if (canary[i] != std::byte{0x5c}) return false;
        return true;
    };
    auto& h = *reinterpret_cast<ring::layout*>(m->data());
    {
        ring p(m, ring_role::producer, "tail");
        ring c(m, ring_role::consumer, "tail");
        for (int i = 0; i < 3; ++i)
            ASSERT_EQ(p.try_send("x"), io_status::ok);  // 48 of 64 bytes used
        h.tail.store(4096);
        // The fourth needs the tail re-read.
        EXPECT_EQ(error_code([&] { (void)p.try_send("x"); }), EPROTO);
        EXPECT_TRUE(canary_intact());
        h.tail.store(4);  // misaligned
        EXPECT_EQ(error_code([&] { (void)p.try_send("x"); }), EPROTO);
        EXPECT_TRUE(canary_intact());
    }
    // Attaching to such a ring is refused too, and takes no peer slot.
    for (std::uint64_t tail : {std::uint64_t{4096}, std::uint64_t{4}}) {
        ring::format(m->bytes(), o);
        h.tail.store(tail);
        EXPECT_EQ(error_code([&] { ring p(m, ring_role::producer, "tail"); }), EPROTO) << tail;
        EXPECT_EQ(h.producers[0].load(), 0) << tail;
    }
    ring::format(m->bytes(), o);
    h.tail.store(4);
    EXPECT_EQ(error_code([&] { ring c(m, ring_role::consumer, "tail"); }), EPROTO);
    EXPECT_TRUE(canary_intact());
}

TEST(RingHeader, NamedRingTooSmallOrMissing) {
    auto name = "/" + test::unique_name("ring-small");
    shm_remover rm(name);
    shared_memory::open(name, 16);
    EXPECT_EQ(error_code([&] { ring::open(name, ring_role::consumer); }), EPROTO);
    auto missing = "/" + test::unique_name("ring-missing");
    EXPECT_EQ(error_code([&] { ring::open(missing, ring_role::consumer); }), ENOENT);
}

TEST(RingSpsc, WrapAroundWithEveryMessageSize) {
    const auto m = memory_for(spsc(256));
    ring p(m, ring_role::producer, "wrap");
    ring c(m, ring_role::consumer, "wrap");
    ASSERT_EQ(p.max_message(), 240u);
    std::string out;
    // Every size, twice round, with one older message in flight so that
    // records straddle the end of the data area at every offset.
    for (int round = 0; round < 2; ++round) {
        for (std::size_t n = 0; n <= p.max_message(); ++n) {
            std::string msg = pattern(n, static_cast<unsigned>(n + round));
            if (p.try_send(msg) != io_status::ok) {
                // A message longer than the space before the end of the data
                // area needs the padding record consumed first: the consumer
                // skips it (delivering nothing), then the message fits.
                ASSERT_EQ(c.try_receive(out), io_status::timed_out) << n;
                ASSERT_EQ(p.try_send(msg), io_status::ok) << n;
            }
            if (n % 3 == 0 && n + 40 <= p.max_message()) {
                std::string small = pattern(n % 40, 99);
                io_status st = p.try_send(small);
                ASSERT_NE(st, io_status::closed);
                ASSERT_EQ(c.try_receive(out), io_status::ok);
                ASSERT_EQ(out, msg) << n;
                // Full with both in flight (padding included): room after one left.
                if (st == io_status::timed_out) {
                    ASSERT_EQ(p.try_send(small), io_status::ok) << n;
                }
                ASSERT_EQ(c.try_receive(out), io_status::ok);
                ASSERT_EQ(out, small);
            } else {
                ASSERT_EQ(c.try_receive(out), io_status::ok);
                ASSERT_EQ(out, msg) << n;
            }
        }
    }
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
    // Larger than the maximum: EMSGSIZE naming both sizes, nothing sent.
    for (std::size_t n : {241u, 249u, 256u, 1000u}) {
        try {
            p.send(pattern(n, 0));
            FAIL() << n;
        } catch (const error& e) {
            EXPECT_EQ(e.code().value(), EMSGSIZE);
            EXPECT_NE(std::string(e.what()).find("240"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
}

// A record's length is 32 bits: an spsc ring above 4 GiB used to accept a
// longer loan and deliver its length modulo 2^32. The maximum stops below.
TEST(RingSpsc, MessagesLongerThanTheLengthFieldAreRefused) {
    const auto o = spsc(std::size_t{1} << 33);
    const std::size_t size = ring::required_size(o);
    // Sparse (ftruncate, not the reservation): only touched pages exist.
    unique_fd fd(::memfd_create("ring-8g", MFD_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    auto m = std::make_shared<mapping>(shared_memory::from_fd(std::move(fd)).map());
    ring::format(m->bytes(), o);
    ring p(m, ring_role::producer, "8g");
    ring c(m, ring_role::consumer, "8g");
    const std::size_t limit = std::size_t{UINT32_MAX} - 8;
    EXPECT_EQ(p.max_message(), limit);
    for (std::size_t n : {limit + 1, std::size_t{1} << 32, (std::size_t{1} << 32) + 8}) {
        try {
            (void)p.loan(n, deadline::immediate());
            FAIL() << "loaned " << n << " bytes";
        } catch (const error& e) {
            EXPECT_EQ(e.code().value(), EMSGSIZE);
            EXPECT_NE(std::string(e.what()).find(std::to_string(limit)), std::string::npos)
                << e.what();
        }
    }
    ASSERT_EQ(p.try_send("small"), io_status::ok);
    std::string out;
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "small");
}

TEST(RingSpsc, FullAndEmptyTimeOut) {
    const auto m = memory_for(spsc(128));
    ring p(m, ring_role::producer, "full");
    ring c(m, ring_role::consumer, "full");
    std::string out;
    EXPECT_EQ(c.receive(out, deadline::after(30ms)), io_status::timed_out);
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
    int sent = 0;
    while (p.try_send(pattern(24, 1)) == io_status::ok)
        ++sent;
    EXPECT_EQ(sent, 3);  // 3 records of 8 + 24 bytes, and the next stamp, fit in 128
    EXPECT_EQ(p.send(pattern(24, 1), deadline::after(30ms)), io_status::timed_out);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(p.try_send(pattern(24, 1)), io_status::ok);
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
}

TEST(RingSpsc, FormatOverReusedMemoryStartsEmpty) {
    const auto o = spsc(256);
    const auto m = memory_for(o);
    for (std::size_t i = 0; i < m->size(); ++i)
        m->data()[i] = static_cast<std::byte>(0xa5);  // an old ring, or anything
    ring::format(m->bytes(), o);
    ring p(m, ring_role::producer, "reuse");
    ring c(m, ring_role::consumer, "reuse");
    std::string out;
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);  // not a record, not corrupt
    ASSERT_EQ(p.try_send("first"), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "first");
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
}

// A loan that wraps keeps its padding record back until the commit (the
// message is published first). Abandoning that loan must still publish the
// padding, or a larger next loan would wait for space behind it for ever.
TEST(RingSpsc, AbandonedWrappingLoanThenALargerMessage) {
    const auto m = memory_for(spsc(256));
    ring p(m, ring_role::producer, "abandon");
    ring c(m, ring_role::consumer, "abandon");
    std::string out;
    ASSERT_EQ(p.try_send(pattern(200, 1)), io_status::ok);  // index 208
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    auto l = p.loan(16, deadline::immediate());  // 48 bytes left before the end: fits
    ASSERT_EQ(l.status, io_status::ok);
    p.commit(16);  // index 232, 24 left: the next 24-byte record pads and wraps
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    auto wrap = p.loan(40, deadline::immediate());  // padding held back, message at 0
    ASSERT_EQ(wrap.status, io_status::ok);
    p.abandon();
    // 232 + 24 (padding) = 256: the ring start. A 230-byte message (240 with
    // its header, 248 with the next stamp) fits only once the consumer has
    // skipped the padding, which it can only do if the padding was published.
    const std::string big = pattern(230, 2);
    EXPECT_EQ(p.try_send(big), io_status::timed_out);
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);  // skips the padding
    ASSERT_EQ(p.try_send(big), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, big);
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
}

// A producer killed between publishing a record (its stamp) and storing
// head leaves head short; the next producer must step over what was
// published, not write over records the consumer may have taken already.
TEST(RingSpsc, NewProducerStepsOverRecordsPublishedAfterHead) {
    const auto m = memory_for(spsc(1024));
    auto* h = reinterpret_cast<ring::layout*>(m->data());
    ring c(m, ring_role::consumer, "crash");
    std::string out;
    {
        ring p1(m, ring_role::producer, "crash");
        ASSERT_EQ(p1.try_send("first"), io_status::ok);
        const std::uint64_t after_first = h->head.load();
        ASSERT_EQ(p1.try_send("second"), io_status::ok);
        ASSERT_EQ(p1.try_send("third"), io_status::ok);
        h->head.store(after_first);  // as if killed before storing head for "second"
    }
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "first");
    ASSERT_EQ(c.try_receive(out), io_status::ok);  // taken before the new producer came
    EXPECT_EQ(out, "second");
    ring p2(m, ring_role::producer, "crash");
    ASSERT_EQ(p2.try_send("fourth"), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "third");
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "fourth");
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
}

TEST(RingSpsc, LoanCommitPeekRelease) {
    const auto m = memory_for(spsc(1024));
    ring p(m, ring_role::producer, "zc");
    ring c(m, ring_role::consumer, "zc");
    auto l = p.loan(100);
    ASSERT_EQ(l.status, io_status::ok);
    ASSERT_EQ(l.buffer.size(), 100u);
    std::memcpy(l.buffer.data(), "zero-copy", 9);
    // Not visible before commit.
    auto none = c.peek(deadline::immediate());
    EXPECT_EQ(none.status, io_status::timed_out);
    EXPECT_THROW(p.loan(1), error);  // one loan at a time
    EXPECT_THROW(p.commit(101), error);
    p.commit(9);
    auto pk = c.peek(deadline::immediate());
    ASSERT_EQ(pk.status, io_status::ok);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(pk.message.data()), pk.message.size()),
              "zero-copy");
    EXPECT_THROW(c.peek(deadline::immediate()), error);  // release first
    c.release();
    EXPECT_THROW(c.release(), error);
    // An abandoned loan is never delivered.
    auto l2 = p.loan(50);
    ASSERT_EQ(l2.status, io_status::ok);
    std::memset(l2.buffer.data(), 'x', 50);
    p.abandon();
    EXPECT_EQ(c.peek(deadline::immediate()).status, io_status::timed_out);
    ASSERT_EQ(p.try_send("after"), io_status::ok);
    std::string out;
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "after");
    // Roles are enforced.
    EXPECT_THROW(c.loan(1), error);
    EXPECT_THROW(p.peek(), error);
}

// The producer zeroes free space ahead of its records, and skips zeroing a
// record's end stamp when it falls there: bytes written in a loan must not
// count as zeroed (review finding on the zero-ahead change).
TEST(RingSpsc, ShortCommitNeverLeavesLoanBytesToPassForTheNextRecord) {
    const auto m = memory_for(spsc(4096));
    ring p(m, ring_role::producer, "short");
    ring c(m, ring_role::consumer, "short");
    ASSERT_EQ(p.try_send("x"), io_status::ok);  // record [0, 16): free space ahead zeroed
    auto l = p.loan(300);                       // record at 16, payload from 24
    ASSERT_EQ(l.status, io_status::ok);
    // Where a 100-byte commit ends (position 128 = payload offset 104), the
    // loan holds what looks like a published 5-byte record "ghost".
    std::memset(l.buffer.data(), 0xab, 300);
    const std::uint32_t fake[2] = {5, ring_stamp(128, false)};
    std::memcpy(l.buffer.data() + 104, fake, sizeof fake);
    std::memcpy(l.buffer.data() + 112, "ghost", 5);
    p.commit(100);
    std::string out;
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "x");
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, std::string(100, '\xab'));
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);  // never "ghost"
    ASSERT_EQ(p.try_send("real"), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "real");
}

TEST(RingSpsc, AbandonedLoanBytesNeverPassForTheNextRecord) {
    const auto m = memory_for(spsc(4096));
    ring p(m, ring_role::producer, "abandon");
    ring c(m, ring_role::consumer, "abandon");
    ASSERT_EQ(p.try_send("x"), io_status::ok);
    auto l = p.loan(300);
    ASSERT_EQ(l.status, io_status::ok);
    std::memset(l.buffer.data(), 0x5a, 300);
    p.abandon();
    // A shorter message in the same place ends inside the abandoned bytes.
    const std::string hundred(100, 'h');
    ASSERT_EQ(p.try_send(hundred), io_status::ok);
    std::string out;
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "x");
    ASSERT_EQ(c.try_receive(out), io_status::ok);  // threw "corrupt record stamp" before the fix
    EXPECT_EQ(out, hundred);
    EXPECT_EQ(c.try_receive(out), io_status::timed_out);
    ASSERT_EQ(p.try_send("after"), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "after");
}

// Every producer operation mixed at random (whole sends, loans filled with
// bytes that imitate a record header at every 8-byte position, then
// committed in full, in part or abandoned) against a model queue: the
// consumer gets exactly the committed messages, in order, and nothing else
// (a short commit once let loan bytes be read as a later record).
TEST(RingSpsc, RandomLoansCommitsAndAbandonsAgainstAModel) {
    for (std::size_t cap : {64u, 128u, 256u, 1024u, 4096u}) {
        SCOPED_TRACE(cap);
        const auto m = memory_for(spsc(cap));
        ring p(m, ring_role::producer, "model");
        ring c(m, ring_role::consumer, "model");
        std::deque<std::string> expected;
        std::uint64_t rng = 0x9e3779b97f4a7c15ull ^ cap;
        auto next = [&rng](std::uint64_t n) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            return rng % n;
        };
        std::string out;
        for (int step = 0; step < 20000; ++step) {
            const std::size_t size = next(p.max_message() + 1);
            const std::uint64_t op = next(8);
            if (op < 4) {  // a loan
                auto l = p.loan(size, deadline::immediate());
                if (l.status != io_status::ok) {
                    ASSERT_EQ(l.status, io_status::timed_out);
                } else {
                    // Fake records: {length 1..8, a stamp valid for each position}.
                    for (std::size_t i = 0; i + 8 <= size; i += 8) {
                        const std::uint32_t fake[2] = {static_cast<std::uint32_t>(1 + i % 8),
                                                       ring_stamp(i, (i & 8) != 0)};
                        std::memcpy(l.buffer.data() + i, fake, sizeof fake);
                    }
                    if (op == 0) {
                        p.abandon();
                    } else {
                        const std::size_t used = op == 1 ? size : next(size + 1);
                        std::memcpy(l.buffer.data(), pattern(used, step).data(), used);
                        p.commit(used);
                        expected.push_back(pattern(used, step));
                    }
                }
            } else if (op < 6) {  // a whole send
                if (p.try_send(pattern(size, step)) == io_status::ok)
                    expected.push_back(pattern(size, step));
            } else {  // receive one, or find the ring empty
                const io_status st = c.try_receive(out);
                if (expected.empty()) {
                    ASSERT_EQ(st, io_status::timed_out) << "delivered a message never committed";
                } else {
                    ASSERT_EQ(st, io_status::ok) << "step " << step;
                    ASSERT_EQ(out, expected.front()) << "step " << step;
                    expected.pop_front();
                }
            }
        }
        while (!expected.empty()) {
            ASSERT_EQ(c.try_receive(out), io_status::ok);
            ASSERT_EQ(out, expected.front());
            expected.pop_front();
        }
        EXPECT_EQ(c.try_receive(out), io_status::timed_out);
    }
}

TEST(RingSpsc, ProducerLeavingIsClosedOnceDrained) {
    const auto m = memory_for(spsc(1024));
    ring c(m, ring_role::consumer, "close");
    std::string out;
    // No producer yet: waiting, not closed.
    EXPECT_EQ(c.receive(out, deadline::after(20ms)), io_status::timed_out);
    {
        ring p(m, ring_role::producer, "close");
        ASSERT_EQ(p.try_send("one"), io_status::ok);
        ASSERT_EQ(p.try_send("two"), io_status::ok);
        auto l = p.loan(10);  // dropped by the destructor
        ASSERT_EQ(l.status, io_status::ok);
    }
    ASSERT_EQ(c.receive(out, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(out, "one");
    ASSERT_EQ(c.receive(out, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(out, "two");
    EXPECT_EQ(c.receive(out, deadline::after(5s)), io_status::closed);
    // A new producer reopens it.
    ring p2(m, ring_role::producer, "close");
    ASSERT_EQ(p2.try_send("three"), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "three");
}

TEST(RingSpsc, ConsumerRestartedOnAStaleRingWaitsForANewProducer) {
    const auto m = memory_for(spsc(1024));
    {
        ring old_consumer(m, ring_role::consumer, "stale");
        ring old_producer(m, ring_role::producer, "stale");
    }
    // Both gone; a new consumer must not report closed for a producer it
    // never saw: it waits.
    ring c(m, ring_role::consumer, "stale");
    std::string out;
    EXPECT_EQ(c.receive(out, deadline::after(30ms)), io_status::timed_out);
    {
        ring p(m, ring_role::producer, "stale");
        ASSERT_EQ(p.try_send("fresh"), io_status::ok);
    }
    ASSERT_EQ(c.receive(out, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(out, "fresh");
    EXPECT_EQ(c.receive(out, deadline::after(5s)), io_status::closed);
}

TEST(RingSpsc, ConsumerGoneWhileFullIsClosed) {
    const auto m = memory_for(spsc(64));
    ring p(m, ring_role::producer, "cgone");
    {
        ring c(m, ring_role::consumer, "cgone");
        ASSERT_EQ(p.try_send(pattern(48, 0)), io_status::ok);
    }
    EXPECT_EQ(p.send("x", deadline::after(5s)), io_status::closed);
}

TEST(RingSpsc, SecondProducerIsRefused) {
    const auto m = memory_for(spsc(1024));
    ring p(m, ring_role::producer, "busy");
    try {
        ring p2(m, ring_role::producer, "busy");
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), EBUSY);
        EXPECT_NE(std::string(e.what()).find("already has a live producer"), std::string::npos);
    }
}

TEST(RingSpsc, ThreadsExactlyOnceInOrder) {
    const auto m = memory_for(spsc(4096));
    constexpr std::uint64_t count = 20000;
    ring c(m, ring_role::consumer, "threads");
    std::thread producer([&] {
        ring p(m, ring_role::producer, "threads");
        p.set_spin(100);
        for (std::uint64_t i = 0; i < count; ++i) {
            auto msg = make_message(0, i, (i * 37) % 600);
            if (p.send(msg, deadline::after(20s)) != io_status::ok) return;
        }
    });
    std::string out;
    std::uint64_t expected = 0;
    io_status st;
    while ((st = c.receive(out, deadline::after(20s))) == io_status::ok) {
        auto pm = parse_message(out);
        ASSERT_EQ(pm.seq, expected);
        ASSERT_EQ(out.size(), 16 + (expected * 37) % 600);
        ++expected;
    }
    producer.join();
    EXPECT_EQ(st, io_status::closed);
    EXPECT_EQ(expected, count);
}

TEST(RingMpmc, BasicsAndSlotLimit) {
    const auto m = memory_for(mpmc(4, 32));
    ring p(m, ring_role::producer, "mp");
    ring c(m, ring_role::consumer, "mp");
    EXPECT_EQ(p.max_message(), 32u);
    EXPECT_THROW(p.send(pattern(33, 0)), error);
    for (int i = 0; i < 4; ++i)
        ASSERT_EQ(p.try_send(pattern(static_cast<std::size_t>(i * 10), 0)), io_status::ok);
    EXPECT_EQ(p.send("x", deadline::after(20ms)), io_status::timed_out);
    std::string out;
    for (int i = 0; i < 4; ++i) {
        ASSERT_EQ(c.try_receive(out), io_status::ok);
        EXPECT_EQ(out, pattern(static_cast<std::size_t>(i * 10), 0));
    }
    EXPECT_EQ(c.receive(out, deadline::after(20ms)), io_status::timed_out);
    // Abandoned loans are skipped, not delivered.
    auto l = p.loan(8);
    ASSERT_EQ(l.status, io_status::ok);
    p.abandon();
    ASSERT_EQ(p.try_send("kept"), io_status::ok);
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "kept");
}

// A producer killed right after its head CAS, before it recorded itself as
// the slot's owner, left a claimed slot that no consumer would skip. Its
// claim (published before the CAS) names it: no live claimant, skip.
TEST(RingMpmc, SlotClaimedByAProducerThatDiedBeforeRecordingItselfIsSkipped) {
    const auto m = memory_for(mpmc(4, 32));
    auto& h = *reinterpret_cast<ring::layout*>(m->data());
    ring p(m, ring_role::producer, "claim");
    ring c(m, ring_role::consumer, "claim");
    // Slot 0 claimed by a producer whose peer slot (5) was freed after it died.
    h.producer_claims[5].store(1);
    h.head.store(1);
    ASSERT_EQ(p.try_send("after"), io_status::ok);  // slot 1
    std::string out;
    ASSERT_EQ(c.receive(out, deadline::after(10s)), io_status::ok);
    EXPECT_EQ(out, "after");
}

TEST(RingMpmc, SlotClaimedByALiveProducerIsWaitedFor) {
    const auto m = memory_for(mpmc(4, 32));
    auto& h = *reinterpret_cast<ring::layout*>(m->data());
    ring p(m, ring_role::producer, "claim");
    ring c(m, ring_role::consumer, "claim");
    // Slot 0 claimed by a live producer in peer slot 3 that has not recorded
    // itself as the owner yet. Another process, so that the liveness probe
    // decides, not the shortcut for our own pid.
    test::forked_child live([] {
        ::pause();
        return 0;
    });
    h.producers[3].store(static_cast<std::int32_t>(live.pid()));
    h.producer_claims[3].store(1);
    h.head.store(1);
    ASSERT_EQ(p.try_send("after"), io_status::ok);
    std::string out;
    EXPECT_EQ(c.receive(out, deadline::after(100ms)), io_status::timed_out);
}

// A slot a consumer took (tail CAS) but never released is waited for while
// its holder lives, and freed by the producer once the holder is dead.
TEST(RingMpmc, SlotHeldByAConsumerIsFreedOnlyOnceItIsDead) {
    const auto m = memory_for(mpmc(2, 32));
    auto& h = *reinterpret_cast<ring::layout*>(m->data());
    ring p(m, ring_role::producer, "held");
    ring c(m, ring_role::consumer, "held");
    ASSERT_EQ(p.try_send("zero"), io_status::ok);
    ASSERT_EQ(p.try_send("one"), io_status::ok);
    // The consumer in peer slot 3 (another process) took slot 0.
    test::forked_child holder([] {
        ::pause();
        return 0;
    });
    h.consumers[3].store(static_cast<std::int32_t>(holder.pid()));
    h.consumer_claims[3].store(1);
    h.tail.store(1);
    EXPECT_EQ(p.send("two", deadline::after(100ms)), io_status::timed_out);
    ::kill(holder.pid(), SIGKILL);
    ASSERT_TRUE(holder.wait(10s).has_value());
    ASSERT_EQ(p.send("two", deadline::after(10s)), io_status::ok);
    std::string out;
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "one");
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "two");
}

// A producer that lost the head CAS for slot 0 kept its claim on it while
// it slept waiting for space; the winner had died before recording itself as
// owner, so consumers saw a live claimant of slot 0 and waited for good.
TEST(RingMpmc, ProducerWaitingForSpaceLeavesNoStaleClaim) {
    const auto m = memory_for(mpmc(4, 32));
    auto& h = *reinterpret_cast<ring::layout*>(m->data());
    ring p(m, ring_role::producer, "stale");
    ring c(m, ring_role::consumer, "stale");
    // The winner of slot 0 died between its CAS and its owner store (its
    // peer slot freed); p lost that CAS, so its claim still names slot 0.
    h.head.store(1);
    for (int i = 1; i < 4; ++i)
        ASSERT_EQ(p.try_send("m" + std::to_string(i)), io_status::ok);
    h.producer_claims[0].store(1);  // p is in peer slot 0
    EXPECT_EQ(p.send("full", deadline::after(30ms)), io_status::timed_out);
    std::string out;
    ASSERT_EQ(c.receive(out, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(out, "m1");
}

TEST(RingMpmc, ThreadsExactlyOnceInOrderPerProducer) {
    const auto m = memory_for(mpmc(16, 128));
    constexpr int producers = 3, consumers = 3;
    constexpr std::uint64_t per_producer = 5000;
    std::vector<std::vector<parsed>> got(consumers);
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < consumers; ++k)
        threads.emplace_back([&, k] {
            ring c(m, ring_role::consumer, "mpmc");
            std::string out;
            while (c.receive(out, deadline::after(20s)) == io_status::ok) {
                try {
                    got[static_cast<std::size_t>(k)].push_back(parse_message(out));
                } catch (...) {
                    ++errors;
                }
            }
        });
    {
        // Attach every producer before any can finish, or the consumers would
        // rightly report closed after the first one leaves.
        std::vector<ring> rings;
        for (int id = 0; id < producers; ++id)
            rings.emplace_back(m, ring_role::producer, "mpmc");
        std::vector<std::thread> prods;
        for (int id = 0; id < producers; ++id)
            prods.emplace_back(
                [&, id, p = std::move(rings[static_cast<std::size_t>(id)])]() mutable {
                    for (std::uint64_t i = 0; i < per_producer; ++i)
                        if (p.send(make_message(static_cast<std::uint32_t>(id), i, i % 100),
                                   deadline::after(20s)) != io_status::ok)
                            ++errors;
                });
        for (auto& t : prods)
            t.join();
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(errors.load(), 0);
    std::map<std::uint32_t, std::vector<int>> seen;
    for (auto& v : got) {
        std::map<std::uint32_t, std::int64_t> last;
        for (auto& pm : v) {
            auto [it, fresh] = last.try_emplace(pm.producer, -1);
            // In order per producer as seen by each consumer.
            EXPECT_LT(it->second, static_cast<std::int64_t>(pm.seq));
            it->second = static_cast<std::int64_t>(pm.seq);
            auto& s = seen[pm.producer];
            s.resize(per_producer);
            s[pm.seq]++;
        }
    }
    ASSERT_EQ(seen.size(), static_cast<std::size_t>(producers));
    for (auto& [id, counts] : seen)
        for (std::uint64_t i = 0; i < per_producer; ++i)
            ASSERT_EQ(counts[i], 1) << id << ":" << i;
}

// A creator killed between creating the name and storing the magic left an
// object (size 0, or sized and zero) that every later open called "not
// finished yet": the shm: channel retried for ever under its default
// deadline. With nobody holding the creation lock it is an error saying so.
TEST(RingNamed, HalfMadeRingWhoseCreatorDiedIsAnErrorNotAHang) {
    for (const bool sized : {true, false}) {
        const auto name = "/" + test::unique_name(sized ? "ring-half" : "ring-half0");
        shm_remover rm(name);
        int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_GE(fd, 0);
        if (sized) {
            ASSERT_EQ(::ftruncate(fd, ring::required_size(spsc(1u << 20))), 0);
        }
        // Made an hour ago: a size-0 object younger than a few seconds may
        // still have a creator on its way to the creation lock.
        const timespec an_hour_ago[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
        ASSERT_EQ(::futimens(fd, an_hour_ago), 0);
        ::close(fd);  // the creator is gone
        for (const channel_role role : {channel_role::receiver, channel_role::sender}) {
            SCOPED_TRACE(std::string(sized ? "sized, " : "size 0, ") +
                         (role == channel_role::receiver ? "receiver" : "sender"));
            test::forked_child opener([&] {
                try {
                    open_channel("shm:" + name, role);  // default open deadline: never
                } catch (const error& e) {
                    const std::string what = e.what();
                    std::fprintf(stderr, "%s\n", what.c_str());
                    return e.code().value() == EPROTO &&
                                   what.find("creator died") != std::string::npos &&
                                   what.find("ipckit rm shm:" + name) != std::string::npos
                               ? 0
                               : 1;
                }
                return 2;
            });
            auto st = opener.wait(10s);
            ASSERT_TRUE(st.has_value()) << "open hung";
            EXPECT_TRUE(st->success()) << st->describe();
        }
    }
}

// While the creator lives (it holds the creation lock) an unformatted ring
// is "not finished yet" (EAGAIN, retried), not an error.
TEST(RingNamed, HalfMadeRingWhoseCreatorLivesIsRetried) {
    const auto name = "/" + test::unique_name("ring-making");
    shm_remover rm(name);
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    ASSERT_EQ(::ftruncate(fd, ring::required_size(spsc(4096))), 0);
    EXPECT_EQ(error_code([&] { ring::open(name, ring_role::producer); }), EAGAIN);
    ::close(fd);
    EXPECT_EQ(error_code([&] { ring::open(name, ring_role::producer); }), EPROTO);
}

TEST(RingNamed, CreateOpenRemove) {
    auto name = "/" + test::unique_name("ring-named");
    shm_remover rm(name);
    ring c = ring::create(name, ring_role::consumer, spsc(4096));
    EXPECT_THROW(ring::create(name, ring_role::consumer, spsc(4096)), error);  // create_only
    ring p = ring::open(name, ring_role::producer);
    EXPECT_EQ(p.kind(), ring_kind::spsc);
    EXPECT_EQ(p.capacity(), 4096u);
    ASSERT_EQ(p.try_send("named"), io_status::ok);
    std::string out;
    ASSERT_EQ(c.try_receive(out), io_status::ok);
    EXPECT_EQ(out, "named");
    EXPECT_THROW(ring::create("bad/name", ring_role::consumer), std::invalid_argument);
    EXPECT_THROW(ring::create(name + "x", ring_role::consumer, spsc(100)), std::invalid_argument);
    EXPECT_FALSE(shared_memory::remove(name + "x"));  // nothing left behind
}

TEST(RingChannel, SendReceiveOverShmUrl) {
    auto name = "/" + test::unique_name("ring-chan");
    shm_remover rm(name);
    auto url = "shm:" + name + "?capacity=64k";
    auto rx = open_channel(url, channel_role::receiver);
    auto tx = open_channel(url, channel_role::sender);
    EXPECT_EQ(rx->poll_fd(), -1);
    EXPECT_EQ(tx->max_message(), 65536u - 16);
    ASSERT_EQ(tx->send("over the channel"), io_status::ok);
    message msg;
    ASSERT_EQ(rx->receive(msg, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(msg.payload, "over the channel");
    tx.reset();
    EXPECT_EQ(rx->receive(msg, deadline::after(5s)), io_status::closed);
    rx.reset();
    EXPECT_FALSE(shared_memory::remove(name));  // the receiver created it and removed it

    auto mp = "shm:" + name + "?mode=mpmc&capacity=16k&slot=1k";
    auto rx2 = open_channel(mp, channel_role::receiver);
    auto tx2 = open_channel(mp, channel_role::sender);
    EXPECT_EQ(tx2->max_message(), 1024u);
    EXPECT_THROW(tx2->send(std::string(1025, 'x')), error);
    ASSERT_EQ(tx2->send("mpmc"), io_status::ok);
    ASSERT_EQ(rx2->receive(msg, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(msg.payload, "mpmc");
    // The ring exists: a URL naming another geometry is refused, no geometry
    // or the same one is fine.
    for (const std::string other :
         {"?capacity=32k", "?mode=spsc", "?mode=mpmc&capacity=16k&slot=2k",
          "?mode=mpmc&capacity=32k&slot=1k"}) {
        SCOPED_TRACE(other);
        try {
            open_channel("shm:" + name + other, channel_role::sender);
            FAIL() << "opened with another geometry";
        } catch (const error& e) {
            EXPECT_EQ(e.code().value(), EEXIST);
            EXPECT_NE(std::string(e.what()).find("the ring exists as mpmc, 16 slots of 1024 bytes"),
                      std::string::npos)
                << e.what();
        }
    }
    EXPECT_NO_THROW(open_channel("shm:" + name, channel_role::sender));
    EXPECT_NO_THROW(open_channel("shm:" + name + "?capacity=16k", channel_role::sender));

    EXPECT_THROW(open_channel("shm:" + name + "z?capacity=1000", channel_role::receiver),
                 url_error);
    EXPECT_THROW(
        open_channel("shm:" + name + "z?mode=mpmc&capacity=12k&slot=4k", channel_role::receiver),
        url_error);
    open_options quick;
    quick.open_deadline = deadline::after(50ms);
    try {
        open_channel("shm:" + name + "-nobody", channel_role::sender, quick);
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), ETIMEDOUT);
    }
}

// The ring's payload copies go in pieces for some sizes (src/detail/copy.hpp):
// every size around the bounds, at every relative alignment, copies exactly.
TEST(RingCopy, PiecewiseCopiesAreExactAtEverySizeAndAlignment) {
    std::vector<char> src((1u << 20) + 128), dst(src.size() + 128);
    for (std::size_t i = 0; i < src.size(); ++i)
        src[i] = static_cast<char>(i * 131 + 7);
    for (std::size_t n :
         {std::size_t{0}, std::size_t{1}, std::size_t{2047}, std::size_t{2048}, std::size_t{2049},
          std::size_t{65536 + 5}, std::size_t{(1u << 20) - 1}, std::size_t{1u << 20}}) {
        for (std::size_t shift : {0, 8, 16, 24, 40}) {
            std::fill(dst.begin(), dst.end(), '\0');
            detail::copy_bytes(dst.data() + shift, src.data() + 3, n);
            ASSERT_EQ(std::memcmp(dst.data() + shift, src.data() + 3, n), 0) << n << "+" << shift;
            ASSERT_EQ(dst[shift + n], '\0') << "wrote past the end: " << n;
            std::string out = "previous contents";
            detail::assign_bytes(out, src.data() + shift, n);
            ASSERT_EQ(out.size(), n);
            ASSERT_EQ(std::memcmp(out.data(), src.data() + shift, n), 0) << n;
        }
    }
}
