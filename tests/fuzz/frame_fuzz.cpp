// libFuzzer target for frame_decoder: any bytes, any max_message. Never
// crashes, never holds a buffer larger than max_message (nor more chunk
// assemblies than max_chunk_assemblies of that size), and gives the same
// messages (and the same EMSGSIZE verdict) whatever the chunking of the input.
//
// Input layout: byte 0 = framing (mod 3; bit 7 set: a pipe reader, which
// accepts chunk records), bytes 1-2 = max_message (1..65536),
// byte 3 = seed for random chunk sizes, the rest = the stream.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "channels/stream_channel.hpp"
#include "ipckit/error.hpp"

namespace {

using ipckit::framing;
using ipckit::detail::frame_decoder;

struct outcome {
    std::vector<std::string> messages;
    bool rejected = false;  // EMSGSIZE
    bool operator==(const outcome&) const = default;
};

void check(bool ok) {
    if (!ok) std::abort();
}

template <class NextChunk>
outcome decode(framing mode, std::size_t max, bool chunks, const std::string& stream,
               NextChunk next) {
    frame_decoder d(mode, max, "fuzz", chunks);
    outcome out;
    std::string msg;
    std::size_t pos = 0;
    try {
        while (pos < stream.size()) {
            std::size_t n = std::min(next(), stream.size() - pos);
            std::size_t off = 0;
            do {
                std::size_t used = d.feed(stream.data() + pos + off, n - off);
                off += used;
                // Bounded memory: the buffer being filled never exceeds max. (libstdc++
                // rounds tiny requests up to twice its 15-byte inline buffer.)
                check(d.partial().capacity() <= std::max<std::size_t>(max, 30));
                check(d.assembly_capacity() <= ipckit::detail::chunk_budget_messages *
                                                   std::max(max, ipckit::detail::chunk_piece_max));
                if (d.message_ready()) {
                    d.take(msg);
                    check(msg.size() <= max);
                    out.messages.push_back(msg);
                } else {
                    check(used > 0 || n == off);  // progress or done
                }
            } while (off < n);
            pos += n;
        }
        if (d.finish_at_eof()) {
            d.take(msg);
            out.messages.push_back(msg);
        }
    } catch (const ipckit::error& e) {
        // EMSGSIZE (too long) or EPROTO (malformed chunk record).
        check(e.code().value() == EMSGSIZE || e.code().value() == EPROTO);
        out.rejected = true;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    const framing mode = static_cast<framing>((data[0] & 0x7f) % 3);
    const bool chunks = (data[0] & 0x80) != 0;
    const std::size_t max = 1 + (static_cast<std::size_t>(data[1]) << 8 | data[2]);
    std::uint32_t seed = data[3] * 2654435761u + 1;
    const std::string stream(reinterpret_cast<const char*>(data + 4), size - 4);

    auto whole = decode(mode, max, chunks, stream, [&] { return stream.size(); });
    auto bytewise = decode(mode, max, chunks, stream, [] { return std::size_t{1}; });
    auto random = decode(mode, max, chunks, stream, [&] {
        seed = seed * 1103515245u + 12345u;
        return std::size_t{(seed >> 16) % 97};  // 0 included: empty reads are harmless
    });

    if (mode == framing::raw) {
        // Raw: each read is a message, so chunking changes the messages but
        // never the bytes: all of them arrive, in order, none empty.
        for (const auto* o : {&whole, &bytewise, &random}) {
            std::string joined;
            for (const auto& m : o->messages) {
                check(!m.empty() && m.size() <= max);
                joined += m;
            }
            check(joined == stream && !o->rejected);
        }
        return 0;
    }
    check(whole == bytewise);
    check(whole == random);
    return 0;
}
