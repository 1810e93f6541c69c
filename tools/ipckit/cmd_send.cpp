// ipckit send URL [MSG...]: one message per argument, or per stdin line.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "cli.hpp"
#include "ipckit/channel.hpp"
#include "ipckit/error.hpp"

namespace ipckit::cli {

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
