#include "ipckit/ring.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "detail/copy.hpp"
#include "detail/ring_layout.hpp"
#include "ipckit/error.hpp"
#include "ipckit/sync.hpp"

namespace ipckit {
namespace {

constexpr bool is_pow2(std::uint64_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

// A sleeping side wakes up this often to look for a dead peer (a dead process
// cannot wake anyone).
constexpr auto sleep_slice = std::chrono::milliseconds(50);
// A polling side probes peer pids (system calls) at most this often.
constexpr std::int64_t probe_interval_ns = 20'000'000;

std::int64_t now_ns(clock::time_point now) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// One spin step of wait_data / wait_space: a pause every 16 checks, and
// every 16Ki checks (about 100 us here; the pauses cost most) a sched_yield,
// so that a side whose peer the scheduler put on the same CPU lets it run
// instead of burning the rest of its time slice (shm-spsc-poll streams fell
// from millions of messages/s to 661 k/s when that happened).
inline void spin_step(unsigned i) noexcept {
    if ((i & 0x3fff) == 0x3fff)
        ::sched_yield();
    else if ((i & 15) == 15)
        cpu_relax();
}

// Is the process alive? A pidfd reports a zombie (killed, not yet reaped) as
// exited, which kill(pid, 0) does not. Any doubt (EPERM) counts as alive.
bool process_alive(pid_t pid) {
    if (pid <= 0) return false;
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd >= 0) {
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, 0);
        ::close(fd);
        return r == 0;
    }
    if (errno == ESRCH) return false;
    if (errno == ENOSYS || errno == EINVAL) return ::kill(pid, 0) == 0 || errno == EPERM;
    return true;
}

std::uint32_t slot_stride_for(std::size_t slot_size) {
    return static_cast<std::uint32_t>(align_up(sizeof(ring_slot) + slot_size, ring_cache_line));
}

std::atomic<std::uint32_t>& waiters_of(ring::layout* h, ring_role side) noexcept {
    return side == ring_role::producer ? h->producer_waiters : h->consumer_waiters;
}

[[noreturn]] void corrupt(std::string_view object, const std::string& what) {
    throw_error(EPROTO, "ring", object, what);
}

// spsc head and tail are written by peers and checked before use (found by
// review: a corrupt tail of 4096 on a 64-byte ring counted as ~4 KiB free,
// and zeroing ahead wrote past the data area). The producer's index is never
// behind the tail nor more than a capacity ahead; both are 8-byte aligned.
// may_lag: a producer killed between a publish and its head store leaves
// head a record behind what the consumer took (attach steps over it).
void check_spsc_indices(std::string_view object, std::uint64_t head, std::uint64_t tail,
                        std::uint64_t capacity, bool may_lag = false) {
    if (((head | tail) & (ring_record_size - 1)) != 0)
        corrupt(object, "corrupt header: head " + std::to_string(head) + " or tail " +
                            std::to_string(tail) + " is not 8-byte aligned");
    if (head - tail > capacity && (!may_lag || tail - head > capacity))
        corrupt(object, "corrupt header: tail " + std::to_string(tail) + " is ahead of head " +
                            std::to_string(head) + " or more than the capacity (" +
                            std::to_string(capacity) + ") behind it");
}

}  // namespace

const char* to_string(ring_kind k) noexcept {
    switch (k) {
        case ring_kind::spsc:
            return "spsc";
        case ring_kind::mpmc:
            return "mpmc";
    }
    return "?";
}

// ---- geometry -------------------------------------------------------------------

std::size_t ring::required_size(const ring_options& o) {
    auto bad = [](const std::string& why) { throw std::invalid_argument("ring geometry: " + why); };
    if (o.kind == ring_kind::spsc) {
        if (!is_pow2(o.capacity))
            bad("capacity " + std::to_string(o.capacity) + " is not a power of two");
        if (o.capacity < ring_min_spsc_capacity)
            bad("capacity " + std::to_string(o.capacity) + " is below the minimum of " +
                std::to_string(ring_min_spsc_capacity) + " bytes");
        if (o.capacity > ring_max_capacity) bad("capacity above 1 TiB");
        return sizeof(layout) + o.capacity;
    }
    if (o.kind != ring_kind::mpmc) bad("unknown kind");
    if (!is_pow2(o.capacity) || o.capacity < 2)
        bad("slot count " + std::to_string(o.capacity) + " must be a power of two >= 2");
    if (o.slot_size == 0 || o.slot_size > ring_max_slot_size)
        bad("slot size " + std::to_string(o.slot_size) + " must be 1 .. 1 GiB");
    const std::uint64_t stride = slot_stride_for(o.slot_size);
    // Divide, not multiply: slots * stride can wrap to a small number (found
    // by review: 2^58 slots of 64 B passed as a 576-byte ring).
    if (o.capacity > ring_max_capacity / stride) bad("slots * slot size above 1 TiB");
    const std::uint64_t data = stride * o.capacity;
    return sizeof(layout) + data;
}

