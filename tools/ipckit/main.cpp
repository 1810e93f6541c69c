// The ipckit command: generic verbs over channels plus mechanism verbs.
#include <cerrno>
#include <cstdio>
#include <exception>
#include <vector>

#include "cli.hpp"
#include "ipckit/error.hpp"
#include "ipckit/url.hpp"

namespace {

constexpr const char* kFooter =
    R"(Exit codes: 0 ok, 1 failure, 2 usage error (bad arguments or URL), 3 timeout.
URLs: stdio:  fifo:/path  mq:/name  sysvmq:KEY|/path  unix:/path|@name
      tcp://host:port  udp://host:port  shm:/name   (options: ?frame=length|line|raw ...)
Examples:
  ipckit tour                                  run every mechanism live
  ipckit recv fifo:/tmp/demo -n 2 &            receive two messages
  ipckit send fifo:/tmp/demo hello world       send two messages
Run 'ipckit <verb> --help' for a verb's options.)";

}  // namespace

int main(int argc, char** argv) {
    using namespace ipckit::cli;
    CLI::App app{"ipckit: inter-process communication toolkit for Linux", "ipckit"};
    app.set_version_flag("--version", std::string("ipckit ") + IPCKIT_VERSION);
    app.footer(kFooter);
    app.require_subcommand(1);

    // One line per verb; the order is the order of `ipckit --help`.
    const std::vector<void (*)(CLI::App&, verb&)> registrations{
        &register_tour, &register_send, &register_recv,  &register_bridge, &register_signal,
        &register_chat, &register_rpc,  &register_bench, &register_ls,     &register_rm,
    };
    std::vector<verb> verbs(registrations.size());
    for (std::size_t i = 0; i < registrations.size(); ++i)
        registrations[i](app, verbs[i]);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);  // prints help / version / the usage error
        return code == 0 ? exit_ok : exit_usage;
    }
    for (const auto& v : verbs) {
        if (!v.app || !v.app->parsed() || !v.action) continue;
        try {
            return v.action();
        } catch (const ipckit::url_error& e) {
            print_error(e.what());
            return exit_usage;
        } catch (const ipckit::error& e) {
            print_error(e.what());
            return e.code().value() == ETIMEDOUT ? exit_timeout : exit_failure;
        } catch (const std::invalid_argument& e) {
            print_error(e.what());
            return exit_usage;
        } catch (const std::exception& e) {
            print_error(e.what());
            return exit_failure;
        }
    }
    return exit_usage;
}
