// The shared-memory ring: the fastest ipckit channel, the lecture's bounded
// producer/consumer made real.
//
// One mapping (POSIX shm or memfd) holds a header (magic, version, geometry,
// the pids of attached producers and consumers) and the data. Two kinds:
//   spsc  one producer, one consumer, variable-size messages, lock-free;
//   mpmc  any number of each, fixed-size slots with per-slot sequence numbers.
// The head and tail indices live on separate cache lines and each side keeps a
// cached copy of the other's index; an spsc consumer polls the stamp in the
// next record itself (one cache miss per message, not two). A side that must wait spins briefly
// (optional), then sleeps on a futex; the other side makes a futex_wake system
// call only when a waiter is registered, so nothing enters the kernel while
// nobody sleeps.
//
// Zero-copy: loan(n) -> fill -> commit(m) and peek() -> release(). A message is
// published only by commit(), so a producer killed while holding a loan never
// delivers half a message. Once every producer has detached or died (pid gone)
// and the ring is drained, receive reports io_status::closed.
//
// One ring object per thread; several objects (threads or processes) may
// attach to the same memory as the kind allows.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ipckit/channel.hpp"  // io_status
#include "ipckit/deadline.hpp"
#include "ipckit/shm.hpp"

namespace ipckit {

struct ring_record;  // private, in src/detail/ring_layout.hpp
struct ring_slot;    // private, in src/detail/ring_layout.hpp

enum class ring_kind : std::uint32_t { spsc = 1, mpmc = 2 };
enum class ring_role { producer, consumer };

/// Geometry of a new ring.
struct ring_options {
    ring_kind kind = ring_kind::spsc;
    /// spsc: data bytes (power of two, >= 64; the largest message is capacity - 16,
    /// at most 2^32 - 9: a record's length is 32 bits).
    /// mpmc: number of slots (power of two, >= 2).
    std::size_t capacity = 1u << 20;
    /// mpmc only: the largest message (bytes per slot, >= 1, <= 1 GiB).
    std::size_t slot_size = 256;
    unsigned permissions = 0600;  ///< for a named ring
};

/// "spsc" / "mpmc".
const char* to_string(ring_kind k) noexcept;

/// Result of loan(): a writable buffer of the requested size when ok.
struct ring_loan {
    io_status status = io_status::timed_out;
    std::span<std::byte> buffer;
};

/// Result of peek(): the oldest message, valid until release(), when ok.
struct ring_peek {
    io_status status = io_status::timed_out;
    std::span<const std::byte> message;
};

class ring {
  public:
    /// Bytes of memory a ring with these options needs (header + data).
    /// Throws std::invalid_argument for bad geometry (saying the limit).
    static std::size_t required_size(const ring_options& options);

    /// Writes an empty ring into memory (at least required_size bytes). The
    /// magic is stored last, so an attacher never sees a half-made header.
    static void format(std::span<std::byte> memory, const ring_options& options);

    /// Creates the POSIX shm object `name`, formats it and attaches.
    static ring create(std::string_view name, ring_role role, const ring_options& options = {},
                       open_mode how = open_mode::create_only);
    /// Attaches to an existing named ring. A foreign or corrupt header throws
    /// ipckit::error(EPROTO) saying what is wrong; a ring whose creator has not
    /// finished formatting throws EAGAIN (retry), or EPROTO if that creator
    /// died before finishing (nobody holds the creation lock: see
    /// shared_memory::open).
    static ring open(std::string_view name, ring_role role);

    /// Attaches to a ring in memory that is already mapped (shared by several
    /// ring objects, e.g. threads, or a memfd mapped after fork). Validates
    /// the header like open(). description names it in errors.
    ring(std::shared_ptr<const mapping> memory, ring_role role, std::string description);

    ring(ring&& other) noexcept;
    ring& operator=(ring&&) = delete;
    ring(const ring&) = delete;
    ring& operator=(const ring&) = delete;
    /// Detaches: an open loan is dropped (never delivered), an open peek is
    /// released, and the pid is removed so that peers can report closed.
    ~ring();

    // ---- producer --------------------------------------------------------------
    /// Copies one message in. ok, timed_out (ring full until the deadline;
    /// deadline::immediate() = try once) or closed (every consumer gone while
    /// full). Larger than max_message(): ipckit::error(EMSGSIZE) naming both.
    io_status send(std::span<const std::byte> message, const deadline& until = deadline::never());
    io_status send(std::string_view message, const deadline& until = deadline::never());
    io_status try_send(std::string_view message) { return send(message, deadline::immediate()); }

