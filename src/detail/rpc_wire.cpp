#include "detail/rpc_wire.hpp"

namespace ipckit::rpc::detail {
namespace {

void put_le(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_le(const unsigned char* p, int bytes) noexcept {
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

}  // namespace

void encode(const frame& f, std::string& out) {
    out.reserve(out.size() + wire_header_size + f.method.size() + f.body.size());
    put_le(out, wire_magic, 2);
    out.push_back(static_cast<char>(wire_version));
    out.push_back(static_cast<char>(f.type));
    put_le(out, f.type == kind::call ? f.method.size() : 0, 2);
    put_le(out, f.type == kind::error ? f.error_code : 0, 2);
    put_le(out, f.id, 8);
    if (f.type == kind::call) out.append(f.method);
    out.append(f.body);
}

std::optional<frame> decode(std::string_view bytes, decode_failure* why) noexcept {
    auto fail = [why](decode_failure f) -> std::optional<frame> {
        if (why) *why = f;
        return std::nullopt;
    };
    if (bytes.size() < wire_header_size) return fail(decode_failure::truncated);
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (get_le(p, 2) != wire_magic) return fail(decode_failure::bad_magic);
    if (p[2] != wire_version) return fail(decode_failure::bad_version);
    if (p[3] < 1 || p[3] > 3) return fail(decode_failure::bad_kind);
    frame f;
    f.type = static_cast<kind>(p[3]);
    auto method_len = static_cast<std::size_t>(get_le(p + 4, 2));
    f.error_code = static_cast<std::uint16_t>(get_le(p + 6, 2));
    f.id = get_le(p + 8, 8);
    // Fields that do not belong to the kind must be zero, so that a later
    // version can give them a meaning without old peers misreading them.
    bool fields_ok = f.type == kind::call ? method_len >= 1 && method_len <= 255 : method_len == 0;
    if ((f.type == kind::error) != (f.error_code != 0)) fields_ok = false;
    if (!fields_ok) return fail(decode_failure::bad_fields);
    if (bytes.size() - wire_header_size < method_len) return fail(decode_failure::truncated);
    f.method = bytes.substr(wire_header_size, method_len);
    f.body = bytes.substr(wire_header_size + method_len);
    if (why) *why = decode_failure::none;
    return f;
}

const char* to_string(decode_failure f) noexcept {
    switch (f) {
        case decode_failure::none:
            return "no failure";
        case decode_failure::truncated:
            return "truncated RPC message";
        case decode_failure::bad_magic:
            return "not an RPC message (bad magic)";
        case decode_failure::bad_version:
            return "unsupported RPC version";
        case decode_failure::bad_kind:
            return "unknown RPC message kind";
        case decode_failure::bad_fields:
            return "inconsistent RPC header fields";
    }
    return "unknown decode failure";
}

}  // namespace ipckit::rpc::detail
