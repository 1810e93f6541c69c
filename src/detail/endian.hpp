// Private: little-endian integers in byte buffers, for the wire formats
// (frame and chunk headers, RPC headers), independent of the host's order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ipckit::detail {

/// Writes sizeof(T) bytes of v at out, least significant first.
template <class T>
constexpr void store_le(unsigned char* out, T v) noexcept {
    static_assert(std::is_unsigned_v<T>);
    for (std::size_t i = 0; i < sizeof(T); ++i)
        out[i] = static_cast<unsigned char>(v >> (8 * i));
}

/// Reads sizeof(T) bytes at in, least significant first.
template <class T>
constexpr T load_le(const unsigned char* in) noexcept {
    static_assert(std::is_unsigned_v<T>);
    T v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;)
        v = static_cast<T>(v << 8 | in[i]);
    return v;
}

}  // namespace ipckit::detail
