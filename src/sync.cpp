#include "ipckit/sync.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <utility>

#include "ipckit/error.hpp"
#include "ipckit/shm.hpp"

namespace ipckit {

// ---- futex -------------------------------------------------------------------

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

futex_result futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                        const deadline& until) {
    // Not FUTEX_PRIVATE_FLAG: the word is normally in memory shared between
    // processes, keyed by the physical page.
    auto* addr = const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
    for (;;) {
        timespec ts{};
        const timespec* tp = nullptr;
        if (!until.is_never()) {
            if (until.expired()) return futex_result::timed_out;
            ts = until.relative_timespec();
            tp = &ts;
        }
        long rc = ::syscall(SYS_futex, addr, FUTEX_WAIT, expected, tp, nullptr, 0);
        if (rc == 0) return futex_result::woken;
        switch (errno) {
            case EAGAIN:
                return futex_result::changed;
            case ETIMEDOUT:
                return futex_result::timed_out;
            case EINTR:
                continue;  // time left is recomputed above
            default:
                throw_errno("futex_wait", "futex word");
        }
    }
}

int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
    auto* addr = const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
    long rc = ::syscall(SYS_futex, addr, FUTEX_WAKE, count, nullptr, nullptr, 0);
    return rc < 0 ? 0 : static_cast<int>(rc);
}

// ---- robust mutex ----------------------------------------------------------------

robust_mutex::robust_mutex() {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    // Error checking: a relock by the owner is EDEADLK, not a silent hang.
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    int rc = pthread_mutex_init(&m_, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) throw_error(rc, "pthread_mutex_init", "robust mutex");
}

robust_mutex::~robust_mutex() {
    pthread_mutex_destroy(&m_);
}

lock_result robust_mutex::finish(int rc, const char* op) {
    switch (rc) {
        case 0:
            return lock_result::acquired;
        case EOWNERDEAD:
            return lock_result::owner_died;
        case ETIMEDOUT:
        case EBUSY:
            return lock_result::timed_out;
        case ENOTRECOVERABLE:
            throw_error(rc, op, "robust mutex",
                        "a previous owner died and the state was never made consistent");
        default:
            throw_error(rc, op, "robust mutex");
    }
}

lock_result robust_mutex::lock(const deadline& until) {
    if (until.is_never()) return finish(pthread_mutex_lock(&m_), "pthread_mutex_lock");
#if defined(__SANITIZE_THREAD__)
    // GCC 12's ThreadSanitizer does not intercept pthread_mutex_clocklock, and
    // its timedlock interceptor ignores EOWNERDEAD: either way it would report
    // our unlock as "unlock of an unlocked mutex". Its trylock interceptor
    // handles both, so TSan builds poll with trylock.
    for (;;) {
        lock_result r = finish(pthread_mutex_trylock(&m_), "pthread_mutex_trylock");
        if (r != lock_result::timed_out || until.expired()) return r;
        struct timespec ms {
            0, 1000000
        };
        nanosleep(&ms, nullptr);
    }
#endif
    // pthread_mutex_clocklock on CLOCK_MONOTONIC: immune to wall-clock jumps.
    auto rem = until.remaining();
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    auto total = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec) + rem;
    timespec abs{};
    abs.tv_sec =
        static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(total).count());
    abs.tv_nsec = static_cast<long>((total - std::chrono::seconds(abs.tv_sec)).count());
    return finish(pthread_mutex_clocklock(&m_, CLOCK_MONOTONIC, &abs), "pthread_mutex_clocklock");
}

lock_result robust_mutex::try_lock() {
    return finish(pthread_mutex_trylock(&m_), "pthread_mutex_trylock");
}

void robust_mutex::make_consistent() {
    int rc = pthread_mutex_consistent(&m_);
    if (rc != 0) throw_error(rc, "pthread_mutex_consistent", "robust mutex");
}

void robust_mutex::unlock() {
    int rc = pthread_mutex_unlock(&m_);
    if (rc != 0) throw_error(rc, "pthread_mutex_unlock", "robust mutex");
}

// ---- semaphores ----------------------------------------------------------------

