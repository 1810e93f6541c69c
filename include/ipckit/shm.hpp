// Shared memory: POSIX named objects (shm_open), memfd and System V segments,
// each mapped through an RAII mapping.
//
// Safe by default: objects are created with mode 0600, create_only uses
// O_EXCL / IPC_EXCL, an opened object's owner and size are checked (fstat)
// before mapping, and the size of a new POSIX object or memfd is reserved with
// posix_fallocate so that a full /dev/shm is an ENOSPC error at creation
// instead of a SIGBUS on first touch.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "ipckit/fd.hpp"
#include "ipckit/sysv.hpp"
#include "ipckit/url.hpp"  // open_mode

namespace ipckit {

/// How a region is mapped.
enum class shm_access { read_only, read_write };

/// An mmap'ed region; munmap in the destructor. Move-only.
class mapping {
  public:
    mapping() noexcept = default;
    /// Maps length bytes of fd at offset 0 (MAP_SHARED). Throws ipckit::error.
    mapping(int fd, std::size_t length, shm_access access, std::string_view object);
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    mapping(mapping&& other) noexcept;
    mapping& operator=(mapping&& other) noexcept;
    ~mapping();

    std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
    std::size_t size() const noexcept { return size_; }
    std::span<std::byte> bytes() const noexcept { return {data(), size_}; }
    bool valid() const noexcept { return addr_ != nullptr; }

  private:
    void* addr_ = nullptr;
    std::size_t size_ = 0;
};

/// Options for shared_memory::open.
struct shm_options {
    open_mode how = open_mode::create_only;
    unsigned permissions = 0600;  ///< for a new object
    shm_access access = shm_access::read_write;
    /// Accept an existing object owned by another user (default: refuse it,
    /// so a name planted by someone else is not silently trusted).
    bool allow_foreign_owner = false;
};

/// A POSIX shared-memory object (shm_open, "/name") or a memfd.
class shared_memory {
  public:
    /// Opens or creates the POSIX object `name` ("/name": one leading '/', no
    /// other, at most NAME_MAX). size: the size of a new object; when opening
    /// an existing one, 0 means "whatever it is" and a non-zero size is a
    /// minimum (a smaller object is an EINVAL error naming both sizes).
    /// A new object's size is reserved with posix_fallocate: a full /dev/shm
    /// throws ENOSPC saying how big /dev/shm is and how full, and the half-made
    /// object is unlinked.
    /// The creator holds flock(LOCK_EX) on a new object from its creation
    /// until finish_creation() (or until this object is destroyed), so that an
    /// opener can tell a creator still setting it up from one that died doing
    /// so: an existing object of size 0 is EAGAIN while its creator holds the
    /// lock and EPROTO ("its creator died") once nobody does.
    static shared_memory open(std::string_view name, std::size_t size,
                              const shm_options& options = {});

    /// An anonymous memfd (memfd_create, MFD_CLOEXEC | MFD_ALLOW_SEALING) of
    /// size bytes (reserved like above). Share it by fork or by fd passing.
    static shared_memory memfd(std::string_view debug_name, std::size_t size);

    /// Adopts a descriptor received from another process (or a dup of one).
    /// The size is taken from fstat.
    static shared_memory from_fd(unique_fd fd, shm_access access = shm_access::read_write,
                                 std::string_view description = "memfd");

    /// Removes the POSIX name. Returns false if it did not exist; throws on
    /// other errors (and on a bad name).
    static bool remove(std::string_view name);

    /// Validates a POSIX object name; throws std::invalid_argument saying why.
    static void validate_name(std::string_view name);

    /// memfd only: forbid any further change of size (F_SEAL_SHRINK |
    /// F_SEAL_GROW) and of the seals themselves (F_SEAL_SEAL), so a receiver
    /// of the fd can map it without fear of SIGBUS.
    void seal_size();

    /// Creator: the object is set up (e.g. a header written after sizing);
    /// releases the creation lock. No-op for an object this call did not create.
    void finish_creation() noexcept;
    /// Opener: does some process hold the creation lock, i.e. is a creator
    /// still setting the object up? (Probes with flock(LOCK_SH | LOCK_NB).)
    /// True for the creator's own object until finish_creation().
    bool creator_active() const;

