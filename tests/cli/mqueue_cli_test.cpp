// `ipckit send/recv` over mq: and sysvmq:, and `ipckit ls` / `ipckit rm`,
// driven end to end through the built binary.
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/mqueue.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/sysv.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;
using ipckit::test::run_ipckit;

namespace {

std::string qname() {
    return std::string("/").append(test::unique_name("ipckit-mqcli"));
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
    std::vector<nlohmann::json> v;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) v.push_back(nlohmann::json::parse(line));
    return v;
}

// A System V key no queue uses; removed (if created) on scope exit.
struct fresh_sysv_key {
    key_t key;
    fresh_sysv_key() {
        static std::mt19937 rng{std::random_device{}()};
        for (;;) {
            key = static_cast<key_t>(0x1e000000 | (rng() & 0xffffff));
            try {
                sysv_message_queue::open(sysv_key::from_number(key), open_mode::create_only)
                    .remove();
                return;
            } catch (const ipckit::error& e) {
                if (e.code().value() != EEXIST) throw;
            }
        }
    }
    ~fresh_sysv_key() {
        try {
            sysv_message_queue::remove(sysv_key::from_number(key));
        } catch (...) {
        }
    }
    std::string url() const { return "sysvmq:" + std::to_string(key); }
};

}  // namespace

