// Framing: the incremental frame_decoder (length / line / raw) and the
// stream_channel built on it, over real pipes and socketpairs.
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "channels/stream_channel.hpp"
#include "detail/syscall.hpp"
#include "ipckit/error.hpp"
#include "ipckit/pipe.hpp"

using namespace ipckit;
using ipckit::detail::frame_decoder;
using ipckit::detail::stream_channel;
using ipckit::detail::stream_options;
using namespace std::chrono_literals;

namespace {

std::string frame(std::string_view payload) {
    unsigned char hdr[detail::frame_header_size];
    detail::encode_frame_header(static_cast<std::uint32_t>(payload.size()), hdr);
    return std::string(reinterpret_cast<const char*>(hdr), sizeof hdr) + std::string(payload);
}

std::string header(std::uint32_t n) {
    unsigned char hdr[detail::frame_header_size];
    detail::encode_frame_header(n, hdr);
    return std::string(reinterpret_cast<const char*>(hdr), sizeof hdr);
}

// Feeds stream in chunks whose sizes come from next_chunk() (as successive
// read()s would deliver them) and returns every message, in order.
std::vector<std::string> decode(framing mode, std::size_t max, const std::string& stream,
                                const std::function<std::size_t()>& next_chunk, bool at_eof = true,
                                bool accept_chunks = false) {
    frame_decoder d(mode, max, "test", accept_chunks);
    std::vector<std::string> out;
    std::string msg;
    std::size_t pos = 0;
    while (pos < stream.size()) {
        std::size_t n = std::min(next_chunk(), stream.size() - pos);
        std::size_t off = 0;
        do {
            off += d.feed(stream.data() + pos + off, n - off);
            if (d.message_ready()) {
                d.take(msg);
                out.push_back(msg);
            }
        } while (off < n);
        pos += n;
    }
    if (at_eof && d.finish_at_eof()) {
        d.take(msg);
        out.push_back(msg);
    }
    return out;
}

std::vector<std::string> decode_whole(framing mode, std::size_t max, const std::string& stream) {
    return decode(mode, max, stream, [&] { return stream.size(); });
}

std::vector<std::string> sample_messages() {
    std::mt19937 rng(12345);
    std::vector<std::string> msgs{"", "a", std::string(1, '\0'), "hello world", ""};
    for (int i = 0; i < 40; ++i) {
        std::string m(rng() % 3000, '\0');
        for (auto& c : m)
            c = static_cast<char>(rng());
        msgs.push_back(std::move(m));
    }
    msgs.push_back(std::string(70000, 'x'));
    return msgs;
}

template <class F>
int error_code_of(F&& f, std::string* what = nullptr) {
    try {
        f();
    } catch (const ipckit::error& e) {
        if (what) *what = e.what();
        return e.code().value();
    }
    return 0;
}

}  // namespace

// ---- frame_decoder: length framing -------------------------------------------------

TEST(FrameDecoder, HeaderIsLittleEndian) {
    EXPECT_EQ(header(0x01020304), std::string("\x04\x03\x02\x01", 4));
    unsigned char in[4] = {0xff, 0xff, 0xff, 0xff};
    EXPECT_EQ(detail::decode_frame_header(in), 0xffffffffu);
}

TEST(FrameDecoder, AnyChunkingGivesTheSameMessages) {
    auto msgs = sample_messages();
    std::string stream;
    for (const auto& m : msgs)
        stream += frame(m);
    EXPECT_EQ(decode_whole(framing::length, 1 << 20, stream), msgs);
    EXPECT_EQ(decode(framing::length, 1 << 20, stream, [] { return std::size_t{1}; }), msgs);
    std::mt19937 rng(42);  // fixed seed: reproducible
    for (int round = 0; round < 50; ++round) {
        std::size_t limit = 1 + rng() % 9000;
        auto got = decode(framing::length, 1 << 20, stream, [&] { return rng() % limit; });
        ASSERT_EQ(got, msgs) << "round " << round << " limit " << limit;
    }
}

TEST(FrameDecoder, ZeroLengthMessage) {
    frame_decoder d(framing::length, 10, "t");
    std::string h = header(0);
    EXPECT_EQ(d.feed(h.data(), h.size()), 4u);
    ASSERT_TRUE(d.message_ready());
    std::string out = "junk";
    d.take(out);
    EXPECT_EQ(out, "");
    EXPECT_TRUE(d.at_boundary());
}

TEST(FrameDecoder, StopsAfterEachMessage) {
    std::string stream = frame("ab") + frame("cd");
    frame_decoder d(framing::length, 10, "t");
    EXPECT_EQ(d.feed(stream.data(), stream.size()), 6u);  // first frame only
    EXPECT_TRUE(d.message_ready());
    EXPECT_EQ(d.feed(stream.data() + 6, stream.size() - 6), 0u);  // not taken yet
    std::string out;
    d.take(out);
    EXPECT_EQ(out, "ab");
    EXPECT_EQ(d.feed(stream.data() + 6, stream.size() - 6), 6u);
    d.take(out);
    EXPECT_EQ(out, "cd");
}

TEST(FrameDecoder, ExactlyMaxIsAccepted) {
    const std::size_t max = 1000;
    std::string m(max, 'm');
    EXPECT_EQ(decode_whole(framing::length, max, frame(m)), std::vector<std::string>{m});
}

TEST(FrameDecoder, OversizedHeadersRejectedBeforeAllocating) {
    const std::size_t max = 1000;
    // (0xffffffff is the chunk marker, not a length: see the ChunkRecords tests.)
    for (std::uint32_t n : {std::uint32_t{max + 1}, std::uint32_t{0x7fffffff}, 0xfffffffeu}) {
        SCOPED_TRACE(n);
        frame_decoder d(framing::length, max, "fifo:/tmp/t");
        std::string h = header(n);
        std::string what;
        // The header arrives in two pieces: nothing is decided on the first.
        EXPECT_EQ(d.feed(h.data(), 2), 2u);
        EXPECT_EQ(error_code_of([&] { d.feed(h.data() + 2, 2); }, &what), EMSGSIZE);
        EXPECT_NE(what.find("fifo:/tmp/t"), std::string::npos) << what;
        EXPECT_NE(what.find(std::to_string(n)), std::string::npos) << what;
        EXPECT_NE(what.find("1000"), std::string::npos) << what;
        // Nothing was reserved for the announced payload.
        EXPECT_LT(d.partial().capacity(), 64u);
        EXPECT_FALSE(d.message_ready());
    }
}