    /// Reserves room for a message of up to size bytes and returns it to be
    /// filled in place. Nothing is visible to consumers before commit().
    ring_loan loan(std::size_t size, const deadline& until = deadline::never());
    /// Publishes the loaned buffer's first used bytes (used <= loaned size).
    void commit(std::size_t used);
    /// Drops the loan; nothing is delivered.
    void abandon() noexcept;

    // ---- consumer ---------------------------------------------------------------
    /// Copies the oldest message into out. ok, timed_out, or closed (every
    /// producer gone and the ring drained).
    io_status receive(std::string& out, const deadline& until = deadline::never());
    io_status try_receive(std::string& out) { return receive(out, deadline::immediate()); }

    /// The oldest message in place; it stays in the ring until release().
    ring_peek peek(const deadline& until = deadline::never());
    /// Frees the peeked message's space.
    void release();

    // ---- properties -------------------------------------------------------------
    ring_kind kind() const noexcept;
    ring_role role() const noexcept { return role_; }
    /// spsc: data bytes; mpmc: slots.
    std::size_t capacity() const noexcept;
    /// Largest message: capacity - 16, at most 2^32 - 9 (spsc), or slot_size (mpmc).
    std::size_t max_message() const noexcept;
    /// Busy-poll iterations before sleeping on the futex (default 0: sleep at
    /// once; a few hundred to a few thousand cut latency when both sides have
    /// a CPU of their own).
    void set_spin(unsigned iterations) noexcept { spin_ = iterations; }
    const std::string& name() const noexcept { return name_; }

    struct layout;  // private, in src/detail/ring_layout.hpp

  private:
    void attach();
    void clear_dead_waiters(std::atomic<std::int32_t>* table, std::size_t slots);
    void detach() noexcept;
    bool peers_gone(bool producers, bool may_probe);
    io_status wait_space(std::size_t bytes, const deadline& until);
    io_status wait_data(const deadline& until);
    bool data_ready();
    bool space_ready(std::size_t bytes);
    std::uint32_t my_waiter_bit() const noexcept;
    void notify_consumers() noexcept;
    void notify_producers() noexcept;
    bool skip_abandoned_slot(bool may_probe);
    bool free_slot_of_dead_consumer(bool may_probe);
    ring_record* record_at(std::uint64_t pos) const noexcept;
    ring_slot* slot_at(std::uint64_t pos) const noexcept;
    void forget_zeroed_from(std::uint64_t pos) noexcept;
    void publish(std::uint64_t pos, std::uint64_t size, bool pad) noexcept;
    void zero_ahead(std::uint64_t from) noexcept;
    void skip_published_records();

    std::shared_ptr<const mapping> memory_;
    layout* h_ = nullptr;
    std::byte* data_ = nullptr;
    ring_role role_;
    std::string name_;
    int peer_slot_ = -1;
    pid_t pid_ = 0;
    unsigned spin_ = 0;
    // Geometry, copied from the header once it was validated.
    ring_kind kind_ = ring_kind::spsc;
    std::uint64_t capacity_ = 0;
    std::uint64_t slot_size_ = 0;
    std::uint64_t slot_stride_ = 0;
    std::uint64_t mask_ = 0;
    // Producer: own head (spsc) and cached tail; consumer: own tail and cached head.
    std::uint64_t index_ = 0;
    std::uint64_t cached_other_ = 0;
    // spsc producer: a padding record written but not yet published (it is
    // published after the message that follows it, by the next commit).
    static constexpr std::uint64_t no_pad = ~std::uint64_t{0};
    std::uint64_t pad_pos_ = no_pad;
    // spsc producer: free bytes in [zeroed_from_, zeroed_to_), past the
    // cache line the consumer polls and past any loan's bytes, are zero
    // (zeroed after a publish, so the next publish need not zero its end
    // stamp).
    std::uint64_t zeroed_from_ = 0;
    std::uint64_t zeroed_to_ = 0;
    // Outstanding loan / peek.
    bool busy_ = false;
    std::uint64_t busy_pos_ = 0;
    std::size_t busy_size_ = 0;
    // Rate limit of the pid probes (system calls) while polling.
    std::int64_t last_probe_ns_ = 0;
    // Consumer: a producer was seen alive or delivered data (see peers_gone).
    bool peer_seen_ = false;
};

}  // namespace ipckit
