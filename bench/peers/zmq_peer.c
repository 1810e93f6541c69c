/* ZeroMQ PAIR baseline over ipc:// (Unix socket) or tcp:// (loopback),
 * selected by ZMQ_OVER_TCP at compile time. */
#define _GNU_SOURCE /* sched_setaffinity in peer_driver.h */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <zmq.h>

#include "peer_driver.h"

static char endpoint[128];
static void* ctx;
static void* sock;

static int setup(size_t size) {
    (void)size;
#ifdef ZMQ_OVER_TCP
    /* Ask the kernel for a free port, then let ZeroMQ bind it. */
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr*)&a, &len) != 0)
        return -1;
    close(fd);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
#else
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/ipckit-peer-zmq-%d.sock", (int)getpid());
#endif
    return 0;
}

static int attach(int child) {
    /* A ZeroMQ context must not cross fork(): each process makes its own. */
    ctx = zmq_ctx_new();
    sock = ctx ? zmq_socket(ctx, ZMQ_PAIR) : NULL;
    if (!sock) return -1;
    /* Linger long enough that the echo's last reply is flushed before its
     * context terminates (0 would drop it and hang the other side). */
    int linger = 5000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    return child ? zmq_connect(sock, endpoint) : zmq_bind(sock, endpoint);
}

static int z_send(int dir, const unsigned char* buf, size_t n) {
    (void)dir;
    int r;
    do
        r = zmq_send(sock, buf, n, 0);
    while (r < 0 && errno == EINTR);
    return r == (int)n ? 0 : -1;
}

static long z_recv(int dir, unsigned char* buf, size_t cap) {
    (void)dir;
    int r;
    do
        r = zmq_recv(sock, buf, cap, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

static void detach(int child) {
    (void)child;
    if (sock) zmq_close(sock);
    if (ctx) zmq_ctx_term(ctx);
}

static void teardown(void) {
#ifndef ZMQ_OVER_TCP
    unlink(endpoint + strlen("ipc://"));
#endif
}

int main(int argc, char** argv) {
#ifdef ZMQ_OVER_TCP
    static const struct peer_ops ops = {"zmq-tcp", "library", "tcp",  (size_t)-1, 0,       setup,
                                        attach,    z_send,    z_recv, detach,     teardown};
#else
    static const struct peer_ops ops = {"zmq-ipc", "library", "unix-stream", (size_t)-1,
                                        0,         setup,     attach,        z_send,
                                        z_recv,    detach,    teardown};
#endif
    return pd_run(&ops, argc, argv);
}