void ring::format(std::span<std::byte> memory, const ring_options& o) {
    const std::size_t need = required_size(o);
    if (memory.size() < need)
        throw std::invalid_argument("ring format: memory is " + std::to_string(memory.size()) +
                                    " bytes, the ring needs " + std::to_string(need));
    auto* h = new (memory.data()) layout{};  // zero-initialises every field
    h->version = ring_version;
    h->kind = static_cast<std::uint32_t>(o.kind);
    h->header_size = sizeof(layout);
    h->capacity = o.capacity;
    h->creator_pid = static_cast<std::int32_t>(::getpid());
    if (o.kind == ring_kind::spsc) {
        // The first record's stamp must read "not written" whatever the
        // memory held before (format() may be given reused memory).
        new (memory.data() + sizeof(layout)) ring_record{};
    }
    if (o.kind == ring_kind::mpmc) {
        h->slot_size = o.slot_size;
        h->slot_stride = slot_stride_for(o.slot_size);
        std::byte* data = memory.data() + sizeof(layout);
        for (std::uint64_t i = 0; i < o.capacity; ++i) {
            auto* s = new (data + i * h->slot_stride) ring_slot{};
            s->seq.store(i, std::memory_order_relaxed);
        }
    }
    h->total_size = need;
    h->magic.store(ring_magic, std::memory_order_release);
}

// ---- attach / detach ---------------------------------------------------------------

namespace {

// An existing named ring with magic 0: its creator is still formatting it (it
// holds the creation lock until the magic is stored: the constructor then
// says EAGAIN) or died before the magic (found by review: every open said
// EAGAIN, and the shm: channel retried for ever).
void check_creator_alive(const shared_memory& shm, const mapping& m, std::string_view name) {
    if (m.size() < sizeof(ring::layout)) return;  // the constructor says so
    const auto* h = reinterpret_cast<const ring::layout*>(m.data());
    if (h->magic.load(std::memory_order_acquire) != 0 || shm.creator_active()) return;
    // The creator stores the magic before unlocking: seen now if it finished.
    if (h->magic.load(std::memory_order_acquire) != 0) return;
    throw_error(EPROTO, "ring", name,
                "half-made ring, its creator died before formatting it; remove it with "
                "ipckit rm shm:" +
                    std::string(name));
}

}  // namespace

ring ring::create(std::string_view name, ring_role role, const ring_options& o, open_mode how) {
    const std::size_t size = required_size(o);
    shm_options so;
    so.how = how;
    so.permissions = o.permissions;
    auto shm = shared_memory::open(name, size, so);
    try {
        auto m = std::make_shared<mapping>(shm.map());
        if (shm.created()) {
            format(m->bytes(), o);
            shm.finish_creation();  // after the magic: openers may now attach
        } else {
            check_creator_alive(shm, *m, name);
        }
        return ring(std::move(m), role, std::string(name));
    } catch (...) {
        if (shm.created()) shared_memory::remove(name);  // never leave a half-made ring
        throw;
    }
}

ring ring::open(std::string_view name, ring_role role) {
    shm_options so;
    so.how = open_mode::open_only;
    // EAGAIN when the creator is between shm_open and the reservation,
    // EPROTO when it died there.
    auto shm = shared_memory::open(name, 0, so);
    if (shm.size() < sizeof(layout))
        corrupt(name, "not an ipckit ring (object is " + std::to_string(shm.size()) +
                          " bytes, smaller than the ring header)");
    auto m = std::make_shared<mapping>(shm.map());
    check_creator_alive(shm, *m, name);
    return ring(std::move(m), role, std::string(name));
}

ring::ring(std::shared_ptr<const mapping> memory, ring_role role, std::string description)
    : memory_(std::move(memory)), role_(role), name_(std::move(description)), pid_(::getpid()) {
    if (!memory_ || !memory_->valid()) throw_error(EINVAL, "ring", name_, "no memory");
    const std::size_t size = memory_->size();
    if (size < sizeof(layout))
        corrupt(name_, "not an ipckit ring (" + std::to_string(size) +
                           " bytes, smaller than the ring header)");
    h_ = reinterpret_cast<layout*>(memory_->data());
    std::uint64_t magic = h_->magic.load(std::memory_order_acquire);
    if (magic == 0)
        throw_error(EAGAIN, "ring", name_, "the creator has not finished formatting it yet");
    if (magic != ring_magic) {
        char buf[40];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(magic));
        corrupt(name_, std::string("not an ipckit ring (bad magic 0x") + buf + ")");
    }
    if (h_->version != ring_version)
        corrupt(name_, "ring layout version " + std::to_string(h_->version) +
                           ", this ipckit reads " + std::to_string(ring_version));
    if (h_->header_size != sizeof(layout))
        corrupt(name_, "header size " + std::to_string(h_->header_size) + ", expected " +
                           std::to_string(sizeof(layout)));
    ring_options o;
    if (h_->kind != static_cast<std::uint32_t>(ring_kind::spsc) &&
        h_->kind != static_cast<std::uint32_t>(ring_kind::mpmc))
        corrupt(name_, "unknown ring kind " + std::to_string(h_->kind));
    o.kind = static_cast<ring_kind>(h_->kind);
    o.capacity = h_->capacity;
    o.slot_size = h_->slot_size;
    std::size_t need = 0;
    try {
        need = required_size(o);
    } catch (const std::invalid_argument& e) {
        corrupt(name_, std::string("corrupt header: ") + e.what());
    }
    if (o.kind == ring_kind::mpmc && h_->slot_stride != slot_stride_for(o.slot_size))
        corrupt(name_, "corrupt header: slot stride " + std::to_string(h_->slot_stride));
    if (h_->total_size != need || need > size)
        corrupt(name_, "corrupt header: ring needs " + std::to_string(need) +
                           " bytes, header says " + std::to_string(h_->total_size) +
                           ", mapping has " + std::to_string(size));
    data_ = memory_->data() + sizeof(layout);
    // From here on the geometry is read from these copies only: a peer that
    // rewrites the header later cannot move a bounds check (found by review).
    kind_ = o.kind;
    capacity_ = o.capacity;
    slot_size_ = o.slot_size;
    slot_stride_ = slot_stride_for(o.slot_size);
    mask_ = capacity_ - 1;
    attach();
}

