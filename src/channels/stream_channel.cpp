#include "channels/stream_channel.hpp"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "detail/endian.hpp"
#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit::detail {
namespace {

// One read takes a 64 KiB message together with its header (at 64 KiB
// exactly, the 4 header bytes cost a second read(2) per message).
constexpr std::size_t kReadChunk = 64 * 1024 + 4096;
// Frames up to this size are copied into one buffer and written at once
// (atomic on pipes up to PIPE_BUF); larger ones go out with writev.
constexpr std::size_t kSmallFrame = 4096;
// Payload remainders at least this big are read straight into the message.
constexpr std::size_t kDirectReadMin = 8 * 1024;

io_status to_status(io_outcome o) {
    switch (o) {
        case io_outcome::ok:
            return io_status::ok;
        case io_outcome::timed_out:
            return io_status::timed_out;
        case io_outcome::closed:
            return io_status::closed;
    }
    return io_status::closed;
}

// Releases a flock() taken on fd (if fd >= 0) when it goes out of scope.
struct flock_release {
    int fd = -1;
    ~flock_release() {
        if (fd >= 0) ::flock(fd, LOCK_UN);
    }
};

// Makes room for `wanted` bytes in s allocating exactly that much: plain
// reserve()/append() may double the capacity, i.e. allocate up to twice
// max_message for a hostile peer. (Fix by the foundation tests: the decoder
// must never allocate beyond max_message.)
void grow_exact(std::string& s, std::size_t wanted) {
    if (wanted <= s.capacity()) return;
    std::string bigger;
    bigger.reserve(wanted);
    bigger.append(s);
    s.swap(bigger);
}

// A chunk writer id: 64 random bits, so that writers in other pid
// namespaces, or other copies of this library, never share one.
std::uint64_t random_writer_id() noexcept {
    std::uint64_t id = 0;
    if (::getrandom(&id, sizeof id, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof id)) return id;
    // No entropy yet (early boot): time, pid and a counter, mixed.
    static std::atomic<std::uint64_t> counter{0};
    id = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    id ^=
        static_cast<std::uint64_t>(::getpid()) << 40 ^ counter.fetch_add(1) * 0x9e3779b97f4a7c15ull;
    id ^= id >> 31;
    return id * 0xbf58476d1ce4e5b9ull;
}

// Bumped in every child fork() makes (pthread_atfork): a forked child must
// draw its own chunk writer id even when its pid equals its parent's (pid 1
// of a new pid namespace, forked by a pid 1).
std::atomic<std::uint64_t> fork_generation{0};

void note_fork_in_child() noexcept {
    fork_generation.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t current_fork_generation() noexcept {
    static const bool registered = ::pthread_atfork(nullptr, nullptr, note_fork_in_child) == 0;
    (void)registered;
    return fork_generation.load(std::memory_order_relaxed);
}

// flock(how) that gives up at the deadline. flock() itself cannot time out,
// so a contended lock is retried with short sleeps (at most 1 ms apart).
io_outcome lock_until(int fd, int how, const deadline& until, std::string_view object) {
    if (until.is_never()) {  // no deadline: sleep in the kernel until it is free
        if (retry_eintr([&] { return ::flock(fd, how); }) != 0) throw_errno("flock", object);
        return io_outcome::ok;
    }
    std::chrono::microseconds pause{20};
    for (;;) {
        if (::flock(fd, how | LOCK_NB) == 0) return io_outcome::ok;
        if (errno == EINTR) continue;
        if (errno != EWOULDBLOCK) throw_errno("flock", object);
        if (until.expired()) return io_outcome::timed_out;
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, until.remaining()));
        pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(1));
    }
}

}  // namespace

void widen_pipe(int fd) noexcept {
    constexpr int kChannelPipeBytes = 256 * 1024;
    int now = ::fcntl(fd, F_GETPIPE_SZ);
    if (now >= 0 && now < kChannelPipeBytes) (void)::fcntl(fd, F_SETPIPE_SZ, kChannelPipeBytes);
}

void encode_frame_header(std::uint32_t n, unsigned char out[frame_header_size]) noexcept {
    store_le<std::uint32_t>(out, n);
}

std::uint32_t decode_frame_header(const unsigned char in[frame_header_size]) noexcept {
    return load_le<std::uint32_t>(in);
}

