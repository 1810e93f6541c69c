#include "detail/rpc_wire.hpp"

#include "detail/endian.hpp"

namespace ipckit::rpc::detail {

using ipckit::detail::load_le;
using ipckit::detail::store_le;

void encode(const frame& f, std::string& out) {
    unsigned char h[wire_header_size];
    store_le(h, wire_magic);
    h[2] = wire_version;
    h[3] = static_cast<unsigned char>(f.type);
    store_le(h + 4, static_cast<std::uint16_t>(f.type == kind::call ? f.method.size() : 0));
    store_le(h + 6, f.type == kind::error ? f.error_code : std::uint16_t{0});
    store_le(h + 8, f.id);
    out.reserve(out.size() + wire_header_size + f.method.size() + f.body.size());
    out.append(reinterpret_cast<const char*>(h), wire_header_size);
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
    if (load_le<std::uint16_t>(p) != wire_magic) return fail(decode_failure::bad_magic);
    if (p[2] != wire_version) return fail(decode_failure::bad_version);
    if (p[3] < 1 || p[3] > 3) return fail(decode_failure::bad_kind);
    frame f;
    f.type = static_cast<kind>(p[3]);
    std::size_t method_len = load_le<std::uint16_t>(p + 4);
    f.error_code = load_le<std::uint16_t>(p + 6);
    f.id = load_le<std::uint64_t>(p + 8);
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