void ring::attach() {
    const bool spsc = kind() == ring_kind::spsc;
    auto* table = role_ == ring_role::producer ? h_->producers : h_->consumers;
    const std::size_t slots = spsc ? 1 : ring_max_peers;
    const auto me = static_cast<std::int32_t>(pid_);
    for (int round = 0; round < 2 && peer_slot_ < 0; ++round) {
        for (std::size_t i = 0; i < slots; ++i) {
            std::int32_t cur = table[i].load(std::memory_order_acquire);
            // Round 2 takes over the slots of dead processes.
            if (cur != 0 && (round == 0 || cur == me || process_alive(cur))) continue;
            if (table[i].compare_exchange_strong(cur, me, std::memory_order_acq_rel)) {
                peer_slot_ = static_cast<int>(i);
                break;
            }
        }
    }
    if (peer_slot_ >= 0) clear_dead_waiters(table, slots);
    if (peer_slot_ < 0) {
        std::int32_t holder = table[0].load(std::memory_order_relaxed);
        const char* what = role_ == ring_role::producer ? "producer" : "consumer";
        if (spsc)
            throw_error(EBUSY, "ring attach", name_,
                        std::string("this spsc ring already has a live ") + what + " (pid " +
                            std::to_string(holder) + ")");
        throw_error(EBUSY, "ring attach", name_,
                    "all " + std::to_string(ring_max_peers) + " " + what + " slots are taken");
    }
    if (spsc) {
        try {
            const std::uint64_t head = h_->head.load(std::memory_order_acquire);
            const std::uint64_t tail = h_->tail.load(std::memory_order_acquire);
            check_spsc_indices(name_, head, tail, capacity_, /*may_lag=*/true);
            if (role_ == ring_role::producer) {
                index_ = head;
                cached_other_ = tail;
                skip_published_records();
                check_spsc_indices(name_, index_, tail, capacity_);
            } else {
                index_ = tail;
                cached_other_ = head;
            }
        } catch (...) {
            // Refused: the slot is not ours to keep.
            std::int32_t mine = me;
            table[peer_slot_].compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
            peer_slot_ = -1;
            throw;
        }
    }
    if (role_ == ring_role::producer) {
        // A claim left by the dead process that held this slot is not ours.
        h_->producer_claims[peer_slot_].store(0, std::memory_order_relaxed);
        h_->producers_seen.store(1, std::memory_order_release);
    } else {
        h_->consumer_claims[peer_slot_].store(0, std::memory_order_release);
        h_->consumers_seen.store(1, std::memory_order_release);
    }
}

// A process killed while asleep leaves its waiter bit set, and every publish
// would then make a futex_wake system call for nobody. Attaching is when a
// crashed peer is replaced: clear our own slot's bit, and the bits of slots
// whose process is gone (freeing those slots). Bits of live peers stay.
void ring::clear_dead_waiters(std::atomic<std::int32_t>* table, std::size_t slots) {
    auto& waiters = waiters_of(h_, role_);
    waiters.fetch_and(~my_waiter_bit(), std::memory_order_relaxed);
    const std::uint32_t bits = waiters.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < slots; ++i) {
        if ((bits & (std::uint32_t{1} << i)) == 0 || static_cast<int>(i) == peer_slot_) continue;
        std::int32_t pid = table[i].load(std::memory_order_acquire);
        if (pid != 0 && process_alive(pid)) continue;
        waiters.fetch_and(~(std::uint32_t{1} << i), std::memory_order_relaxed);
        if (pid != 0) table[i].compare_exchange_strong(pid, 0, std::memory_order_acq_rel);
    }
}

// spsc producer attaching: a record is published by its stamp, head is
// stored after it. A producer killed between the two left head short of
// records the consumer may already have taken: step over every published
// record from head to the zero stamp that ends them, so nothing is
// overwritten. Bounded by the capacity: a corrupt ring stops it.
void ring::skip_published_records() {
    const std::uint64_t cap = capacity_;
    const std::uint64_t start = index_;
    while (index_ - start < cap) {
        const ring_record* r = record_at(index_);
        const std::uint32_t stamp = r->stamp.load(std::memory_order_acquire);
        const std::uint64_t off = index_ & mask_;
        const std::uint64_t rec = ring_record_size + align_up(r->length, 8);
        if (stamp == ring_stamp(index_, true)) {
            index_ += cap - off;
        } else if (stamp == ring_stamp(index_, false) && rec <= cap - off) {
            index_ += rec;
        } else {
            break;  // the zero stamp after the last record (or garbage: stop)
        }
    }
    if (index_ != start) h_->head.store(index_, std::memory_order_release);
}

