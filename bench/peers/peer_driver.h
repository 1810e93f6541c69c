/* The driver shared by every `ipckit-peer-<name>` baseline (C and C++).
 *
 * A peer implements struct peer_ops for one mechanism; the driver forks the
 * two processes, runs the same ping-pong / one-way stream as the ipckit
 * harness with the same payload checks (tools/ipckit/bench_payload.h), and
 * prints one JSON line on stdout. The argv protocol (docs/bench.md):
 *
 *   ipckit-peer-X info
 *       {"name":"raw-pipe","kind":"raw","mechanism":"pipe","max_message":N}
 *   ipckit-peer-X latency SIZE COUNT WARMUP CPU_PARENT CPU_CHILD
 *       {"p50_ns":..,"p90_ns":..,"p99_ns":..,"p999_ns":..,"max_ns":..,"mean_ns":..,"count":N}
 *   ipckit-peer-X throughput SIZE COUNT CPU_PARENT CPU_CHILD
 *       {"seconds":..,"count":N}
 *   CPU -1 = not pinned. A size the mechanism cannot carry prints
 *   {"skipped":"reason"} and exits 0; a failed or corrupt run prints the
 *   reason on stderr and exits 1. The test-only environment variable
 *   IPCKIT_BENCH_INJECT_CORRUPTION=K flips one body byte of message K. */
#ifndef IPCKIT_PEER_DRIVER_H
#define IPCKIT_PEER_DRIVER_H

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_payload.h"

/* Direction 0 is parent -> child, direction 1 child -> parent. */
struct peer_ops {
    const char* name;      /* "raw-pipe" */
    const char* kind;      /* "raw" or "library" */
    const char* mechanism; /* the ipckit mechanism it is compared with */
    size_t max_message;
    /* Nonzero for mechanisms without flow control (UDP): a one-way stream
     * would drop messages, so only latency is measured. */
    int lossy;
    /* Before fork: create the kernel objects for both directions. Returns 0 or -1 (errno). */
    int (*setup)(size_t size);
    /* After fork in each process (child = 0 or 1): open / keep its ends. */
    int (*attach)(int child);
    /* Sends / receives one whole message on a direction. recv returns the
     * byte count, or -1 on error (errno). */
    int (*send)(int dir, const unsigned char* buf, size_t n);
    long (*recv)(int dir, unsigned char* buf, size_t cap);
    /* In each process before exit, and in the parent after the child exits. */
    void (*detach)(int child);
    void (*teardown)(void);
};

/* The objects setup() made are removed by the process that made them
 * however it ends: normally (pd_run), through pd_die/exit (atexit), or on
 * SIGALRM/SIGTERM/SIGINT (the teardowns only unlink, msgctl or mq_unlink:
 * system calls, safe in a handler). Only SIGKILL leaves them behind. */
static void (*pd_teardown)(void);
static pid_t pd_owner;

static void pd_cleanup(void) {
    if (pd_teardown && getpid() == pd_owner) {
        void (*t)(void) = pd_teardown;
        pd_teardown = NULL;
        t();
    }
}

static void pd_on_signal(int sig) {
    pd_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void pd_guard_teardown(void (*teardown)(void)) {
    pd_teardown = teardown;
    pd_owner = getpid();
    atexit(pd_cleanup);
    signal(SIGALRM, pd_on_signal);
    signal(SIGTERM, pd_on_signal);
    signal(SIGINT, pd_on_signal);
}

static void pd_die(const char* what) {
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t pd_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pd_pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) pd_die("sched_setaffinity");
}