namespace {

// sem_clockwait on CLOCK_MONOTONIC; returns false on timeout.
bool sem_wait_until(sem_t* s, const deadline& until, std::string_view object) {
    for (;;) {
        int rc;
        if (until.is_never()) {
            rc = ::sem_wait(s);
        } else if (until.expired()) {
            rc = ::sem_trywait(s);
            if (rc != 0 && errno == EAGAIN) return false;
        } else {
            timespec now{};
            clock_gettime(CLOCK_MONOTONIC, &now);
            auto rel = until.relative_timespec();
            timespec abs{now.tv_sec + rel.tv_sec, now.tv_nsec + rel.tv_nsec};
            if (abs.tv_nsec >= 1000000000L) {
                abs.tv_sec += 1;
                abs.tv_nsec -= 1000000000L;
            }
            rc = ::sem_clockwait(s, CLOCK_MONOTONIC, &abs);
            if (rc != 0 && errno == ETIMEDOUT) return false;
        }
        if (rc == 0) return true;
        if (errno == EINTR) continue;
        throw_errno("sem_wait", object);
    }
}

}  // namespace

named_semaphore named_semaphore::open(std::string_view name, unsigned initial, open_mode how,
                                      unsigned permissions) {
    shared_memory::validate_name(name);  // same naming rules as shm_open
    named_semaphore s;
    s.name_ = std::string(name);
    for (int attempt = 0;; ++attempt) {
        if (how != open_mode::open_only) {
            sem_t* p = ::sem_open(s.name_.c_str(), O_CREAT | O_EXCL,
                                  static_cast<mode_t>(permissions), initial);
            if (p != SEM_FAILED) {
                s.sem_ = p;
                s.created_ = true;
                return s;
            }
            if (errno != EEXIST || how == open_mode::create_only) throw_errno("sem_open", s.name_);
        }
        sem_t* p = ::sem_open(s.name_.c_str(), 0);
        if (p != SEM_FAILED) {
            s.sem_ = p;
            return s;
        }
        if (errno != ENOENT || how == open_mode::open_only || attempt > 100)
            throw_errno("sem_open", s.name_);
    }
}

bool named_semaphore::remove(std::string_view name) {
    shared_memory::validate_name(name);
    std::string n(name);
    if (::sem_unlink(n.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw_errno("sem_unlink", n);
}

named_semaphore::named_semaphore(named_semaphore&& o) noexcept
    : sem_(std::exchange(o.sem_, nullptr)), name_(std::move(o.name_)), created_(o.created_) {}

named_semaphore& named_semaphore::operator=(named_semaphore&& o) noexcept {
    if (this != &o) {
        if (sem_) ::sem_close(sem_);
        sem_ = std::exchange(o.sem_, nullptr);
        name_ = std::move(o.name_);
        created_ = o.created_;
    }
    return *this;
}

named_semaphore::~named_semaphore() {
    if (sem_) ::sem_close(sem_);
}

void named_semaphore::post() {
    if (::sem_post(sem_) != 0) throw_errno("sem_post", name_);
}

bool named_semaphore::wait(const deadline& until) {
    return sem_wait_until(sem_, until, name_);
}

int named_semaphore::value() const {
    int v = 0;
    if (::sem_getvalue(sem_, &v) != 0) throw_errno("sem_getvalue", name_);
    return v;
}

semaphore::semaphore(unsigned initial, bool process_shared) {
    if (::sem_init(&s_, process_shared ? 1 : 0, initial) != 0) throw_errno("sem_init", "semaphore");
}

semaphore::~semaphore() {
    ::sem_destroy(&s_);
}

void semaphore::post() {
    if (::sem_post(&s_) != 0) throw_errno("sem_post", "semaphore");
}

bool semaphore::wait(const deadline& until) {
    return sem_wait_until(&s_, until, "semaphore");
}

int semaphore::value() const {
    int v = 0;
    if (::sem_getvalue(&s_, &v) != 0) throw_errno("sem_getvalue", "semaphore");
    return v;
}

semaphore_remover::~semaphore_remover() {
    if (!name_.empty()) ::sem_unlink(name_.c_str());
}

}  // namespace ipckit
