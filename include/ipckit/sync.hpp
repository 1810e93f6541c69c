// Process-shared synchronisation for shared memory: a robust mutex, a futex
// wait/wake wrapper and POSIX semaphores (named and in-memory).
//
// There is deliberately no process-shared condition variable: a
// pthread_cond_t in shared memory can hang forever once a waiter is killed
// (its internal sequence counters are left half-updated). Wait on a futex word
// instead (futex_wait / futex_wake below), as the ring does.
#pragma once

#include <pthread.h>
#include <semaphore.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "ipckit/deadline.hpp"
#include "ipckit/url.hpp"  // open_mode

namespace ipckit {

// ---- futex -------------------------------------------------------------------

/// Outcome of futex_wait.
enum class futex_result {
    woken,      ///< woken by futex_wake (or spuriously: always re-check the condition)
    changed,    ///< *word != expected when the call started: nothing to wait for
    timed_out,  ///< the deadline passed
};

/// Sleeps while word == expected, until woken or the deadline passes. The
/// word may live in shared memory (a non-private futex is used). EINTR is
/// retried with the remaining time.
futex_result futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                        const deadline& until = deadline::never());

/// Wakes up to count waiters on word (INT_MAX: all). Returns how many woke.
int futex_wake(const std::atomic<std::uint32_t>& word, int count = 1) noexcept;

// ---- robust mutex ----------------------------------------------------------------

/// Outcome of robust_mutex::lock.
enum class lock_result {
    acquired,    ///< locked; the protected data is consistent
    owner_died,  ///< locked, but the previous owner died holding it: repair the
                 ///< data, then call make_consistent() before unlock()
    timed_out,   ///< not locked (lock with a deadline only)
};

/// A process-shared, robust pthread mutex to be placed in shared memory.
/// Construct it once (placement new) in the creating process; other processes
/// use it through a pointer into their mapping and must not construct it.
/// Standard layout; alignof(pthread_mutex_t).
class robust_mutex {
  public:
    robust_mutex();
    ~robust_mutex();
    robust_mutex(const robust_mutex&) = delete;
    robust_mutex& operator=(const robust_mutex&) = delete;

    /// Blocks until locked or the deadline passes (CLOCK_MONOTONIC). Throws
    /// ipckit::error(ENOTRECOVERABLE) if an earlier owner_died was unlocked
    /// without make_consistent(), and EDEADLK on a relock by the owner thread.
    lock_result lock(const deadline& until = deadline::never());
    /// Never blocks: acquired / owner_died, or timed_out if someone holds it.
    lock_result try_lock();
    /// After owner_died: declares the protected data repaired.
    void make_consistent();
    void unlock();

    pthread_mutex_t* native() noexcept { return &m_; }

  private:
    lock_result finish(int rc, const char* op);
    pthread_mutex_t m_;
};

// ---- semaphores ----------------------------------------------------------------

/// A POSIX named semaphore (sem_open, "/name", mode 0600 by default).
class named_semaphore {
  public:
    /// create_only uses O_EXCL; initial is used only when the call creates it.
    static named_semaphore open(std::string_view name, unsigned initial = 0,
                                open_mode how = open_mode::create_only,
                                unsigned permissions = 0600);
    /// Removes the name (sem_unlink); false if it did not exist.
    static bool remove(std::string_view name);

    named_semaphore(named_semaphore&& o) noexcept;
    named_semaphore& operator=(named_semaphore&& o) noexcept;
    named_semaphore(const named_semaphore&) = delete;
    named_semaphore& operator=(const named_semaphore&) = delete;
    ~named_semaphore();

    void post();
    /// Decrements, waiting until the deadline; false on timeout.
    bool wait(const deadline& until = deadline::never());
    bool try_wait() { return wait(deadline::immediate()); }
    int value() const;
    const std::string& name() const noexcept { return name_; }
    bool created() const noexcept { return created_; }

  private:
    named_semaphore() = default;
    sem_t* sem_ = nullptr;
    std::string name_;
    bool created_ = false;
};

/// An unnamed semaphore (sem_init); process-shared when placed in shared
/// memory. Construct it once in place, like robust_mutex.
class semaphore {
  public:
    explicit semaphore(unsigned initial = 0, bool process_shared = true);
    ~semaphore();
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    void post();
    bool wait(const deadline& until = deadline::never());
    bool try_wait() { return wait(deadline::immediate()); }
    int value() const;

  private:
    mutable sem_t s_;
};

/// Removes a named semaphore on scope exit (errors ignored).
class semaphore_remover {
  public:
    explicit semaphore_remover(std::string name) noexcept : name_(std::move(name)) {}
    semaphore_remover(const semaphore_remover&) = delete;
    semaphore_remover& operator=(const semaphore_remover&) = delete;
    ~semaphore_remover();

  private:
    std::string name_;
};

}  // namespace ipckit