void encode_chunk_header(const chunk_header& h, unsigned char out[chunk_header_size]) noexcept {
    store_le<std::uint32_t>(out, chunk_marker);
    store_le<std::uint32_t>(out + 4, h.total);
    store_le<std::uint32_t>(out + 8, static_cast<std::uint32_t>(h.writer));
    store_le<std::uint32_t>(out + 12, static_cast<std::uint32_t>(h.writer >> 32));
    store_le<std::uint32_t>(out + 16, h.offset);
    store_le<std::uint32_t>(out + 20, h.length);
}

chunk_header decode_chunk_header(const unsigned char in[chunk_header_size]) noexcept {
    chunk_header h;
    h.total = load_le<std::uint32_t>(in + 4);
    h.writer = load_le<std::uint32_t>(in + 8) |
               static_cast<std::uint64_t>(load_le<std::uint32_t>(in + 12)) << 32;
    h.offset = load_le<std::uint32_t>(in + 16);
    h.length = load_le<std::uint32_t>(in + 20);
    return h;
}

frame_decoder::frame_decoder(framing mode, std::size_t max_message, std::string name,
                             bool accept_chunks)
    : mode_(mode), max_(max_message), name_(std::move(name)), accept_chunks_(accept_chunks) {}

std::size_t frame_decoder::feed(const char* data, std::size_t size) {
    if (ready_) return 0;
    std::size_t used = 0;
    if (mode_ == framing::raw) {
        if (size == 0) return 0;  // fix: an empty feed is not an empty message
        partial_.clear();
        grow_exact(partial_, std::min(size, max_));
        partial_.assign(data, std::min(size, max_));
        ready_ = true;
        return partial_.size();
    }
    if (mode_ == framing::line) {
        const void* nl = std::memchr(data, '\n', size);
        std::size_t take =
            nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - data) : size;
        if (partial_.size() + take > max_)
            throw_error(EMSGSIZE, "receive", name_,
                        "line longer than max_message " + std::to_string(max_) + " bytes");
        if (partial_.size() + take > partial_.capacity())  // fix: grow, but never past max_
            grow_exact(partial_,
                       std::min(max_, std::max(2 * partial_.capacity(), partial_.size() + take)));
        partial_.append(data, take);
        if (nl) {
            ready_ = true;
            return take + 1;
        }
        return take;
    }
    while (used < size && !ready_) {
        if (in_piece_) {
            std::size_t n = std::min(piece_left_, size - used);
            append_piece(data + used, n);
            used += n;
            continue;
        }
        if (!in_payload_) {
            std::size_t n = std::min(header_need_ - header_got_, size - used);
            std::memcpy(header_ + header_got_, data + used, n);
            header_got_ += n;
            used += n;
            if (header_got_ < header_need_) break;
            if (accept_chunks_ && header_need_ == frame_header_size &&
                decode_frame_header(header_) == chunk_marker) {
                header_need_ = chunk_header_size;  // a chunk record: read the rest of its header
                continue;
            }
            // Checked before any allocation: a hostile length costs nothing.
            // A rejected header stays buffered, so every later feed throws too
            // (the stream cannot be resynchronised).
            if (header_need_ == chunk_header_size) {
                begin_chunk();
                header_got_ = 0;
                header_need_ = frame_header_size;
                continue;
            }
            expected_ = checked_length(header_);
            header_got_ = 0;
            partial_.clear();
            in_payload_ = true;
            if (expected_ == 0) {
                in_payload_ = false;
                ready_ = true;
                break;
            }
            grow_exact(partial_, expected_);  // fix: was reserve(), which may double
        }
        std::size_t n = std::min(expected_ - partial_.size(), size - used);
        partial_.append(data + used, n);
        used += n;
        if (partial_.size() == expected_) {
            in_payload_ = false;
            ready_ = true;
        }
    }
    return used;
}

