#include "ipckit/sysv.hpp"

#include <sched.h>

#include <sys/ipc.h>
#include <sys/msg.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {

sysv_key sysv_key::from_number(key_t key) {
    if (key == IPC_PRIVATE)
        throw_error(EINVAL, "sysv key", "0", "key 0 is IPC_PRIVATE; use sysv_key::private_key()");
    return sysv_key(key);
}

sysv_key sysv_key::from_path(const std::string& path, int id) {
    if (id < 1 || id > 255)
        throw_error(EINVAL, "ftok", path, "id must be 1..255, got " + std::to_string(id));
    key_t k = ::ftok(path.c_str(), id);
    if (k == -1) throw_errno("ftok", path);
    return sysv_key(k);
}

std::string sysv_key::to_string() const {
    if (key_ == IPC_PRIVATE) return "IPC_PRIVATE";
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(key_));
    return buf;
}

// ---- System V message queues ------------------------------------------------

namespace {

// System V has no timed msgsnd/msgrcv: with a finite deadline we poll with
// IPC_NOWAIT. The first tries only yield the CPU (a reply to a request usually
// arrives within microseconds), then sleeps start at 5 us and double up to
// 10 ms, never past the deadline. A message that arrives while we sleep waits
// at most the current sleep (<= 10 ms); with deadline::never the kernel's own
// blocking msgrcv/msgsnd is used instead.
class backoff {
  public:
    // Pauses before the next try; false once the deadline has passed.
    bool wait(const deadline& until) {
        if (until.expired()) return false;
        if (yields_left_ > 0) {
            --yields_left_;
            sched_yield();
            return true;
        }
        auto pause = std::min<nanoseconds>(step_, until.remaining());
        std::this_thread::sleep_for(pause);
        step_ = std::min<nanoseconds>(step_ * 2, milliseconds(10));
        return true;
    }

  private:
    int yields_left_ = 64;
    nanoseconds step_ = std::chrono::microseconds(5);
};

// True if id no longer names a queue (removed before or during our call).
bool queue_gone(int id) noexcept {
    msqid_ds ds{};
    if (::msgctl(id, IPC_STAT, &ds) == 0) return false;
    return errno == EINVAL || errno == EIDRM;
}

}  // namespace

std::size_t sysv_msg_max() {
    static const std::size_t value = [] {
        const long v = detail::read_proc_long("/proc/sys/kernel/msgmax");
        return v > 0 ? static_cast<std::size_t>(v) : std::size_t{8192};
    }();
    return value;
}

sysv_message_queue sysv_message_queue::open(sysv_key key, open_mode mode, unsigned permissions) {
    int flags = static_cast<int>(permissions & 0777);
    if (mode != open_mode::open_only || key.is_private()) flags |= IPC_CREAT;
    if (mode == open_mode::create_only) flags |= IPC_EXCL;
    int id = ::msgget(key.value(), flags);
    if (id < 0) {
        int err = errno;
        std::string detail;
        if (err == ENOENT)
            detail = "no queue with this key (open_only)";
        else if (err == EEXIST)
            detail = "a queue with this key already exists (create_only)";
        else if (err == ENOSPC)
            detail = "system limit reached: " + detail::proc_setting("/proc/sys/kernel/msgmni");
        throw_error(err, "msgget", "sysvmq:" + key.to_string(), detail);
    }
    return sysv_message_queue(id, key);
}

bool sysv_message_queue::remove(sysv_key key) {
    if (key.is_private())
        throw_error(EINVAL, "msgctl", "IPC_PRIVATE", "a private key names no queue");
    int id = ::msgget(key.value(), 0);
    if (id < 0) {
        if (errno == ENOENT) return false;
        throw_errno("msgget", "sysvmq:" + key.to_string());
    }
    return from_id(id).remove();
}

std::string sysv_message_queue::describe() const {
    if (!key_.is_private()) return "sysvmq:" + key_.to_string();
    return "sysvmq:id=" + std::to_string(id_);
}

