// libFuzzer target for parse_url: never crashes; a rejected URL points inside
// the text; an accepted URL, rebuilt from its parsed fields, parses to the
// same fields (nothing is lost or misread between text and struct).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ipckit/url.hpp"

namespace {

bool plain_host(const std::string& h) {
    if (h.empty()) return false;
    for (unsigned char c : h)
        if (!(std::isalnum(c) || c == '.' || c == '-' || c == '_')) return false;
    return true;
}

// The canonical text of a parsed URL.
std::string rebuild(const ipckit::url& u) {
    std::string s = u.scheme + ":";
    if (u.scheme == "tcp" || u.scheme == "udp")
        s += "//" + (plain_host(u.host) ? u.host : "[" + u.host + "]") + ":" +
             std::to_string(u.port);
    else if (u.sysv_key)
        s += std::to_string(static_cast<std::uint32_t>(*u.sysv_key));
    else
        s += u.path;
    char sep = '?';
    for (const auto& [k, v] : u.params) {
        s += sep + k + "=" + v;
        sep = '&';
    }
    return s;
}

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)ipckit::parse_size(text);
    ipckit::url u;
    try {
        u = ipckit::parse_url(text);
    } catch (const ipckit::url_error& e) {
        check(e.position() <= size && e.length() <= size - e.position());
        check(e.what()[0] != '\0');
        return 0;
    }
    check(u.text == text);
    // Typed accessors never throw on a validated URL.
    (void)u.frame(ipckit::framing::length);
    (void)u.max_message(1);
    (void)u.permissions();
    (void)u.create();
    for (const auto& [k, v] : u.params) {
        (void)u.unsigned_param(k);
        (void)u.signed_param(k);
    }
    std::string canonical = rebuild(u);
    ipckit::url again;
    try {
        again = ipckit::parse_url(canonical);
    } catch (const ipckit::url_error&) {
        std::abort();  // an accepted URL's canonical form must be accepted too
    }
    check(again.scheme == u.scheme);
    check(again.path == u.path);
    check(again.sysv_key == u.sysv_key);
    check(again.host == u.host);
    check(again.port == u.port);
    check(again.params == u.params);
    return 0;
}