ring::ring(ring&& o) noexcept
    : memory_(std::move(o.memory_)),
      h_(std::exchange(o.h_, nullptr)),
      data_(o.data_),
      role_(o.role_),
      name_(std::move(o.name_)),
      peer_slot_(std::exchange(o.peer_slot_, -1)),
      pid_(o.pid_),
      spin_(o.spin_),
      kind_(o.kind_),
      capacity_(o.capacity_),
      slot_size_(o.slot_size_),
      slot_stride_(o.slot_stride_),
      mask_(o.mask_),
      index_(o.index_),
      cached_other_(o.cached_other_),
      pad_pos_(o.pad_pos_),
      zeroed_from_(o.zeroed_from_),
      zeroed_to_(o.zeroed_to_),
      busy_(std::exchange(o.busy_, false)),
      busy_pos_(o.busy_pos_),
      busy_size_(o.busy_size_),
      last_probe_ns_(o.last_probe_ns_),
      peer_seen_(o.peer_seen_) {}

ring::~ring() {
    detach();
}

void ring::detach() noexcept {
    if (h_ == nullptr) return;
    if (busy_) {
        if (role_ == ring_role::producer) {
            abandon();
        } else {
            try {
                release();
            } catch (...) {
            }
        }
    }
    if (peer_slot_ >= 0) {
        auto* table = role_ == ring_role::producer ? h_->producers : h_->consumers;
        std::int32_t me = static_cast<std::int32_t>(pid_);
        table[peer_slot_].compare_exchange_strong(me, 0, std::memory_order_acq_rel);
        peer_slot_ = -1;
    }
    // Sleepers re-check: the other side may now be closed.
    notify_consumers();
    notify_producers();
    h_ = nullptr;
}

ring_kind ring::kind() const noexcept {
    return kind_;
}
std::size_t ring::capacity() const noexcept {
    return static_cast<std::size_t>(capacity_);
}
std::size_t ring::max_message() const noexcept {
    // spsc: a record header, and the next record's stamp that must stay free;
    // and what the 32-bit length field can say.
    if (kind() == ring_kind::spsc)
        return std::min(static_cast<std::size_t>(capacity_) - 2 * ring_record_size,
                        ring_max_spsc_message);
    return static_cast<std::size_t>(slot_size_);
}

// ---- peers and waiting --------------------------------------------------------------

// True when the other side is gone: no live process attached, after one was.
// "After one was" differs by side. A producer counts any consumer that ever
// attached (the ring's creator, normally). A consumer counts only producers it
// has itself seen alive or received data from: a receiver restarted on a ring
// whose old producer died must wait for a new one, not report closed at once.
// Dead pids are probed (system calls) only if may_probe.
bool ring::peers_gone(bool producers, bool may_probe) {
    auto* table = producers ? h_->producers : h_->consumers;
    const auto me = static_cast<std::int32_t>(pid_);
    for (std::size_t i = 0; i < ring_max_peers; ++i) {
        std::int32_t p = table[i].load(std::memory_order_acquire);
        if (p == 0) continue;
        if (p == me || !may_probe || process_alive(p)) {
            peer_seen_ = true;
            return false;
        }
        // Free the dead process's slot so a new peer can take it, and its
        // waiter bit first (it can no longer set it; a new holder of the
        // slot could, and would then sleep at most one sleep_slice).
        waiters_of(h_, producers ? ring_role::producer : ring_role::consumer)
            .fetch_and(~(std::uint32_t{1} << i), std::memory_order_relaxed);
        table[i].compare_exchange_strong(p, 0, std::memory_order_acq_rel);
    }
    if (producers) return peer_seen_;
    return h_->consumers_seen.load(std::memory_order_acquire) != 0;
}

std::uint32_t ring::my_waiter_bit() const noexcept {
    return std::uint32_t{1} << peer_slot_;
}

void ring::notify_consumers() noexcept {
    // seq_cst pairs with the consumer's seq_cst setting of its consumer_waiters bit
    // followed by its seq_cst re-check of the index: either it sees our data or
    // we see it waiting (no lost wake-up), without a fence on the fast path.
    if (h_->consumer_waiters.load(std::memory_order_seq_cst) != 0) {
        h_->data_seq.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(h_->data_seq, INT_MAX);
    }
}

void ring::notify_producers() noexcept {
    if (h_->producer_waiters.load(std::memory_order_seq_cst) != 0) {
        h_->space_seq.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(h_->space_seq, INT_MAX);
    }
}

bool ring::data_ready() {
    if (kind() == ring_kind::spsc) {
        // seq_cst: pairs with the producer's seq_cst stamp store and the
        // waiter count (see notify_consumers).
        return record_at(index_)->stamp.load(std::memory_order_seq_cst) != 0;
    }
    std::uint64_t pos = h_->tail.load(std::memory_order_relaxed);
    auto* s = slot_at(pos);
    return s->seq.load(std::memory_order_seq_cst) == pos + 1;
}

bool ring::space_ready(std::size_t bytes) {
    if (kind() == ring_kind::spsc) {
        if (capacity_ - (index_ - cached_other_) >= bytes) return true;
        const std::uint64_t tail = h_->tail.load(std::memory_order_seq_cst);
        check_spsc_indices(name_, index_, tail, capacity_);
        cached_other_ = tail;
        return capacity_ - (index_ - cached_other_) >= bytes;
    }
    std::uint64_t pos = h_->head.load(std::memory_order_relaxed);
    auto* s = slot_at(pos);
    return s->seq.load(std::memory_order_seq_cst) == pos;
}

