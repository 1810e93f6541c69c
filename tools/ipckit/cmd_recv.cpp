// ipckit recv URL [-n N] [--timeout T] [--json] [--raw]
#include <unistd.h>

#include <cstdio>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/url.hpp"

namespace ipckit::cli {
namespace {

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80         ? 1
                        : (c >> 5) == 6  ? 2
                        : (c >> 4) == 14 ? 3
                        : (c >> 3) == 30 ? 4
                                         : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
        i += n;
    }
    return true;
}

std::string hex(std::string_view s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s)
        out += fmt::format("{:02x}", c);
    return out;
}

}  // namespace

nlohmann::ordered_json message_json(const message& m, std::size_t seq, std::string_view tag_name) {
    nlohmann::ordered_json j{{"seq", seq}, {"size", m.payload.size()}};
    if (m.tag) {
        j["tag"] = *m.tag;
        if (!tag_name.empty()) j[std::string(tag_name)] = *m.tag;
    }
    if (valid_utf8(m.payload))
        j["payload"] = m.payload;
    else
        j["payload_hex"] = hex(m.payload);
    return j;
}

void register_recv(CLI::App& app, verb& v) {
    struct options {
        std::string url;
        std::size_t count = 0;
        std::string timeout;
        bool json = false;
        bool raw = false;
        bool listen = false;
        bool connect = false;
        bool all = false;
    };
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand("recv", "Receive messages from a channel URL");
    cmd->footer(
        "Prints each message followed by a newline (non-printable bytes escaped as \\xHH\n"
        "unless --raw); [TAG] first when the transport carries a priority/type.\n"
        "Exit status: 0 when N messages (or end of stream) arrived, 3 on timeout.\n"
        "Examples:\n"
        "  ipckit recv fifo:/tmp/demo -n 2\n"
        "  ipckit recv mq:/jobs --json --timeout 5s\n"
        "  ipckit recv 'unix:/tmp/a.sock?frame=line'");
    cmd->add_option("url", o->url, "Channel URL (e.g. fifo:/tmp/x, mq:/jobs)")->required();
    cmd->add_option("-n,--count", o->count, "Stop after N messages (default: until closed)")
        ->check(count_validator());
    cmd->add_option("-t,--timeout", o->timeout, "Give up after this long (500ms, 15s, 2m)")
        ->check(duration_validator());
    cmd->add_flag("--json", o->json,
                  "One JSON object per message: seq, size, tag (also as priority for mq:, type for "
                  "sysvmq:), payload");
    cmd->add_flag("--raw", o->raw, "Print payload bytes unescaped");
    cmd->add_flag("--listen", o->listen, "Own/listen on the endpoint (the default for recv)");
    cmd->add_flag("--connect", o->connect, "Connect to an endpoint someone else owns");
    cmd->add_flag("--all", o->all,
                  "Listening sockets: serve all clients concurrently (same as ?all=1)");
    v.app = cmd;
    v.action = [o]() -> int {
        deadline until =
            o->timeout.empty() ? deadline::never() : deadline::after(*parse_duration(o->timeout));
        open_options opts;
        opts.open_deadline = until;
        opts.on_client_dropped = [](const std::string& why) {
            print_error(why + " (client disconnected; still listening)");
        };
        if (o->listen) opts.endpoint = endpoint_mode::listen;
        if (o->connect) opts.endpoint = endpoint_mode::connect;
        std::string url = o->url;
        if (o->all) url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("all=1");
        auto ch = open_channel(url, channel_role::receiver, opts);
        const std::string scheme = parse_url(url).scheme;
        const std::string_view tag_name = scheme == "mq"       ? "priority"
                                          : scheme == "sysvmq" ? "type"
                                                               : "";
        // A listener on port 0 learns its real address only now: say it.
        if (ch->name() != url) fmt::print(stderr, "ipckit: recv listening on {}\n", ch->name());
        message m;
        for (std::size_t seq = 0; o->count == 0 || seq < o->count; ++seq) {
            auto st = ch->receive(m, until);
            if (st == io_status::closed) return exit_ok;
            if (st == io_status::timed_out) {
                std::fflush(stdout);
                print_error(fmt::format("recv {}: timed out after {} message(s)", o->url, seq));
                return exit_timeout;
            }
            if (o->json) {
                fmt::print("{}\n", message_json(m, seq, tag_name).dump());
            } else {
                if (m.tag) fmt::print("[{}] ", *m.tag);
                if (o->raw)
                    std::fwrite(m.payload.data(), 1, m.payload.size(), stdout);
                else
                    std::fputs(escape_bytes(m.payload).c_str(), stdout);
                std::fputc('\n', stdout);
            }
            std::fflush(stdout);  // consumers read as we go (pipes, tests)
        }
        return exit_ok;
    };
}

}  // namespace ipckit::cli
