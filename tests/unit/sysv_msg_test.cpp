// System V message queues: keys, creation, types as msgrcv selects them,
// timeouts, stat, removal. Every queue is removed by a sysv_msg_remover.
#include <sys/ipc.h>
#include <sys/msg.h>

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "ipckit/error.hpp"
#include "ipckit/sysv.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

// A key nobody uses yet, claimed with create_only (retried on collision).
sysv_message_queue fresh_queue(sysv_key* key_out = nullptr) {
    static std::mt19937 rng{std::random_device{}()};
    for (int i = 0; i < 100; ++i) {
        auto key = sysv_key::from_number(static_cast<key_t>(0x1c000000 | (rng() & 0xffffff)));
        try {
            auto q = sysv_message_queue::open(key, open_mode::create_only);
            if (key_out) *key_out = key;
            return q;
        } catch (const ipckit::error& e) {
            if (e.code().value() != EEXIST) throw;
        }
    }
    throw std::runtime_error("no free System V key");
}

}  // namespace

TEST(SysvMsg, PrivateQueueIsNewAndPrivate) {
    auto a = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover ra(a);
    auto b = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover rb(b);
    EXPECT_NE(a.id(), b.id());
    EXPECT_EQ(a.stat().mode, 0600u);
    EXPECT_EQ(a.stat().owner_uid, ::geteuid());
}

TEST(SysvMsg, KeyOpenModes) {
    sysv_key key = sysv_key::private_key();
    auto q = fresh_queue(&key);
    sysv_msg_remover rm(q);
    EXPECT_EQ(q.stat().mode, 0600u);
    try {
        sysv_message_queue::open(key, open_mode::create_only);
        ADD_FAILURE() << "create_only on an existing key succeeded";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), EEXIST);
    }
    EXPECT_EQ(sysv_message_queue::open(key, open_mode::open_only).id(), q.id());
    EXPECT_EQ(sysv_message_queue::open(key, open_mode::open_or_create).id(), q.id());
    EXPECT_NE(q.describe().find(key.to_string()), std::string::npos);
    EXPECT_TRUE(sysv_message_queue::remove(key));
    EXPECT_FALSE(sysv_message_queue::remove(key));
    try {
        sysv_message_queue::open(key, open_mode::open_only);
        ADD_FAILURE() << "open_only on a removed key succeeded";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
    }
}

TEST(SysvMsg, FtokKey) {
    test::scoped_unlink file(test::unique_path("ipckit-ftok"));
    std::ofstream(file.path()) << "x";
    auto key = sysv_key::from_path(file.path(), 7);
    EXPECT_EQ(key.value(), ::ftok(file.path().c_str(), 7));
    try {
        sysv_key::from_path(file.path() + "-missing", 7);
        ADD_FAILURE() << "ftok on a missing path succeeded";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
    }
}

TEST(SysvMsg, ReceiveSelectsByType) {
    auto q = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover rm(q);
    ASSERT_EQ(q.send(5, "five"), io_status::ok);
    ASSERT_EQ(q.send(2, "two"), io_status::ok);
    ASSERT_EQ(q.send(9, "nine"), io_status::ok);
    ASSERT_EQ(q.send(3, "three"), io_status::ok);
    sysv_message m;
    // Exact type.
    ASSERT_EQ(q.receive(m, 9), io_status::ok);
    EXPECT_EQ(m.type, 9);
    EXPECT_EQ(m.data, "nine");
    // Negative: the lowest type <= 4 (2 before 3, although 3 is not older).
    ASSERT_EQ(q.receive(m, -4), io_status::ok);
    EXPECT_EQ(m.type, 2);
    ASSERT_EQ(q.receive(m, -4), io_status::ok);
    EXPECT_EQ(m.type, 3);
    // Nothing <= 4 left, and nothing of type 7.
    EXPECT_EQ(q.try_receive(m, -4), io_status::timed_out);
    EXPECT_EQ(q.receive(m, 7, deadline::after(20ms)), io_status::timed_out);
    // Zero: the oldest of any type.
    ASSERT_EQ(q.receive(m, 0), io_status::ok);
    EXPECT_EQ(m.type, 5);
    EXPECT_EQ(m.data, "five");
}

TEST(SysvMsg, StatCountsAndPids) {
    auto q = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover rm(q);
    ASSERT_EQ(q.send(1, "abc"), io_status::ok);
    ASSERT_EQ(q.send(1, "de"), io_status::ok);
    auto s = q.stat();
    EXPECT_EQ(s.messages, 2u);
    EXPECT_EQ(s.bytes, 5u);
    EXPECT_GT(s.max_bytes, 0u);
    EXPECT_EQ(s.last_send_pid, ::getpid());
    EXPECT_NE(s.last_send, 0);
    sysv_message m;
    ASSERT_EQ(q.receive(m), io_status::ok);
    EXPECT_EQ(q.stat().last_receive_pid, ::getpid());
    EXPECT_EQ(q.stat().messages, 1u);
}

TEST(SysvMsg, BadInput) {
    auto q = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover rm(q);
    for (long bad : {0L, -3L}) {
        try {
            q.send(bad, "x");
            ADD_FAILURE() << "type " << bad << " accepted";
        } catch (const ipckit::error& e) {
            EXPECT_EQ(e.code().value(), EINVAL);
        }
    }
    try {
        q.send(1, std::string(sysv_msg_max() + 1, 'x'));
        ADD_FAILURE() << "oversize message accepted";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), EMSGSIZE);
        EXPECT_NE(std::string(e.what()).find("msgmax"), std::string::npos) << e.what();
    }
    EXPECT_THROW(sysv_key::from_number(0), ipckit::error);
    EXPECT_THROW(sysv_key::from_path("/tmp", 0), ipckit::error);
}

TEST(SysvMsg, FullQueueIsATimeoutAndOversizeForCapacityThrows) {
    auto q = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover rm(q);
    q.set_max_bytes(10);
    EXPECT_EQ(q.stat().max_bytes, 10u);
    ASSERT_EQ(q.send(1, "12345678"), io_status::ok);
    EXPECT_EQ(q.send(1, "123", deadline::immediate()), io_status::timed_out);
    EXPECT_EQ(q.send(1, "123", deadline::after(20ms)), io_status::timed_out);
    try {
        q.send(1, "0123456789a");  // can never fit: must not block forever
        ADD_FAILURE() << "a message larger than msg_qbytes was accepted";
    } catch (const ipckit::error& e) {
        EXPECT_EQ(e.code().value(), EMSGSIZE);
        EXPECT_NE(std::string(e.what()).find("at most 10 bytes"), std::string::npos) << e.what();
    }
}

TEST(SysvMsg, RemovedQueueReadsClosed) {
    auto q = sysv_message_queue::open(sysv_key::private_key());
    sysv_msg_remover rm(q);
    EXPECT_TRUE(q.remove());
    EXPECT_FALSE(q.remove());
    sysv_message m;
    EXPECT_EQ(q.try_receive(m), io_status::closed);
    EXPECT_EQ(q.receive(m, 0, deadline::after(20ms)), io_status::closed);
    EXPECT_EQ(q.receive(m), io_status::closed);
    EXPECT_EQ(q.send(1, "x"), io_status::closed);
}
