// ipckit send URL [MSG...]: one message per argument, or per stdin line.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "cli.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"
#include "ipckit/mqueue.hpp"
#include "ipckit/url.hpp"

namespace ipckit::cli {
namespace {

// --tag is checked against the URL's transport before anything is opened, so
// a bad value is a usage error that creates no queue.
void check_tag(const std::string& url_text, long tag) {
    const std::string scheme = parse_url(url_text).scheme;
    if (scheme == "mq") {
        if (tag < 0 || tag >= static_cast<long>(mq_priority_limit))
            throw std::invalid_argument(fmt::format("send {}: --priority must be 0..{}, got {}",
                                                    url_text, mq_priority_limit - 1, tag));
    } else if (scheme == "sysvmq") {
        if (tag <= 0)
            throw std::invalid_argument(
                fmt::format("send {}: --type must be > 0, got {}", url_text, tag));
    } else {
        throw std::invalid_argument(fmt::format(
            "send {}: --tag applies to mq: (priority) and sysvmq: (type) only", url_text));
    }
}

}  // namespace

void register_send(CLI::App& app, verb& v) {
    struct options {
        std::string url;
        std::vector<std::string> messages;
        std::string timeout;
        std::optional<long> tag;
        bool listen = false;
        bool connect = false;
    };
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand("send", "Send messages to a channel URL");
    cmd->footer(
        "Each MSG argument is one message; without MSG, each stdin line is one message.\n"
        "Examples:\n"
        "  ipckit send fifo:/tmp/demo hello world\n"
        "  printf 'a\\nb\\n' | ipckit send mq:/jobs --tag 5\n"
        "  ipckit send 'tcp://127.0.0.1:7000?frame=line' hi --timeout 2s");
    cmd->add_option("url", o->url, "Channel URL (e.g. fifo:/tmp/x, mq:/jobs)")->required();
    cmd->add_option("message", o->messages, "Messages to send (default: stdin lines)");
    cmd->add_option("-t,--timeout", o->timeout, "Give up after this long (500ms, 15s, 2m)")
        ->check(duration_validator());
    cmd->add_option("--tag,--priority,--type", o->tag,
                    "Priority (mq:) or message type (sysvmq:) of every message");
    cmd->add_flag("--listen", o->listen, "Own/listen on the endpoint instead of connecting");
    cmd->add_flag("--connect", o->connect, "Connect to the endpoint (the default for send)");
    v.app = cmd;
    v.action = [o]() -> int {
        deadline until =
            o->timeout.empty() ? deadline::never() : deadline::after(*parse_duration(o->timeout));
        if (o->tag) check_tag(o->url, *o->tag);
        open_options opts;
        opts.open_deadline = until;
        if (o->listen) opts.endpoint = endpoint_mode::listen;
        if (o->connect) opts.endpoint = endpoint_mode::connect;
        auto ch = open_channel(o->url, channel_role::sender, opts);
        auto send_one = [&](std::string_view payload) -> int {
            switch (ch->send(payload, until, o->tag)) {
                case io_status::ok:
                    return exit_ok;
                case io_status::timed_out:
                    print_error(fmt::format("send {}: timed out", o->url));
                    return exit_timeout;
                case io_status::closed:
                    print_error(fmt::format("send {}: peer closed the channel", o->url));
                    return exit_failure;
            }
            return exit_failure;
        };
        if (!o->messages.empty()) {
            for (const auto& m : o->messages)
                if (int rc = send_one(m); rc != exit_ok) return rc;
            return exit_ok;
        }
        std::string line;
        while (std::getline(std::cin, line))
            if (int rc = send_one(line); rc != exit_ok) return rc;
        return exit_ok;
    };
}

}  // namespace ipckit::cli
