#include "ipckit/url.hpp"

#include "ipckit/socket.hpp"

#include <climits>
#include <cstdlib>
#include <limits>
#include <span>

namespace ipckit {
namespace {

constexpr std::size_t kSunPathMax = 108;  // sizeof(sockaddr_un::sun_path)
constexpr std::size_t kPosixNameMax = NAME_MAX;
constexpr std::uint64_t kMaxMessageLimit = std::numeric_limits<std::uint32_t>::max() - 1;

// Fix (foundation tests): control bytes are shown as \xHH. A NUL quoted
// verbatim cut what() short, hiding the reason from every caller.
std::string quote(std::string_view part) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "'";
    for (unsigned char c : part) {
        if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "'";
}

[[noreturn]] void fail(std::string_view text, std::size_t pos, std::size_t len,
                       const std::string& reason) {
    throw url_error(text, pos, len, reason);
}

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

std::optional<std::uint64_t> parse_u64(std::string_view s, int base = 10) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return std::nullopt;
        if (d >= base) return std::nullopt;
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / base) return std::nullopt;
        v = v * base + d;
    }
    return v;
}

std::optional<std::int64_t> parse_i64(std::string_view s) {
    bool neg = !s.empty() && s[0] == '-';
    if (neg || (!s.empty() && s[0] == '+')) s.remove_prefix(1);
    auto v = parse_u64(s);
    if (!v || *v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return std::nullopt;
    return neg ? -static_cast<std::int64_t>(*v) : static_cast<std::int64_t>(*v);
}

// What each option accepts; `schemes` lists where it is allowed.
enum class value_kind {
    create_mode,
    permissions,
    frame,
    size,
    uint,
    sint,
    sock_type,
    ring_mode,
    boolean,
    peer_list
};

struct option_rule {
    std::string_view key;
    std::initializer_list<std::string_view> schemes;
    value_kind kind;
};

const option_rule kRules[] = {
    {"create", {"fifo", "mq", "sysvmq", "shm"}, value_kind::create_mode},
    {"mode", {"fifo", "mq", "sysvmq", "unix", "shm"}, value_kind::permissions},
    {"frame", {"stdio", "fifo", "unix", "tcp"}, value_kind::frame},
    {"max_message",
     {"stdio", "fifo", "mq", "sysvmq", "unix", "tcp", "udp", "shm"},
     value_kind::size},
    {"maxmsg", {"mq"}, value_kind::uint},
    {"msgsize", {"mq"}, value_kind::size},
    {"priority", {"mq"}, value_kind::uint},
    {"type", {"sysvmq"}, value_kind::sint},
    {"id", {"sysvmq"}, value_kind::uint},
    {"type", {"unix"}, value_kind::sock_type},
    {"all", {"unix", "tcp"}, value_kind::boolean},
    {"allow", {"unix"}, value_kind::peer_list},
    {"nodelay", {"tcp"}, value_kind::boolean},
    {"capacity", {"shm"}, value_kind::size},
    {"slot", {"shm"}, value_kind::size},
    {"spin", {"shm"}, value_kind::uint},
    {"spin_us", {"fifo", "mq", "unix", "tcp"}, value_kind::uint},
};

bool contains(std::initializer_list<std::string_view> list, std::string_view s) {
    for (auto x : list)
        if (x == s) return true;
    return false;
}

void validate_value(std::string_view text, std::size_t pos, const std::string& scheme,
                    std::string_view key, std::string_view value, value_kind kind) {
    auto bad = [&](const std::string& why) {
        fail(text, pos, value.size(), std::string(key) + " " + why);
    };
    switch (kind) {
        case value_kind::create_mode:
            if (value != "create_only" && value != "open_only" && value != "open_or_create")
                bad("must be create_only, open_only or open_or_create");
            break;
        case value_kind::permissions: {
            if (scheme == "shm" && (value == "spsc" || value == "mpmc")) break;
            auto v = parse_u64(value, 8);
            if (!v || *v > 0777)
                bad(scheme == "shm" ? "must be spsc, mpmc or octal permissions like 0600"
                                    : "must be octal permissions like 0600");
            break;
        }
        case value_kind::frame:
            if (value != "length" && value != "line" && value != "raw")
                bad("must be length, line or raw");
            break;
        case value_kind::size: {
            auto v = parse_size(value);
            if (!v || *v == 0) bad("must be a positive size like 4096, 64k or 16M");
            if (key == "max_message" && *v > kMaxMessageLimit)
                bad("must be below 4 GiB (the frame length is 32 bits)");
            break;
        }
        case value_kind::uint:
            if (!parse_u64(value)) bad("must be a non-negative integer");
            if (key == "id" && (*parse_u64(value) < 1 || *parse_u64(value) > 255))
                bad("must be 1..255 (the ftok project id)");
            if (key == "maxmsg" && *parse_u64(value) == 0) bad("must be at least 1");
            if (key == "priority" && *parse_u64(value) >= 32768)
                bad("must be below 32768 (MQ_PRIO_MAX)");
            break;
        case value_kind::sint:
            if (!parse_i64(value)) bad("must be an integer");
            break;
        case value_kind::sock_type:
            if (value != "stream" && value != "dgram" && value != "seqpacket")
                bad("must be stream, dgram or seqpacket");
            break;
        case value_kind::boolean:
            if (value != "0" && value != "1" && value != "true" && value != "false")
                bad("must be 0, 1, true or false");
            break;
        case value_kind::ring_mode:
            break;
        case value_kind::peer_list:
            try {
                (void)parse_peer_policy(value);
            } catch (const std::invalid_argument& e) {
                fail(text, pos, value.size(), e.what());
            }
            break;
    }
}

void parse_query(std::string_view text, std::size_t start, url& u) {
    std::size_t pos = start;
    while (pos < text.size()) {
        std::size_t end = text.find('&', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view item = text.substr(pos, end - pos);
        std::size_t eq = item.find('=');
        if (item.empty()) fail(text, pos, 1, "empty option");
        if (eq == std::string_view::npos || eq == 0)
            fail(text, pos, item.size(), "option must be key=value");
        std::string_view key = item.substr(0, eq);
        std::string_view value = item.substr(eq + 1);
        const option_rule* rule = nullptr;
        bool known_elsewhere = false;
        for (const auto& r : kRules) {
            if (r.key != key) continue;
            known_elsewhere = true;
            if (contains(r.schemes, u.scheme)) rule = &r;
        }
        if (!rule)
            fail(text, pos, key.size(),
                 known_elsewhere ? "option " + quote(key) + " does not apply to " + u.scheme + ":"
                                 : "unknown option " + quote(key));
        if (u.params.count(key)) fail(text, pos, key.size(), "option " + quote(key) + " repeated");
        validate_value(text, pos + eq + 1, u.scheme, key, value, rule->kind);
        u.params.emplace(std::string(key), std::string(value));
        pos = end + 1;
        if (end == text.size()) break;
        if (pos == text.size()) fail(text, end, 1, "trailing '&'");
    }
}

void check_posix_name(std::string_view text, std::size_t pos, std::string_view name,
                      const char* what) {
    if (name.empty() || name[0] != '/')
        fail(text, pos, name.size(), std::string(what) + " name must start with '/' (e.g. /jobs)");
    if (name.size() == 1) fail(text, pos, 1, std::string(what) + " name is empty after '/'");
    auto slash = name.find('/', 1);
    if (slash != std::string_view::npos)
        fail(text, pos + slash, 1, std::string(what) + " name must not contain another '/'");
    if (name.size() - 1 > kPosixNameMax)
        fail(text, pos, name.size(),
             std::string(what) + " name is longer than NAME_MAX (" + std::to_string(kPosixNameMax) +
                 ")");
    if (name == "/." || name == "/..")
        fail(text, pos + 1, name.size() - 1,
             "'.' and '..' are not " + std::string(what) + " names");
}

void check_path(std::string_view text, std::size_t pos, std::string_view path) {
    if (path.empty()) fail(text, pos, 0, "path is missing");
    if (path[0] != '/') fail(text, pos, path.size(), "path must be absolute");
    if (path.size() >= PATH_MAX) fail(text, pos, path.size(), "path is longer than PATH_MAX");
}

void parse_host_port(std::string_view text, std::size_t pos, std::string_view rest, url& u) {
    if (rest.empty()) fail(text, pos, 0, "host:port is missing (e.g. 127.0.0.1:7000)");
    std::size_t colon;
    if (rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos)
            fail(text, pos, rest.size(), "unterminated '[' in IPv6 address");
        u.host = std::string(rest.substr(1, close - 1));
        if (u.host.empty()) fail(text, pos, close + 1, "empty IPv6 address");
        // Hex digits, ':' and '.' (an IPv4 tail); '%' starts a zone id.
        auto zone = u.host.find('%');
        for (std::size_t i = 0; i < std::min(zone, u.host.size()); ++i) {
            char c = u.host[i];
            if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'))
                fail(text, pos + 1 + i, 1, "not an IPv6 address inside '[...]'");
        }
        if (close + 1 >= rest.size() || rest[close + 1] != ':')
            fail(text, pos + close + 1, 0, "port is missing after ']' (e.g. [::1]:7000)");
        colon = close + 1;
    } else {
        colon = rest.rfind(':');
        if (colon == std::string_view::npos)
            fail(text, pos, rest.size(), "port is missing (e.g. 127.0.0.1:7000)");
        u.host = std::string(rest.substr(0, colon));
        if (u.host.empty()) fail(text, pos, 0, "host is missing (e.g. 127.0.0.1:7000)");
        if (u.host.find(':') != std::string::npos)
            fail(text, pos, colon, "IPv6 address must be in brackets (e.g. [::1]:7000)");
        for (char c : u.host)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'))
                fail(text, pos, colon, "host has an invalid character");
    }
    std::string_view port = rest.substr(colon + 1);
    auto p = parse_u64(port);
    if (!all_digits(port) || !p || *p > 65535)
        fail(text, pos + colon + 1, port.size(), "port must be a number 0..65535");
    u.port = static_cast<std::uint16_t>(*p);
}

}  // namespace

