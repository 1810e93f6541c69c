// mq:/name — a POSIX message queue as a channel. Each message keeps its
// boundaries natively; the channel's tag is the mq priority. The receiver
// creates the queue by default (create=open_or_create), the sender opens it.
#include <poll.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "channels/factories.hpp"
#include "detail/syscall.hpp"
#include "ipckit/error.hpp"
#include "ipckit/mqueue.hpp"

namespace ipckit::detail {
namespace {

// How long one wait lasts before checking whether the queue was removed:
// mq_unlink wakes nobody, so a blocked receiver would never notice otherwise.
constexpr milliseconds removal_check_interval{100};

class mq_channel final : public channel {
  public:
    mq_channel(message_queue q, std::string name, unsigned priority, std::chrono::nanoseconds spin)
        : q_(std::move(q)), name_(std::move(name)), priority_(priority) {
        max_ = static_cast<std::size_t>(q_.attributes().message_size);
        // A receiver that busy-polls tries the queue with a deadline already
        // passed, which returns at once whatever the descriptor's O_NONBLOCK
        // (a flag of the open description, shared after fork).
        if (spin.count() > 0 && spinning_can_help()) spin_ = adaptive_spin(spin);
    }

    io_status send(std::string_view payload, const deadline& until,
                   std::optional<long> tag) override {
        unsigned prio = priority_;
        if (tag) {
            if (*tag < 0 || *tag >= static_cast<long>(mq_priority_limit))
                throw_error(EINVAL, "mq_send", name_,
                            "priority (tag) must be 0.." + std::to_string(mq_priority_limit - 1) +
                                ", got " + std::to_string(*tag));
            prio = static_cast<unsigned>(*tag);
        }
        for (;;) {
            if (q_.send_until(payload, prio, slice(until))) return io_status::ok;
            if (q_.removed()) return io_status::closed;  // no receiver can open it any more
            if (until.expired()) return io_status::timed_out;
        }
    }

    io_status receive(message& out, const deadline& until) override {
        // Tries land in spin_buf_: a failed one clears its buffer, and
        // out.payload keeps the size that lets the waiting receive below
        // take the message straight into it.
        std::optional<unsigned> spun;
        if (spin_.run(until, [&] { return (spun = q_.try_receive(spin_buf_)).has_value(); })) {
            std::swap(out.payload, spin_buf_);
            out.tag = static_cast<long>(*spun);
            return io_status::ok;
        }
        for (;;) {
            if (auto prio = q_.receive_until(out.payload, slice(until))) {
                out.tag = static_cast<long>(*prio);
                return io_status::ok;
            }
            // Empty and unlinked: no sender can open it any more.
            if (q_.removed()) return io_status::closed;
            if (until.expired()) return io_status::timed_out;
        }
    }

    std::size_t max_message() const noexcept override { return max_; }
    const std::string& name() const noexcept override { return name_; }
    int poll_fd() const noexcept override { return q_.native_handle(); }

  private:
    static deadline slice(const deadline& until) {
        auto step = deadline::after(removal_check_interval);
        if (until.is_never() || step.when() < until.when()) return step;
        return until;
    }

    message_queue q_;
    std::string name_;
    unsigned priority_;
    std::size_t max_ = 0;
    adaptive_spin spin_;
    std::string spin_buf_;
};

// mq_open ignores the attributes when the queue exists: a URL that asks for
// a size the existing queue does not have is refused now, not at the first
// message that does not fit.
void check_geometry(const message_queue& q, std::optional<std::uint64_t> maxmsg,
                    std::optional<std::uint64_t> msgsize, const std::string& object) {
    if (!maxmsg && !msgsize) return;
    const mq_attributes a = q.attributes();
    const bool differs = (maxmsg && static_cast<long>(*maxmsg) != a.max_messages) ||
                         (msgsize && static_cast<long>(*msgsize) != a.message_size);
    if (differs)
        throw_error(EEXIST, "mq_open", object,
                    "the queue exists with maxmsg=" + std::to_string(a.max_messages) +
                        " msgsize=" + std::to_string(a.message_size) +
                        ", not what the URL asks; drop maxmsg/msgsize or remove the queue");
}

}  // namespace

std::unique_ptr<channel> open_mq_channel(const url& u, channel_role role,
                                         const open_options& options) {
    bool owner = options.endpoint == endpoint_mode::listen ||
                 (options.endpoint == endpoint_mode::automatic && role == channel_role::receiver);
    mq_options o;
    o.mode = u.create().value_or(owner ? open_mode::open_or_create : open_mode::open_only);
    o.permissions = u.permissions(0600);
    o.read = role == channel_role::receiver;
    o.write = role == channel_role::sender;
    auto maxmsg = u.unsigned_param("maxmsg");
    auto msgsize = u.unsigned_param("msgsize");
    if (!msgsize && u.param("max_message")) msgsize = u.max_message(0);
    if (maxmsg || msgsize) {
        // One given: the other takes the system default, as mq_open cannot mix.
        mq_limits lim = mq_limits::read();
        o.max_messages = maxmsg ? static_cast<long>(*maxmsg) : std::max(lim.msg_default, 1L);
        o.message_size = msgsize ? static_cast<long>(*msgsize) : std::max(lim.msgsize_default, 1L);
    }
    unsigned priority = static_cast<unsigned>(u.unsigned_param("priority").value_or(0));
    const auto spin = o.read ? read_spin(u) : std::chrono::nanoseconds{0};  // before creating

    // A sender that starts before the receiver may wait for the queue to
    // appear, but only as long as the caller's open deadline allows.
    for (;;) {
        try {
            auto q = message_queue::open(u.path, o);
            check_geometry(q, maxmsg, u.unsigned_param("msgsize"), u.text);
            return std::make_unique<mq_channel>(std::move(q), u.text, priority, spin);
        } catch (const error& e) {
            if (e.code().value() != ENOENT || options.open_deadline.is_never() ||
                options.open_deadline.expired())
                throw;
        }
        std::this_thread::sleep_for(
            std::min<nanoseconds>(milliseconds(20), options.open_deadline.remaining()));
    }
}

}  // namespace ipckit::detail