    /// Maps the whole object.
    mapping map() const { return mapping(fd_.get(), size_, access_, name_); }
    mapping map(shm_access access) const { return mapping(fd_.get(), size_, access, name_); }

    int fd() const noexcept { return fd_.get(); }
    std::size_t size() const noexcept { return size_; }
    /// "/name" or "memfd:<debug name>".
    const std::string& name() const noexcept { return name_; }
    /// True when this call created the object (open_or_create may have found it).
    bool created() const noexcept { return created_; }

  private:
    unique_fd fd_;
    std::size_t size_ = 0;
    std::string name_;
    shm_access access_ = shm_access::read_write;
    bool created_ = false;
    bool creation_locked_ = false;
};

/// Removes a POSIX shm name on scope exit (errors ignored). Opt-in cleanup for
/// tests, examples and owners.
class shm_remover {
  public:
    explicit shm_remover(std::string name) noexcept : name_(std::move(name)) {}
    shm_remover(const shm_remover&) = delete;
    shm_remover& operator=(const shm_remover&) = delete;
    shm_remover(shm_remover&& o) noexcept : name_(std::move(o.name_)) { o.name_.clear(); }
    ~shm_remover();
    /// Keeps the object: the destructor will not remove it.
    void release() noexcept { name_.clear(); }

  private:
    std::string name_;
};

/// A System V shared-memory segment (shmget). Its key comes from sysv_key
/// (number, ftok or IPC_PRIVATE).
class sysv_shm {
  public:
    /// Creates (create_only: IPC_CREAT | IPC_EXCL) or finds the segment for key.
    /// size is the size of a new segment; for an existing one it is a minimum
    /// (0 = any). open_only never creates.
    static sysv_shm open(const sysv_key& key, std::size_t size,
                         open_mode how = open_mode::create_only, unsigned permissions = 0600);
    /// Adopts an existing segment id (e.g. printed by `ipcs -m`).
    static sysv_shm from_id(int id);

    struct info {
        std::size_t size = 0;
        uid_t owner = 0;
        unsigned mode = 0;
        pid_t creator = 0;         ///< shm_cpid
        pid_t last_operator = 0;   ///< shm_lpid (last shmat/shmdt)
        std::size_t attached = 0;  ///< shm_nattch
        bool marked_for_removal = false;
    };
    /// IPC_STAT.
    info stat() const;

    /// IPC_RMID: the segment goes away once the last process detaches.
    void remove() const;
    /// IPC_RMID by id; false if it was already gone (EINVAL/EIDRM).
    static bool remove(int id);

    class attachment;
    /// shmat; the returned attachment shmdt's in its destructor.
    attachment attach(shm_access access = shm_access::read_write) const;

    int id() const noexcept { return id_; }
    bool created() const noexcept { return created_; }
    /// "sysv-shm:<key>" for messages.
    const std::string& name() const noexcept { return name_; }

  private:
    int id_ = -1;
    bool created_ = false;
    std::string name_;
};

/// A shmat'ed segment; shmdt in the destructor. Move-only.
class sysv_shm::attachment {
  public:
    attachment() noexcept = default;
    attachment(const attachment&) = delete;
    attachment& operator=(const attachment&) = delete;
    attachment(attachment&& o) noexcept;
    attachment& operator=(attachment&& o) noexcept;
    ~attachment();

    std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
    std::size_t size() const noexcept { return size_; }
    std::span<std::byte> bytes() const noexcept { return {data(), size_}; }

  private:
    friend class sysv_shm;
    attachment(void* a, std::size_t n) noexcept : addr_(a), size_(n) {}
    void* addr_ = nullptr;
    std::size_t size_ = 0;
};

/// IPC_RMID on scope exit (errors ignored).
class sysv_shm_remover {
  public:
    explicit sysv_shm_remover(int id) noexcept : id_(id) {}
    sysv_shm_remover(const sysv_shm_remover&) = delete;
    sysv_shm_remover& operator=(const sysv_shm_remover&) = delete;
    ~sysv_shm_remover();
    void release() noexcept { id_ = -1; }

  private:
    int id_;
};

}  // namespace ipckit