TEST(FrameDecoder, TornFrameIsNeverDelivered) {
    std::string stream = frame("complete") + frame("torn payload").substr(0, 7);
    auto got = decode_whole(framing::length, 100, stream);
    EXPECT_EQ(got, std::vector<std::string>{"complete"});
    frame_decoder d(framing::length, 100, "t");
    d.feed(stream.data() + 12, 7);
    EXPECT_FALSE(d.at_boundary());
    EXPECT_EQ(d.payload_bytes_missing(), 9u);
    EXPECT_FALSE(d.finish_at_eof());
    EXPECT_FALSE(d.message_ready());
}

TEST(FrameDecoder, HalfHeaderIsNotABoundary) {
    frame_decoder d(framing::length, 100, "t");
    EXPECT_TRUE(d.at_boundary());
    std::string h = header(5);
    d.feed(h.data(), 1);
    EXPECT_FALSE(d.at_boundary());
    EXPECT_EQ(d.payload_bytes_missing(), 0u);
    EXPECT_FALSE(d.finish_at_eof());
}

// ---- line framing --------------------------------------------------------------------

TEST(FrameDecoder, LinesWithAnyChunking) {
    std::string stream = "first\n\nthird line\n" + std::string(5000, 'L') + "\nlast";
    std::vector<std::string> want{"first", "", "third line", std::string(5000, 'L'), "last"};
    EXPECT_EQ(decode_whole(framing::line, 10000, stream), want);
    std::mt19937 rng(7);
    for (int round = 0; round < 30; ++round) {
        std::size_t limit = 1 + rng() % 700;
        ASSERT_EQ(decode(framing::line, 10000, stream, [&] { return rng() % limit; }), want);
    }
}

TEST(FrameDecoder, UnterminatedLastLineOnlyAtEof) {
    auto got = decode(
        framing::line, 100, "a\nb", [] { return std::size_t{100}; }, false);
    EXPECT_EQ(got, std::vector<std::string>{"a"});
    got = decode(
        framing::line, 100, "a\nb", [] { return std::size_t{100}; }, true);
    EXPECT_EQ(got, (std::vector<std::string>{"a", "b"}));
    frame_decoder d(framing::line, 100, "t");
    EXPECT_FALSE(d.finish_at_eof());  // nothing buffered: no empty message
}

TEST(FrameDecoder, LineLongerThanMaxIsRejected) {
    const std::size_t max = 16;
    EXPECT_EQ(decode_whole(framing::line, max, std::string(max, 'x') + "\n"),
              std::vector<std::string>{std::string(max, 'x')});
    std::string what;
    EXPECT_EQ(
        error_code_of([&] { decode_whole(framing::line, max, std::string(max + 1, 'x')); }, &what),
        EMSGSIZE);
    EXPECT_NE(what.find("16"), std::string::npos) << what;
    // Across chunks too.
    EXPECT_EQ(error_code_of([&] {
                  decode(framing::line, max, std::string(40, 'y') + "\n",
                         [] { return std::size_t{3}; });
              }),
              EMSGSIZE);
}

// ---- raw framing ---------------------------------------------------------------------

TEST(FrameDecoder, RawDeliversEachChunkUpToMax) {
    frame_decoder d(framing::raw, 4, "t");
    std::string out;
    EXPECT_EQ(d.feed("abcdefg", 7), 4u);
    ASSERT_TRUE(d.message_ready());
    d.take(out);
    EXPECT_EQ(out, "abcd");
    EXPECT_EQ(d.feed("efg", 3), 3u);
    d.take(out);
    EXPECT_EQ(out, "efg");
    // An empty read delivers nothing (EOF is the caller's business).
    EXPECT_EQ(d.feed("", 0), 0u);
    EXPECT_FALSE(d.message_ready());
    EXPECT_FALSE(d.finish_at_eof());
}

// ---- stream_channel over real descriptors -----------------------------------------------

namespace {

struct socket_pair {
    unique_fd a, b;
    socket_pair() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            throw_errno("socketpair", "");
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
};

stream_options opts(framing f = framing::length, std::size_t max = default_max_message) {
    stream_options o;
    o.frame = f;
    o.max_message = max;
    return o;
}

void write_raw(int fd, std::string_view bytes) {
    ASSERT_EQ(detail::write_all(fd, std::as_bytes(std::span(bytes.data(), bytes.size())),
                                deadline::after(10s), "test"),
              detail::io_outcome::ok);
}

// A peer that sends one frame after `delay`, while the test waits for it.
std::thread send_frame_later(int fd, std::chrono::milliseconds delay, std::string payload) {
    return std::thread([fd, delay, payload = std::move(payload)] {
        std::this_thread::sleep_for(delay);
        write_raw(fd, frame(payload));
    });
}

}  // namespace

// ---- chunk records (large frames on a FIFO shared by several writers) -----------------

namespace {

// The records a writer with id `writer` sends for `payload`.
std::vector<std::string> chunk_records(std::uint64_t writer, std::string_view payload) {
    std::vector<std::string> out;
    detail::chunk_header h;
    h.total = static_cast<std::uint32_t>(payload.size());
    h.writer = writer;
    for (std::size_t off = 0; off < payload.size(); off += h.length) {
        h.offset = static_cast<std::uint32_t>(off);
        h.length =
            static_cast<std::uint32_t>(std::min(detail::chunk_piece_max, payload.size() - off));
        unsigned char hdr[detail::chunk_header_size];
        detail::encode_chunk_header(h, hdr);
        out.push_back(std::string(reinterpret_cast<const char*>(hdr), sizeof hdr) +
                      std::string(payload.substr(off, h.length)));
    }
    return out;
}

std::string record(std::uint64_t writer, std::uint32_t total, std::uint32_t offset,
                   std::uint32_t length) {
    detail::chunk_header h{total, writer, offset, length};
    unsigned char hdr[detail::chunk_header_size];
    detail::encode_chunk_header(h, hdr);
    return std::string(reinterpret_cast<const char*>(hdr), sizeof hdr) + std::string(length, 'r');
}

// What a pipe/FIFO reader decodes from `stream` delivered in one piece.
std::vector<std::string> decode_pipe(std::size_t max, const std::string& stream) {
    return decode(
        framing::length, max, stream, [&] { return stream.size(); }, true, true);
}

std::string patterned_text(std::size_t n, int seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 131 + static_cast<std::size_t>(seed) * 7) & 0xff);
    return s;
}

}  // namespace

