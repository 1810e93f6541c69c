// ipckit bridge FROM TO: forwards every message from one channel to another.
#include <fmt/core.h>

#include "cli.hpp"
#include "ipckit/channel.hpp"

namespace ipckit::cli {

void register_bridge(CLI::App& app, verb& v) {
    struct options {
        std::string from, to, timeout;
        std::size_t count = 0;
        bool quiet = false;
    };
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand("bridge", "Forward messages from one URL to another");
    cmd->footer(
        "Receives on FROM (as its owner, like recv) and sends on TO (connecting, like send),\n"
        "keeping message boundaries and tags. Ends when FROM closes, after -n messages, or\n"
        "on timeout (exit 3). Prints a count on stderr at the end unless --quiet.\n"
        "Examples:\n"
        "  ipckit bridge fifo:/tmp/in mq:/jobs\n"
        "  ipckit bridge 'tcp://0.0.0.0:7000?frame=line' fifo:/tmp/log -n 100");
    cmd->add_option("from", o->from, "URL to receive from")->required();
    cmd->add_option("to", o->to, "URL to send to")->required();
    cmd->add_option("-n,--count", o->count, "Stop after N messages")->check(count_validator());
    cmd->add_option("-t,--timeout", o->timeout, "Give up after this long")
        ->check(duration_validator());
    cmd->add_flag("-q,--quiet", o->quiet, "No summary on stderr");
    v.app = cmd;
    v.action = [o]() -> int {
        deadline until =
            o->timeout.empty() ? deadline::never() : deadline::after(*parse_duration(o->timeout));
        open_options opts;
        opts.open_deadline = until;
        opts.on_client_dropped = [](const std::string& why) {
            print_error(why + " (client disconnected; still listening)");
        };
        auto in = open_channel(o->from, channel_role::receiver, opts);
        auto out = open_channel(o->to, channel_role::sender, opts);
        message m;
        std::size_t n = 0;
        std::size_t bytes = 0;
        int rc = exit_ok;
        while (o->count == 0 || n < o->count) {
            auto st = in->receive(m, until);
            if (st == io_status::closed) break;
            if (st == io_status::timed_out) {
                print_error(fmt::format("bridge {}: timed out", o->from));
                rc = exit_timeout;
                break;
            }
            auto sent = out->send(m.payload, until, m.tag);
            if (sent != io_status::ok) {
                print_error(fmt::format("bridge {}: {}", o->to, to_string(sent)));
                rc = sent == io_status::timed_out ? exit_timeout : exit_failure;
                break;
            }
            ++n;
            bytes += m.payload.size();
        }
        if (!o->quiet) fmt::print(stderr, "ipckit: bridged {} message(s), {} bytes\n", n, bytes);
        return rc;
    };
}

}  // namespace ipckit::cli
