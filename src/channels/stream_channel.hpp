// Private: a message channel over a byte stream (pipe, FIFO, stream socket,
// stdio). Frames each message as a 4-byte little-endian length + payload, or
// one message per line, or no framing (raw). Used by every stream transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "detail/syscall.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/url.hpp"

namespace ipckit::detail {

/// Size of the length prefix of framing::length.
inline constexpr std::size_t frame_header_size = 4;

/// Encodes n as the 4-byte little-endian frame header.
void encode_frame_header(std::uint32_t n, unsigned char out[frame_header_size]) noexcept;
std::uint32_t decode_frame_header(const unsigned char in[frame_header_size]) noexcept;

/// Chunk records: how a length-framed message larger than PIPE_BUF crosses a
/// pipe or FIFO that several writers share. Each record is at most PIPE_BUF
/// bytes and goes out in one write(2), which the kernel never splits or
/// interleaves; records of different writers may alternate and the decoder
/// reassembles each writer's message apart. A writer that dies or times out
/// mid-message leaves an incomplete assembly that is never delivered
/// (dropped when that writer starts its next message, or evicted) instead of
/// a torn stream. Only decoders reading a pipe or FIFO accept them.
///
/// Layout (little-endian): u32 chunk_marker, u32 total message length,
/// u64 writer id (random, drawn per channel and process), u32 offset of this
/// piece, u32 length of this piece, then the piece.
inline constexpr std::uint32_t chunk_marker = 0xffffffff;  // never a valid length
inline constexpr std::size_t chunk_header_size = 24;
inline constexpr std::size_t chunk_record_max = 4096;  // PIPE_BUF on Linux
inline constexpr std::size_t chunk_piece_max = chunk_record_max - chunk_header_size;
/// Largest max_message a length-framed stream can carry: a longer length
/// would not fit the header, and 0xffffffff is the chunk marker.
inline constexpr std::size_t max_framed_message = 0xfffffffe;
/// Incomplete messages a decoder holds at once (one per writer), and the
/// bytes they may hold together (this many times max_message, or times
/// chunk_piece_max if that is larger). Past either, the least recently
/// extended one is dropped (and that message lost).
inline constexpr std::size_t max_chunk_assemblies = 64;
inline constexpr std::size_t chunk_budget_messages = 4;

struct chunk_header {
    std::uint32_t total = 0;
    std::uint64_t writer = 0;
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
};
void encode_chunk_header(const chunk_header& h, unsigned char out[chunk_header_size]) noexcept;
/// Decodes the fields after the marker (in must hold chunk_header_size bytes).
chunk_header decode_chunk_header(const unsigned char in[chunk_header_size]) noexcept;

/// Incremental decoder for framing::length (plain frames and chunk records)
/// and framing::line: feed any chunking of the stream, get the same
/// messages. A header announcing more than max_message throws
/// ipckit::error(EMSGSIZE) before any allocation; a malformed chunk record
/// throws EPROTO. Chunk assemblies grow as their pieces arrive (never by the
/// announced total), within max_chunk_assemblies and the byte budget.
class frame_decoder {
  public:
    /// accept_chunks: the stream is a pipe or FIFO whose writers may send
    /// chunk records; elsewhere the marker is an oversized length (EMSGSIZE).
    frame_decoder(framing mode, std::size_t max_message, std::string name,
                  bool accept_chunks = false);

    /// Consumes up to data.size() bytes; stops after completing one message
    /// (then message_ready() is true). Returns the bytes consumed.
    std::size_t feed(const char* data, std::size_t size);
    bool message_ready() const noexcept { return ready_; }
    /// Moves the completed message into out (swapping buffers for reuse).
    void take(std::string& out);
    /// True between messages (no partial header or payload buffered).
    bool at_boundary() const noexcept;
    /// At end of stream: line mode turns an unterminated last line into a
    /// message (returns true); length mode never delivers a torn frame.
    bool finish_at_eof();
    /// Bytes still needed to complete the current length-framed payload
    /// (0 when not inside a payload).
    std::size_t payload_bytes_missing() const noexcept;
    /// Direct access for large payloads: the buffer being filled.
    std::string& partial() noexcept { return partial_; }
    void note_direct_read(std::size_t n);
    /// For a caller that read a header itself: its payload length, checked
    /// against max_message (throws EMSGSIZE). The decoder's state is unchanged.
    std::size_t checked_length(const unsigned char header[frame_header_size]) const;
    /// At a boundary, continues a frame of `expected` bytes whose first
    /// have.size() payload bytes the caller already read into `have` (which
    /// gets the decoder's spare buffer back).
    void adopt_payload(std::string& have, std::size_t expected);
    /// Bytes reserved by incomplete chunk assemblies (at most
    /// chunk_budget_messages * max(max_message, chunk_piece_max)).
    std::size_t assembly_capacity() const noexcept;

  private:
    struct assembly {
        std::uint64_t writer;
        std::uint32_t total;
        std::uint64_t last_use;
        std::string data;
    };
    void begin_chunk();
    void append_piece(const char* data, std::size_t n);
    void make_room(std::size_t target, std::size_t needed);
    void evict_least_recent(std::size_t keep);