// A producer that died between claiming an mpmc slot and committing it would
// stall every consumer behind it: a consumer that finds the slot claimed by a
// dead pid skips it (exactly one consumer wins the tail CAS).
bool ring::skip_abandoned_slot(bool may_probe) {
    if (!may_probe || kind() != ring_kind::mpmc) return false;
    std::uint64_t pos = h_->tail.load(std::memory_order_relaxed);
    if (h_->head.load(std::memory_order_acquire) <= pos) return false;  // not claimed yet
    auto* s = slot_at(pos);
    if (s->seq.load(std::memory_order_acquire) != pos) return false;  // committed or previous lap
    const auto me = static_cast<std::int32_t>(pid_);
    std::int32_t owner = s->owner.load(std::memory_order_acquire);
    if (owner == 0) {
        // Claimed, owner not recorded yet: wait while any live producer
        // claims this slot (the winner, or a loser about to move on). None:
        // the winner died between its CAS and its owner store (found by
        // review: that stalled every consumer for good).
        for (std::size_t i = 0; i < ring_max_peers; ++i) {
            if (h_->producer_claims[i].load(std::memory_order_acquire) != pos + 1) continue;
            const std::int32_t pid = h_->producers[i].load(std::memory_order_acquire);
            if (pid == me || (pid != 0 && process_alive(pid))) return false;
        }
    } else if (owner == me || process_alive(owner)) {
        return false;
    }
    // Claimed before the CAS, like peek(): dying between the CAS and the seq
    // store must not leave the slot to nobody.
    auto& claim = h_->consumer_claims[peer_slot_];
    claim.store(pos + 1, std::memory_order_release);
    if (!h_->tail.compare_exchange_strong(pos, pos + 1, std::memory_order_acq_rel)) {
        claim.store(0, std::memory_order_release);
        return true;
    }
    s->owner.store(0, std::memory_order_relaxed);
    s->seq.store(pos + capacity_, std::memory_order_seq_cst);
    claim.store(0, std::memory_order_release);
    notify_producers();
    return true;
}

// A consumer killed between its tail CAS and its release (in peek(),
// receive() or skip_abandoned_slot()) leaves its slot taken for good; one lap
// later every producer waits on it, and peers_gone() says nothing while other
// consumers live. A producer waiting at head finds the slot's previous lap
// taken (tail past it) but not released; if no live consumer claims it, the
// holder is dead: free it (the CAS makes exactly one producer do so).
bool ring::free_slot_of_dead_consumer(bool may_probe) {
    if (!may_probe || kind() != ring_kind::mpmc) return false;
    const std::uint64_t pos = h_->head.load(std::memory_order_acquire);
    if (pos < capacity_) return false;  // first lap: nothing was taken here yet
    const std::uint64_t prev = pos - capacity_;
    auto* s = slot_at(pos);
    std::uint64_t seq = s->seq.load(std::memory_order_acquire);
    // prev + 1: committed and peeked; prev: skipped by a consumer (its
    // producer died) that did not get to free it.
    if (seq != prev + 1 && seq != prev) return false;
    // Every tail store is a CAS (a release sequence), so seeing tail past
    // prev also shows the claim its taker stored before its CAS.
    if (h_->tail.load(std::memory_order_acquire) <= prev) return false;  // not taken: full
    const auto me = static_cast<std::int32_t>(pid_);
    for (std::size_t i = 0; i < ring_max_peers; ++i) {
        if (h_->consumer_claims[i].load(std::memory_order_acquire) != prev + 1) continue;
        const std::int32_t pid = h_->consumers[i].load(std::memory_order_acquire);
        if (pid == me || (pid != 0 && process_alive(pid))) return false;
    }
    // owner must read 0 once the slot is free (a producer claiming it may
    // race this store; consumers then find it through its claim).
    s->owner.store(0, std::memory_order_relaxed);
    if (!s->seq.compare_exchange_strong(seq, pos, std::memory_order_seq_cst)) return true;
    notify_producers();
    return true;
}

io_status ring::wait_data(const deadline& until) {
    for (;;) {
        if (data_ready()) return io_status::ok;
        for (unsigned i = 0; i < spin_; ++i) {
            // pause costs ~100 ns on the EPYC VMs we measure on, longer than a
            // cache-line transfer: spin 16 checks between pauses.
            spin_step(i);
            if (data_ready()) return io_status::ok;
        }
        const auto now = clock::now();
        const std::int64_t t = now_ns(now);
        const bool may_probe = t - last_probe_ns_ >= probe_interval_ns;
        const bool expired = !until.is_never() && now >= until.when();
        // Cheap path for try-pollers: between probes, "empty/full" is all
        // there is to say (a departed peer is reported at the next probe).
        if (expired && !may_probe) return io_status::timed_out;
        if (may_probe) last_probe_ns_ = t;
        if (skip_abandoned_slot(may_probe)) continue;
        if (peers_gone(true, may_probe)) {
            // A producer that committed and then left: its data still counts.
            return data_ready() ? io_status::ok : io_status::closed;
        }
        if (expired) return io_status::timed_out;
        std::uint32_t seen = h_->data_seq.load(std::memory_order_acquire);
        h_->consumer_waiters.fetch_or(my_waiter_bit(), std::memory_order_seq_cst);
        try {
            if (!data_ready()) {
                auto slice = deadline::after(sleep_slice);
                const deadline& d =
                    (until.is_never() || slice.when() < until.when()) ? slice : until;
                futex_wait(h_->data_seq, seen, d);
                last_probe_ns_ = 0;  // after sleeping, probing is cheap by comparison
            }
        } catch (...) {
            h_->consumer_waiters.fetch_and(~my_waiter_bit(), std::memory_order_relaxed);
            throw;
        }
        h_->consumer_waiters.fetch_and(~my_waiter_bit(), std::memory_order_relaxed);
    }
}