TEST(ChunkRecords, HeaderRoundTripsAndEveryRecordFitsInPipeBuf) {
    detail::chunk_header h{70000, 0x123456789abcdef0ull, 4072, 4072};
    unsigned char b[detail::chunk_header_size];
    detail::encode_chunk_header(h, b);
    EXPECT_EQ(detail::decode_frame_header(b), detail::chunk_marker);
    auto back = detail::decode_chunk_header(b);
    EXPECT_EQ(back.total, h.total);
    EXPECT_EQ(back.writer, h.writer);
    EXPECT_EQ(back.offset, h.offset);
    EXPECT_EQ(back.length, h.length);
    static_assert(detail::chunk_record_max == PIPE_BUF);
    for (const auto& r : chunk_records(1, patterned_text(65536, 1)))
        EXPECT_LE(r.size(), std::size_t{PIPE_BUF});
}

TEST(ChunkRecords, InterleavedWritersAndPlainFramesAnyChunking) {
    // Three writers' records alternate (as atomic writes from three processes
    // would), with plain small frames between them.
    const std::vector<std::string> big{patterned_text(65536, 1), patterned_text(9000, 2),
                                       patterned_text(4073, 3)};
    std::vector<std::vector<std::string>> recs;
    for (std::size_t w = 0; w < big.size(); ++w)
        recs.push_back(chunk_records(100 + w, big[w]));
    std::string stream;
    std::vector<std::string> want;
    for (std::size_t i = 0; i < 20; ++i) {
        for (std::size_t w = 0; w < recs.size(); ++w) {
            if (i < recs[w].size()) stream += recs[w][i];
            if (i + 1 == recs[w].size()) want.push_back(big[w]);
        }
        std::string small = "small " + std::to_string(i);
        stream += frame(small);
        want.push_back(small);
    }
    EXPECT_EQ(decode_pipe(1 << 20, stream), want);
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        std::size_t limit = 1 + rng() % 6000;
        ASSERT_EQ(decode(
                      framing::length, 1 << 20, stream, [&] { return rng() % limit; }, true, true),
                  want)
            << "round " << round;
    }
}

TEST(ChunkRecords, AbandonedMessageIsDroppedWhenItsWriterStartsOver) {
    // A writer whose send timed out after two records sends its next message.
    auto first = chunk_records(5, patterned_text(20000, 1));
    std::string stream = first[0] + first[1] + frame("other writer");
    auto second = chunk_records(5, patterned_text(10000, 2));
    for (const auto& r : second)
        stream += r;
    EXPECT_EQ(decode_pipe(1 << 20, stream),
              (std::vector<std::string>{"other writer", patterned_text(10000, 2)}));
}

TEST(ChunkRecords, GapsAndOrphansAreSkippedNotDelivered) {
    auto recs = chunk_records(9, patterned_text(20000, 3));
    // Record 2 is missing: the message cannot complete and is never delivered.
    std::string gap = recs[0] + recs[1] + recs[3] + recs[4] + frame("after");
    EXPECT_EQ(decode_pipe(1 << 20, gap), std::vector<std::string>{"after"});
    // Records whose start was never seen (the reader came late).
    std::string orphan = recs[3] + recs[4] + frame("after");
    EXPECT_EQ(decode_pipe(1 << 20, orphan), std::vector<std::string>{"after"});
    // A record claiming a different total for the same writer is a gap too.
    std::string changed = recs[0] + record(9, 30000, detail::chunk_piece_max, 100) + frame("z");
    EXPECT_EQ(decode_pipe(1 << 20, changed), std::vector<std::string>{"z"});
}

TEST(ChunkRecords, AssembliesAreBoundedOldestEvicted) {
    const std::size_t max = 50000;
    frame_decoder d(framing::length, max, "t", true);
    auto feed_all = [&](const std::string& bytes) {
        std::vector<std::string> out;
        std::size_t off = 0;
        while (off < bytes.size()) {
            off += d.feed(bytes.data() + off, bytes.size() - off);
            if (d.message_ready()) d.take(out.emplace_back());
        }
        return out;
    };
    // One more writer than the table holds, each leaving a message open.
    std::string starts;
    for (std::uint64_t w = 0; w <= detail::max_chunk_assemblies; ++w)
        starts += record(w, 5000, 0, 1000);
    EXPECT_TRUE(feed_all(starts).empty());
    EXPECT_LE(d.assembly_capacity(), detail::chunk_budget_messages * max);
    // Writer 0 (the least recently extended) was evicted: its rest is skipped.
    EXPECT_TRUE(feed_all(record(0, 5000, 1000, 4000)).empty());
    // The newest one completes.
    EXPECT_EQ(feed_all(record(detail::max_chunk_assemblies, 5000, 1000, 4000)),
              std::vector<std::string>{std::string(5000, 'r')});
}

TEST(ChunkRecords, OversizedTotalIsRejectedBeforeAllocating) {
    frame_decoder d(framing::length, 1000, "fifo:/tmp/c", true);
    std::string r = record(1, 0x7fffffff, 0, 10);
    std::string what;
    EXPECT_EQ(error_code_of([&] { d.feed(r.data(), r.size()); }, &what), EMSGSIZE);
    EXPECT_NE(what.find("2147483647"), std::string::npos) << what;
    EXPECT_EQ(d.assembly_capacity(), 0u);
    // The stream cannot be resynchronised: later feeds throw too.
    std::string f = frame("x");
    EXPECT_EQ(error_code_of([&] { d.feed(f.data(), f.size()); }), EMSGSIZE);
}