// The header of a chunk record is complete: find (or start) the assembly its
// piece extends, or decide to skip the piece.
void frame_decoder::begin_chunk() {
    const chunk_header h = decode_chunk_header(header_);
    if (h.total > max_)
        throw_error(EMSGSIZE, "receive", name_,
                    "chunked frame announces " + std::to_string(h.total) +
                        " bytes, max_message is " + std::to_string(max_));
    if (h.length == 0 || h.length > chunk_piece_max || h.offset > h.total ||
        h.length > h.total - h.offset)
        throw_error(EPROTO, "receive", name_,
                    "malformed chunk record (offset " + std::to_string(h.offset) + ", length " +
                        std::to_string(h.length) + ", total " + std::to_string(h.total) + ")");
    in_piece_ = true;
    piece_left_ = h.length;
    piece_target_ = -1;
    auto it = std::find_if(assemblies_.begin(), assemblies_.end(),
                           [&](const assembly& a) { return a.writer == h.writer; });
    if (h.offset == 0) {
        // A new message. Whatever this writer had in progress was given up
        // (its send timed out). Nothing is reserved for the announced total:
        // the assembly grows as pieces arrive, so memory follows bytes sent.
        if (it == assemblies_.end()) {
            if (assemblies_.size() == max_chunk_assemblies) evict_least_recent(assemblies_.size());
            assemblies_.push_back({h.writer, h.total, 0, {}});
            it = assemblies_.end() - 1;
        }
        it->total = h.total;
        it->data.clear();
    } else if (it == assemblies_.end()) {
        return;  // its start was evicted or never seen: skip
    } else if (it->total != h.total || it->data.size() != h.offset) {
        assemblies_.erase(it);  // a gap: that message can no longer complete
        return;
    }
    it->last_use = ++clock_;
    piece_target_ = it - assemblies_.begin();
}

// Drops the least recently extended assembly other than the one at `keep`
// (an index; assemblies_.size() keeps none).
void frame_decoder::evict_least_recent(std::size_t keep) {
    auto victim = assemblies_.end();
    for (auto it = assemblies_.begin(); it != assemblies_.end(); ++it)
        if (static_cast<std::size_t>(it - assemblies_.begin()) != keep &&
            (victim == assemblies_.end() || it->last_use < victim->last_use))
            victim = it;
    if (victim != assemblies_.end()) assemblies_.erase(victim);
}

// Grows assembly `target` to hold `needed` bytes (doubling, capped at its
// total), evicting others while the budget would be exceeded.
void frame_decoder::make_room(std::size_t target, std::size_t needed) {
    if (needed <= assemblies_[target].data.capacity()) return;
    const std::size_t want = std::min<std::size_t>(
        assemblies_[target].total, std::max(2 * assemblies_[target].data.capacity(), needed));
    const std::size_t budget = chunk_budget_messages * std::max(max_, chunk_piece_max);
    const std::uint64_t writer = assemblies_[target].writer;
    while (assemblies_.size() > 1 &&
           assembly_capacity() - assemblies_[target].data.capacity() + want > budget) {
        evict_least_recent(target);
        target = static_cast<std::size_t>(
            std::find_if(assemblies_.begin(), assemblies_.end(),
                         [&](const assembly& a) { return a.writer == writer; }) -
            assemblies_.begin());
    }
    grow_exact(assemblies_[target].data, want);
    piece_target_ = static_cast<long>(target);
}

void frame_decoder::append_piece(const char* data, std::size_t n) {
    piece_left_ -= n;
    if (piece_target_ < 0) {
        in_piece_ = piece_left_ > 0;
        return;
    }
    make_room(static_cast<std::size_t>(piece_target_),
              assemblies_[static_cast<std::size_t>(piece_target_)].data.size() + n);
    auto it = assemblies_.begin() + piece_target_;
    it->data.append(data, n);
    if (piece_left_ > 0) return;
    in_piece_ = false;
    piece_target_ = -1;
    if (it->data.size() == it->total) {
        partial_.swap(it->data);
        assemblies_.erase(it);
        ready_ = true;
    }
}

std::size_t frame_decoder::assembly_capacity() const noexcept {
    std::size_t n = 0;
    for (const auto& a : assemblies_)
        n += a.data.capacity();
    return n;
}

std::size_t frame_decoder::checked_length(const unsigned char header[frame_header_size]) const {
    const std::size_t n = decode_frame_header(header);
    if (n > max_)
        throw_error(EMSGSIZE, "receive", name_,
                    "frame announces " + std::to_string(n) + " bytes, max_message is " +
                        std::to_string(max_));
    return n;
}