url_error::url_error(std::string_view url, std::size_t position, std::size_t length,
                     const std::string& reason)
    : std::invalid_argument(
          "bad URL " + quote(url) + ": " + reason +
          (position < url.size()
               ? " (at " + quote(url.substr(position, std::max<std::size_t>(length, 1))) + ")"
               : std::string(" (at the end)"))),
      position_(position),
      length_(length) {}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::uint64_t mult = 1;
    char last = text.back();
    if (last == 'k' || last == 'K')
        mult = 1ull << 10;
    else if (last == 'M')
        mult = 1ull << 20;
    else if (last == 'G')
        mult = 1ull << 30;
    if (mult != 1) text.remove_suffix(1);
    auto v = parse_u64(text);
    if (!v || *v > std::numeric_limits<std::uint64_t>::max() / mult) return std::nullopt;
    return *v * mult;
}

url parse_url(std::string_view text) {
    url u;
    u.text = std::string(text);
    if (text.find('\0') != std::string_view::npos)
        fail(text, text.find('\0'), 1, "contains a NUL byte");
    auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0)
        fail(text, 0, text.size(),
             "missing scheme (one of stdio: fifo: mq: sysvmq: unix: tcp:// udp:// shm:)");
    u.scheme = std::string(text.substr(0, colon));
    static constexpr std::string_view kSchemes[] = {"stdio", "fifo", "mq",  "sysvmq",
                                                    "unix",  "tcp",  "udp", "shm"};
    bool known = false;
    for (auto s : kSchemes)
        known = known || s == u.scheme;
    if (!known)
        fail(text, 0, colon,
             "unknown scheme " + quote(u.scheme) +
                 " (one of stdio fifo mq sysvmq unix tcp udp shm)");

    std::size_t q = text.find('?', colon + 1);
    std::size_t body_end = q == std::string_view::npos ? text.size() : q;
    std::size_t body_pos = colon + 1;
    std::string_view body = text.substr(body_pos, body_end - body_pos);

    const std::string& s = u.scheme;
    if (s == "tcp" || s == "udp") {
        if (body.substr(0, 2) != "//")
            fail(text, body_pos, body.size(), s + " URL must look like " + s + "://host:port");
        parse_host_port(text, body_pos + 2, body.substr(2), u);
    } else if (s == "stdio") {
        if (!body.empty()) fail(text, body_pos, body.size(), "stdio: takes no path");
    } else if (s == "fifo") {
        check_path(text, body_pos, body);
        u.path = std::string(body);
    } else if (s == "mq" || s == "shm") {
        check_posix_name(text, body_pos, body, s == "mq" ? "queue" : "shared memory");
        u.path = std::string(body);
    } else if (s == "sysvmq") {
        if (body.empty()) fail(text, body_pos, 0, "key or /path is missing (e.g. sysvmq:1234)");
        if (body[0] == '/') {
            check_path(text, body_pos, body);
            u.path = std::string(body);
        } else {
            std::optional<std::uint64_t> k;
            if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X'))
                k = parse_u64(body.substr(2), 16);
            else
                k = parse_u64(body);
            if (!k)
                fail(text, body_pos, body.size(),
                     "key must be a number (decimal or 0x hex) or an absolute path");
            if (*k == 0)
                fail(text, body_pos, body.size(), "key 0 is IPC_PRIVATE and cannot be named");
            if (*k > 0xffffffffull)
                fail(text, body_pos, body.size(), "key does not fit in 32 bits");
            u.sysv_key = static_cast<std::int64_t>(
                static_cast<std::int32_t>(static_cast<std::uint32_t>(*k)));
        }
    } else if (s == "unix") {
        if (body.empty()) fail(text, body_pos, 0, "socket path or @name is missing");
        if (body[0] == '@') {
            if (body.size() == 1) fail(text, body_pos, 1, "abstract name is empty after '@'");
            if (body.size() > kSunPathMax)
                fail(text, body_pos, body.size(),
                     "abstract name longer than " + std::to_string(kSunPathMax - 1) +
                         " bytes (sun_path)");
        } else {
            check_path(text, body_pos, body);
            if (body.size() >= kSunPathMax)
                fail(text, body_pos, body.size(),
                     "socket path is " + std::to_string(body.size()) +
                         " bytes; sun_path holds at most " + std::to_string(kSunPathMax - 1));
        }
        u.path = std::string(body);
    }
    if (q != std::string_view::npos) {
        if (q + 1 == text.size()) fail(text, q, 1, "empty query after '?'");
        parse_query(text, q + 1, u);
    }
    return u;
}

