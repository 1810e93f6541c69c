// Shared pieces of the ipckit command: exit codes, error printing, durations,
// and one register_<verb>() per cmd_<verb>.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ipckit {
struct message;
}

namespace ipckit::cli {

/// One JSON object for a message: seq, size, tag (repeated under tag_name,
/// e.g. "priority", when given), and "payload" (UTF-8 text) or "payload_hex"
/// (cmd_recv.cpp; used by recv and rpc call --json).
nlohmann::ordered_json message_json(const message& m, std::size_t seq,
                                    std::string_view tag_name = {});

/// Documented exit codes (see `ipckit --help`).
enum exit_code : int { exit_ok = 0, exit_failure = 1, exit_usage = 2, exit_timeout = 3 };

/// A verb's body; returns the process exit code. Exceptions are turned into
/// "ipckit: <what>" on stderr by main().
using verb_action = std::function<int()>;

/// Every verb registers its subcommand and sets `action` to run when chosen.
struct verb {
    CLI::App* app = nullptr;
    verb_action action;
};

/// Parses "500ms", "15s", "2m", "1h", "250us" or a bare number of seconds
/// ("1.5"). nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// A CLI11 option callback-friendly validator for durations.
CLI::Validator duration_validator();

/// Refuses a negative count (-n N options, which are unsigned).
CLI::Validator count_validator();

/// Prints "ipckit: <message>" to stderr.
void print_error(std::string_view message);

/// True when stdout / stderr is a terminal.
bool stdout_is_tty();
bool stderr_is_tty();

/// Escapes non-printable bytes as \n, \t, \\, \xHH so binary payloads are
/// safe to print on one line.
std::string escape_bytes(std::string_view bytes);

/// The current time in UTC, ISO 8601 to the second ("2026-11-26T15:04:05Z").
std::string utc_now();

void register_send(CLI::App& app, verb& v);
void register_recv(CLI::App& app, verb& v);
void register_tour(CLI::App& app, verb& v);
void register_bridge(CLI::App& app, verb& v);
void register_signal(CLI::App& app, verb& v);
void register_bench(CLI::App& app, verb& v);
void register_chat(CLI::App& app, verb& v);
void register_rpc(CLI::App& app, verb& v);
void register_ls(CLI::App& app, verb& v);
void register_rm(CLI::App& app, verb& v);

}  // namespace ipckit::cli