void frame_decoder::adopt_payload(std::string& have, std::size_t expected) {
    partial_.swap(have);
    have.clear();
    expected_ = expected;
    grow_exact(partial_, expected_);
    in_payload_ = partial_.size() < expected_;
    ready_ = !in_payload_;
}

void frame_decoder::take(std::string& out) {
    out.swap(partial_);
    partial_.clear();
    ready_ = false;
}

bool frame_decoder::at_boundary() const noexcept {
    return !ready_ && !in_payload_ && !in_piece_ && header_got_ == 0 && partial_.empty();
}

bool frame_decoder::finish_at_eof() {
    if (mode_ == framing::line && !partial_.empty()) {
        ready_ = true;
        return true;
    }
    return false;
}

std::size_t frame_decoder::payload_bytes_missing() const noexcept {
    return in_payload_ ? expected_ - partial_.size() : 0;
}

void frame_decoder::note_direct_read(std::size_t n) {
    if (partial_.size() == expected_ && in_payload_) {
        in_payload_ = false;
        ready_ = true;
    }
    (void)n;
}

stream_channel::stream_channel(std::string name, unique_fd read_fd, unique_fd write_fd,
                               const stream_options& options)
    : name_(std::move(name)),
      options_(options),
      owned_read_(std::move(read_fd)),
      owned_write_(std::move(write_fd)),
      read_fd_(owned_read_.get()),
      write_fd_(owned_write_.get()),
      read_kind_(read_fd_ >= 0 ? kind_of(read_fd_) : fd_kind::unknown),
      write_kind_(write_fd_ >= 0 ? kind_of(write_fd_) : fd_kind::unknown),
      decoder_(options.frame, options.max_message, name_, read_kind_ == fd_kind::pipe),
      writer_generation_(current_fork_generation()) {
    if (options_.frame == framing::length && options_.max_message > max_framed_message)
        throw_error(EINVAL, "open", name_,
                    "max_message " + std::to_string(options_.max_message) +
                        " does not fit a frame header (at most " +
                        std::to_string(max_framed_message) + ")");
    try_read_ = try_read_method_for(read_kind_);
    if (options_.make_nonblocking) {
        if (options_.spin.count() > 0 && read_fd_ >= 0 && spinning_can_help())
            spin_ = adaptive_spin(options_.spin);
        // The read end blocks: a receive without deadline is then one read(2),
        // and one with a deadline polls first (or waits under SO_RCVTIMEO); a
        // spinning receive tries it without waiting first (try_read_method).
        // The write end of a pipe/FIFO is O_NONBLOCK so sends honour deadlines.
        if (read_fd_ >= 0) set_nonblocking(read_fd_, false);
        if (write_fd_ >= 0) set_nonblocking(write_fd_, true);
    }
}

stream_channel::stream_channel(std::string name, unique_fd fd, const stream_options& options)
    : stream_channel(std::move(name), std::move(fd), unique_fd{}, options) {
    write_fd_ = read_fd_;
    write_kind_ = kind_of(write_fd_);
    // One fd both ways: a socket stays blocking (waits under SO_RCVTIMEO /
    // SO_SNDTIMEO); anything else must be O_NONBLOCK for send deadlines to
    // hold (and is then read without waiting anyway).
    if (options_.make_nonblocking) set_nonblocking(write_fd_, write_kind_ != fd_kind::socket);
}

io_outcome stream_channel::read_v(std::span<const ::iovec> bufs, const deadline& until,
                                  std::size_t& got) {
    if (spin_.run(until, [&] {
            auto n = read_now_v(read_fd_, bufs, try_read_, name_);
            if (n) got = *n;
            return n.has_value();
        }))
        return io_outcome::ok;
    return read_some_v(read_fd_, bufs, until, name_, got, read_kind_, owned_timeouts());
}

stream_channel::~stream_channel() {
    if (!cleanup_) return;
    try {
        cleanup_();
    } catch (...) {
    }
}

