#include "ipckit/shm.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include "detail/syscall.hpp"
#include "ipckit/error.hpp"

namespace ipckit {
namespace {

std::string human_bytes(unsigned long long n) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

// Why the reservation failed, in numbers the user can act on.
std::string dev_shm_usage(std::size_t wanted) {
    struct statvfs s {};
    std::string d = "asked for " + human_bytes(wanted);
    if (::statvfs("/dev/shm", &s) == 0) {
        auto total = static_cast<unsigned long long>(s.f_blocks) * s.f_frsize;
        auto avail = static_cast<unsigned long long>(s.f_bavail) * s.f_frsize;
        auto used = total - static_cast<unsigned long long>(s.f_bfree) * s.f_frsize;
        d += "; /dev/shm is " + human_bytes(total) + ", " + human_bytes(used) + " used (" +
             std::to_string(total ? used * 100 / total : 0) + "%), " + human_bytes(avail) + " free";
    }
    return d;
}

// Reserves [0, size): the pages exist afterwards, so touching them can never
// raise SIGBUS because tmpfs ran out of space. A memfd is not charged to
// /dev/shm (its tmpfs has no size limit): its limit is memory itself.
void reserve(int fd, std::size_t size, std::string_view object, bool in_dev_shm = true) {
    if (size == 0) return;
    int rc;
    do {
        rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    } while (rc == EINTR);
    if ((rc == ENOSPC || rc == EFBIG) && in_dev_shm)
        throw_error(rc, "posix_fallocate", object, dev_shm_usage(size));
    if (rc == ENOSPC || rc == EFBIG)
        throw_error(rc, "posix_fallocate", object,
                    "asked for " + human_bytes(size) +
                        "; a memfd is limited by free memory and the memory cgroup");
    if (rc != 0) throw_error(rc, "posix_fallocate", object);
}

int prot_of(shm_access a) {
    return a == shm_access::read_only ? PROT_READ : PROT_READ | PROT_WRITE;
}

}  // namespace

// ---- mapping -----------------------------------------------------------------

mapping::mapping(int fd, std::size_t length, shm_access access, std::string_view object) {
    if (length == 0) throw_error(EINVAL, "mmap", object, "cannot map an object of size 0");
    void* p = ::mmap(nullptr, length, prot_of(access), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_errno("mmap", object);
    addr_ = p;
    size_ = length;
}

mapping::mapping(mapping&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}

mapping& mapping::operator=(mapping&& o) noexcept {
    if (this != &o) {
        if (addr_) ::munmap(addr_, size_);
        addr_ = std::exchange(o.addr_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

mapping::~mapping() {
    if (addr_) ::munmap(addr_, size_);
}

// ---- POSIX shm ---------------------------------------------------------------

void shared_memory::validate_name(std::string_view name) {
    auto bad = [&](const std::string& why) {
        throw std::invalid_argument("bad shared memory name '" + std::string(name) + "': " + why);
    };
    if (name.size() < 2 || name[0] != '/') bad("must be '/' followed by a name, e.g. /jobs");
    if (name.find('/', 1) != std::string_view::npos) bad("only the leading '/' is allowed");
    if (name.size() - 1 > NAME_MAX) bad("longer than NAME_MAX (" + std::to_string(NAME_MAX) + ")");
    if (name.find('\0') != std::string_view::npos) bad("contains a NUL byte");
    if (name == "/." || name == "/..") bad("'.' and '..' are not names");
}

shared_memory shared_memory::open(std::string_view name, std::size_t size, const shm_options& o) {
    validate_name(name);
    std::string n(name);
    if (o.how != open_mode::open_only && size == 0)
        throw_error(EINVAL, "shm_open", n, "a new object needs a size > 0");
    const int acc = o.access == shm_access::read_only ? O_RDONLY : O_RDWR;
    if (o.access == shm_access::read_only && o.how != open_mode::open_only)
        throw_error(EINVAL, "shm_open", n, "creating an object needs read_write access");

    shared_memory shm;
    shm.name_ = n;
    shm.access_ = o.access;
    // open_or_create: try to create exclusively first so that we know whether
    // this call made the object (and must size it); retry if it vanishes.
    for (int attempt = 0;; ++attempt) {
        if (o.how != open_mode::open_only) {
            int fd = ::shm_open(n.c_str(), acc | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                                static_cast<mode_t>(o.permissions));
            if (fd >= 0) {
                shm.fd_.reset(fd);
                shm.created_ = true;
                break;
            }
            if (errno != EEXIST || o.how == open_mode::create_only) throw_errno("shm_open", n);
        }
        int fd = ::shm_open(n.c_str(), acc | O_CLOEXEC | O_NOFOLLOW, 0);
        if (fd >= 0) {
            shm.fd_.reset(fd);
            break;
        }
        if (errno != ENOENT || o.how == open_mode::open_only || attempt > 100)
            throw_errno("shm_open", n);
    }

    if (shm.created_) {
        // Held until finish_creation() (or close): an opener that finds the
        // object unfinished and this lock free knows the creator died.
        if (detail::retry_eintr([&] { return ::flock(shm.fd_.get(), LOCK_EX); }) != 0) {
            int e = errno;
            ::shm_unlink(n.c_str());
            throw_error(e, "flock", n);
        }
        shm.creation_locked_ = true;
        // fchmod: the umask must not weaken or alter the requested mode.
        if (::fchmod(shm.fd_.get(), static_cast<mode_t>(o.permissions)) != 0) {
            int e = errno;
            ::shm_unlink(n.c_str());
            throw_error(e, "fchmod", n);
        }
        try {
            reserve(shm.fd_.get(), size, n);
        } catch (...) {
            ::shm_unlink(n.c_str());
            throw;
        }
        shm.size_ = size;
        return shm;
    }

    struct stat st {};
    if (::fstat(shm.fd_.get(), &st) != 0) throw_errno("fstat", n);
    if (!o.allow_foreign_owner && st.st_uid != ::geteuid())
        throw_error(EPERM, "shm_open", n,
                    "owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                        std::to_string(::geteuid()) + ")");
    // Size 0: a creator between its shm_open and its posix_fallocate. Give it
    // a moment, then say so (EAGAIN: try again), rather than calling a
    // half-made object the wrong size (found by review: two open_or_create
    // callers racing made the loser fail with EINVAL).
    for (int waited_ms = 0; st.st_size == 0 && waited_ms < 200; ++waited_ms) {
        ::usleep(1000);
        if (::fstat(shm.fd_.get(), &st) != 0) throw_errno("fstat", n);
    }
    // Still 0 after 200 ms: a creator holding the creation lock is alive
    // (retry); nobody holding it means the creator died before sizing it, and
    // every retry would wait for ever (found by review). Sizing precedes the
    // unlock, so fstat after a free lock sees the size if it finished. The
    // creator takes the lock just after its shm_open, not with it: an object
    // younger than a few seconds may be in that gap (a creator descheduled on
    // a loaded machine), so it is only called dead once it has aged.
    if (st.st_size == 0 && !shm.creator_active()) {
        if (::fstat(shm.fd_.get(), &st) != 0) throw_errno("fstat", n);
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        const bool aged = now.tv_sec - st.st_mtim.tv_sec >= 3;  // set by the shm_open
        if (st.st_size == 0 && aged)
            throw_error(EPROTO, "shm_open", n,
                        "size 0 and nobody is creating it: its creator died before sizing "
                        "it; remove it with ipckit rm shm:" +
                            n);
    }
    if (st.st_size == 0)
        throw_error(EAGAIN, "shm_open", n, "size 0: the creator has not finished sizing it yet");
    auto actual = static_cast<std::size_t>(st.st_size);
    if (actual < size)
        throw_error(EINVAL, "shm_open", n,
                    "object is " + std::to_string(actual) + " bytes, expected at least " +
                        std::to_string(size ? size : 1));
    shm.size_ = actual;
    return shm;
}

shared_memory shared_memory::memfd(std::string_view debug_name, std::size_t size) {
    std::string n = "memfd:" + std::string(debug_name);
    if (size == 0) throw_error(EINVAL, "memfd_create", n, "size must be > 0");
    std::string dn(debug_name.substr(0, 200));
    int fd = ::memfd_create(dn.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) throw_errno("memfd_create", n);
    shared_memory shm;
    shm.fd_.reset(fd);
    shm.name_ = n;
    shm.created_ = true;
    reserve(fd, size, n, /*in_dev_shm=*/false);
    shm.size_ = size;
    return shm;
}

shared_memory shared_memory::from_fd(unique_fd fd, shm_access access,
                                     std::string_view description) {
    std::string n(description);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno("fstat", n);
    if (st.st_size <= 0) throw_error(EINVAL, "fstat", n, "object has size 0");
    shared_memory shm;
    shm.fd_ = std::move(fd);
    shm.name_ = n;
    shm.size_ = static_cast<std::size_t>(st.st_size);
    shm.access_ = access;
    return shm;
}

void shared_memory::finish_creation() noexcept {
    if (!creation_locked_) return;
    ::flock(fd_.get(), LOCK_UN);
    creation_locked_ = false;
}

bool shared_memory::creator_active() const {
    // Our own lock: probing it through the same open file would convert it.
    if (creation_locked_) return true;
    if (detail::retry_eintr([&] { return ::flock(fd_.get(), LOCK_SH | LOCK_NB); }) == 0) {
        ::flock(fd_.get(), LOCK_UN);
        return false;
    }
    if (errno == EWOULDBLOCK) return true;
    throw_errno("flock", name_);
}

void shared_memory::seal_size() {
    if (::fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        throw_errno("fcntl(F_ADD_SEALS)", name_);
}

bool shared_memory::remove(std::string_view name) {
    validate_name(name);
    std::string n(name);
    if (::shm_unlink(n.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw_errno("shm_unlink", n);
}

shm_remover::~shm_remover() {
    if (!name_.empty()) ::shm_unlink(name_.c_str());
}

// ---- System V shm --------------------------------------------------------------

sysv_shm sysv_shm::open(const sysv_key& key, std::size_t size, open_mode how,
                        unsigned permissions) {
    sysv_shm s;
    s.name_ = "sysv-shm:" + key.to_string();
    const int perm = static_cast<int>(permissions & 0777);
    if (how != open_mode::open_only && size == 0)
        throw_error(EINVAL, "shmget", s.name_, "a new segment needs a size > 0");
    if (how == open_mode::open_only && key.is_private())
        throw_error(EINVAL, "shmget", s.name_, "IPC_PRIVATE can only create a new segment");

    if (how != open_mode::open_only) {
        int id = ::shmget(key.value(), size, IPC_CREAT | IPC_EXCL | perm);
        if (id >= 0) {
            s.id_ = id;
            s.created_ = true;
            return s;
        }
        if (errno != EEXIST || how == open_mode::create_only) {
            int e = errno;
            if (e == EINVAL)
                throw_error(e, "shmget", s.name_,
                            "size " + std::to_string(size) + " is outside SHMMIN..SHMMAX, " +
                                detail::proc_setting("/proc/sys/kernel/shmmax"));
            if (e == ENOSPC)
                throw_error(
                    e, "shmget", s.name_,
                    "segment limit reached: " + detail::proc_setting("/proc/sys/kernel/shmmni") +
                        ", " + detail::proc_setting("/proc/sys/kernel/shmall") + " pages");
            throw_error(e, "shmget", s.name_);
        }
    }
    // Find the existing segment; size 0 accepts any size, the check follows.
    int id = ::shmget(key.value(), 0, 0);
    if (id < 0) throw_errno("shmget", s.name_);
    s.id_ = id;
    auto i = s.stat();
    if (i.size < size)
        throw_error(EINVAL, "shmget", s.name_,
                    "segment is " + std::to_string(i.size) + " bytes, expected at least " +
                        std::to_string(size));
    return s;
}

sysv_shm sysv_shm::from_id(int id) {
    sysv_shm s;
    s.id_ = id;
    s.name_ = "sysv-shm:id " + std::to_string(id);
    (void)s.stat();  // validates the id
    return s;
}

sysv_shm::info sysv_shm::stat() const {
    struct shmid_ds ds {};
    if (::shmctl(id_, IPC_STAT, &ds) != 0) throw_errno("shmctl(IPC_STAT)", name_);
    info i;
    i.size = ds.shm_segsz;
    i.owner = ds.shm_perm.uid;
    i.mode = ds.shm_perm.mode & 0777;
    i.creator = ds.shm_cpid;
    i.last_operator = ds.shm_lpid;
    i.attached = ds.shm_nattch;
    i.marked_for_removal = (ds.shm_perm.mode & SHM_DEST) != 0;
    return i;
}

void sysv_shm::remove() const {
    if (::shmctl(id_, IPC_RMID, nullptr) != 0) throw_errno("shmctl(IPC_RMID)", name_);
}

bool sysv_shm::remove(int id) {
    if (::shmctl(id, IPC_RMID, nullptr) == 0) return true;
    if (errno == EINVAL || errno == EIDRM) return false;
    throw_errno("shmctl(IPC_RMID)", "sysv-shm:id " + std::to_string(id));
}

sysv_shm::attachment sysv_shm::attach(shm_access access) const {
    auto i = stat();
    void* p = ::shmat(id_, nullptr, access == shm_access::read_only ? SHM_RDONLY : 0);
    if (p == reinterpret_cast<void*>(-1)) throw_errno("shmat", name_);
    return attachment(p, i.size);
}

sysv_shm::attachment::attachment(attachment&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}

sysv_shm::attachment& sysv_shm::attachment::operator=(attachment&& o) noexcept {
    if (this != &o) {
        if (addr_) ::shmdt(addr_);
        addr_ = std::exchange(o.addr_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

sysv_shm::attachment::~attachment() {
    if (addr_) ::shmdt(addr_);
}

sysv_shm_remover::~sysv_shm_remover() {
    if (id_ >= 0) ::shmctl(id_, IPC_RMID, nullptr);
}

}  // namespace ipckit
