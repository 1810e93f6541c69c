// Channel URLs: one string names every transport.
//
//   stdio:                          stdin/stdout (frame=raw by default)
//   fifo:/path                      named pipe
//   mq:/name                        POSIX message queue (?maxmsg=&msgsize=&priority=)
//   sysvmq:KEY | sysvmq:/path       System V message queue, key or ftok(path) (?type=&id=)
//   unix:/path | unix:@name         Unix socket (?type=stream|dgram|seqpacket)
//   tcp://host:port | udp://host:port   IPv4, names, or [v6]
//   shm:/name                       shared-memory ring (?capacity=&mode=spsc|mpmc)
//
// Common options: create=create_only|open_only|open_or_create, mode=0600
// (octal permissions; on shm: also spsc|mpmc), frame=length|line|raw,
// max_message=BYTES (suffixes k, M, G).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ipckit {

/// A URL that does not parse or validate. what() quotes the URL and points
/// at the bad part: "bad URL 'fifo:tmp/x': path must be absolute (at 'tmp/x')".
class url_error : public std::invalid_argument {
  public:
    url_error(std::string_view url, std::size_t position, std::size_t length,
              const std::string& reason);
    /// Offset and length of the offending part inside the URL text.
    std::size_t position() const noexcept { return position_; }
    std::size_t length() const noexcept { return length_; }

  private:
    std::size_t position_;
    std::size_t length_;
};

/// How stream transports delimit messages.
enum class framing {
    length,  ///< 4-byte little-endian length + payload (default)
    line,    ///< one message per '\n'-terminated line (talks to cat, nc, socat)
    raw,     ///< no framing: each read is one message, each send writes bytes as-is
};

/// How a named object is opened.
enum class open_mode { create_only, open_only, open_or_create };

/// A parsed, validated channel URL.
struct url {
    std::string text;    ///< the URL as given
    std::string scheme;  ///< "stdio", "fifo", "mq", "sysvmq", "unix", "tcp", "udp", "shm"
    /// fifo/unix/shm/mq: the path or name ("@name" for abstract Unix sockets);
    /// sysvmq: the ftok path (empty when key is set).
    std::string path;
    std::optional<std::int64_t> sysv_key;  ///< sysvmq:KEY (decimal or 0x hex)
    std::string host;                      ///< tcp/udp: name or address, without brackets
    std::uint16_t port = 0;                ///< tcp/udp
    std::map<std::string, std::string, std::less<>> params;  ///< validated ?k=v options

    /// The raw option value, if present.
    std::optional<std::string> param(std::string_view key) const;
    /// Typed accessors with defaults (values were validated by parse_url).
    framing frame(framing fallback) const;
    std::size_t max_message(std::size_t fallback) const;
    unsigned permissions(unsigned fallback = 0600) const;
    std::optional<open_mode> create() const;
    std::optional<std::uint64_t> unsigned_param(std::string_view key) const;
    std::optional<std::int64_t> signed_param(std::string_view key) const;
};

/// Parses and validates url. Throws url_error pointing at the bad part. Every
/// scheme above parses, including those whose transport is not built in.
url parse_url(std::string_view text);

/// Parses a byte size: "4096", "64k", "16M", "1G" (binary multiples).
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace ipckit
