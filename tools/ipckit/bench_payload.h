/* The payload every `ipckit bench` message carries, shared by the harness
 * (C++) and the peers under bench/peers/ (C), so that every contender pays
 * for the same verification and a fast wrong answer cannot win.
 *
 * Layout of a message of `size` bytes (size >= BP_MIN_SIZE), little-endian:
 *   [0, 8)          sequence number
 *   [8, 16)         checksum = bp_mix(sequence, bp_body_hash(body))
 *   [16, size - 8)  body: one of BP_BODIES byte patterns, body (sequence %
 *                   BP_BODIES), so consecutive messages differ everywhere
 *   [size - 8, size) sequence number again (catches copies that stop short)
 *
 * The sender fills BP_BODIES buffers once (bp_fill) and stamps 24 bytes per
 * message in the one it sends; the receiver re-hashes the whole body
 * (throughput runs) or checks only the two sequence numbers (latency runs, so
 * that the latency figure is the transport's and not the checksum's;
 * documented in docs/bench.md). Because the body changes from one message to
 * the next, a transport that leaves the previous message's bytes in the
 * receive buffer fails the hash (with one fixed body it passed: found by
 * review). */
#ifndef IPCKIT_BENCH_PAYLOAD_H
#define IPCKIT_BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BP_MIN_SIZE 24u
#define BP_BODIES 3u /* prime, and > 1: message i and i - 1 never share a body */

/* Outcomes of bp_check(). */
enum { BP_OK = 0, BP_BAD_SIZE = 1, BP_BAD_SEQUENCE = 2, BP_BAD_CHECKSUM = 3 };

static inline uint64_t bp_load64(const unsigned char* p) {
    uint64_t v;
    memcpy(&v, p, 8); /* x86-64 and aarch64 Linux are little-endian */
    return v;
}

static inline void bp_store64(unsigned char* p, uint64_t v) {
    memcpy(p, &v, 8);
}

/* Four independent multiply lanes so the hash runs near memory speed. */
static inline uint64_t bp_body_hash(const unsigned char* msg, size_t size) {
    const unsigned char* p = msg + 16;
    size_t n = size - BP_MIN_SIZE;
    uint64_t h0 = 0x9e3779b97f4a7c15u, h1 = 0xc2b2ae3d27d4eb4fu, h2 = 0x165667b19e3779f9u,
             h3 = 0x27d4eb2f165667c5u;
    const uint64_t k = 0x100000001b3u;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        h0 = (h0 ^ bp_load64(p + i)) * k;
        h1 = (h1 ^ bp_load64(p + i + 8)) * k;
        h2 = (h2 ^ bp_load64(p + i + 16)) * k;
        h3 = (h3 ^ bp_load64(p + i + 24)) * k;
    }
    for (; i < n; ++i)
        h0 = (h0 ^ p[i]) * k;
    return h0 ^ (h1 << 1) ^ (h2 << 2) ^ (h3 << 3) ^ (uint64_t)n;
}

static inline uint64_t bp_mix(uint64_t seq, uint64_t body_hash) {
    uint64_t x = seq * 0xff51afd7ed558ccdu ^ body_hash;
    x ^= x >> 33;
    return x * 0xc4ceb9fe1a85ec53u;
}

/* Writes body number `body` (0 .. BP_BODIES - 1) once; returns its hash for
 * bp_stamp(). Message i goes out in the buffer of body i % BP_BODIES. */
static inline uint64_t bp_fill(unsigned char* msg, size_t size, unsigned body) {
    for (size_t i = 16; i < size - 8; ++i)
        msg[i] = (unsigned char)((i * 131u + 7u + body * 85u) & 0xffu);
    return bp_body_hash(msg, size);
}

/* Per message: the two sequence numbers and the checksum. */
static inline void bp_stamp(unsigned char* msg, size_t size, uint64_t seq, uint64_t body_hash) {
    bp_store64(msg, seq);
    bp_store64(msg + 8, bp_mix(seq, body_hash));
    bp_store64(msg + size - 8, seq);
}

/* Checks a received message of `got` bytes against the expected size and
 * sequence; `full` also re-hashes the body. */
static inline int bp_check(const unsigned char* msg, size_t got, size_t size, uint64_t seq,
                           int full) {
    if (got != size) return BP_BAD_SIZE;
    if (bp_load64(msg) != seq || bp_load64(msg + size - 8) != seq) return BP_BAD_SEQUENCE;
    if (full && bp_load64(msg + 8) != bp_mix(seq, bp_body_hash(msg, size))) return BP_BAD_CHECKSUM;
    return BP_OK;
}

static inline const char* bp_describe(int outcome) {
    switch (outcome) {
        case BP_OK:
            return "ok";
        case BP_BAD_SIZE:
            return "wrong message size";
        case BP_BAD_SEQUENCE:
            return "missing or reordered message (sequence mismatch)";
        case BP_BAD_CHECKSUM:
            return "corrupt message (checksum mismatch)";
    }
    return "?";
}

#endif
