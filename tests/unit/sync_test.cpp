// Process-shared synchronisation: futex wait/wake, the robust mutex (owner
// killed -> EOWNERDEAD path), named and in-memory semaphores, across real
// processes where it matters.
#include "ipckit/sync.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit/shm.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

// Shared state placed in a memfd mapping that survives fork.
struct shared_block {
    robust_mutex mutex;
    std::atomic<std::uint32_t> flag{0};
    int protected_value = 0;
    semaphore sem{0, true};
};

struct shared_fixture {
    shared_memory shm = shared_memory::memfd("sync-test", sizeof(shared_block));
    mapping map = shm.map();
    shared_block* block = new (map.data()) shared_block;
    ~shared_fixture() { block->~shared_block(); }
};

// Waits (bounded) until the flag in shared memory reaches value.
bool wait_flag(std::atomic<std::uint32_t>& f, std::uint32_t value) {
    auto d = deadline::after(10s);
    while (f.load(std::memory_order_acquire) != value) {
        if (d.expired()) return false;
        futex_wait(f, f.load(), deadline::after(10ms));
    }
    return true;
}

}  // namespace

TEST(Futex, WaitReturnsChangedTimedOutAndWoken) {
    std::atomic<std::uint32_t> word{5};
    EXPECT_EQ(futex_wait(word, 4, deadline::after(1s)), futex_result::changed);
    EXPECT_EQ(futex_wait(word, 5, deadline::after(10ms)), futex_result::timed_out);
    EXPECT_EQ(futex_wait(word, 5, deadline::immediate()), futex_result::timed_out);
    // The word never changes, so only a wake can end the wait early: the waker
    // keeps waking until the waiter reports, whenever the waiter fell asleep.
    std::atomic<bool> returned{false};
    int woke = 0;
    std::thread t([&] {
        while (!returned.load()) {
            woke += futex_wake(word, 1);
            std::this_thread::sleep_for(1ms);
        }
    });
    const futex_result r = futex_wait(word, 5, deadline::after(20s));
    returned.store(true);
    t.join();
    EXPECT_EQ(r, futex_result::woken);
    EXPECT_GE(woke, 1);
    EXPECT_EQ(word.load(), 5u);
    EXPECT_EQ(futex_wake(word, 1), 0);  // nobody sleeps
}

TEST(Futex, WakesAnotherProcess) {
    shared_fixture f;
    test::forked_child child([&] {
        f.block->flag.store(1);
        futex_wake(f.block->flag, 1);
        return wait_flag(f.block->flag, 2) ? 0 : 1;
    });
    ASSERT_TRUE(wait_flag(f.block->flag, 1));
    f.block->flag.store(2);
    futex_wake(f.block->flag, 1);
    auto st = child.wait(20s);
    ASSERT_TRUE(st && st->success());
}

TEST(RobustMutex, OwnerKilledIsReportedAndRepairable) {
    shared_fixture f;
    test::forked_child child([&] {
        if (f.block->mutex.lock() != lock_result::acquired) return 1;
        f.block->protected_value = -1;  // half-done update
        f.block->flag.store(1);
        futex_wake(f.block->flag, 1);
        ::pause();  // killed while holding the lock
        return 2;
    });
    ASSERT_TRUE(wait_flag(f.block->flag, 1));
    // Held by a live process: try and timed lock fail as values.
    EXPECT_EQ(f.block->mutex.try_lock(), lock_result::timed_out);
    EXPECT_EQ(f.block->mutex.lock(deadline::after(20ms)), lock_result::timed_out);
    ::kill(child.pid(), SIGKILL);
    auto st = child.wait(10s);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->signal, SIGKILL);

    ASSERT_EQ(f.block->mutex.lock(deadline::after(10s)), lock_result::owner_died);
    EXPECT_EQ(f.block->protected_value, -1);
    f.block->protected_value = 0;  // repair
    f.block->mutex.make_consistent();
    f.block->mutex.unlock();
    EXPECT_EQ(f.block->mutex.lock(), lock_result::acquired);
    f.block->mutex.unlock();
}

TEST(RobustMutex, NotMadeConsistentBecomesUnrecoverable) {
    shared_fixture f;
    test::forked_child child([&] {
        f.block->mutex.lock();
        return 0;  // exits holding it
    });
    auto st = child.wait(10s);
    ASSERT_TRUE(st && st->success());
    ASSERT_EQ(f.block->mutex.lock(), lock_result::owner_died);
    f.block->mutex.unlock();  // without make_consistent
    try {
        f.block->mutex.lock();
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), ENOTRECOVERABLE);
    }
}

TEST(RobustMutex, RelockByOwnerIsAnError) {
    shared_fixture f;
    ASSERT_EQ(f.block->mutex.lock(), lock_result::acquired);
    EXPECT_THROW(f.block->mutex.lock(), error);  // EDEADLK, not a hang
    f.block->mutex.unlock();
}

TEST(RobustMutex, MutualExclusionAcrossProcesses) {
    shared_fixture f;
    constexpr int rounds = 2000;
    auto body = [&] {
        for (int i = 0; i < rounds; ++i) {
            if (f.block->mutex.lock() != lock_result::acquired) return 1;
            int v = f.block->protected_value;
            f.block->protected_value = v + 1;
            f.block->mutex.unlock();
        }
        return 0;
    };
    test::forked_child a(body), b(body);
    auto sa = a.wait(30s), sb = b.wait(30s);
    ASSERT_TRUE(sa && sa->success());
    ASSERT_TRUE(sb && sb->success());
    EXPECT_EQ(f.block->protected_value, 2 * rounds);
}

TEST(Semaphore, InMemoryAcrossProcesses) {
    shared_fixture f;
    EXPECT_FALSE(f.block->sem.try_wait());
    EXPECT_FALSE(f.block->sem.wait(deadline::after(10ms)));
    test::forked_child child([&] {
        for (int i = 0; i < 3; ++i)
            f.block->sem.post();
        return 0;
    });
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(f.block->sem.wait(deadline::after(10s)));
    auto st = child.wait(10s);
    ASSERT_TRUE(st && st->success());
    EXPECT_EQ(f.block->sem.value(), 0);
}

TEST(Semaphore, NamedModesAndCleanup) {
    auto name = "/" + test::unique_name("sem");
    semaphore_remover rm(name);
    auto s = named_semaphore::open(name, 2);
    EXPECT_TRUE(s.created());
    EXPECT_EQ(s.value(), 2);
    try {
        named_semaphore::open(name, 0, open_mode::create_only);
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), EEXIST);
    }
    auto again = named_semaphore::open(name, 9, open_mode::open_or_create);
    EXPECT_FALSE(again.created());
    EXPECT_EQ(again.value(), 2);  // initial value ignored when not created
    test::forked_child child([&] {
        auto mine = named_semaphore::open(name, 0, open_mode::open_only);
        return mine.wait(deadline::after(10s)) && mine.wait(deadline::after(10s)) &&
                       mine.wait(deadline::after(10s))
                   ? 0
                   : 1;
    });
    s.post();
    auto st = child.wait(20s);
    ASSERT_TRUE(st && st->success());
    EXPECT_FALSE(s.wait(deadline::after(10ms)));
    EXPECT_TRUE(named_semaphore::remove(name));
    EXPECT_FALSE(named_semaphore::remove(name));
    try {
        named_semaphore::open(name, 0, open_mode::open_only);
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
    }
    EXPECT_THROW(named_semaphore::open("noslash"), std::invalid_argument);
    EXPECT_THROW(named_semaphore::open("/a/b"), std::invalid_argument);
}