TEST(ChunkRecords, MalformedRecordsAreProtocolErrors) {
    for (const auto& r : {record(1, 100, 0, 0),    // empty piece
                          record(1, 100, 90, 20),  // past the total
                          record(1, 100, 101, 1),  // offset past the total
                          record(1, 10000, 0, detail::chunk_piece_max + 1)}) {  // too long
        frame_decoder d(framing::length, 1 << 20, "fifo:/tmp/c", true);
        std::string what;
        EXPECT_EQ(error_code_of([&] { d.feed(r.data(), r.size()); }, &what), EPROTO);
        EXPECT_NE(what.find("malformed chunk record"), std::string::npos) << what;
    }
}

TEST(ChunkRecords, ManyWritersAtOnceAllComplete) {
    // 32 writers mid-message at the same time, records round robin.
    std::vector<std::vector<std::string>> recs;
    std::vector<std::string> want;
    for (int w = 0; w < 32; ++w) {
        want.push_back(patterned_text(3 * detail::chunk_piece_max, w));
        recs.push_back(chunk_records(1000 + static_cast<std::uint64_t>(w), want.back()));
    }
    std::string stream;
    for (std::size_t r = 0; r < 3; ++r)
        for (int w = 0; w < 32; ++w)
            stream += recs[static_cast<std::size_t>(w)][r];
    EXPECT_EQ(decode_pipe(1 << 20, stream), want);
}

TEST(ChunkRecords, MemoryFollowsBytesReceivedNotAnnouncedTotals) {
    // Sixteen writers announce 16 MiB each and send one byte: nothing like
    // 16 x 16 MiB may be reserved.
    frame_decoder d(framing::length, 16 << 20, "t", true);
    std::string stream;
    for (std::uint64_t w = 0; w < 16; ++w)
        stream += record(w, 16 << 20, 0, 1);
    std::size_t off = 0;
    while (off < stream.size())
        off += d.feed(stream.data() + off, stream.size() - off);
    EXPECT_LE(d.assembly_capacity(), 16u * 64u);
}

TEST(ChunkRecords, ByteBudgetEvictsTheLeastRecentlyExtended) {
    const std::size_t max = 20000;  // budget: chunk_budget_messages * max
    frame_decoder d(framing::length, max, "t", true);
    std::string stream;
    // Ten writers each get 16 KiB of a 20000-byte message in: more than the
    // budget holds, so the oldest are evicted as the newest grow.
    for (std::uint64_t w = 0; w < 10; ++w)
        for (std::uint32_t off = 0; off < 16000; off += 4000)
            stream += record(w, 20000, off, 4000);
    std::size_t off = 0;
    while (off < stream.size()) {
        off += d.feed(stream.data() + off, stream.size() - off);
        ASSERT_LE(d.assembly_capacity(), detail::chunk_budget_messages * max);
    }
    // The newest still completes; the first was evicted and is skipped.
    std::string tail = record(0, 20000, 16000, 4000) + record(9, 20000, 16000, 4000);
    off = 0;
    std::vector<std::string> got;
    while (off < tail.size()) {
        off += d.feed(tail.data() + off, tail.size() - off);
        if (d.message_ready()) d.take(got.emplace_back());
    }
    EXPECT_EQ(got, std::vector<std::string>{std::string(20000, 'r')});
}

TEST(ChunkRecords, OnlyPipeReadersAcceptThem) {
    // A socket (or file) reader takes the marker for a 4 GiB length.
    frame_decoder d(framing::length, 1 << 20, "unix:/tmp/s");
    std::string r = record(1, 100, 0, 100);
    EXPECT_EQ(error_code_of([&] { d.feed(r.data(), r.size()); }), EMSGSIZE);
}

TEST(ChunkRecords, ChannelSendsEachRecordAsOneAtomicWrite) {
    auto p = make_pipe();
    stream_options o = opts();
    o.chunk_large_frames = true;
    stream_channel tx("fifo-ish", unique_fd{}, std::move(p.write_end), o);
    const std::string big = patterned_text(65536, 4);
    std::thread writer([&] { EXPECT_EQ(tx.send(big, deadline::after(10s)), io_status::ok); });
    // Read record by record, checking each one's framing as it arrives.
    std::uint64_t first_writer = 0;
    std::string got;
    std::size_t records = 0;
    while (got.size() < big.size()) {
        unsigned char hdr[detail::chunk_header_size];
        ASSERT_EQ(detail::read_exact(p.read_end.get(), std::as_writable_bytes(std::span(hdr)),
                                     deadline::after(10s), "test"),
                  detail::io_outcome::ok);
        ASSERT_EQ(detail::decode_frame_header(hdr), detail::chunk_marker);
        auto h = detail::decode_chunk_header(hdr);
        ASSERT_EQ(h.offset, got.size());
        ASSERT_EQ(h.total, big.size());
        if (records == 0) first_writer = h.writer;
        ASSERT_EQ(h.writer, first_writer);
        ASSERT_LE(h.length + detail::chunk_header_size, std::size_t{PIPE_BUF});
        std::string piece(h.length, '\0');
        ASSERT_EQ(detail::read_exact(p.read_end.get(), std::as_writable_bytes(std::span(piece)),
                                     deadline::after(10s), "test"),
                  detail::io_outcome::ok);
        got += piece;
        ++records;
    }
    writer.join();
    EXPECT_TRUE(got == big);
    EXPECT_EQ(records, (big.size() + detail::chunk_piece_max - 1) / detail::chunk_piece_max);
    // Small frames stay plain frames.
    ASSERT_EQ(tx.send("tiny", deadline::after(1s)), io_status::ok);
    char buf[16];
    ASSERT_EQ(::read(p.read_end.get(), buf, sizeof buf), 8);
    EXPECT_EQ(std::string(buf, 8), frame("tiny"));
}

