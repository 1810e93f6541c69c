/* Raw-syscall baselines: the shortest correct loop per kernel mechanism, with
 * no library between the benchmark and the system call. ipckit's wrapper for
 * the same mechanism should stay within a few percent of these. One source,
 * one executable per mechanism: PEER_MECH selects it at compile time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "peer_driver.h"

#define MECH_PIPE 1
#define MECH_FIFO 2
#define MECH_MQ 3
#define MECH_SYSVMQ 4
#define MECH_UNIX 5
#define MECH_SOCKETPAIR 6
#define MECH_TCP 7
#define MECH_UDP 8

#ifndef PEER_MECH
#error "define PEER_MECH"
#endif

/* fds[dir][0] = read end, fds[dir][1] = write end, in the setup process. */
__attribute__((unused)) static int fds[2][2] = {{-1, -1}, {-1, -1}};
static size_t msg_size;

__attribute__((unused)) static int write_all(int fd, const unsigned char* p, size_t n) {
    while (n > 0) {
#if PEER_MECH == MECH_PIPE || PEER_MECH == MECH_FIFO
        ssize_t w = write(fd, p, n);
#else
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
#endif
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

__attribute__((unused)) static long read_exact(int fd, unsigned char* p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break; /* EOF: the driver reports the short message */
        got += (size_t)r;
    }
    return (long)got;
}

#if PEER_MECH == MECH_PIPE || PEER_MECH == MECH_FIFO || PEER_MECH == MECH_UNIX || \
    PEER_MECH == MECH_SOCKETPAIR || PEER_MECH == MECH_TCP
/* Stream mechanisms: the message size is fixed per run, so no framing. */
static int s_send(int dir, const unsigned char* buf, size_t n) {
    return write_all(fds[dir][1], buf, n);
}
static long s_recv(int dir, unsigned char* buf, size_t cap) {
    return read_exact(fds[dir][0], buf, cap);
}
#endif

#if PEER_MECH == MECH_PIPE
static int setup(size_t size) {
    (void)size;
    if (pipe2(fds[0], O_CLOEXEC) != 0 || pipe2(fds[1], O_CLOEXEC) != 0) return -1;
    return 0;
}
static int attach(int child) {
    /* The child reads direction 0 and writes direction 1. */
    close(fds[0][child ? 1 : 0]);
    close(fds[1][child ? 0 : 1]);
    return 0;
}
static const struct peer_ops ops = {"raw-pipe", "raw",  "pipe", (size_t)-1, 0,   setup,
                                    attach,     s_send, s_recv, NULL,       NULL};

#elif PEER_MECH == MECH_FIFO
static char paths[2][64];
static int setup(size_t size) {
    (void)size;
    for (int d = 0; d < 2; ++d) {
        snprintf(paths[d], sizeof paths[d], "/tmp/ipckit-peer-fifo-%d-%d", (int)getpid(), d);
        if (mkfifo(paths[d], 0600) != 0) return -1;
    }
    return 0;
}
static int attach(int child) {
    /* Opening order pairs up: each open blocks until the other end opens. */
    if (child) {
        fds[0][0] = open(paths[0], O_RDONLY | O_CLOEXEC);
        fds[1][1] = open(paths[1], O_WRONLY | O_CLOEXEC);
        return fds[0][0] < 0 || fds[1][1] < 0 ? -1 : 0;
    }
    fds[0][1] = open(paths[0], O_WRONLY | O_CLOEXEC);
    fds[1][0] = open(paths[1], O_RDONLY | O_CLOEXEC);
    return fds[0][1] < 0 || fds[1][0] < 0 ? -1 : 0;
}
static void teardown(void) {
    unlink(paths[0]);
    unlink(paths[1]);
}
static const struct peer_ops ops = {"raw-fifo", "raw",  "fifo", (size_t)-1, 0,       setup,
                                    attach,     s_send, s_recv, NULL,       teardown};

#elif PEER_MECH == MECH_MQ
static char names[2][64];
static mqd_t qs[2] = {(mqd_t)-1, (mqd_t)-1};
static int setup(size_t size) {
    struct mq_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.mq_maxmsg = 10;
    attr.mq_msgsize = (long)size;
    for (int d = 0; d < 2; ++d) {
        snprintf(names[d], sizeof names[d], "/ipckit-peer-mq-%d-%d", (int)getpid(), d);
        qs[d] = mq_open(names[d], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
        if (qs[d] == (mqd_t)-1) return -1;
    }
    return 0;
}
static int attach(int child) {
    (void)child;
    return 0;
}
static int q_send(int dir, const unsigned char* buf, size_t n) {
    int r;
    do
        r = mq_send(qs[dir], (const char*)buf, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
}
static long q_recv(int dir, unsigned char* buf, size_t cap) {
    ssize_t r;
    do
        r = mq_receive(qs[dir], (char*)buf, cap, NULL);
    while (r < 0 && errno == EINTR);
    return (long)r;
}
static void teardown(void) {
    for (int d = 0; d < 2; ++d)
        if (names[d][0]) mq_unlink(names[d]);
}
static const struct peer_ops ops = {"raw-mq", "raw",  "mq",   (size_t)-1, 0,       setup,
                                    attach,   q_send, q_recv, NULL,       teardown};

#elif PEER_MECH == MECH_SYSVMQ
static int ids[2] = {-1, -1};
static struct {
    long mtype;
    unsigned char data[];
} * msgbuf;
static long read_long(const char* path) {
    FILE* f = fopen(path, "re");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}
static int setup(size_t size) {
    long msgmax = read_long("/proc/sys/kernel/msgmax");
    if (msgmax > 0 && (long)size > msgmax) {
        errno = EMSGSIZE; /* kernel.msgmax: the driver reports a skip */
        return -1;
    }
    msg_size = size;
    msgbuf = malloc(sizeof(long) + size);
    if (!msgbuf) return -1;
    for (int d = 0; d < 2; ++d) {
        ids[d] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (ids[d] < 0) return -1;
        /* A queue must hold at least one message; raising msg_qbytes above
         * kernel.msgmnb needs privilege, so a failure here is only a limit. */
        struct msqid_ds ds;
        if (msgctl(ids[d], IPC_STAT, &ds) == 0 && ds.msg_qbytes < 4 * size) {
            ds.msg_qbytes = 4 * size;
            if (msgctl(ids[d], IPC_SET, &ds) != 0 && size > ds.msg_qbytes) {
                errno = EMSGSIZE;
                return -1;
            }
        }
    }
    return 0;
}
static int attach(int child) {
    (void)child;
    return 0;
}
static int v_send(int dir, const unsigned char* buf, size_t n) {
    msgbuf->mtype = 1;
    memcpy(msgbuf->data, buf, n);
    int r;
    do
        r = msgsnd(ids[dir], msgbuf, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
}
static long v_recv(int dir, unsigned char* buf, size_t cap) {
    ssize_t r;
    do
        r = msgrcv(ids[dir], msgbuf, cap, 0, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0) memcpy(buf, msgbuf->data, (size_t)r);
    return (long)r;
}
static void teardown(void) {
    for (int d = 0; d < 2; ++d)
        if (ids[d] >= 0) msgctl(ids[d], IPC_RMID, NULL);
}
static const struct peer_ops ops = {"raw-sysvmq", "raw",  "sysvmq", (size_t)-1, 0,       setup,
                                    attach,       v_send, v_recv,   NULL,       teardown};

#elif PEER_MECH == MECH_UNIX || PEER_MECH == MECH_TCP
static int listener = -1;
#if PEER_MECH == MECH_UNIX
static struct sockaddr_un addr;
static socklen_t addr_len;
#else
static struct sockaddr_in addr;
static socklen_t addr_len = sizeof addr;
#endif
static int setup(size_t size) {
    (void)size;
#if PEER_MECH == MECH_UNIX
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    /* Abstract address: nothing to unlink afterwards. */
    int n =
        snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "ipckit-peer-unix-%d", (int)getpid());
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
#else
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
#endif
    if (listener < 0 || bind(listener, (struct sockaddr*)&addr, addr_len) != 0 ||
        listen(listener, 1) != 0)
        return -1;
#if PEER_MECH == MECH_TCP
    if (getsockname(listener, (struct sockaddr*)&addr, &addr_len) != 0) return -1;
#endif
    return 0;
}
static int attach(int child) {
    int fd;
    if (child) {
        close(listener);
        fd = socket(((struct sockaddr*)&addr)->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr*)&addr, addr_len) != 0) return -1;
    } else {
        do
            fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        close(listener);
        if (fd < 0) return -1;
    }
#if PEER_MECH == MECH_TCP
    int one = 1; /* request/response traffic: no Nagle delay */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#endif
    fds[0][0] = fds[0][1] = fds[1][0] = fds[1][1] = fd;
    return 0;
}
#if PEER_MECH == MECH_UNIX
static const struct peer_ops ops = {"raw-unix-stream",
                                    "raw",
                                    "unix-stream",
                                    (size_t)-1,
                                    0,
                                    setup,
                                    attach,
                                    s_send,
                                    s_recv,
                                    NULL,
                                    NULL};
#else
static const struct peer_ops ops = {"raw-tcp", "raw",  "tcp",  (size_t)-1, 0,   setup,
                                    attach,    s_send, s_recv, NULL,       NULL};
#endif

#elif PEER_MECH == MECH_SOCKETPAIR
static int sv[2];
static int setup(size_t size) {
    (void)size;
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}
static int attach(int child) {
    close(sv[!child]);
    fds[0][0] = fds[0][1] = fds[1][0] = fds[1][1] = sv[child];
    return 0;
}
static const struct peer_ops ops = {"raw-socketpair", "raw",  "socketpair", (size_t)-1, 0,   setup,
                                    attach,           s_send, s_recv,       NULL,       NULL};

#elif PEER_MECH == MECH_UDP
static int socks[2] = {-1, -1};
static struct sockaddr_in addrs[2];
static int setup(size_t size) {
    (void)size;
    for (int i = 0; i < 2; ++i) {
        socklen_t len = sizeof addrs[i];
        memset(&addrs[i], 0, sizeof addrs[i]);
        addrs[i].sin_family = AF_INET;
        addrs[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socks[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (socks[i] < 0 || bind(socks[i], (struct sockaddr*)&addrs[i], sizeof addrs[i]) != 0 ||
            getsockname(socks[i], (struct sockaddr*)&addrs[i], &len) != 0)
            return -1;
    }
    return 0;
}
static int attach(int child) {
    /* socks[0] belongs to the parent, socks[1] to the child. */
    close(socks[!child]);
    int fd = socks[child];
    if (connect(fd, (struct sockaddr*)&addrs[!child], sizeof addrs[0]) != 0) return -1;
    fds[0][0] = fds[0][1] = fds[1][0] = fds[1][1] = fd;
    return 0;
}
static int d_send(int dir, const unsigned char* buf, size_t n) {
    ssize_t r;
    do
        r = send(fds[dir][1], buf, n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)n ? 0 : -1;
}
static long d_recv(int dir, unsigned char* buf, size_t cap) {
    ssize_t r;
    do
        r = recv(fds[dir][0], buf, cap, 0);
    while (r < 0 && errno == EINTR);
    return (long)r;
}
static const struct peer_ops ops = {"raw-udp", "raw",  "udp",  65507, 1,   setup,
                                    attach,    d_send, d_recv, NULL,  NULL};
#endif

int main(int argc, char** argv) {
    (void)msg_size;
    return pd_run(&ops, argc, argv);
}