std::optional<std::string> url::param(std::string_view key) const {
    auto it = params.find(key);
    if (it == params.end()) return std::nullopt;
    return it->second;
}

framing url::frame(framing fallback) const {
    auto v = param("frame");
    if (!v) return fallback;
    if (*v == "line") return framing::line;
    if (*v == "raw") return framing::raw;
    return framing::length;
}

std::size_t url::max_message(std::size_t fallback) const {
    auto v = param("max_message");
    return v ? static_cast<std::size_t>(*parse_size(*v)) : fallback;
}

unsigned url::permissions(unsigned fallback) const {
    auto v = param("mode");
    if (!v || *v == "spsc" || *v == "mpmc") return fallback;
    return static_cast<unsigned>(*parse_u64(*v, 8));
}

std::optional<open_mode> url::create() const {
    auto v = param("create");
    if (!v) return std::nullopt;
    if (*v == "create_only") return open_mode::create_only;
    if (*v == "open_only") return open_mode::open_only;
    return open_mode::open_or_create;
}

std::optional<std::uint64_t> url::unsigned_param(std::string_view key) const {
    auto v = param(key);
    if (!v) return std::nullopt;
    if (auto s = parse_size(*v)) return s;
    return std::nullopt;
}

std::optional<std::int64_t> url::signed_param(std::string_view key) const {
    auto v = param(key);
    if (!v) return std::nullopt;
    return parse_i64(*v);
}

}  // namespace ipckit
