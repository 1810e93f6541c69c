// POSIX message queues (mq_open & co.): named, kernel-held queues of whole
// messages, delivered highest priority first. Names live under /dev/mqueue
// (when that filesystem is mounted) and outlive every process until removed.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipckit/deadline.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/url.hpp"  // open_mode

namespace ipckit {

/// System-wide limits from /proc/sys/fs/mqueue/* plus this process's
/// RLIMIT_MSGQUEUE. A value of -1 means "could not be read".
struct mq_limits {
    long msg_max = -1;            ///< largest max_messages an unprivileged caller may ask for
    long msgsize_max = -1;        ///< largest message_size an unprivileged caller may ask for
    long msg_default = -1;        ///< max_messages used when none is given
    long msgsize_default = -1;    ///< message_size used when none is given
    long queues_max = -1;         ///< queues the whole system may hold
    long long rlimit_bytes = -1;  ///< RLIMIT_MSGQUEUE: bytes of queues one user may own

    /// Reads the current values (never throws; unreadable entries stay -1).
    static mq_limits read() noexcept;
};

/// Highest priority + 1 accepted by send (Linux: 32768).
inline constexpr unsigned mq_priority_limit = 32768;

/// How to open a queue.
struct mq_options {
    open_mode mode = open_mode::open_or_create;
    /// Capacity of a queue this call creates; 0 takes the system default
    /// (/proc/sys/fs/mqueue/msg_default, msgsize_default). Ignored when opening.
    long max_messages = 0;
    long message_size = 0;
    unsigned permissions = 0600;  ///< for a queue this call creates (umask applies)
    bool read = true;             ///< open for receiving
    bool write = true;            ///< open for sending
    /// O_NONBLOCK on the descriptor; the blocking/timed calls below still
    /// wait (by polling the descriptor), only the kernel calls never sleep.
    bool nonblocking = false;
};

/// The current attributes of an open queue (mq_getattr).
struct mq_attributes {
    long max_messages = 0;
    long message_size = 0;
    long current_messages = 0;
    bool nonblocking = false;
};

/// One received message.
struct mq_message {
    std::string data;
    unsigned priority = 0;
};

/// An open POSIX message queue descriptor (move-only; closes on destruction,
/// does not remove the queue: see remove() and mq_remover).
class message_queue {
  public:
    message_queue() noexcept = default;

    /// Opens or creates the queue `name` ("/jobs"). Throws ipckit::error:
    /// EINVAL for a bad name, and for limits the error names the limit and
    /// its value ("mq_open /jobs: Invalid argument (max_messages 20 exceeds
    /// /proc/sys/fs/mqueue/msg_max = 10)").
    static message_queue open(std::string_view name, const mq_options& options = {});

    /// Removes the name (mq_unlink). Open descriptors keep working; the queue
    /// is freed when the last one closes. Returns false if there was no such queue.
    static bool remove(std::string_view name);

    /// Throws ipckit::error(EINVAL) unless name is "/x" with no other '/', and
    /// at most NAME_MAX (255) characters after the '/'.
    static void validate_name(std::string_view name);

    bool is_open() const noexcept { return fd_.valid(); }
    const std::string& name() const noexcept { return name_; }
    /// The descriptor: on Linux an mqd_t is a file descriptor that poll()
    /// reports readable (POLLIN) when a message is waiting and writable
    /// (POLLOUT) when there is room. This replaces mq_notify for event loops.
    int native_handle() const noexcept { return fd_.get(); }

    mq_attributes attributes() const;
    /// Switches O_NONBLOCK (mq_setattr).
    void set_nonblocking(bool on);
    /// True once the queue's name was removed (the inode has no links left):
    /// nobody new can open it, so a waiting receiver may give up.
    bool removed() const;

    /// Sends data with priority (0 .. mq_priority_limit-1; higher is delivered
    /// first). Blocks while the queue is full. A message larger than the
    /// queue's message_size throws ipckit::error(EMSGSIZE) naming both sizes.
    void send(std::string_view data, unsigned priority = 0);
    /// Sends only if there is room now; false if the queue is full.
    bool try_send(std::string_view data, unsigned priority = 0);
    /// Waits for room until the deadline; false on timeout.
    bool send_until(std::string_view data, unsigned priority, const deadline& until);
    bool send_for(std::string_view data, unsigned priority, nanoseconds timeout) {
        return send_until(data, priority, deadline::after(timeout));
    }

    /// Receives the oldest message of the highest priority into out (its
    /// buffer is reused) and returns its priority. Blocks while empty.
    unsigned receive(std::string& out);
    mq_message receive();
    /// nullopt if the queue is empty now.
    std::optional<unsigned> try_receive(std::string& out);
    /// nullopt if nothing arrived before the deadline.
    std::optional<unsigned> receive_until(std::string& out, const deadline& until);
    std::optional<unsigned> receive_for(std::string& out, nanoseconds timeout) {
        return receive_until(out, deadline::after(timeout));
    }

  private:
    message_queue(unique_fd fd, std::string name) noexcept
        : fd_(std::move(fd)), name_(std::move(name)) {}
    long message_size() const;

    unique_fd fd_;
    std::string name_;
    mutable long msgsize_ = 0;   // cached: it never changes after creation
    std::vector<char> scratch_;  // receive buffer after a short message
};

/// Removes a queue name on scope exit (errors ignored). For tests, examples
/// and servers that own their queue.
class mq_remover {
  public:
    explicit mq_remover(std::string name) noexcept : name_(std::move(name)) {}
    mq_remover(mq_remover&& other) noexcept : name_(std::exchange(other.name_, {})) {}
    mq_remover(const mq_remover&) = delete;
    mq_remover& operator=(const mq_remover&) = delete;
    mq_remover& operator=(mq_remover&&) = delete;
    ~mq_remover();
    /// Keeps the queue after all.
    void release() noexcept { name_.clear(); }
    const std::string& name() const noexcept { return name_; }

  private:
    std::string name_;
};

}  // namespace ipckit