static int pd_cmp_u64(const void* a, const void* b) {
    uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, the same rule as the harness. */
static uint64_t pd_percentile(const uint64_t* v, size_t n, double p) {
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

static long long pd_inject_at(void) {
    const char* s = getenv("IPCKIT_BENCH_INJECT_CORRUPTION");
    return s && *s ? atoll(s) : -1;
}

/* Both processes agree on readiness through a pipe pair, so no measured
 * message is sent before the other side has opened its ends. */
static int pd_sync_fds[2][2];

static void pd_signal(int child) {
    char c = 'r';
    if (write(pd_sync_fds[child][1], &c, 1) != 1) pd_die("sync write");
}

static void pd_wait(int child) {
    char c;
    ssize_t r;
    do
        r = read(pd_sync_fds[!child][0], &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1) {
        fprintf(stderr, "peer: the other process died before it was ready\n");
        exit(1);
    }
}

static int pd_run(const struct peer_ops* ops, int argc, char** argv) {
    if (argc >= 2 && strcmp(argv[1], "info") == 0) {
        printf("{\"name\":\"%s\",\"kind\":\"%s\",\"mechanism\":\"%s\",\"max_message\":%zu}\n",
               ops->name, ops->kind, ops->mechanism, ops->max_message);
        return 0;
    }
    int latency = argc == 7 && strcmp(argv[1], "latency") == 0;
    int throughput = argc == 6 && strcmp(argv[1], "throughput") == 0;
    if (!latency && !throughput) {
        fprintf(stderr,
                "usage: %s info | latency SIZE COUNT WARMUP CPU_PARENT CPU_CHILD | "
                "throughput SIZE COUNT CPU_PARENT CPU_CHILD\n",
                argv[0]);
        return 2;
    }
    size_t size = strtoull(argv[2], NULL, 10);
    long count = atol(argv[3]);
    long warmup = latency ? atol(argv[4]) : 0;
    int cpu_parent = atoi(argv[latency ? 5 : 4]), cpu_child = atoi(argv[latency ? 6 : 5]);
    if (size < BP_MIN_SIZE || count < 1 || warmup < 0) {
        fprintf(stderr, "%s: size must be >= %u and count >= 1\n", ops->name, BP_MIN_SIZE);
        return 2;
    }
    if (size > ops->max_message) {
        printf("{\"skipped\":\"%zu bytes exceeds the %s limit of %zu bytes\"}\n", size, ops->name,
               ops->max_message);
        return 0;
    }
    if (throughput && ops->lossy) {
        printf("{\"skipped\":\"%s has no flow control: a one-way stream drops messages\"}\n",
               ops->name);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    pd_guard_teardown(ops->teardown);
    alarm(300); /* never outlive a wedged run */
    if (ops->setup(size) != 0) {
        if (errno == EMSGSIZE || errno == EINVAL) {
            printf("{\"skipped\":\"%s cannot carry %zu-byte messages here: %s\"}\n", ops->name,
                   size, strerror(errno));
            pd_cleanup();
            return 0;
        }
        pd_die("setup");
    }
    if (pipe(pd_sync_fds[0]) != 0 || pipe(pd_sync_fds[1]) != 0) pd_die("pipe");
    /* BP_BODIES send buffers (message i goes out in bodies[i % BP_BODIES]),
     * and a zeroed receive buffer apart from them: a transport that does not
     * deliver the bytes cannot pass with what the buffer already held. */
    unsigned char* bodies[BP_BODIES];
    uint64_t body_hash[BP_BODIES];
    for (unsigned b = 0; b < BP_BODIES; ++b) {
        bodies[b] = (unsigned char*)calloc(1, size);
        if (!bodies[b]) pd_die("malloc");
        body_hash[b] = bp_fill(bodies[b], size, b);
    }
    unsigned char* buf = (unsigned char*)calloc(1, size);
    if (!buf) pd_die("malloc");
    long long inject = pd_inject_at();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) pd_die("fork");
    if (pid == 0) {
        pd_pin(cpu_child);
        if (ops->attach(1) != 0) pd_die("attach (child)");
        pd_signal(1);
        pd_wait(1);
        int status = 0;
        long total = latency ? warmup + count : count;
        for (long i = 0; i < total; ++i) {
            long got = ops->recv(0, buf, size);
            if (got < 0) pd_die("receive (child)");
            int c = bp_check(buf, (size_t)got, size, (uint64_t)i, !latency);
            if (c != BP_OK) {
                fprintf(stderr, "%s: message %ld: %s\n", ops->name, i, bp_describe(c));
                status = 1;
                break;
            }
            if (latency && ops->send(1, buf, size) != 0) pd_die("send (child)");
        }
        if (throughput) {
            /* The parent stops its clock when this byte arrives. */
            char c = status ? 'x' : 'k';
            if (write(pd_sync_fds[1][1], &c, 1) != 1) pd_die("sync write");
        }
        if (ops->detach) ops->detach(1);
        _exit(status);
    }
    pd_pin(cpu_parent);
    if (ops->attach(0) != 0) pd_die("attach (parent)");
    pd_signal(0);
    pd_wait(0);
    int failed = 0;
    if (latency) {
        uint64_t* samples = (uint64_t*)malloc(sizeof(uint64_t) * (size_t)count);
        if (!samples) pd_die("malloc");
        double sum = 0;
        for (long i = 0; i < warmup + count; ++i) {
            unsigned char* out = bodies[(uint64_t)i % BP_BODIES];
            bp_stamp(out, size, (uint64_t)i, body_hash[(uint64_t)i % BP_BODIES]);
            uint64_t t0 = pd_now_ns();
            if (ops->send(0, out, size) != 0) pd_die("send (parent)");
            long got = ops->recv(1, buf, size);
            uint64_t t1 = pd_now_ns();
            if (got < 0) pd_die("receive (parent)");
            int c = bp_check(buf, (size_t)got, size, (uint64_t)i, 0);
            if (c != BP_OK) {
                fprintf(stderr, "%s: reply %ld: %s\n", ops->name, i, bp_describe(c));
                failed = 1;
                break;
            }
            if (i >= warmup) {
                samples[i - warmup] = (t1 - t0) / 2;
                sum += (double)((t1 - t0) / 2);
            }
        }
        if (!failed) {
            qsort(samples, (size_t)count, sizeof *samples, pd_cmp_u64);
            size_t n = (size_t)count;
            printf(
                "{\"count\":%ld,\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,"
                "\"p999_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.1f}\n",
                count, (unsigned long long)pd_percentile(samples, n, 50),
                (unsigned long long)pd_percentile(samples, n, 90),
                (unsigned long long)pd_percentile(samples, n, 99),
                (unsigned long long)pd_percentile(samples, n, 99.9),
                (unsigned long long)samples[n - 1], sum / (double)count);
        }
        free(samples);
    } else {
        uint64_t t0 = pd_now_ns();
        for (long i = 0; i < count; ++i) {
            unsigned char* out = bodies[(uint64_t)i % BP_BODIES];
            bp_stamp(out, size, (uint64_t)i, body_hash[(uint64_t)i % BP_BODIES]);
            if (i == inject) out[size / 2] ^= 0x5a;
            if (ops->send(0, out, size) != 0) pd_die("send (parent)");
            if (i == inject) out[size / 2] ^= 0x5a;
        }
        char c = 0;
        ssize_t r;
        do
            r = read(pd_sync_fds[1][0], &c, 1);
        while (r < 0 && errno == EINTR);
        uint64_t t1 = pd_now_ns();
        if (r != 1 || c != 'k')
            failed = 1;
        else
            printf("{\"count\":%ld,\"seconds\":%.9f}\n", count, (double)(t1 - t0) / 1e9);
    }
    if (ops->detach) ops->detach(0);
    if (failed) kill(pid, SIGKILL); /* it may be blocked waiting for us */
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    pd_cleanup();
    free(buf);
    for (unsigned b = 0; b < BP_BODIES; ++b)
        free(bodies[b]);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) failed = 1;
    return failed;
}

#endif
