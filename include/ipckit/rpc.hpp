// Remote procedure calls over ipckit channels: the lecture's last
// message-passing mechanism ("RPC"), without a portmapper or XDR. A client
// calls a named method with a byte string and gets a byte string back (or
// the server's error); a server dispatches calls to registered handlers.
//
// Serialization of the arguments is the caller's choice (text, JSON, a
// struct of fixed-size fields): the library carries bytes, like every other
// channel. The wire format is in docs/rpc.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/channel.hpp"
#include "ipckit/deadline.hpp"
#include "ipckit/socket.hpp"

namespace ipckit::rpc {

/// Why the server refused or failed a call.
enum class errc : std::uint16_t {
    unknown_method = 1,   ///< no handler has that name
    bad_request = 2,      ///< the call could not be decoded (e.g. an invalid method name)
    handler_failed = 3,   ///< the handler threw; the text is its what()
    reply_too_large = 4,  ///< the handler's result exceeds the channel's max_message
};

/// "unknown method", "bad request", "handler failed", "reply too large".
const char* to_string(errc code) noexcept;

/// The server answered the call with an error. what() reads
/// "<method>: <reason>: <detail>", e.g. "add: handler failed: not a number: x".
class remote_error : public std::runtime_error {
  public:
    remote_error(errc code, std::string method, std::string detail);
    errc code() const noexcept { return code_; }
    const std::string& method() const noexcept { return method_; }
    /// The server's explanation (the handler's what() for handler_failed).
    const std::string& detail() const noexcept { return detail_; }

  private:
    errc code_;
    std::string method_;
    std::string detail_;
};

/// Longest method name. Names use letters, digits and "_.:-"; names
/// starting with "rpc." are the server's own (rpc.methods lists them all).
inline constexpr std::size_t max_method_name = 255;

/// True when name is a valid method name (see max_method_name).
bool valid_method_name(std::string_view name) noexcept;

/// Calls methods on one server over one duplex channel. One call at a time
/// (not thread-safe). A call that timed out may still run on the server: the
/// next call first waits (within its own deadline) for that late reply and
/// drops it, recognised by its call id, so replies never cross.
class client {
  public:
    /// Connects to a server listening on url: "unix:/path", "unix:@name" or
    /// "tcp://host:port" (stream sockets; ?max_message= bounds replies).
    /// A refused connection or a deadline that passes throws ipckit::error
    /// (ECONNREFUSED / ETIMEDOUT).
    explicit client(std::string_view url, const deadline& connect_deadline = deadline::never());
    /// Uses a duplex channel you already have (a socketpair end from
    /// make_fd_channel, a connected unix: seqpacket channel, ...).
    explicit client(std::unique_ptr<channel> ch);
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;
    ~client();

    /// Calls method with args and stores the reply in result. Returns ok,
    /// timed_out (the deadline passed; result unspecified) or closed (the
    /// server is gone). Throws remote_error when the server answers with an
    /// error, ipckit::error(EINVAL) for an invalid method name, (EMSGSIZE)
    /// for a call larger than the channel carries and (EPROTO) for a reply
    /// that is not an RPC message.
    io_status call(std::string_view method, std::string_view args, std::string& result,
                   const deadline& until = deadline::never());

    /// The method names the server offers (calls "rpc.methods") into names;
    /// ok, timed_out or closed as for call().
    io_status methods(std::vector<std::string>& names, const deadline& until = deadline::never());

    const std::string& name() const noexcept;

  private:
    std::unique_ptr<channel> ch_;
    std::uint64_t next_id_ = 1;
    std::uint64_t awaiting_ = 0;  // a call whose reply has not been taken yet
    std::string buf_;
    message reply_;
};

/// Handles one call: gets the arguments, returns the result. An exception
/// it throws becomes an errc::handler_failed reply carrying its what().
using handler = std::function<std::string(std::string_view args)>;

/// Options of server::listen.
struct listen_options {
    /// Largest call or reply (the URL's ?max_message= overrides it).
    std::size_t max_message = default_max_message;
    /// Connections served at once; more are accepted and closed at once.
    std::size_t max_clients = 1024;
    unsigned mode = 0600;  ///< unix: pathname socket permissions
    peer_policy allow;     ///< unix: uid/gid allow-list, checked before reading
};

/// What a listening server has done so far.
struct server_stats {
    std::uint64_t accepted = 0;  ///< connections accepted
    std::uint64_t refused = 0;   ///< connections closed at once (allow-list, max_clients)
    std::uint64_t calls = 0;     ///< calls answered, with a result or an error
    std::uint64_t errors = 0;    ///< calls answered with an error
    std::uint64_t dropped = 0;   ///< connections closed for a protocol violation
    std::size_t active = 0;      ///< connections open now
};

/// Dispatches calls to handlers. Register handlers first, then either serve
/// one duplex channel (serve) or listen on a URL and serve every client
/// concurrently in one thread (listen + run). Handlers run one at a time in
/// the serving thread, so a slow handler delays the other clients. One
/// serve() or run() at a time per server; only request_stop() and stats()
/// may be called from other threads meanwhile.
///
/// A client that stops reading its replies only stalls itself: the server
/// keeps at most one unsent reply per connection and reads no further call
/// from it until that reply is out. A client that sends something that is
/// not an RPC call, or a frame above max_message, is disconnected.
class server {
  public:
    server();
    server(server&&) = delete;
    ~server();

    /// Registers handler under name. Throws std::invalid_argument for an
    /// invalid or reserved ("rpc.") name or one already registered.
    void add(std::string name, handler h);

    /// Answers calls arriving on ch until its peer closes (returns closed)
    /// or until passes (returns timed_out). Throws ipckit::error(EPROTO) for
    /// a message that is not an RPC call.
    io_status serve(channel& ch, const deadline& until = deadline::never());

    /// Binds and listens on "unix:/path", "unix:@name" (type=stream) or
    /// "tcp://host:port" (port 0 picks a free one: see address()). Clients
    /// can connect once this returns. Throws std::invalid_argument for
    /// another scheme and ipckit::error when binding fails.
    void listen(std::string_view url, const listen_options& options = {});

    /// The URL clients connect to (with the real port for tcp://...:0).
    const std::string& address() const noexcept;

    /// Serves every client of the listener until request_stop() or until
    /// passes. Returns true when stopped by request_stop().
    bool run(const deadline& until = deadline::never());

    /// Makes run() return soon. Async-signal-safe and thread-safe: callable
    /// from a signal handler, another thread or a handler.
    void request_stop() noexcept;

    server_stats stats() const noexcept;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace ipckit::rpc