io_status ring::wait_space(std::size_t bytes, const deadline& until) {
    for (;;) {
        if (space_ready(bytes)) return io_status::ok;
        for (unsigned i = 0; i < spin_; ++i) {
            spin_step(i);
            if (space_ready(bytes)) return io_status::ok;
        }
        const auto now = clock::now();
        const std::int64_t t = now_ns(now);
        const bool may_probe = t - last_probe_ns_ >= probe_interval_ns;
        const bool expired = !until.is_never() && now >= until.when();
        // Cheap path for try-pollers: between probes, "empty/full" is all
        // there is to say (a departed peer is reported at the next probe).
        if (expired && !may_probe) return io_status::timed_out;
        if (may_probe) last_probe_ns_ = t;
        if (free_slot_of_dead_consumer(may_probe)) continue;
        if (peers_gone(false, may_probe))
            return space_ready(bytes) ? io_status::ok : io_status::closed;
        if (expired) return io_status::timed_out;
        std::uint32_t seen = h_->space_seq.load(std::memory_order_acquire);
        h_->producer_waiters.fetch_or(my_waiter_bit(), std::memory_order_seq_cst);
        try {
            // space_ready throws too (a corrupt index): the bit must not stay set.
            if (!space_ready(bytes)) {
                auto slice = deadline::after(sleep_slice);
                const deadline& d =
                    (until.is_never() || slice.when() < until.when()) ? slice : until;
                futex_wait(h_->space_seq, seen, d);
                last_probe_ns_ = 0;
            }
        } catch (...) {
            h_->producer_waiters.fetch_and(~my_waiter_bit(), std::memory_order_relaxed);
            throw;
        }
        h_->producer_waiters.fetch_and(~my_waiter_bit(), std::memory_order_relaxed);
    }
}

// ---- producer -------------------------------------------------------------------

ring_record* ring::record_at(std::uint64_t pos) const noexcept {
    return reinterpret_cast<ring_record*>(data_ + (pos & mask_));
}

ring_slot* ring::slot_at(std::uint64_t pos) const noexcept {
    return reinterpret_cast<ring_slot*>(data_ + (pos & mask_) * slot_stride_);
}

// spsc: makes the record at pos (length already written, size bytes with its
// header) exist. The stamp after it is zero before the record's stamp is
// stored (zeroed ahead earlier, or here), so that is what the consumer finds
// there next; a padding record held back by loan() is published after this
// message, which it precedes in the ring.
void ring::publish(std::uint64_t pos, std::uint64_t size, bool pad) noexcept {
    const std::uint64_t end = pos + size;
    // Usually zero already (zero_ahead after an earlier publish). Storing it
    // here would hold the stamp store below until this other cache line is
    // taken from the consumer's cache: a second cross-core round trip per
    // message (64 B one-way at 2x the ping-pong floor instead of ~1.3x).
    if (end < zeroed_from_ || end + ring_record_size > zeroed_to_)
        record_at(end)->stamp.store(0, std::memory_order_relaxed);
    // seq_cst: the consumer's stamp load after registering as a waiter and
    // our waiter-count load in notify_consumers() must not both miss.
    record_at(pos)->stamp.store(ring_stamp(pos, pad), std::memory_order_seq_cst);
    if (pad_pos_ != no_pad && !pad) {
        record_at(pad_pos_)->stamp.store(ring_stamp(pad_pos_, true), std::memory_order_seq_cst);
        pad_pos_ = no_pad;
    }
    index_ = end;
    // head is for observers (attach, tests); the consumer reads stamps.
    h_->head.store(index_, std::memory_order_release);
    notify_consumers();
    zero_ahead(end + ring_record_size);
}

// Zeroes free space a few cache lines ahead of `from` (the end of the stamp
// at the last record's end), never past what the consumer has released.
// The line holding `from` is left alone: the consumer is polling the stamp
// in it, and a store there would pull the line away from it (except in rings
// so small, or a consumer so far behind, that the free space ends in that
// line: then this costs time, never correctness). Done after a publish,
// these stores drain while the peer works, not in front of the next stamp
// store. Ordering: the bytes were released by the consumer (its tail store,
// read by the producer into cached_other_) before they are zeroed, and the
// consumer reads them again only after a later publish (a later seq_cst
// stamp store). Bytes handed out in a loan since are excluded by loan().
void ring::zero_ahead(std::uint64_t from) noexcept {
    constexpr std::uint64_t kAhead = 512;
    const std::uint64_t line_after = align_up(from, ring_cache_line);
    if (zeroed_to_ < line_after) zeroed_to_ = line_after;  // nothing zeroed yet beyond
    zeroed_from_ = line_after;
    const std::uint64_t start = zeroed_to_;
    const std::uint64_t stop = std::min(line_after + kAhead, cached_other_ + capacity_);
    if (start >= stop) return;
    const std::uint64_t len = std::min(stop - start, capacity_);  // never more than the ring
    const std::uint64_t first = std::min(len, capacity_ - (start & mask_));
    std::memset(data_ + (start & mask_), 0, first);
    if (first < len) std::memset(data_, 0, len - first);  // wrapped
    zeroed_to_ = start + len;
}