io_status stream_channel::send(std::string_view payload, const deadline& until,
                               std::optional<long> /*tag: streams carry none*/) {
    if (write_fd_ < 0) throw_error(EBADF, "send", name_, "channel is receive-only");
    if (torn_) return io_status::closed;  // a frame was torn: the stream is out of sync
    if (payload.size() > options_.max_message)
        throw_error(EMSGSIZE, "send", name_,
                    "message is " + std::to_string(payload.size()) + " bytes, max_message is " +
                        std::to_string(options_.max_message));
    if (options_.frame == framing::line && payload.find('\n') != std::string_view::npos)
        throw_error(EINVAL, "send", name_, "frame=line cannot carry a message containing '\\n'");

    // Header (or trailing newline) and payload go out in one write when small,
    // so a frame up to PIPE_BUF is atomic on a pipe shared by several writers.
    sendbuf_.clear();
    if (options_.frame == framing::length) {
        unsigned char hdr[frame_header_size];
        encode_frame_header(static_cast<std::uint32_t>(payload.size()), hdr);
        sendbuf_.append(reinterpret_cast<const char*>(hdr), frame_header_size);
    }
    const std::size_t trailer = options_.frame == framing::line ? 1 : 0;
    const std::size_t total = sendbuf_.size() + payload.size() + trailer;
    auto bytes = [](std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); };

    if (options_.chunk_large_frames && options_.frame == framing::length && total > PIPE_BUF)
        return send_chunked(payload, until);
    // Lines and raw writes cannot be chunked. A short one is one atomic
    // write, but it could still land *between* the partial writes of another
    // writer's long one, which only held LOCK_EX against other long ones:
    // short writes take LOCK_SH (they do not exclude each other, their
    // writes are atomic) and long ones LOCK_EX.
    flock_release unlock;
    if (options_.lock_large_writes && options_.frame != framing::length) {
        if (lock_until(write_fd_, total > PIPE_BUF ? LOCK_EX : LOCK_SH, until, name_) ==
            io_outcome::timed_out)
            return io_status::timed_out;
        unlock.fd = write_fd_;
    }

    std::size_t written = 0;
    if (total <= kSmallFrame) {
        sendbuf_.append(payload);
        if (trailer) sendbuf_.push_back('\n');
        io_outcome r = write_all(write_fd_, bytes(sendbuf_), until, name_, &written, write_kind_,
                                 owned_timeouts());
        if (r == io_outcome::timed_out && written > 0)  // finish what was begun
            r = finish_frame(bytes(sendbuf_).subspan(written), {});
        return to_status(r);
    }
    // Large message: header and payload in one writev/sendmsg, no copy.
    io_outcome r = write_all2(write_fd_, bytes(sendbuf_), bytes(payload), until, name_, &written,
                              write_kind_, owned_timeouts());
    if (r == io_outcome::timed_out && written == 0) return io_status::timed_out;
    if (r == io_outcome::timed_out) {
        std::size_t head = sendbuf_.size();
        r = finish_frame(bytes(sendbuf_).subspan(std::min(written, head)),
                         bytes(payload).subspan(written > head ? written - head : 0));
    }
    if (r == io_outcome::ok && trailer) {
        std::size_t w = 0;
        r = write_all(write_fd_, bytes("\n"), until, name_, &w, write_kind_, owned_timeouts());
        if (r == io_outcome::timed_out) r = finish_frame(bytes("\n"), {});
    }
    return to_status(r);
}

// The caller's deadline passed with part of a frame out. Leaving it half
// sent would desynchronise the stream, so the rest goes out for as long as
// the peer keeps taking bytes. On a socket, a peer that takes nothing for
// stall_limit gets a torn frame instead of hanging this sender for ever: the
// write side is shut down (the reader drops the partial frame and reads
// closed), later sends return closed, and this one returns timed_out. A pipe
// or FIFO is finished whatever it takes: its other writers share the stream
// and would be glued onto the torn half, and nothing tells its reader.
io_outcome stream_channel::finish_frame(std::span<const std::byte> first,
                                        std::span<const std::byte> second) {
    const bool may_tear = write_kind_ == fd_kind::socket;
    for (;;) {
        std::size_t w = 0;
        io_outcome r =
            write_all2(write_fd_, first, second,
                       may_tear ? deadline::after(options_.stall_limit) : deadline::never(), name_,
                       &w, write_kind_, owned_timeouts());
        if (r != io_outcome::timed_out) return r;
        if (w == 0) break;
        std::size_t from_first = std::min(w, first.size());
        first = first.subspan(from_first);
        second = second.subspan(w - from_first);
    }
    torn_ = true;
    ::shutdown(write_fd_, SHUT_WR);
    return io_outcome::timed_out;
}