TEST(MqueueCli, PriorityOrderEndToEnd) {
    std::string name = qname();
    mq_remover rm(name);
    // The first send creates the queue; the others open it.
    auto r = run_ipckit(
        {"send", "mq:" + name + "?create=open_or_create&maxmsg=8&msgsize=64", "--tag", "1", "low"});
    ASSERT_TRUE(r.status.success()) << r.err;
    ASSERT_TRUE(run_ipckit({"send", "mq:" + name, "--tag", "9", "high"}).status.success());
    ASSERT_TRUE(
        run_ipckit({"send", "mq:" + name, "--tag", "5", "mid-a", "mid-b"}).status.success());
    r = run_ipckit({"recv", "mq:" + name, "-n", "4", "--json", "--timeout", "10s"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto msgs = json_lines(r.out);
    ASSERT_EQ(msgs.size(), 4u) << r.out;
    EXPECT_EQ(msgs[0]["payload"], "high");
    EXPECT_EQ(msgs[0]["tag"], 9);
    EXPECT_EQ(msgs[0]["priority"], 9);
    EXPECT_EQ(msgs[1]["payload"], "mid-a");
    EXPECT_EQ(msgs[2]["payload"], "mid-b");
    EXPECT_EQ(msgs[2]["tag"], 5);
    EXPECT_EQ(msgs[3]["payload"], "low");
    EXPECT_EQ(msgs[3]["tag"], 1);
}

TEST(MqueueCli, RecvOwnsTheQueueAndPrintsPriority) {
    std::string name = qname();
    mq_remover rm(name);
    spawn_options so;
    so.out = stdio_mode::pipe;
    auto recv = spawn({test::ipckit_binary(), "recv", "mq:" + name + "?maxmsg=4&msgsize=32", "-n",
                       "2", "--timeout", "20s"},
                      so);
    // The sender waits (up to its timeout) for the receiver to create the queue.
    auto r =
        run_ipckit({"send", "mq:" + name, "--priority", "3", "--timeout", "10s", "one", "two"});
    EXPECT_TRUE(r.status.success()) << r.err;
    auto st = recv.wait_until(deadline::after(20s));
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->success()) << st->describe();
    std::string out;
    char buf[256];
    for (ssize_t n; (n = ::read(recv.stdout_pipe().get(), buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        ASSERT_GT(n, 0);
        out.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(out, "[3] one\n[3] two\n");
}

TEST(MqueueCli, BadInputAndErrors) {
    auto r = run_ipckit({"send", "mq:noslash", "x"});
    EXPECT_EQ(r.status.code, 2) << r.err;
    EXPECT_NE(r.err.find("must start with '/'"), std::string::npos) << r.err;

    std::string name = qname();
    mq_remover rm(name);
    r = run_ipckit({"send", "mq:" + name, "x"});  // nobody created it
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("ipckit: mq_open " + name + ": No such file or directory"),
              std::string::npos)
        << r.err;

    ASSERT_TRUE(
        run_ipckit({"send", "mq:" + name + "?create=open_or_create&maxmsg=1&msgsize=8", "12345678"})
            .status.success());
    r = run_ipckit({"send", "mq:" + name, "123456789"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("message is 9 bytes, queue msgsize is 8"), std::string::npos) << r.err;
    r = run_ipckit({"send", "mq:" + name, "--timeout", "50ms", "full"});  // maxmsg 1, full
    EXPECT_EQ(r.status.code, 3) << r.err;

    r = run_ipckit({"recv", "mq:" + name + "?create=create_only", "--timeout", "1s"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("File exists"), std::string::npos) << r.err;

    // Sizes the existing queue does not have are refused at open, not at the
    // first message that does not fit.
    r = run_ipckit({"recv", "mq:" + name + "?maxmsg=8&msgsize=4096", "--timeout", "1s"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("exists with maxmsg=1 msgsize=8"), std::string::npos) << r.err;
    r = run_ipckit({"recv", "mq:" + name + "?maxmsg=1&msgsize=8", "-n", "1", "--timeout", "1s"});
    EXPECT_TRUE(r.status.success()) << r.err;  // the same sizes are fine

    // A bad --priority is a usage error found before anything is created.
    const std::string other = qname();
    mq_remover rm_other(other);
    r = run_ipckit({"send", "mq:" + other + "?create=open_or_create", "--priority", "40000", "x"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("--priority must be 0..32767, got 40000"), std::string::npos) << r.err;
    EXPECT_FALSE(message_queue::remove(other)) << "a refused send created the queue";
    r = run_ipckit({"send", "fifo:/tmp/never-made", "--tag", "3", "x"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("--tag applies to mq: (priority) and sysvmq: (type) only"),
              std::string::npos)
        << r.err;
    // maxmsg=0 and '.' / '..' are URL errors (exit 2), like every other bad name.
    for (const char* bad : {"mq:/q?maxmsg=0&msgsize=64", "mq:/..", "mq:/."}) {
        r = run_ipckit({"recv", bad, "--timeout", "1s"});
        EXPECT_EQ(r.status.code, 2) << bad << ": " << r.err;
    }
    r = run_ipckit({"recv", "mq:" + other, "-n", "-1"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_NE(r.err.find("must be 0 or more"), std::string::npos) << r.err;
}

TEST(SysvMqCli, TypesEndToEnd) {
    fresh_sysv_key k;
    ASSERT_TRUE(run_ipckit({"send", k.url() + "?create=open_or_create", "--type", "3", "three"})
                    .status.success());
    ASSERT_TRUE(run_ipckit({"send", k.url(), "--type", "1", "one"}).status.success());
    ASSERT_TRUE(run_ipckit({"send", k.url() + "?type=2", "two"}).status.success());
    // Lowest type <= 2 first, then any.
    auto r = run_ipckit({"recv", k.url() + "?type=-2", "-n", "2", "--json", "--timeout", "10s"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto msgs = json_lines(r.out);
    ASSERT_EQ(msgs.size(), 2u) << r.out;
    EXPECT_EQ(msgs[0]["tag"], 1);
    EXPECT_EQ(msgs[0]["type"], 1);
    EXPECT_EQ(msgs[0]["payload"], "one");
    EXPECT_EQ(msgs[1]["tag"], 2);
    r = run_ipckit({"recv", k.url(), "-n", "1", "--timeout", "10s"});
    ASSERT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "[3] three\n");
    r = run_ipckit({"recv", k.url(), "--timeout", "100ms"});
    EXPECT_EQ(r.status.code, 3);

    r = run_ipckit({"send", k.url(), "--type", "0", "bad"});
    EXPECT_EQ(r.status.code, 2);  // a usage error, found before the queue is opened
    EXPECT_NE(r.err.find("must be > 0"), std::string::npos) << r.err;
}

TEST(SysvMqCli, RecvEndsWhenQueueRemoved) {
    fresh_sysv_key k;
    auto recv = spawn({test::ipckit_binary(), "recv", k.url()});
    // Wait until the receiver has created the queue, then remove it.
    std::optional<sysv_message_queue> q;
    for (auto until = deadline::after(10s); !q && !until.expired();) {
        try {
            q = sysv_message_queue::open(sysv_key::from_number(k.key), open_mode::open_only);
        } catch (const ipckit::error&) {
            std::this_thread::sleep_for(10ms);
        }
    }
    ASSERT_TRUE(q) << "recv did not create the queue";
    EXPECT_EQ(q->stat().mode, 0600u);
    EXPECT_TRUE(q->remove());
    auto st = recv.wait_until(deadline::after(10s));
    ASSERT_TRUE(st) << "recv kept waiting on a removed queue";
    EXPECT_TRUE(st->success()) << st->describe();  // closed = end of stream
}

TEST(LsRmCli, ListsAndRemovesSysvQueue) {
    fresh_sysv_key k;
    auto q = sysv_message_queue::open(sysv_key::from_number(k.key));
    ASSERT_EQ(q.send(1, "abc"), io_status::ok);
    auto r = run_ipckit({"ls", "--json", "--kind", "sysvmq"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto j = nlohmann::json::parse(r.out);
    bool found = false;
    std::string key_hex = sysv_key::from_number(k.key).to_string();
    for (const auto& o : j["objects"]) {
        EXPECT_EQ(o["kind"], "sysvmq");
        if (o["url"] != "sysvmq:" + key_hex) continue;
        found = true;
        EXPECT_EQ(o["mode"], "0600");
        EXPECT_EQ(o["messages"], 1);
        EXPECT_EQ(o["size"], 3);
        EXPECT_EQ(o["uid"], ::geteuid());
    }
    EXPECT_TRUE(found) << r.out;

    r = run_ipckit({"rm", "sysvmq:" + key_hex});
    EXPECT_TRUE(r.status.success()) << r.err;
    sysv_message m;
    EXPECT_EQ(q.try_receive(m), io_status::closed);
    r = run_ipckit({"rm", "sysvmq:" + key_hex});
    EXPECT_EQ(r.status.code, 1);
}

TEST(LsRmCli, RemovesFifoAndMqButRefusesWrongKind) {
    test::scoped_unlink fifo(test::unique_path("ipckit-lsfifo"));
    ASSERT_EQ(::mkfifo(fifo.path().c_str(), 0600), 0);
    test::scoped_unlink plain(test::unique_path("ipckit-lsfile"));
    {
        std::FILE* f = std::fopen(plain.path().c_str(), "w");
        ASSERT_TRUE(f);
        std::fclose(f);
    }
    std::string name = qname();
    mq_remover rm(name);
    message_queue::open(name, mq_options{.max_messages = 1, .message_size = 8});

    auto r = run_ipckit({"ls", "--json", "--kind", "fifo", "--dir", "/tmp"});
    ASSERT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("\"fifo:" + fifo.path() + "\""), std::string::npos) << r.out;

    r = run_ipckit({"rm", "fifo:" + plain.path(), "fifo:" + fifo.path(), "mq:" + name});
    EXPECT_EQ(r.status.code, 1);  // the plain file was refused...
    EXPECT_NE(r.err.find("not a FIFO"), std::string::npos) << r.err;
    EXPECT_EQ(::access(plain.path().c_str(), F_OK), 0);
    EXPECT_NE(::access(fifo.path().c_str(), F_OK), 0);  // ...the others were removed
    EXPECT_FALSE(message_queue::remove(name));

    r = run_ipckit({"rm", "tcp://127.0.0.1:1"});
    EXPECT_NE(r.status.code, 0);
}

TEST(LsRmCli, ListsPosixQueuesFromMqueueFilesystem) {
    // /dev/mqueue may not be mounted (containers): mount the mqueue filesystem
    // in a private mount namespace of a child and point ls at it.
    std::string name = qname();
    mq_remover rm(name);
    auto q = message_queue::open(name, mq_options{.max_messages = 2, .message_size = 16});
    q.send("hello");
    char dir_template[] = "/tmp/ipckit-mqfs-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    std::string dir = dir_template;
    struct rmdir_on_exit {
        std::string d;
        ~rmdir_on_exit() { ::rmdir(d.c_str()); }
    } cleanup{dir};
    test::forked_child child([&] {
        if (::unshare(CLONE_NEWNS) != 0) return 77;
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
        if (::mount("mqueue", dir.c_str(), "mqueue", 0, nullptr) != 0) return 77;
        ::setenv("IPCKIT_MQUEUE_DIR", dir.c_str(), 1);
        auto r = run_ipckit({"ls", "--json", "--kind", "mq"});
        if (!r.status.success()) return 1;
        auto j = nlohmann::json::parse(r.out);
        for (const auto& o : j["objects"]) {
            if (o["name"] != name) continue;
            if (o["url"] != "mq:" + name || o["mode"] != "0600" || o["messages"] != 1 ||
                o["size"] != 5)
                return 3;
            return 0;
        }
        return 2;
    });
    auto st = child.wait();
    ASSERT_TRUE(st);
    if (st->exited && st->code == 77) GTEST_SKIP() << "cannot mount an mqueue filesystem here";
    EXPECT_TRUE(st->success()) << st->describe();
}

TEST(LsRmCli, ListsPosixShmWithAttachedCountAndAbstractSockets) {
    std::string shm_name = std::string("/").append(test::unique_name("ipckit-lsshm"));
    int fd = ::shm_open(shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    struct shm_cleanup {
        std::string n;
        int fd;
        ~shm_cleanup() {
            ::shm_unlink(n.c_str());
            ::close(fd);
        }
    } cleanup{shm_name, fd};
    ASSERT_EQ(::ftruncate(fd, 4096), 0);
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED);

    // An abstract Unix socket: it has no file, only an entry in /proc/net/unix.
    std::string abstract = test::unique_name("ipckit-lsabs");
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, abstract.data(), abstract.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract.size());
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), len), 0);
    ASSERT_EQ(::listen(s, 1), 0);

    auto r =
        run_ipckit({"ls", "--json", "--kind", "shm", "--kind", "unix", "--dir", "/nonexistent"});
    ::munmap(p, 4096);
    ::close(s);
    ASSERT_TRUE(r.status.success()) << r.err;
    auto j = nlohmann::json::parse(r.out);
    bool shm_found = false, sock_found = false;
    for (const auto& o : j["objects"]) {
        if (o["name"] == shm_name) {
            shm_found = true;
            EXPECT_EQ(o["kind"], "shm");
            EXPECT_EQ(o["size"], 4096);
            EXPECT_EQ(o["mode"], "0600");
            EXPECT_EQ(o["attached"], 1);  // this test process maps it
        }
        if (o["name"] == "@" + abstract) {
            sock_found = true;
            EXPECT_EQ(o["kind"], "unix");
            EXPECT_NE(o["detail"].get<std::string>().find("listening"), std::string::npos);
        }
    }
    EXPECT_TRUE(shm_found) << r.out;
    EXPECT_TRUE(sock_found) << r.out;

    r = run_ipckit({"rm", "shm:" + shm_name});
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_LT(::shm_open(shm_name.c_str(), O_RDONLY | O_CLOEXEC, 0), 0);
    r = run_ipckit({"rm", "unix:@" + abstract});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.err.find("abstract"), std::string::npos) << r.err;
}

// System V segments and semaphore sets, IPC_PRIVATE objects and POSIX named
// semaphores: listed with the name `ipckit rm` takes, and removed by it.
TEST(LsRmCli, ListsAndRemovesSegmentsSemaphoresAndPrivateObjects) {
    fresh_sysv_key k;  // a key no object uses
    const int keyed_shm = ::shmget(k.key, 4096, IPC_CREAT | IPC_EXCL | 0600);
    ASSERT_GE(keyed_shm, 0);
    const int private_shm = ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    ASSERT_GE(private_shm, 0);
    const int sem_set = ::semget(k.key, 2, IPC_CREAT | IPC_EXCL | 0600);
    ASSERT_GE(sem_set, 0);
    const int private_mq = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    ASSERT_GE(private_mq, 0);
    struct cleanup {
        int a, b, c, d;
        ~cleanup() {
            ::shmctl(a, IPC_RMID, nullptr);
            ::shmctl(b, IPC_RMID, nullptr);
            ::semctl(c, 0, IPC_RMID);
            ::msgctl(d, IPC_RMID, nullptr);
        }
    } guard{keyed_shm, private_shm, sem_set, private_mq};
    const std::string sem_name = std::string("/").append(test::unique_name("ipckit-lssem"));
    named_semaphore::remove(sem_name);
    { auto sem = named_semaphore::open(sem_name, 1); }
    struct sem_cleanup {
        std::string n;
        ~sem_cleanup() { named_semaphore::remove(n); }
    } sem_guard{sem_name};

    const std::string key_hex = sysv_key::from_number(k.key).to_string();
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"sysvshm", "sysvshm:" + key_hex}, {"sysvshm", "sysvshm:id=" + std::to_string(private_shm)},
        {"sysvsem", "sysvsem:" + key_hex}, {"sysvmq", "sysvmq:id=" + std::to_string(private_mq)},
        {"sem", "sem:" + sem_name},
    };
    auto r = run_ipckit({"ls", "--json", "--kind", "sysvshm", "--kind", "sysvsem", "--kind",
                         "sysvmq", "--kind", "sem", "--kind", "shm"});
    ASSERT_TRUE(r.status.success()) << r.err;
    auto j = nlohmann::json::parse(r.out);
    for (const auto& [kind, url] : expected) {
        bool found = false;
        for (const auto& o : j["objects"])
            if (o.value("url", "") == url) {
                found = true;
                EXPECT_EQ(o["kind"], kind) << url;
            }
        EXPECT_TRUE(found) << url << " not in " << r.out;
    }
    for (const auto& o : j["objects"])  // a semaphore is not a shm object
        EXPECT_NE(o["name"], "/sem." + sem_name.substr(1)) << r.out;

    for (const auto& [kind, url] : expected) {
        r = run_ipckit({"rm", url});
        EXPECT_TRUE(r.status.success()) << url << ": " << r.err;
    }
    EXPECT_LT(::shmget(k.key, 0, 0), 0);
    EXPECT_LT(::semget(k.key, 0, 0), 0);
    EXPECT_FALSE(named_semaphore::remove(sem_name));
    r = run_ipckit({"rm", "sysvshm:id=" + std::to_string(private_shm)});
    EXPECT_EQ(r.status.code, 1);  // gone already
    r = run_ipckit({"rm", "sysvshm:nonsense"});
    EXPECT_EQ(r.status.code, 2) << r.err;
}