// Bytes from pos on are no longer known to be zero (a loan's unused part).
// zero_ahead() sets zeroed_from_ past the last publish, so shrinking the
// known-zero range from above is what keeps it from claiming them again
// (found by review: a short commit's leftover bytes were read as the stamp
// of a later record, once delivering a message that was never sent).
void ring::forget_zeroed_from(std::uint64_t pos) noexcept {
    if (zeroed_to_ > pos) zeroed_to_ = pos;
}

ring_loan ring::loan(std::size_t size, const deadline& until) {
    if (role_ != ring_role::producer)
        throw_error(EPERM, "ring loan", name_, "this end is a consumer");
    if (busy_) throw_error(EBUSY, "ring loan", name_, "the previous loan was not committed");
    if (size > max_message())
        throw_error(EMSGSIZE, "ring send", name_,
                    "message is " + std::to_string(size) + " bytes, the ring's maximum is " +
                        std::to_string(max_message()) +
                        (kind() == ring_kind::spsc && max_message() == ring_max_spsc_message
                             ? " (a record's length is 32 bits)"
                             : ""));
    if (kind() == ring_kind::spsc) {
        const std::uint64_t cap = capacity_;
        // Each record also needs the 8 bytes after it free: the stamp there
        // is zeroed before the record is published (see ring_record).
        const std::uint64_t need = ring_record_size + align_up(size, 8);
        const std::uint64_t off = index_ & mask_;
        if (pad_pos_ == no_pad && cap - off < need) {
            // Does not fit before the end: a padding record fills the rest and
            // the message starts again at offset 0, contiguous for zero copy.
            const std::uint64_t pad = cap - off;
            // If padding and message can be in the ring together, wait for
            // both and publish them with the commit, message first. Otherwise
            // (a message longer than the offset) the padding must be published
            // alone and consumed before the message fits.
            const bool together = need + ring_record_size <= off;
            io_status st = wait_space(pad + (together ? need : 0) + ring_record_size, until);
            if (st != io_status::ok) return {st, {}};
            record_at(index_)->length = 0;
            if (together) {
                pad_pos_ = index_;
                index_ += pad;
            } else {
                publish(index_, pad, true);
            }
        }
        io_status st = wait_space(need + ring_record_size, until);
        if (st != io_status::ok) return {st, {}};
        busy_ = true;
        busy_pos_ = index_;
        busy_size_ = size;
        // The caller may write anything in the loan: those bytes are no
        // longer known to be zero. A commit of fewer bytes, or an abandoned
        // loan and a shorter next message, ends a record inside them, and
        // its end stamp must then be stored (found by review: a loan's bytes
        // could otherwise be read as the next record).
        zeroed_from_ = std::max(zeroed_from_, index_ + ring_record_size + size);
        return {io_status::ok, {data_ + (index_ & mask_) + ring_record_size, size}};
    }
    // mpmc: claim the slot at head when its sequence says it is free.
    auto& claim = h_->producer_claims[peer_slot_];
    std::uint64_t pos = h_->head.load(std::memory_order_relaxed);
    for (;;) {
        auto* s = slot_at(pos);
        std::uint64_t seq = s->seq.load(std::memory_order_acquire);
        auto diff = static_cast<std::int64_t>(seq - pos);
        if (diff == 0) {
            // The claim goes out before the CAS (released by it): whoever
            // sees head past pos also sees who claimed pos.
            claim.store(pos + 1, std::memory_order_relaxed);
            if (h_->head.compare_exchange_weak(pos, pos + 1, std::memory_order_release,
                                               std::memory_order_relaxed)) {
                s->owner.store(static_cast<std::int32_t>(pid_), std::memory_order_release);
                busy_ = true;
                busy_pos_ = pos;
                busy_size_ = size;
                return {io_status::ok, {reinterpret_cast<std::byte*>(s + 1), size}};
            }
            // Lost: a claim kept on the winner's slot would make consumers
            // wait for us should the winner die before storing its owner.
            claim.store(0, std::memory_order_relaxed);
        } else if (diff < 0) {
            claim.store(0, std::memory_order_relaxed);  // as above, while we sleep
            io_status st = wait_space(1, until);
            if (st != io_status::ok) return {st, {}};
            pos = h_->head.load(std::memory_order_relaxed);
        } else {
            pos = h_->head.load(std::memory_order_relaxed);
        }
    }
}

void ring::commit(std::size_t used) {
    if (!busy_ || role_ != ring_role::producer)
        throw_error(EINVAL, "ring commit", name_, "no open loan");
    if (used > busy_size_)
        throw_error(EINVAL, "ring commit", name_,
                    "committing " + std::to_string(used) + " bytes of a " +
                        std::to_string(busy_size_) + "-byte loan");
    busy_ = false;
    if (kind() == ring_kind::spsc) {
        const std::uint64_t size = ring_record_size + align_up(used, 8);
        // The loan's unused bytes hold whatever the caller wrote: they must
        // not count as zeroed ahead (zero_ahead() re-zeroes from here on).
        if (used < busy_size_) forget_zeroed_from(busy_pos_ + size);
        record_at(busy_pos_)->length = static_cast<std::uint32_t>(used);
        publish(busy_pos_, size, false);  // notifies
        return;
    }
    auto* s = slot_at(busy_pos_);
    s->length = static_cast<std::uint32_t>(used);
    s->seq.store(busy_pos_ + 1, std::memory_order_seq_cst);
    notify_consumers();
}

