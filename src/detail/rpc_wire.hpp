// Private: the RPC message format carried inside one channel message.
//
// Header, 16 bytes, little-endian:
//   u16 magic 0x5052 ("RP"), u8 version (1), u8 kind (1 call, 2 result, 3 error),
//   u16 method length (call: 1..255, otherwise 0), u16 error code (error only),
//   u64 call id (chosen by the client, echoed by the server)
// then the method name (calls), then the body: the arguments (call), the
// result (result) or the explanation (error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ipckit::rpc::detail {

inline constexpr std::uint16_t wire_magic = 0x5052;
inline constexpr std::uint8_t wire_version = 1;
inline constexpr std::size_t wire_header_size = 16;

enum class kind : std::uint8_t { call = 1, result = 2, error = 3 };

/// A decoded message; method and body point into the decoded buffer.
struct frame {
    kind type = kind::call;
    std::uint16_t error_code = 0;
    std::uint64_t id = 0;
    std::string_view method;
    std::string_view body;
};

/// Why a buffer is not an RPC message (decode() == nullopt).
enum class decode_failure { none, truncated, bad_magic, bad_version, bad_kind, bad_fields };

/// Appends the encoded message to out.
void encode(const frame& f, std::string& out);

/// Decodes bytes. A method name is checked only for its length here; the
/// caller decides what an invalid name means (a bad_request reply).
std::optional<frame> decode(std::string_view bytes, decode_failure* why = nullptr) noexcept;

const char* to_string(decode_failure f) noexcept;

}  // namespace ipckit::rpc::detail