// One atomic write per chunk record (header and piece in one writev of at
// most PIPE_BUF bytes, which a pipe never splits). A deadline that expires
// between records abandons the message: the reader drops the incomplete
// assembly, and the caller gets timed_out, as if nothing had been sent.
io_status stream_channel::send_chunked(std::string_view payload, const deadline& until) {
    auto bytes = [](const void* p, std::size_t n) {
        return std::as_bytes(std::span(static_cast<const char*>(p), n));
    };
    // A forked child sending on an inherited channel is another writer. (The
    // pid check also catches a raw clone(), which runs no atfork handlers.)
    const std::uint64_t generation = current_fork_generation();
    if (const int pid = ::getpid(); pid != writer_pid_ || generation != writer_generation_) {
        writer_pid_ = pid;
        writer_generation_ = generation;
        writer_id_ = random_writer_id();
    }
    if (options_.lock_large_writes) {
        if (lock_until(write_fd_, LOCK_EX, until, name_) == io_outcome::timed_out)
            return io_status::timed_out;
    }
    flock_release unlock{options_.lock_large_writes ? write_fd_ : -1};

    chunk_header h;
    h.total = static_cast<std::uint32_t>(payload.size());
    h.writer = writer_id_;
    unsigned char hdr[chunk_header_size];
    for (std::size_t offset = 0; offset < payload.size(); offset += h.length) {
        h.offset = static_cast<std::uint32_t>(offset);
        h.length = static_cast<std::uint32_t>(std::min(chunk_piece_max, payload.size() - offset));
        encode_chunk_header(h, hdr);
        std::size_t written = 0;
        io_outcome r =
            write_all2(write_fd_, bytes(hdr, sizeof hdr), bytes(payload.data() + offset, h.length),
                       until, name_, &written, write_kind_, owned_timeouts());
        if (r == io_outcome::timed_out && written > 0) {
            // Not on a pipe (records are atomic there); on anything else,
            // finish the record so the stream stays in sync.
            auto head = bytes(hdr, sizeof hdr);
            auto piece = bytes(payload.data() + offset, h.length);
            const std::size_t from_head = std::min(written, head.size());
            r = finish_frame(head.subspan(from_head), piece.subspan(written - from_head));
        }
        if (r != io_outcome::ok) return to_status(r);
    }
    return io_status::ok;
}

io_status stream_channel::fill(const deadline& until) {
    if (inbuf_.empty()) inbuf_.resize(kReadChunk);
    if (in_begin_ == in_end_) {
        in_begin_ = in_end_ = 0;
        // receive_into() may have grown it to hold the start of the next
        // frames after a large message; give that back once it is drained.
        if (inbuf_.size() > kReadChunk) {
            inbuf_.resize(kReadChunk);
            inbuf_.shrink_to_fit();
        }
    }
    std::size_t got = 0;
    const ::iovec one{inbuf_.data() + in_end_, inbuf_.size() - in_end_};
    auto r = read_v(std::span(&one, 1), until, got);
    if (r != io_outcome::ok) return to_status(r);
    if (got == 0) {
        eof_ = true;
        return io_status::closed;
    }
    in_end_ += got;
    return io_status::ok;
}

// Hands a[0..na) then b[0..nb) back to the decoder: inbuf_ (empty until
// now) holds them, in that order.
void stream_channel::put_back(const char* a, std::size_t na, const char* b, std::size_t nb) {
    if (na + nb > inbuf_.size()) inbuf_.resize(na + nb);
    if (na > 0) std::memcpy(inbuf_.data(), a, na);
    if (nb > 0) std::memcpy(inbuf_.data() + na, b, nb);
    in_begin_ = 0;
    in_end_ = na + nb;
}

