// libFuzzer target for the RPC server's dispatch (rpc::server::serve) over an
// in-memory channel: any sequence of messages, any max_message. serve()
// never crashes; it answers every well-formed call with exactly one reply
// that decodes, carries the call's id and fits max_message; anything that
// is not a call ends serve() with EPROTO.
//
// Input layout: bytes 0-1 = max_message (16..65551), then messages, each a
// 2-byte little-endian length and that many bytes.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "detail/rpc_wire.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/rpc.hpp"

namespace {

namespace wire = ipckit::rpc::detail;
using ipckit::io_status;

void check(bool ok) {
    if (!ok) std::abort();
}

// Hands out the fuzzer's messages, then reports the peer closed; checks each
// reply against the call it answers.
class scripted_channel final : public ipckit::channel {
  public:
    scripted_channel(std::vector<std::string> in, std::size_t max)
        : in_(std::move(in)), max_(max) {}

    io_status receive(ipckit::message& out, const ipckit::deadline&) override {
        if (next_ == in_.size()) return io_status::closed;
        check(!awaiting_);  // the previous call was answered before the next is read
        out.payload = in_[next_++];
        out.tag.reset();
        auto f = wire::decode(out.payload);
        awaiting_ = f && f->type == wire::kind::call;
        if (awaiting_) id_ = f->id;
        return io_status::ok;
    }

    io_status send(std::string_view payload, const ipckit::deadline&,
                   std::optional<long>) override {
        check(awaiting_);
        check(payload.size() <= max_);
        auto f = wire::decode(payload);
        check(f && f->type != wire::kind::call && f->id == id_);
        awaiting_ = false;
        return io_status::ok;
    }

    std::size_t max_message() const noexcept override { return max_; }
    const std::string& name() const noexcept override { return name_; }
    bool answered_all() const noexcept { return !awaiting_; }

  private:
    std::vector<std::string> in_;
    std::size_t max_;
    std::size_t next_ = 0;
    bool awaiting_ = false;
    std::uint64_t id_ = 0;
    std::string name_ = "fuzz";
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t max = 16 + (data[0] | (std::size_t{data[1]} << 8));
    std::vector<std::string> messages;
    for (std::size_t pos = 2; pos + 2 <= size;) {
        std::size_t n = data[pos] | (std::size_t{data[pos + 1]} << 8);
        pos += 2;
        n = std::min(n, size - pos);
        messages.emplace_back(reinterpret_cast<const char*>(data + pos), n);
        pos += n;
    }
    ipckit::rpc::server server;
    server.add("echo", [](std::string_view a) { return std::string(a); });
    server.add("twice", [](std::string_view a) { return std::string(a) + std::string(a); });
    server.add("fail", [](std::string_view a) -> std::string {
        throw std::runtime_error(std::string(a) + std::string(a));
    });
    scripted_channel ch(std::move(messages), max);
    try {
        check(server.serve(ch) == io_status::closed);
        check(ch.answered_all());
    } catch (const ipckit::error& e) {
        check(e.code().value() == EPROTO);  // a message that is not a call
    }
    return 0;
}
