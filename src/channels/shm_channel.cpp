// shm:/name?capacity=&mode=spsc|mpmc&slot=&spin= : the shared-memory ring as a
// channel. The receiver (consumer) creates the ring by default and removes the
// name when it closes; the sender (producer) attaches, waiting for the ring to
// appear until the open deadline.
#include <algorithm>
#include <cerrno>
#include <thread>

#include "channels/factories.hpp"
#include "ipckit/error.hpp"
#include "ipckit/ring.hpp"

namespace ipckit::detail {
namespace {

constexpr std::size_t default_capacity = 1u << 20;
constexpr std::size_t default_slot = 4096;

class shm_channel final : public channel {
  public:
    shm_channel(ring r, std::string text, std::string shm_name, bool owner, std::size_t limit)
        : ring_(std::move(r)),
          text_(std::move(text)),
          shm_name_(std::move(shm_name)),
          owner_(owner),
          limit_(std::min(limit, ring_.max_message())) {}

    ~shm_channel() override {
        if (owner_) {
            try {
                shared_memory::remove(shm_name_);
            } catch (...) {  // destructors never throw
            }
        }
    }

    io_status send(std::string_view payload, const deadline& until, std::optional<long>) override {
        if (payload.size() > limit_)
            throw_error(EMSGSIZE, "send", text_,
                        "message is " + std::to_string(payload.size()) + " bytes, max_message is " +
                            std::to_string(limit_));
        return ring_.send(payload, until);
    }

    io_status receive(message& out, const deadline& until) override {
        out.tag.reset();
        return ring_.receive(out.payload, until);
    }

    std::size_t max_message() const noexcept override { return limit_; }
    const std::string& name() const noexcept override { return text_; }

  private:
    ring ring_;
    std::string text_;
    std::string shm_name_;
    bool owner_;
    std::size_t limit_;
};

// Points at the option that made the geometry invalid.
[[noreturn]] void bad_option(const url& u, std::string_view key, const std::string& why) {
    std::size_t at = u.text.find(std::string(key) + "=");
    if (at == std::string::npos) at = 0;
    throw url_error(u.text, at, at == 0 ? u.text.size() : key.size(), why);
}

ring_options options_from(const url& u) {
    ring_options o;
    auto mode = u.param("mode");
    o.kind = (mode && *mode == "mpmc") ? ring_kind::mpmc : ring_kind::spsc;
    o.permissions = u.permissions(0600);
    const std::size_t bytes = u.unsigned_param("capacity").value_or(default_capacity);
    if (o.kind == ring_kind::spsc) {
        o.capacity = bytes;
    } else {
        // mpmc: capacity is still in bytes; slots = capacity / slot.
        o.slot_size = u.unsigned_param("slot").value_or(default_slot);
        if (o.slot_size == 0) bad_option(u, "slot", "slot must be > 0");
        o.capacity = bytes / o.slot_size;
    }
    try {
        (void)ring::required_size(o);
    } catch (const std::invalid_argument& e) {
        bad_option(
            u, "capacity",
            std::string(e.what()) + (o.kind == ring_kind::mpmc
                                         ? " (mpmc: capacity / slot must be a power of two >= 2)"
                                         : " (capacity in bytes, e.g. 64k or 1M)"));
    }
    return o;
}

std::string geometry_text(ring_kind kind, std::size_t capacity, std::size_t slot) {
    if (kind == ring_kind::spsc) return "spsc, " + std::to_string(capacity) + " bytes";
    return "mpmc, " + std::to_string(capacity) + " slots of " + std::to_string(slot) + " bytes";
}

// An existing ring is used as it is, but a URL that names a geometry the ring
// does not have is refused: a mode=mpmc receiver on an spsc ring would
// otherwise run with a shape nobody asked for (found by review).
void check_geometry(const ring& r, const url& u, const ring_options& asked) {
    const bool mpmc = r.kind() == ring_kind::mpmc;
    const std::size_t slot = mpmc ? r.max_message() : 0;
    const std::size_t bytes = mpmc ? r.capacity() * slot : r.capacity();  // what capacity= means
    const bool differs = (u.param("mode") && r.kind() != asked.kind) ||
                         (u.param("capacity") && bytes != *u.unsigned_param("capacity")) ||
                         (u.param("slot") && mpmc && slot != asked.slot_size);
    if (!differs) return;
    throw_error(EEXIST, "open", u.text,
                "the ring exists as " + geometry_text(r.kind(), r.capacity(), slot) +
                    ", the URL asks " + geometry_text(asked.kind, asked.capacity, asked.slot_size) +
                    "; drop mode/capacity/slot or remove it");
}

}  // namespace

std::unique_ptr<channel> open_shm_channel(const url& u, channel_role role,
                                          const open_options& opts) {
    const ring_options o = options_from(u);
    const ring_role rr = role == channel_role::receiver ? ring_role::consumer : ring_role::producer;
    bool creates = role == channel_role::receiver;
    if (opts.endpoint == endpoint_mode::listen) creates = true;
    if (opts.endpoint == endpoint_mode::connect) creates = false;
    open_mode how = creates ? open_mode::open_or_create : open_mode::open_only;
    if (auto c = u.create()) how = *c;

    const std::size_t limit = u.max_message(default_max_message);
    const unsigned spin = static_cast<unsigned>(u.unsigned_param("spin").value_or(0));
    auto sleep_ms = std::chrono::milliseconds(1);
    for (;;) {
        try {
            bool owner = false;
            ring r = [&] {
                if (how == open_mode::open_only) return ring::open(u.path, rr);
                // Did this call make it? Only then does this end own the name.
                try {
                    auto made = ring::create(u.path, rr, o, open_mode::create_only);
                    owner = true;
                    return made;
                } catch (const error& e) {
                    if (e.code().value() != EEXIST || how == open_mode::create_only) throw;
                }
                return ring::open(u.path, rr);
            }();
            if (!owner) check_geometry(r, u, o);
            r.set_spin(spin);
            return std::make_unique<shm_channel>(std::move(r), u.text, u.path, owner, limit);
        } catch (const error& e) {
            // The peer has not created (ENOENT) or formatted (EAGAIN) it yet.
            // A creator that died half-way is EPROTO from ring::open, not
            // EAGAIN, so the default (never) deadline cannot hang on it.
            const int ev = e.code().value();
            if ((ev != ENOENT && ev != EAGAIN) || (how != open_mode::open_only && ev == ENOENT))
                throw;
            if (opts.open_deadline.expired())
                throw_error(ETIMEDOUT, "open", u.text,
                            "no ring was created under that name in time");
        }
        std::this_thread::sleep_for(sleep_ms);
        sleep_ms = std::min(sleep_ms * 2, std::chrono::milliseconds(50));
    }
}

}  // namespace ipckit::detail