// Large messages without a copy: at a frame boundary with nothing buffered,
// when the caller's buffer already holds a large message (a stream of
// similar messages, the common case), one readv takes the next header and
// the payload straight into that buffer.
// Returns the result when a whole message (or nothing but a timeout) came
// back; nullopt hands what did arrive to the decoder and the normal path.
std::optional<io_status> stream_channel::receive_into(message& out, const deadline& until) {
    std::string& buf = out.payload;
    const std::size_t guess = buf.size();
    if (inbuf_.empty()) inbuf_.resize(kReadChunk);
    in_begin_ = in_end_ = 0;
    unsigned char hdr[frame_header_size];
    // Header and payload only: reading on into inbuf_ would save one read
    // for the next header but copy what it caught of the next message twice.
    const ::iovec iov[2] = {{hdr, sizeof hdr}, {buf.data(), guess}};
    std::size_t got = 0;
    auto r = read_v(iov, until, got);
    if (r != io_outcome::ok) return to_status(r);
    if (got == 0) {
        eof_ = true;
        return std::nullopt;
    }
    if (got < frame_header_size) {
        decoder_.feed(reinterpret_cast<const char*>(hdr), got);
        return std::nullopt;
    }
    const std::size_t body = got - frame_header_size;  // bytes now in buf
    if (decode_frame_header(hdr) == chunk_marker) {
        // A chunk record, not a frame: all of it goes back to the decoder.
        put_back(reinterpret_cast<const char*>(hdr), frame_header_size, buf.data(), body);
        buf.clear();
        return std::nullopt;
    }
    if (decode_frame_header(hdr) > options_.max_message) {
        // The header goes to the decoder, which throws EMSGSIZE now and on
        // every later receive, as on the normal path: the stream cannot be
        // resynchronised, and reading on would take payload bytes for a header.
        decoder_.feed(reinterpret_cast<const char*>(hdr), frame_header_size);
    }
    const std::size_t n = decoder_.checked_length(hdr);
    if (n > body) {
        // Longer than the guess, or not all here yet: the decoder goes on.
        buf.resize(body);
        decoder_.adopt_payload(buf, n);
        return std::nullopt;
    }
    // The message is complete. Bytes past it in buf start the next frames.
    put_back(nullptr, 0, buf.data() + n, body - n);
    buf.resize(n);
    return io_status::ok;
}

io_status stream_channel::receive(message& out, const deadline& until) {
    if (read_fd_ < 0) throw_error(EBADF, "receive", name_, "channel is send-only");
    out.tag.reset();
    for (;;) {
        if (in_begin_ < in_end_) {
            in_begin_ += decoder_.feed(inbuf_.data() + in_begin_, in_end_ - in_begin_);
        }
        if (decoder_.message_ready()) {
            decoder_.take(out.payload);
            return io_status::ok;
        }
        if (eof_) {
            if (decoder_.finish_at_eof()) {
                decoder_.take(out.payload);
                return io_status::ok;
            }
            return io_status::closed;  // a torn frame is never delivered
        }
        // Large payload: read the rest straight into the message buffer.
        // (Above a few KiB, reading into inbuf_ and copying would cost a copy.)
        if (std::size_t missing = decoder_.payload_bytes_missing(); missing >= kDirectReadMin) {
            // resize() zero-fills: grow by one read's worth at a time, not by
            // the whole remainder (which would memset it once per read).
            constexpr std::size_t kDirectChunk = 256 * 1024;
            std::string& buf = decoder_.partial();
            std::size_t old = buf.size();
            std::size_t want = std::min(missing, kDirectChunk);
            buf.resize(old + want);
            std::size_t got = 0;
            const ::iovec one{buf.data() + old, want};
            auto r = read_v(std::span(&one, 1), until, got);
            buf.resize(old + got);
            if (r != io_outcome::ok) return to_status(r);
            if (got == 0) {
                eof_ = true;
                return io_status::closed;
            }
            decoder_.note_direct_read(got);
            continue;
        }
        // Not on a FIFO whose large frames arrive as chunk records (they
        // would only be copied back to the decoder).
        if (options_.frame == framing::length && !options_.chunk_large_frames &&
            decoder_.at_boundary() && out.payload.size() >= kDirectReadMin) {
            if (auto st = receive_into(out, until)) return *st;
            continue;
        }
        auto st = fill(until);
        if (st == io_status::closed && eof_) continue;  // deliver what EOF completes
        if (st != io_status::ok) return st;
    }
}

}  // namespace ipckit::detail
