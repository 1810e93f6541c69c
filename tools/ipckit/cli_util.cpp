#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>

#include <fmt/core.h>

#include "cli.hpp"

namespace ipckit::cli {

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
        ++i;
    if (i == 0) return std::nullopt;
    double value = 0;
    try {
        std::size_t used = 0;
        value = std::stod(std::string(text.substr(0, i)), &used);
        if (used != i) return std::nullopt;
    } catch (...) {
        return std::nullopt;
    }
    std::string_view unit = text.substr(i);
    double scale;  // nanoseconds per unit
    if (unit.empty() || unit == "s")
        scale = 1e9;
    else if (unit == "ms")
        scale = 1e6;
    else if (unit == "us")
        scale = 1e3;
    else if (unit == "ns")
        scale = 1;
    else if (unit == "m")
        scale = 60e9;
    else if (unit == "h")
        scale = 3600e9;
    else
        return std::nullopt;
    double ns = value * scale;
    if (!std::isfinite(ns) || ns > 9e18) return std::nullopt;
    return std::chrono::nanoseconds(static_cast<long long>(ns));
}

CLI::Validator duration_validator() {
    return CLI::Validator(
        [](std::string& s) -> std::string {
            return parse_duration(s) ? std::string() : "not a duration (e.g. 500ms, 15s, 2m): " + s;
        },
        "DURATION");
}

CLI::Validator count_validator() {
    return CLI::Validator(
        [](std::string& s) -> std::string {
            // An unsigned option would take "-1" as a huge count: refuse it.
            return s.rfind('-', 0) == 0 ? "must be 0 or more, not " + s : std::string();
        },
        "N");
}

void print_error(std::string_view message) {
    std::fflush(stdout);
    fmt::print(stderr, "ipckit: {}\n", message);
}

bool stdout_is_tty() {
    return ::isatty(1) == 1;
}
bool stderr_is_tty() {
    return ::isatty(2) == 1;
}

std::string escape_bytes(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (unsigned char c : bytes) {
        switch (c) {
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\\':
                out += "\\\\";
                break;
            default:
                if (c >= 0x20 && c < 0x7f)
                    out += static_cast<char>(c);
                else
                    out += fmt::format("\\x{:02x}", c);
        }
    }
    return out;
}

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace ipckit::cli
