// Private: the shared-memory layout of ipckit::ring (version: ring_version). Every field a
// peer may write concurrently is a std::atomic (lock-free, address-free, so it
// works across processes); the rest is written once before the magic.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ipckit/ring.hpp"

namespace ipckit {

inline constexpr std::size_t ring_cache_line = 64;
inline constexpr std::uint64_t ring_magic = 0x31474e49524b5049ull;  // "IPKRING1" little-endian
// 2: spsc records carry a stamp; 3: waiter words are per-peer bits, mpmc
// producers publish their claims; 4: so do mpmc consumers.
inline constexpr std::uint32_t ring_version = 4;
inline constexpr std::size_t ring_max_peers = 16;  // <= 32: one waiter bit each
inline constexpr std::size_t ring_min_spsc_capacity = 64;
inline constexpr std::size_t ring_max_capacity = std::size_t{1} << 40;
inline constexpr std::size_t ring_max_slot_size = std::size_t{1} << 30;

/// The header at offset 0 of the mapping; data follows at sizeof(layout).
struct ring::layout {
    // Geometry: written once by format(), magic last (release).
    std::atomic<std::uint64_t> magic;
    std::uint32_t version;
    std::uint32_t kind;
    std::uint32_t header_size;
    std::uint32_t slot_stride;  // mpmc: bytes per slot including its header
    std::uint64_t capacity;     // spsc: data bytes; mpmc: slots
    std::uint64_t slot_size;    // mpmc: payload bytes per slot
    std::uint64_t total_size;   // header + data
    std::int32_t creator_pid;

    // Producer line: the write index (bytes for spsc, slots for mpmc).
    alignas(ring_cache_line) std::atomic<std::uint64_t> head;
    // Consumer line: the read index.
    alignas(ring_cache_line) std::atomic<std::uint64_t> tail;
    // Consumers sleep on data_seq; bit i of consumer_waiters is set while
    // the consumer in peer slot i sleeps (bits, not a count: a process
    // killed asleep leaves a bit that whoever frees its slot clears).
    alignas(ring_cache_line) std::atomic<std::uint32_t> data_seq;
    std::atomic<std::uint32_t> consumer_waiters;
    // Producers sleep on space_seq; producer_waiters as consumer_waiters.
    alignas(ring_cache_line) std::atomic<std::uint32_t> space_seq;
    std::atomic<std::uint32_t> producer_waiters;
    // Attached peers (pid, 0 = free) and whether any ever attached.
    alignas(ring_cache_line) std::atomic<std::int32_t> producers[ring_max_peers];
    std::atomic<std::uint32_t> producers_seen;
    alignas(ring_cache_line) std::atomic<std::int32_t> consumers[ring_max_peers];
    std::atomic<std::uint32_t> consumers_seen;
    // mpmc: what the producer in peer slot i is claiming or holds, as slot
    // position + 1 (0: nothing). Stored before its head CAS, so a claimed
    // slot whose owner field is still 0 (the producer died right after the
    // CAS) can be traced to a live or dead claimant.
    alignas(ring_cache_line) std::atomic<std::uint64_t> producer_claims[ring_max_peers];
    // mpmc: the slot the consumer in peer slot i takes or holds (peeked, not
    // released), as position + 1; stored before its tail CAS. A slot taken
    // but never released (its consumer died) is traced to its holder, and
    // freed by a producer waiting on it when the holder is dead.
    alignas(ring_cache_line) std::atomic<std::uint64_t> consumer_claims[ring_max_peers];
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);
static_assert(sizeof(ring::layout) % ring_cache_line == 0);

/// spsc record header, 8-byte aligned in the data area; payload follows.
/// The consumer polls the stamp of the record at its own index, not the
/// producer's head index: one cache miss brings "ready", the length and the
/// first 56 payload bytes, where polling head cost a second, dependent miss
/// (64 B one-way latency 2.3x the ping-pong floor). 0 means "not written
/// yet": before a record that ends at position E is published, the stamp at
/// E is zero (zeroed ahead after an earlier publish, or just before), so the
/// consumer never mistakes an old lap's bytes for a record (which is why a message may use at most
/// capacity - 16 bytes: the 8 bytes at E must be free too).
struct ring_record {
    std::uint32_t length;
    std::atomic<std::uint32_t> stamp;
};
static_assert(sizeof(ring_record) == 8);
inline constexpr std::size_t ring_record_size = sizeof(ring_record);
// length is 32 bits: the largest spsc message whatever the capacity (rings
// may be up to 1 TiB), so a record's length plus header also fits 32 bits.
inline constexpr std::size_t ring_max_spsc_message = UINT32_MAX - ring_record_size;

/// The stamp of a record at absolute position pos: odd, never 0, and tied to
/// the position so a corrupt header is recognised. Padding records (skip to
/// the end of the data area) have bit 1 set.
inline constexpr std::uint32_t ring_stamp(std::uint64_t pos, bool pad) noexcept {
    return static_cast<std::uint32_t>(pos >> 3) << 2 | (pad ? 3u : 1u);
}

/// mpmc slot header; payload follows. seq is the Vyukov sequence number:
/// == pos (free for the producer of lap pos), == pos + 1 (committed).
struct ring_slot {
    std::atomic<std::uint64_t> seq;
    std::uint32_t length;             // ring_slot_abandoned: skip
    std::atomic<std::int32_t> owner;  // pid of the producer holding the loan
};
inline constexpr std::uint32_t ring_slot_abandoned = 0xffffffffu;
static_assert(sizeof(ring_slot) == 16);

}  // namespace ipckit