TEST(ChunkRecords, SendTimingOutMidMessageAbandonsItCleanly) {
    auto p = make_pipe();  // 64 KiB: a 200 KB message cannot fit while nobody reads
    stream_options o = opts();
    o.chunk_large_frames = true;
    stream_channel tx("fifo-ish", unique_fd{}, std::move(p.write_end), o);
    stream_channel rx("fifo-ish", std::move(p.read_end), unique_fd{}, o);
    EXPECT_EQ(tx.send(patterned_text(200000, 5), deadline::after(200ms)), io_status::timed_out);
    // The reader drains the abandoned records, then gets the next messages only.
    const std::string next = patterned_text(30000, 6);
    std::thread writer([&] {
        EXPECT_EQ(tx.send(next, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(tx.send("end", deadline::after(10s)), io_status::ok);
    });
    message m;
    ASSERT_EQ(rx.receive(m, deadline::after(10s)), io_status::ok);
    EXPECT_TRUE(m.payload == next) << m.payload.size();
    ASSERT_EQ(rx.receive(m, deadline::after(10s)), io_status::ok);
    EXPECT_EQ(m.payload, "end");
    writer.join();
}

TEST(ChunkRecords, AnyPipeReaderReassemblesThemEvenOnTheZeroCopyPath) {
    // A reader that sends nothing chunked itself (make_fd_channel on a pipe,
    // or `ipckit recv 'stdio:?frame=length'` reading a FIFO), after a large message so that
    // the zero-copy path sees the marker first.
    auto p = make_pipe();
    stream_channel rx("pipe", std::move(p.read_end), unique_fd{}, opts());
    const std::string big = patterned_text(50000, 8);
    std::string stream = frame(patterned_text(70000, 7));
    for (const auto& r : chunk_records(3, big))
        stream += r;
    stream += frame("tail");
    std::thread w([&] { write_raw(p.write_end.get(), stream); });
    message m;
    ASSERT_EQ(rx.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload.size(), 70000u);
    ASSERT_EQ(rx.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_TRUE(m.payload == big) << m.payload.size();
    ASSERT_EQ(rx.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "tail");
    w.join();
}

TEST(ChunkRecords, MaxMessageThatCannotBeFramedIsRefused) {
    auto p = make_pipe();
    std::string what;
    EXPECT_EQ(error_code_of(
                  [&] {
                      stream_channel ch("pipe", std::move(p.read_end), unique_fd{},
                                        opts(framing::length, detail::max_framed_message + 1));
                  },
                  &what),
              EINVAL);
    EXPECT_NE(what.find("4294967294"), std::string::npos) << what;
}

TEST(StreamChannel, RoundTripOverSocketpairBothWays) {
    socket_pair sp;
    stream_channel left("left", std::move(sp.a), opts());
    stream_channel right("right", std::move(sp.b), opts());
    auto msgs = sample_messages();
    msgs.push_back(std::string(3 << 20, 'B'));  // larger than any socket buffer
    std::thread writer([&] {
        for (const auto& m : msgs)
            ASSERT_EQ(left.send(m, deadline::after(20s)), io_status::ok);
    });
    message got;
    for (const auto& m : msgs) {
        ASSERT_EQ(right.receive(got, deadline::after(20s)), io_status::ok);
        ASSERT_TRUE(got.payload == m) << got.payload.size() << " vs " << m.size() << " bytes";
        EXPECT_FALSE(got.tag);
    }
    writer.join();
    ASSERT_EQ(right.send("back", deadline::after(5s)), io_status::ok);
    ASSERT_EQ(left.receive(got, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(got.payload, "back");
    EXPECT_EQ(left.name(), "left");
    EXPECT_EQ(left.max_message(), default_max_message);
    EXPECT_GE(left.poll_fd(), 0);
}

TEST(StreamChannel, ReceiveTimeoutIsAValueAndLosesNothing) {
    auto p = make_pipe();
    int wfd = p.write_end.get();
    stream_channel rd("pipe", std::move(p.read_end), unique_fd{}, opts());
    message m;
    EXPECT_EQ(rd.receive(m, deadline::after(30ms)), io_status::timed_out);
    EXPECT_EQ(rd.receive(m, deadline::immediate()), io_status::timed_out);
    // Half a frame, then a timeout, then the rest: the message arrives whole.
    std::string f = frame("split across a timeout");
    write_raw(wfd, f.substr(0, 9));
    EXPECT_EQ(rd.receive(m, deadline::after(30ms)), io_status::timed_out);
    write_raw(wfd, f.substr(9));
    ASSERT_EQ(rd.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "split across a timeout");
}

TEST(StreamChannel, LargeFrameInterruptedByTimeoutResumes) {
    auto p = make_pipe();
    int wfd = p.write_end.get();
    stream_channel rd("pipe", std::move(p.read_end), unique_fd{}, opts());
    std::string payload(300000, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<char>(i * 7);
    std::string f = frame(payload);
    message m;
    std::atomic<bool> done{false};
    std::thread w([&] {
        write_raw(wfd, f.substr(0, 100000));
        done = true;
    });
    // The writer stops mid-payload: no receive succeeds until the rest comes.
    while (!done) {
        if (rd.receive(m, deadline::after(20ms)) == io_status::ok) {
            ADD_FAILURE() << "torn frame delivered";
            break;
        }
    }
    w.join();
    EXPECT_EQ(rd.receive(m, deadline::after(20ms)), io_status::timed_out);
    std::thread w2([&] { write_raw(wfd, f.substr(100000)); });
    ASSERT_EQ(rd.receive(m, deadline::after(10s)), io_status::ok);
    w2.join();
    EXPECT_TRUE(m.payload == payload) << m.payload.size() << " bytes";
}

namespace {
std::string patterned_for_socket_test(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>(i * 17 + 3);
    return s;
}
}  // namespace

// ---- large messages read straight into the caller's buffer -----------------------------
// Once a receive returned a large message, the next one reads header, payload
// (into that message's buffer) and what follows in one readv. These tests
// drive that path with every size relation and arrival pattern.

namespace {

std::string patterned(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = static_cast<char>((i * 131 + seed * 7919) >> 3);
    return s;
}

// Large, small, growing, shrinking, empty, exactly the guess, one off it.
std::vector<std::string> size_mix() {
    std::vector<std::string> msgs;
    unsigned seed = 0;
    for (std::size_t n : {65536, 65536, 10, 65536, 200000, 70000, 8192, 8191, 0, 65536, 1 << 20, 5,
                          65536, 65535, 65537, 9000, 9000, 3 << 20, 65536})
        msgs.push_back(patterned(n, ++seed));
    return msgs;
}

// Writes `bytes` in pieces of random size (1 byte .. 100 KiB), so a reader
// sees split headers, short payloads and several frames per read.
void write_in_random_pieces(int fd, const std::string& bytes, unsigned seed) {
    std::mt19937 rng(seed);
    for (std::size_t pos = 0; pos < bytes.size();) {
        std::size_t n =
            std::min<std::size_t>(1 + rng() % (rng() % 2 ? 100000 : 8), bytes.size() - pos);
        write_raw(fd, std::string_view(bytes).substr(pos, n));
        pos += n;
    }
}

}  // namespace

TEST(StreamChannelDirectRead, EverySizeSequenceArrivesIntactOverSocketAndPipe) {
    const auto msgs = size_mix();
    std::string stream;
    for (const auto& m : msgs)
        stream += frame(m);
    for (bool use_pipe : {false, true}) {
        for (unsigned pieces = 0; pieces < 3; ++pieces) {  // 0: one write per frame
            SCOPED_TRACE(std::string(use_pipe ? "pipe" : "socketpair") + ", pieces " +
                         std::to_string(pieces));
            unique_fd r, w;
            if (use_pipe) {
                auto p = make_pipe();
                r = std::move(p.read_end);
                w = std::move(p.write_end);
            } else {
                socket_pair sp;
                r = std::move(sp.a);
                w = std::move(sp.b);
            }
            std::optional<stream_channel> rd(std::in_place, "rd", std::move(r), unique_fd{},
                                             opts());
            std::thread writer([&] {
                if (pieces == 0) {
                    for (const auto& m : msgs)
                        write_raw(w.get(), frame(m));
                } else {
                    write_in_random_pieces(w.get(), stream, pieces);
                }
            });
            message got;  // reused: its buffer is the direct-read target
            bool all_ok = true;
            for (std::size_t i = 0; i < msgs.size() && all_ok; ++i) {
                std::string failure;
                try {
                    io_status st = rd->receive(got, deadline::after(20s));
                    if (st != io_status::ok)
                        failure = to_string(st);
                    else if (got.payload != msgs[i])
                        failure = std::to_string(got.payload.size()) + " bytes, expected " +
                                  std::to_string(msgs[i].size()) + " (or wrong content)";
                } catch (const std::exception& e) {
                    failure = e.what();
                }
                all_ok = failure.empty();
                EXPECT_TRUE(all_ok) << "message " << i << ": " << failure;
            }
            if (!all_ok) rd.reset();  // the writer gets EPIPE instead of blocking forever
            writer.join();
            w.reset();
            if (all_ok) {
                EXPECT_EQ(rd->receive(got, deadline::after(5s)), io_status::closed);
            }
        }
    }
}

TEST(StreamChannelDirectRead, OversizedHeaderAfterALargeMessageThrowsBeforeAllocating) {
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts(framing::length, 100000));
    write_raw(sp.b.get(), frame(patterned(70000, 1)));
    message m;
    ASSERT_EQ(ch.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload.size(), 70000u);
    // Nothing buffered now, and m holds a large message: the next receive
    // reads header and payload straight into m.
    write_raw(sp.b.get(), header(0xfffffffe));
    std::string what;
    EXPECT_EQ(error_code_of([&] { ch.receive(m, deadline::after(5s)); }, &what), EMSGSIZE);
    EXPECT_NE(what.find("4294967294"), std::string::npos) << what;
    // And on every later receive: never a "message" read from the middle of
    // the rejected payload (bytes that would pass for a small frame follow).
    write_raw(sp.b.get(), frame("looks like a frame"));
    EXPECT_EQ(error_code_of([&] { ch.receive(m, deadline::after(1s)); }), EMSGSIZE);
    EXPECT_EQ(error_code_of([&] { ch.receive(m, deadline::after(1s)); }), EMSGSIZE);
}

TEST(StreamChannelDirectRead, TornFrameAfterALargeMessageIsClosed) {
    for (std::size_t torn_size : {std::size_t{2}, std::size_t{4 + 30000}, std::size_t{4 + 65535}}) {
        SCOPED_TRACE(torn_size);
        socket_pair sp;
        stream_channel ch("s", std::move(sp.a), opts());
        write_raw(sp.b.get(),
                  frame(patterned(65536, 2)) + frame(patterned(65536, 3)).substr(0, torn_size));
        sp.b.reset();
        message m;
        ASSERT_EQ(ch.receive(m, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(ch.receive(m, deadline::after(5s)), io_status::closed);
    }
}

TEST(StreamChannelDirectRead, TimeoutMidFrameResumesWithNothingLost) {
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts());
    const std::string first = patterned(65536, 4), second = patterned(65536, 5);
    const std::string f2 = frame(second);
    write_raw(sp.b.get(), frame(first) + f2.substr(0, 2));  // half a header
    message m;
    ASSERT_EQ(ch.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(ch.receive(m, deadline::after(20ms)), io_status::timed_out);
    write_raw(sp.b.get(), f2.substr(2, 40000));  // rest of the header, part of the payload
    EXPECT_EQ(ch.receive(m, deadline::after(20ms)), io_status::timed_out);
    write_raw(sp.b.get(), f2.substr(40002));
    ASSERT_EQ(ch.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_TRUE(m.payload == second);
}

// A socket receive with a deadline sets SO_RCVTIMEO; a later receive without
// deadline must still wait for data, not report the stale timeout.
TEST(StreamChannel, SocketReceiveTimeoutDoesNotLeakIntoALaterUntimedReceive) {
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts());
    message m;
    EXPECT_EQ(ch.receive(m, deadline::after(30ms)), io_status::timed_out);
    EXPECT_EQ(ch.receive(m, deadline::immediate()), io_status::timed_out);
    std::thread late = send_frame_later(sp.b.get(), 200ms, "late");
    ASSERT_EQ(ch.receive(m), io_status::ok);
    EXPECT_EQ(m.payload, "late");
    late.join();
}

// Sockets wait for a deadline inside the read or send itself, under a
// receive/send timeout of at most one second that is re-armed for what is
// left: waits longer than a second, deadlines shorter than the slice, an
// untimed wait after timed ones and an O_NONBLOCK socket must all behave.
TEST(StreamChannelSocketDeadlines, WaitsLongerThanTheOneSecondSlice) {
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts());
    message m;
    std::thread late = send_frame_later(sp.b.get(), 1500ms, "after 1.5 s");
    ASSERT_EQ(ch.receive(m, deadline::after(20s)), io_status::ok);
    EXPECT_EQ(m.payload, "after 1.5 s");
    late.join();
    // Untimed after timed: the one-second slices run out and the wait goes on.
    std::thread later = send_frame_later(sp.b.get(), 1300ms, "untimed");
    ASSERT_EQ(ch.receive(m), io_status::ok);
    EXPECT_EQ(m.payload, "untimed");
    later.join();
}

// A signal ends a read under SO_RCVTIMEO (EINTR, even with SA_RESTART);
// signals arriving faster than the deadline must not keep it from expiring.
TEST(StreamChannelSocketDeadlines, SignalsDoNotPostponeTheDeadline) {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    struct sigaction old {};
    ASSERT_EQ(::sigaction(SIGUSR2, &sa, &old), 0);
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts());
    message m;
    std::atomic<bool> done{false};
    const pthread_t reader = ::pthread_self();
    std::thread pester([&] {
        for (int i = 0; i < 100 && !done; ++i) {
            std::this_thread::sleep_for(50ms);
            ::pthread_kill(reader, SIGUSR2);
        }
    });
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(ch.receive(m, deadline::after(300ms)), io_status::timed_out);
    auto took = std::chrono::steady_clock::now() - start;
    done = true;
    pester.join();
    ::sigaction(SIGUSR2, &old, nullptr);
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 3s) << "each signal restarted the wait";
}

TEST(StreamChannelSocketDeadlines, TimeoutIsNeverEarly) {
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts());
    message m;
    for (auto wait : {30ms, 1200ms}) {
        auto start = std::chrono::steady_clock::now();
        EXPECT_EQ(ch.receive(m, deadline::after(wait)), io_status::timed_out);
        EXPECT_GE(std::chrono::steady_clock::now() - start, wait);
    }
}

TEST(StreamChannelSocketDeadlines, FullSocketSendTimesOutAndLosesNothing) {
    socket_pair sp;
    stream_channel wr("w", std::move(sp.a), opts());
    stream_channel rd("r", std::move(sp.b), opts());
    // Nobody reads: small frames (one skb each, all or nothing) fill the
    // socket, then a send waits in the kernel and times out as a value. (A
    // frame that had started going out would be finished without deadline.)
    const std::string small = patterned_for_socket_test(100);
    int sent = 0;
    io_status st = io_status::ok;
    while (sent < 100000 && (st = wr.send(small, deadline::after(200ms))) == io_status::ok)
        ++sent;
    ASSERT_EQ(st, io_status::timed_out);
    EXPECT_EQ(wr.send(small, deadline::immediate()), io_status::timed_out);
    message m;
    for (int i = 0; i < sent; ++i) {
        ASSERT_EQ(rd.receive(m, deadline::after(5s)), io_status::ok) << i;
        ASSERT_TRUE(m.payload == small) << i;
    }
    EXPECT_EQ(rd.receive(m, deadline::after(50ms)), io_status::timed_out);
    // Room again: a send goes through.
    ASSERT_EQ(wr.send("after", deadline::after(5s)), io_status::ok);
    ASSERT_EQ(rd.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "after");
}

TEST(StreamChannelSocketDeadlines, LargeSendWaitsForTheReaderWithinItsDeadline) {
    socket_pair sp;
    stream_channel wr("w", std::move(sp.a), opts());
    stream_channel rd("r", std::move(sp.b), opts());
    // 4 MiB cannot fit in the socket: the sender waits in blocking sends
    // (one-second slices) while the reader, late, drains it.
    const std::string big = patterned_for_socket_test(4 << 20);
    std::thread reader([&] {
        std::this_thread::sleep_for(1200ms);
        message m;
        ASSERT_EQ(rd.receive(m, deadline::after(20s)), io_status::ok);
        EXPECT_TRUE(m.payload == big) << m.payload.size();
    });
    EXPECT_EQ(wr.send(big, deadline::after(20s)), io_status::ok);
    reader.join();
}

TEST(StreamChannelSocketDeadlines, NonblockingSocketStillHonoursDeadlines) {
    socket_pair sp;
    auto o = opts();
    o.make_nonblocking = false;  // as for stdio: the channel leaves the fd alone
    ::fcntl(sp.a.get(), F_SETFL, ::fcntl(sp.a.get(), F_GETFL) | O_NONBLOCK);
    stream_channel ch("s", std::move(sp.a), o);
    message m;
    EXPECT_EQ(ch.receive(m, deadline::after(50ms)), io_status::timed_out);
    std::thread late = send_frame_later(sp.b.get(), 100ms, "nonblocking");
    ASSERT_EQ(ch.receive(m, deadline::after(10s)), io_status::ok);
    EXPECT_EQ(m.payload, "nonblocking");
    late.join();
}

TEST(StreamChannel, SendTimeoutIsAValue) {
    auto p = make_pipe();
    stream_channel rd("pipe-r", std::move(p.read_end), unique_fd{}, opts());
    stream_channel wr("pipe-w", unique_fd{}, std::move(p.write_end), opts());
    // Frames below PIPE_BUF are written atomically, so the pipe fills up to a
    // whole frame and the next send times out without tearing anything.
    std::string m(100, 'f');
    int sent = 0;
    io_status st = io_status::ok;
    for (; sent < 100000 && st == io_status::ok; ++sent)
        st = wr.send(m, deadline::immediate());
    EXPECT_EQ(st, io_status::timed_out);
    EXPECT_EQ(wr.send(m, deadline::after(20ms)), io_status::timed_out);
    message got;
    for (int i = 0; i < sent - 1; ++i) {
        ASSERT_EQ(rd.receive(got, deadline::after(5s)), io_status::ok);
        ASSERT_TRUE(got.payload == m);
    }
    EXPECT_EQ(rd.receive(got, deadline::after(20ms)), io_status::timed_out);
}

TEST(StreamChannel, TornFrameAtEofIsClosed) {
    for (std::size_t size : {std::size_t{10}, std::size_t{200000}}) {
        SCOPED_TRACE(size);
        auto p = make_pipe();
        unique_fd w = std::move(p.write_end);
        stream_channel rd("pipe", std::move(p.read_end), unique_fd{}, opts());
        std::string full = frame("whole");
        std::string torn = frame(std::string(size, 't')).substr(0, 4 + size / 2);
        std::thread t([&] {
            write_raw(w.get(), full + torn);
            w.reset();  // EOF in the middle of the second frame
        });
        message m;
        ASSERT_EQ(rd.receive(m, deadline::after(10s)), io_status::ok);
        EXPECT_EQ(m.payload, "whole");
        EXPECT_EQ(rd.receive(m, deadline::after(10s)), io_status::closed);
        EXPECT_EQ(rd.receive(m, deadline::after(10s)), io_status::closed);  // and stays closed
        t.join();
    }
}

TEST(StreamChannel, SendToClosedReaderIsClosedNotSigpipe) {
    auto p = make_pipe();
    stream_channel wr("pipe-w", unique_fd{}, std::move(p.write_end), opts());
    p.read_end.reset();
    EXPECT_EQ(wr.send("nobody listens", deadline::after(1s)), io_status::closed);
    EXPECT_EQ(wr.send(std::string(100000, 'x'), deadline::after(1s)), io_status::closed);
}

TEST(StreamChannel, OversizedSendThrowsNamingBothSizes) {
    socket_pair sp;
    stream_channel ch("unix:@test", std::move(sp.a), opts(framing::length, 100));
    std::string what;
    EXPECT_EQ(error_code_of([&] { ch.send(std::string(101, 'x')); }, &what), EMSGSIZE);
    EXPECT_NE(what.find("101"), std::string::npos) << what;
    EXPECT_NE(what.find("100"), std::string::npos) << what;
    EXPECT_NE(what.find("unix:@test"), std::string::npos) << what;
    EXPECT_EQ(ch.send(std::string(100, 'x'), deadline::after(1s)), io_status::ok);
}

TEST(StreamChannel, OversizedIncomingFrameThrows) {
    socket_pair sp;
    stream_channel ch("s", std::move(sp.a), opts(framing::length, 100));
    write_raw(sp.b.get(), header(0xfffffffe));
    message m;
    EXPECT_EQ(error_code_of([&] { ch.receive(m, deadline::after(5s)); }), EMSGSIZE);
}

TEST(StreamChannel, LineFramingRefusesNewlinesAndTalksToPlainText) {
    socket_pair sp;
    int peer = sp.b.get();
    stream_channel ch("line", std::move(sp.a), opts(framing::line));
    EXPECT_EQ(error_code_of([&] { ch.send("two\nlines"); }), EINVAL);
    ASSERT_EQ(ch.send("one line", deadline::after(1s)), io_status::ok);
    char buf[64];
    ssize_t n = ::read(peer, buf, sizeof buf);
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "one line\n");
    write_raw(peer, "alpha\nbeta\ngamma");
    ::shutdown(peer, SHUT_WR);
    message m;
    for (const char* want : {"alpha", "beta", "gamma"}) {
        ASSERT_EQ(ch.receive(m, deadline::after(5s)), io_status::ok);
        EXPECT_EQ(m.payload, want);
    }
    EXPECT_EQ(ch.receive(m, deadline::after(5s)), io_status::closed);
}

TEST(StreamChannel, RawFramingPassesBytesThrough) {
    socket_pair sp;
    int peer = sp.b.get();
    stream_channel ch("raw", std::move(sp.a), opts(framing::raw));
    ASSERT_EQ(ch.send(std::string("\0\x01raw", 5), deadline::after(1s)), io_status::ok);
    char buf[16];
    EXPECT_EQ(::read(peer, buf, sizeof buf), 5);
    write_raw(peer, "bytes");
    message m;
    ASSERT_EQ(ch.receive(m, deadline::after(5s)), io_status::ok);
    EXPECT_EQ(m.payload, "bytes");
}

TEST(StreamChannel, OneWayChannelsRefuseTheOtherDirection) {
    auto p = make_pipe();
    stream_channel rd("r", std::move(p.read_end), unique_fd{}, opts());
    stream_channel wr("w", unique_fd{}, std::move(p.write_end), opts());
    message m;
    EXPECT_EQ(error_code_of([&] { rd.send("x"); }), EBADF);
    EXPECT_EQ(error_code_of([&] { wr.receive(m); }), EBADF);
}

TEST(StreamChannel, OnCloseRunsOnceAndExceptionsAreSwallowed) {
    int runs = 0;
    {
        auto p = make_pipe();
        stream_channel rd("r", std::move(p.read_end), unique_fd{}, opts());
        rd.on_close([&] {
            ++runs;
            throw std::runtime_error("ignored");
        });
    }
    EXPECT_EQ(runs, 1);
}

TEST(StreamChannelSocketDeadlines, PeerThatStopsReadingMidFrameTearsItInsteadOfHanging) {
    socket_pair sp;
    auto o = opts();
    o.stall_limit = 500ms;
    stream_channel wr("w", std::move(sp.a), o);
    stream_channel rd("r", std::move(sp.b), opts());
    // 4 MiB cannot fit in the socket and nobody reads: part of the frame goes
    // out, then the peer takes nothing more. The send must come back (after
    // its deadline and the stall limit), not finish without deadline forever.
    const std::string big = patterned_for_socket_test(4 << 20);
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(wr.send(big, deadline::after(200ms)), io_status::timed_out);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
    // The stream is out of sync now: nothing more goes out on it.
    EXPECT_EQ(wr.send("after", deadline::after(1s)), io_status::closed);
    // The reader gets no torn message: it reads closed.
    message m;
    EXPECT_EQ(rd.receive(m, deadline::after(10s)), io_status::closed);
}

TEST(StreamChannel, LineSendWaitsForAHeldLockOnlyUntilItsDeadline) {
    auto p = make_pipe();
    auto o = opts(framing::line);
    o.lock_large_writes = true;  // as FIFOs are opened
    int raw_write = p.write_end.get();
    stream_channel wr("fifo-w", unique_fd{}, std::move(p.write_end), o);
    // Another writer holds the lock (stopped, or stuck on a full FIFO).
    unique_fd other(::open(("/proc/self/fd/" + std::to_string(raw_write)).c_str(),
                           O_WRONLY | O_CLOEXEC | O_NONBLOCK));
    ASSERT_TRUE(other);
    ASSERT_EQ(::flock(other.get(), LOCK_EX), 0);
    EXPECT_EQ(wr.send("x", deadline::after(50ms)), io_status::timed_out);
    ::flock(other.get(), LOCK_UN);
    EXPECT_EQ(wr.send("x", deadline::after(5s)), io_status::ok);
}