io_status sysv_message_queue::send(long type, std::string_view data, const deadline& until) {
    if (type <= 0)
        throw_error(EINVAL, "msgsnd", describe(),
                    "message type must be > 0, got " + std::to_string(type));
    if (data.size() > sysv_msg_max())
        throw_error(EMSGSIZE, "msgsnd", describe(),
                    "message is " + std::to_string(data.size()) +
                        " bytes, msgmax (/proc/sys/kernel/msgmax) is " +
                        std::to_string(sysv_msg_max()));
    // struct msgbuf { long mtype; char mtext[]; } built in a long-aligned buffer.
    std::vector<long> buf(1 + (data.size() + sizeof(long) - 1) / sizeof(long));
    buf[0] = type;
    std::memcpy(buf.data() + 1, data.data(), data.size());
    backoff pause;
    bool checked_capacity = false;
    for (;;) {
        // The first try never sleeps, so a message that can never fit is caught
        // below instead of blocking forever.
        int flags = (until.is_never() && checked_capacity) ? 0 : IPC_NOWAIT;
        if (::msgsnd(id_, buf.data(), data.size(), flags) == 0) return io_status::ok;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EIDRM || (err == EINVAL && queue_gone(id_))) return io_status::closed;
        if (err != EAGAIN) {
            errno = err;
            throw_errno("msgsnd", describe());
        }
        if (!checked_capacity) {
            std::size_t cap = stat().max_bytes;
            if (data.size() > cap)
                throw_error(EMSGSIZE, "msgsnd", describe(),
                            "message is " + std::to_string(data.size()) +
                                " bytes, the queue holds at most " + std::to_string(cap) +
                                " bytes (msg_qbytes)");
            checked_capacity = true;
            if (until.is_never()) continue;
        }
        if (!pause.wait(until)) return io_status::timed_out;
    }
}

io_status sysv_message_queue::receive(sysv_message& out, long type, const deadline& until) {
    std::size_t cap = sysv_msg_max();
    std::vector<long> buf;
    backoff pause;
    for (;;) {
        buf.resize(1 + (cap + sizeof(long) - 1) / sizeof(long));
        int flags = until.is_never() ? 0 : IPC_NOWAIT;
        ssize_t n = ::msgrcv(id_, buf.data(), cap, type, flags);
        if (n >= 0) {
            out.type = buf[0];
            out.data.assign(reinterpret_cast<const char*>(buf.data() + 1),
                            static_cast<std::size_t>(n));
            return io_status::ok;
        }
        int err = errno;
        if (err == EINTR) continue;
        if (err == EIDRM || (err == EINVAL && queue_gone(id_))) return io_status::closed;
        if (err == E2BIG) {  // msgmax was raised after we read it: grow and retry
            cap *= 2;
            continue;
        }
        if (err == ENOMSG) {
            if (!pause.wait(until)) return io_status::timed_out;
            continue;
        }
        errno = err;
        throw_errno("msgrcv", describe());
    }
}

sysv_msg_stat sysv_message_queue::stat() const {
    msqid_ds ds{};
    if (::msgctl(id_, IPC_STAT, &ds) != 0) throw_errno("msgctl IPC_STAT", describe());
    sysv_msg_stat s;
    s.messages = ds.msg_qnum;
    s.bytes = ds.__msg_cbytes;
    s.max_bytes = ds.msg_qbytes;
    s.last_send_pid = ds.msg_lspid;
    s.last_receive_pid = ds.msg_lrpid;
    s.last_send = ds.msg_stime;
    s.last_receive = ds.msg_rtime;
    s.last_change = ds.msg_ctime;
    s.owner_uid = ds.msg_perm.uid;
    s.mode = ds.msg_perm.mode & 0777;
    return s;
}

void sysv_message_queue::set_max_bytes(std::size_t bytes) {
    msqid_ds ds{};
    if (::msgctl(id_, IPC_STAT, &ds) != 0) throw_errno("msgctl IPC_STAT", describe());
    ds.msg_qbytes = bytes;
    if (::msgctl(id_, IPC_SET, &ds) != 0) {
        int err = errno;
        throw_error(err, "msgctl IPC_SET", describe(),
                    err == EPERM ? "raising msg_qbytes above /proc/sys/kernel/msgmnb needs "
                                   "CAP_SYS_RESOURCE"
                                 : "");
    }
}

bool sysv_message_queue::remove() {
    if (::msgctl(id_, IPC_RMID, nullptr) == 0) return true;
    if (errno == EINVAL || errno == EIDRM) return false;
    throw_errno("msgctl IPC_RMID", describe());
}

sysv_msg_remover::~sysv_msg_remover() {
    if (id_ >= 0) ::msgctl(id_, IPC_RMID, nullptr);
}

}  // namespace ipckit