void ring::abandon() noexcept {
    if (!busy_ || role_ != ring_role::producer || h_ == nullptr) return;
    busy_ = false;
    if (kind() == ring_kind::mpmc) {
        // The slot is claimed: hand it on as "skip" so consumers do not stall.
        auto* s = slot_at(busy_pos_);
        s->length = ring_slot_abandoned;
        s->seq.store(busy_pos_ + 1, std::memory_order_seq_cst);
        notify_consumers();
    }
    // spsc: nothing was published; the space is simply reused, and what the
    // caller wrote in it is not zero. A padding record held back for this
    // message goes out alone, or the consumer would wait at it while a
    // larger next loan waits for its space.
    if (kind() == ring_kind::spsc) forget_zeroed_from(busy_pos_ + ring_record_size);
    if (kind() == ring_kind::spsc && pad_pos_ != no_pad) {
        const std::uint64_t pos = pad_pos_;
        pad_pos_ = no_pad;
        publish(pos, index_ - pos, true);
    }
}

io_status ring::send(std::span<const std::byte> message, const deadline& until) {
    ring_loan l = loan(message.size(), until);
    if (l.status != io_status::ok) return l.status;
    detail::copy_bytes(l.buffer.data(), message.data(), message.size());
    commit(message.size());
    return io_status::ok;
}

io_status ring::send(std::string_view message, const deadline& until) {
    return send(std::as_bytes(std::span<const char>(message.data(), message.size())), until);
}

// ---- consumer -------------------------------------------------------------------

ring_peek ring::peek(const deadline& until) {
    if (role_ != ring_role::consumer)
        throw_error(EPERM, "ring peek", name_, "this end is a producer");
    if (busy_) throw_error(EBUSY, "ring peek", name_, "the previous message was not released");
    if (kind() == ring_kind::spsc) {
        for (;;) {
            io_status st = wait_data(until);
            if (st != io_status::ok) return {st, {}};
            const std::uint64_t cap = capacity_;
            const std::uint64_t off = index_ & mask_;
            const ring_record* r = record_at(index_);
            const std::uint32_t stamp = r->stamp.load(std::memory_order_acquire);
            if (stamp == ring_stamp(index_, true)) {
                index_ += cap - off;
                h_->tail.store(index_, std::memory_order_seq_cst);
                notify_producers();
                continue;
            }
            if (stamp != ring_stamp(index_, false))
                corrupt(name_, "corrupt record stamp " + std::to_string(stamp) + " at position " +
                                   std::to_string(index_));
            // Read once: the checked value must be the one used.
            const std::uint32_t length = r->length;
            const std::uint64_t rec = ring_record_size + align_up(length, 8);
            if (rec > cap - off)
                corrupt(name_, "corrupt record (length " + std::to_string(length) + ")");
            busy_ = true;
            busy_pos_ = index_;
            busy_size_ = rec;
            peer_seen_ = true;
            return {io_status::ok, {data_ + off + ring_record_size, length}};
        }
    }
    auto& claim = h_->consumer_claims[peer_slot_];
    for (;;) {
        std::uint64_t pos = h_->tail.load(std::memory_order_relaxed);
        auto* s = slot_at(pos);
        std::uint64_t seq = s->seq.load(std::memory_order_acquire);
        auto diff = static_cast<std::int64_t>(seq - (pos + 1));
        if (diff == 0) {
            // The claim goes out before the CAS (released by it), so a
            // producer that sees tail past pos can tell who holds pos; kept
            // until release() (see free_slot_of_dead_consumer). Release
            // stores: reading a later value shows the release came first.
            claim.store(pos + 1, std::memory_order_release);
            if (!h_->tail.compare_exchange_weak(pos, pos + 1, std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
                claim.store(0, std::memory_order_release);
                continue;
            }
            busy_ = true;
            busy_pos_ = pos;
            const std::uint32_t length = s->length;  // read once: checked = used
            if (length == ring_slot_abandoned) {
                release();
                continue;
            }
            if (length > slot_size_) {
                release();
                corrupt(name_, "corrupt slot (length " + std::to_string(length) + ")");
            }
            peer_seen_ = true;
            return {io_status::ok, {reinterpret_cast<const std::byte*>(s + 1), length}};
        }
        if (diff < 0) {
            io_status st = wait_data(until);
            if (st != io_status::ok) return {st, {}};
        }
    }
}

void ring::release() {
    if (!busy_ || role_ != ring_role::consumer)
        throw_error(EINVAL, "ring release", name_, "nothing peeked");
    busy_ = false;
    if (kind() == ring_kind::spsc) {
        index_ = busy_pos_ + busy_size_;
        h_->tail.store(index_, std::memory_order_seq_cst);
    } else {
        auto* s = slot_at(busy_pos_);
        s->owner.store(0, std::memory_order_relaxed);
        s->seq.store(busy_pos_ + capacity_, std::memory_order_seq_cst);
        h_->consumer_claims[peer_slot_].store(0, std::memory_order_release);
    }
    notify_producers();
}

io_status ring::receive(std::string& out, const deadline& until) {
    ring_peek p = peek(until);
    if (p.status != io_status::ok) return p.status;
    detail::assign_bytes(out, reinterpret_cast<const char*>(p.message.data()), p.message.size());
    release();
    return io_status::ok;
}

}  // namespace ipckit
