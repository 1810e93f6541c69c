// System V IPC: keys (shared by message queues, shared memory and semaphores)
// and message queues.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>

#include "ipckit/channel.hpp"  // io_status
#include "ipckit/deadline.hpp"
#include "ipckit/url.hpp"  // open_mode

namespace ipckit {

/// A System V IPC key: a number, ftok(path, id), or IPC_PRIVATE.
class sysv_key {
  public:
    /// IPC_PRIVATE: a new object only this process (and its children) can find.
    static sysv_key private_key() noexcept { return sysv_key(0); }
    /// An explicit key (must not be 0 = IPC_PRIVATE).
    static sysv_key from_number(key_t key);
    /// ftok(path, id): path must exist; id is the low 8 bits (1..255; 0 is refused
    /// because ftok's behaviour with id 0 is unspecified). Throws ipckit::error
    /// ("ftok /path: No such file or directory").
    static sysv_key from_path(const std::string& path, int id = 1);

    key_t value() const noexcept { return key_; }
    bool is_private() const noexcept { return key_ == 0; }
    /// "0x0000abcd" (as ipcs prints it) or "IPC_PRIVATE".
    std::string to_string() const;

  private:
    explicit sysv_key(key_t k) noexcept : key_(k) {}
    key_t key_;
};

/// IPC_STAT of a System V message queue.
struct sysv_msg_stat {
    std::size_t messages = 0;    ///< msg_qnum: messages waiting
    std::size_t bytes = 0;       ///< __msg_cbytes: payload bytes waiting
    std::size_t max_bytes = 0;   ///< msg_qbytes: capacity in bytes
    pid_t last_send_pid = 0;     ///< msg_lspid
    pid_t last_receive_pid = 0;  ///< msg_lrpid
    std::time_t last_send = 0;   ///< msg_stime (0 = never)
    std::time_t last_receive = 0;
    std::time_t last_change = 0;
    uid_t owner_uid = 0;
    unsigned mode = 0;  ///< permission bits
};

/// One received System V message.
struct sysv_message {
    long type = 0;     ///< the sender's type (> 0)
    std::string data;  ///< the payload bytes
};

/// The largest message msgsnd accepts (/proc/sys/kernel/msgmax; 8192 if unreadable).
std::size_t sysv_msg_max();

/// A System V message queue (msgget). Not a descriptor: the id stays valid
/// until the queue is removed, and copying the handle is harmless. Messages
/// carry a type (> 0) used for selective receive.
class sysv_message_queue {
  public:
    sysv_message_queue() noexcept = default;

    /// msgget(key, ...): create_only adds IPC_CREAT|IPC_EXCL, open_or_create
    /// IPC_CREAT; a private key always creates a new queue. permissions
    /// default to 0600.
    static sysv_message_queue open(sysv_key key, open_mode mode = open_mode::open_or_create,
                                   unsigned permissions = 0600);
    /// Wraps an existing id (e.g. from ipcs or a parent); not checked until used.
    static sysv_message_queue from_id(int id) noexcept {
        return sysv_message_queue(id, sysv_key::private_key());
    }
    /// Removes the queue with this key (IPC_RMID); false if there is none.
    static bool remove(sysv_key key);

    int id() const noexcept { return id_; }
    bool valid() const noexcept { return id_ >= 0; }
    /// "sysvmq:0x0000abcd" / "sysvmq:id=5" (for messages).
    std::string describe() const;

    /// Sends data with type (must be > 0). Waits while the queue is full until
    /// the deadline; the queue may hold at most stat().max_bytes. Returns ok,
    /// timed_out, or closed if the queue was removed. A message larger than
    /// sysv_msg_max() or the queue's capacity throws ipckit::error(EMSGSIZE).
    io_status send(long type, std::string_view data, const deadline& until = deadline::never());

    /// Receives a message selected by type as msgrcv defines it:
    ///   type == 0   the oldest message of any type;
    ///   type  > 0   the oldest message of exactly that type;
    ///   type  < 0   the oldest message of the lowest type <= -type.
    /// Returns ok, timed_out, or closed when the queue is removed (EIDRM), also
    /// while blocked. System V has no timed receive: a finite deadline polls
    /// with IPC_NOWAIT (64 yields, then sleeps of 5 us doubling up to 10 ms), so
    /// a message may wait up to 10 ms before it is noticed; never() blocks in
    /// the kernel.
    io_status receive(sysv_message& out, long type = 0, const deadline& until = deadline::never());
    /// Same, never waits.
    io_status try_receive(sysv_message& out, long type = 0) {
        return receive(out, type, deadline::immediate());
    }

    sysv_msg_stat stat() const;
    /// Sets msg_qbytes (IPC_SET); raising it above msgmnb needs CAP_SYS_RESOURCE.
    void set_max_bytes(std::size_t bytes);
    /// Removes the queue (IPC_RMID): every blocked sender and receiver wakes
    /// with EIDRM. Returns false if it was already gone.
    bool remove();

  private:
    sysv_message_queue(int id, sysv_key key) noexcept : id_(id), key_(key) {}
    int id_ = -1;
    sysv_key key_ = sysv_key::private_key();
};

/// Removes a System V queue on scope exit (errors ignored).
class sysv_msg_remover {
  public:
    explicit sysv_msg_remover(int id) noexcept : id_(id) {}
    explicit sysv_msg_remover(const sysv_message_queue& q) noexcept : id_(q.id()) {}
    sysv_msg_remover(const sysv_msg_remover&) = delete;
    sysv_msg_remover& operator=(const sysv_msg_remover&) = delete;
    ~sysv_msg_remover();
    void release() noexcept { id_ = -1; }

  private:
    int id_;
};

}  // namespace ipckit
