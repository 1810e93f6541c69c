// Runs the lecture's shared-memory programs as real processes: POSIX and
// System V producer/consumer pairs (consumer started first, so it must wait
// properly) and the bounded buffer on the ring with several producers and
// consumers. Every object is uniquely named and removed even on failure.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/shm.hpp"
#include "ipckit/sysv.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string example(const std::string& name) {
    return std::string(IPCKIT_EXAMPLES_DIR) + "/" + name;
}

// Runs a and b concurrently (b started first), returns both results.
std::pair<run_result, run_result> run_pair(const std::vector<std::string>& a,
                                           const std::vector<std::string>& b) {
    run_result rb;
    std::thread t([&] { rb = run(b, {}, deadline::after(30s)); });
    std::this_thread::sleep_for(20ms);  // not needed for correctness: b waits either way
    run_result ra = run(a, {}, deadline::after(30s));
    t.join();
    return {ra, rb};
}

}  // namespace

TEST(ShmExamples, PosixProducerConsumer) {
    auto name = "/" + test::unique_name("ipckit-OS");
    shm_remover rm(name);
    auto [prod, cons] = run_pair({example("shm_posix_producer"), name, "20"},
                                 {example("shm_posix_consumer"), name, "20"});
    ASSERT_TRUE(prod.status.success()) << prod.err;
    ASSERT_TRUE(cons.status.success()) << cons.err;
    EXPECT_EQ(cons.out, "Operating Systems Is Fun!\n");
    EXPECT_NE(prod.out.find("removing"), std::string::npos) << prod.out;
    EXPECT_FALSE(shared_memory::remove(name));  // the producer removed it
}

TEST(ShmExamples, PosixConsumerAloneTimesOutCleanly) {
    auto name = "/" + test::unique_name("ipckit-OS");
    auto r = run({example("shm_posix_consumer"), name, "0"}, {}, deadline::after(20s));
    EXPECT_FALSE(r.status.success());
    EXPECT_NE(r.err.find("shm_open " + name), std::string::npos) << r.err;
}

TEST(ShmExamples, SystemVProducerConsumer) {
    auto path = test::unique_path("sysv-shm-example");
    { std::ofstream(path) << "key"; }
    test::scoped_unlink unlink_key(path);
    auto key = sysv_key::from_path(path);
    auto [prod, cons] = run_pair({example("sysv_shm_producer"), path, "20"},
                                 {example("sysv_shm_consumer"), path, "20"});
    // Whatever happened, the segment must be gone.
    try {
        auto left = sysv_shm::open(key, 0, open_mode::open_only);
        sysv_shm::remove(left.id());
        ADD_FAILURE() << "segment left behind";
    } catch (const error&) {
    }
    ASSERT_TRUE(prod.status.success()) << prod.err;
    ASSERT_TRUE(cons.status.success()) << cons.err;
    EXPECT_EQ(cons.out, "Olá Mundo!\n");
    EXPECT_NE(prod.out.find("segment id"), std::string::npos);
}

TEST(ShmExamples, BoundedBufferSeveralProducersAndConsumers) {
    auto r = run({example("ring_bounded_buffer"), "3", "3", "2000", "8"}, {}, deadline::after(60s));
    ASSERT_TRUE(r.status.success()) << r.out << r.err;
    EXPECT_NE(r.out.find("6000 consumed, each exactly once"), std::string::npos) << r.out;
    auto bad = run({example("ring_bounded_buffer"), "0"}, {}, deadline::after(20s));
    EXPECT_EQ(bad.status.code, 2);
}