    framing mode_;
    std::size_t max_;
    std::string name_;
    bool accept_chunks_;
    unsigned char header_[chunk_header_size]{};
    std::size_t header_got_ = 0;
    std::size_t header_need_ = frame_header_size;  // chunk_header_size after a marker
    std::size_t expected_ = 0;                     // payload length once the header is complete
    bool in_payload_ = false;
    bool ready_ = false;
    std::string partial_;
    // Chunk records: the piece being read, and into which assembly (-1: the
    // piece belongs to a message already given up, and is skipped).
    bool in_piece_ = false;
    std::size_t piece_left_ = 0;
    long piece_target_ = -1;
    std::vector<assembly> assemblies_;
    std::uint64_t clock_ = 0;
};

/// Options for stream_channel.
struct stream_options {
    framing frame = framing::length;
    std::size_t max_message = default_max_message;
    /// Let the channel set the fds' modes: read end blocking, write end
    /// O_NONBLOCK (a socket stays blocking and waits under SO_RCVTIMEO /
    /// SO_SNDTIMEO). Off for stdio, whose file descriptions are shared with
    /// the terminal.
    bool make_nonblocking = true;
    /// Pipes and FIFOs shared by several writers, framing::length: a frame
    /// larger than PIPE_BUF is sent as chunk records (see chunk_header), so
    /// frames never interleave and a writer dying mid-frame tears nothing.
    bool chunk_large_frames = false;
    /// FIFOs, whose writers each open them (flock() cannot separate
    /// processes sharing one open file description, as after fork):
    /// framing::length holds flock(LOCK_EX) while sending chunk records, so
    /// ipckit writers finish one large message at a time and the reader
    /// holds one incomplete message, not one per writer (waiting for the lock
    /// honours the deadline). framing::line and raw, which cannot be
    /// chunked: a write longer than PIPE_BUF under LOCK_EX, shorter ones
    /// under LOCK_SH (so none lands inside a long one).
    bool lock_large_writes = false;
    /// Sockets: a frame begun before the send deadline passed is finished
    /// while the peer takes bytes; a peer that takes none for this long gets
    /// it torn (see stream_channel::finish_frame).
    std::chrono::milliseconds stall_limit = std::chrono::seconds(10);
    /// A receive that finds nothing keeps trying this long before it sleeps
    /// (0: sleep at once). Waking a sleeping reader costs the writer far more
    /// than a few reads that find nothing, and a reader that sleeps after
    /// every message is woken once per message. Only where the channel owns
    /// the read end's mode (make_nonblocking) and the thread that opens the
    /// channel may run on two CPUs or more.
    std::chrono::nanoseconds spin = default_read_spin;
};

/// A channel over a read fd and a write fd (either may be absent, or both the
/// same bidirectional fd).
/// Best effort: grows the pipe or FIFO behind fd to 256 KiB (never shrinks
/// it) so that a 64 KiB message and its header fit in the buffer at once; at
/// the default 64 KiB every such message costs the reader a second wakeup.
/// Keeps the current size when the kernel refuses (an unprivileged user past
/// /proc/sys/fs/pipe-user-pages-soft).
void widen_pipe(int fd) noexcept;

class stream_channel final : public channel {
  public:
    stream_channel(std::string name, unique_fd read_fd, unique_fd write_fd,
                   const stream_options& options);
    /// One bidirectional fd (socket, socketpair end).
    stream_channel(std::string name, unique_fd fd, const stream_options& options);

    io_status send(std::string_view payload, const deadline& until = deadline::never(),
                   std::optional<long> tag = std::nullopt) override;
    io_status receive(message& out, const deadline& until = deadline::never()) override;
    std::size_t max_message() const noexcept override { return options_.max_message; }
    const std::string& name() const noexcept override { return name_; }
    int poll_fd() const noexcept override { return read_fd_; }

    /// Extra fd kept open for the channel's lifetime (e.g. a FIFO reader's
    /// keep-alive write end, so the reader never sees EOF between writers).
    void keep_open(unique_fd fd) { keep_ = std::move(fd); }
    /// Runs when the channel is destroyed (e.g. removing a FIFO or socket
    /// file this channel created). Exceptions from it are swallowed.
    void on_close(std::function<void()> cleanup) { cleanup_ = std::move(cleanup); }
    ~stream_channel() override;

  private:
    io_status fill(const deadline& until);
    // read_some_v, after spinning on reads that never wait (options_.spin).
    io_outcome read_v(std::span<const ::iovec> bufs, const deadline& until, std::size_t& got);
    std::optional<io_status> receive_into(message& out, const deadline& until);
    io_status send_chunked(std::string_view payload, const deadline& until);
    io_outcome finish_frame(std::span<const std::byte> first, std::span<const std::byte> second);
    void put_back(const char* a, std::size_t na, const char* b, std::size_t nb);

    std::string name_;
    stream_options options_;
    unique_fd owned_read_, owned_write_, keep_;
    int read_fd_ = -1;
    int write_fd_ = -1;
    fd_kind read_kind_ = fd_kind::unknown;
    fd_kind write_kind_ = fd_kind::unknown;
    adaptive_spin spin_;  // options_.spin where spinning is possible
    try_read_method try_read_ = try_read_method::poll_then_read;
    socket_timeouts timeouts_;  // what SO_RCVTIMEO / SO_SNDTIMEO the socket has now
    // Socket timeouts are set only on descriptors whose modes the channel
    // owns: a socket inherited as stdio is shared with other processes.
    socket_timeouts* owned_timeouts() noexcept {
        return options_.make_nonblocking ? &timeouts_ : nullptr;
    }
    frame_decoder decoder_;
    std::vector<char> inbuf_;
    std::size_t in_begin_ = 0, in_end_ = 0;
    bool eof_ = false;
    std::string sendbuf_;
    bool torn_ = false;  // finish_frame gave up on a stalled peer
    // Chunk writer id, drawn for this process: writer_pid_ and the fork
    // generation at the time (a fork changes one or both).
    std::uint64_t writer_id_ = 0;
    int writer_pid_ = 0;
    std::uint64_t writer_generation_;
    std::function<void()> cleanup_;
};

}  // namespace ipckit::detail
