// Google Benchmark: what an RPC call costs on top of the socket it rides on.
// Both cases use one connected Unix stream socketpair and a server thread:
//   RawFramedEcho  the baseline, a length-framed message echoed back by a
//                  loop over ipckit channels (no RPC header, no dispatch);
//   RpcCallEcho    rpc::client::call("echo") answered by rpc::server::serve.
// Read RpcCallEcho / RawFramedEcho from the same run: the machine is a
// shared VM, and both are dominated by waking the peer thread.
#include <benchmark/benchmark.h>

#include <string>
#include <thread>

#include "ipckit/channel.hpp"
#include "ipckit/rpc.hpp"
#include "ipckit/socket.hpp"

using namespace ipckit;

namespace {

std::pair<std::unique_ptr<channel>, std::unique_ptr<channel>> channel_pair() {
    auto [a, b] = make_socket_pair(socket_type::stream);
    return {make_fd_channel("bench-client", a.release_fd(), {}),
            make_fd_channel("bench-server", b.release_fd(), {})};
}

void RawFramedEcho(benchmark::State& state) {
    auto [client, server] = channel_pair();
    std::thread echo([ch = server.get()] {
        message m;
        while (ch->receive(m) == io_status::ok)
            if (ch->send(m.payload) != io_status::ok) break;
    });
    std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
    message reply;
    for (auto _ : state) {
        if (client->send(payload) != io_status::ok || client->receive(reply) != io_status::ok ||
            reply.payload.size() != payload.size())
            state.SkipWithError("echo failed");
    }
    client.reset();  // EOF ends the echo loop
    echo.join();
    state.SetBytesProcessed(state.iterations() * state.range(0) * 2);
}

void RpcCallEcho(benchmark::State& state) {
    auto [client_end, server_end] = channel_pair();
    rpc::server srv;
    srv.add("echo", [](std::string_view args) { return std::string(args); });
    std::thread serving([&srv, ch = server_end.get()] { srv.serve(*ch); });
    std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
    std::string result;
    {
        rpc::client cl(std::move(client_end));
        for (auto _ : state) {
            if (cl.call("echo", payload, result) != io_status::ok ||
                result.size() != payload.size())
                state.SkipWithError("call failed");
        }
    }  // the client's channel closes: serve() returns
    serving.join();
    state.SetBytesProcessed(state.iterations() * state.range(0) * 2);
}

}  // namespace

BENCHMARK(RawFramedEcho)->Arg(16)->Arg(1024)->Arg(64 << 10)->UseRealTime();
BENCHMARK(RpcCallEcho)->Arg(16)->Arg(1024)->Arg(64 << 10)->UseRealTime();

BENCHMARK_MAIN();
