// sysvmq:KEY or sysvmq:/path — a System V message queue as a channel. The
// channel's tag is the message type: the sender's type= (default 1) or the
// tag given to send(); the receiver's type= selects as msgrcv does (0 = any,
// n = exactly n, -n = lowest type <= n). The receiver creates the queue by
// default, the sender opens it. A removed queue (EIDRM) reads as closed.
#include <thread>

#include "channels/factories.hpp"
#include "ipckit/error.hpp"
#include "ipckit/sysv.hpp"

namespace ipckit::detail {
namespace {

class sysvmq_channel final : public channel {
  public:
    sysvmq_channel(sysv_message_queue q, std::string name, long type)
        : q_(q), name_(std::move(name)), type_(type) {}

    io_status send(std::string_view payload, const deadline& until,
                   std::optional<long> tag) override {
        long type = tag.value_or(type_ > 0 ? type_ : 1);
        if (type <= 0)
            throw_error(EINVAL, "msgsnd", name_,
                        "message type (tag) must be > 0, got " + std::to_string(type));
        return q_.send(type, payload, until);
    }

    io_status receive(message& out, const deadline& until) override {
        io_status s = q_.receive(buf_, type_, until);
        if (s == io_status::ok) {
            out.payload.swap(buf_.data);
            out.tag = buf_.type;
        }
        return s;
    }

    std::size_t max_message() const noexcept override { return sysv_msg_max_; }
    const std::string& name() const noexcept override { return name_; }

  private:
    sysv_message_queue q_;
    std::string name_;
    long type_;
    sysv_message buf_;
    std::size_t sysv_msg_max_ = sysv_msg_max();
};

}  // namespace

std::unique_ptr<channel> open_sysvmq_channel(const url& u, channel_role role,
                                             const open_options& options) {
    bool owner = options.endpoint == endpoint_mode::listen ||
                 (options.endpoint == endpoint_mode::automatic && role == channel_role::receiver);
    open_mode mode = u.create().value_or(owner ? open_mode::open_or_create : open_mode::open_only);
    long type =
        static_cast<long>(u.signed_param("type").value_or(role == channel_role::sender ? 1 : 0));
    if (role == channel_role::sender && type <= 0)
        throw_error(EINVAL, "open", u.text,
                    "a sender's type must be > 0, got " + std::to_string(type));

    for (;;) {
        try {
            sysv_key key = u.sysv_key
                               ? sysv_key::from_number(static_cast<key_t>(*u.sysv_key))
                               : sysv_key::from_path(
                                     u.path, static_cast<int>(u.unsigned_param("id").value_or(1)));
            auto q = sysv_message_queue::open(key, mode, u.permissions(0600));
            return std::make_unique<sysvmq_channel>(q, u.text, type);
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
