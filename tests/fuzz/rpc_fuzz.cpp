// libFuzzer target for the RPC wire codec: any bytes. decode() never
// crashes or reads past the input, and whatever it accepts re-encodes to
// exactly the same bytes (one encoding per message: no field is ignored).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "detail/rpc_wire.hpp"

namespace wire = ipckit::rpc::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    wire::decode_failure why{};
    auto f = wire::decode(in, &why);
    if (!f) {
        if (why == wire::decode_failure::none) std::abort();
        return 0;
    }
    if (why != wire::decode_failure::none) std::abort();
    if (f->method.data() + f->method.size() > in.data() + in.size()) std::abort();
    if (f->body.data() + f->body.size() != in.data() + in.size()) std::abort();
    if ((f->type == wire::kind::call) == f->method.empty()) std::abort();
    std::string again;
    wire::encode(*f, again);
    if (again != in) std::abort();
    return 0;
}
