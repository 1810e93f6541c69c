// Boost.Interprocess message_queue baseline: a mutex + condition variable
// queue in POSIX shared memory, the usual "library" answer to the problem the
// ipckit ring solves.
#include <boost/interprocess/ipc/message_queue.hpp>

#include <memory>
#include <string>

#include "peer_driver.h"

namespace bip = boost::interprocess;

namespace {

std::string names[2];
std::unique_ptr<bip::message_queue> queues[2];

int setup(size_t size) {
    try {
        for (int d = 0; d < 2; ++d) {
            names[d] = "ipckit-peer-boost-" + std::to_string(getpid()) + "-" + std::to_string(d);
            bip::message_queue::remove(names[d].c_str());
            queues[d] = std::make_unique<bip::message_queue>(bip::create_only, names[d].c_str(), 10,
                                                             size, bip::permissions(0600));
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "boost message_queue: %s\n", e.what());
        errno = EIO;
        return -1;
    }
}

int attach(int) {
    // Each process re-opens the queues so that it owns its own mapping.
    try {
        for (int d = 0; d < 2; ++d)
            queues[d] = std::make_unique<bip::message_queue>(bip::open_only, names[d].c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "boost message_queue: %s\n", e.what());
        errno = EIO;
        return -1;
    }
}

int q_send(int dir, const unsigned char* buf, size_t n) {
    try {
        queues[dir]->send(buf, n, 0);
        return 0;
    } catch (const std::exception&) {
        errno = EIO;
        return -1;
    }
}

long q_recv(int dir, unsigned char* buf, size_t cap) {
    try {
        bip::message_queue::size_type got = 0;
        unsigned int priority = 0;
        queues[dir]->receive(buf, cap, got, priority);
        return static_cast<long>(got);
    } catch (const std::exception&) {
        errno = EIO;
        return -1;
    }
}

void detach(int) {
    queues[0].reset();
    queues[1].reset();
}

void teardown() {
    for (auto& n : names)
        if (!n.empty()) bip::message_queue::remove(n.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    static const peer_ops ops = {"boost-mq", "library", "shm",   static_cast<size_t>(-1),
                                 0,          setup,     attach,  q_send,
                                 q_recv,     detach,    teardown};
    return pd_run(&ops, argc, argv);
}
