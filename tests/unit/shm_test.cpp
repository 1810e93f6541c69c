// Shared memory objects: POSIX (modes, owner/size checks, ENOSPC message,
// cleanup), memfd (seals), System V (keys, stat, attach counts, removal),
// each shared with a real child process.
#include "ipckit/shm.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "ipckit/error.hpp"
#include "support/test_support.hpp"

using namespace ipckit;
using namespace std::chrono_literals;

namespace {

std::string shm_name(const char* what) {
    return "/" + test::unique_name(what);
}

int error_code(const std::function<void()>& f) {
    try {
        f();
    } catch (const error& e) {
        return e.code().value();
    }
    return 0;
}

// Sets the umask for a scope; restores it even when the scope throws.
shm_options with(open_mode how) {
    shm_options o;
    o.how = how;
    return o;
}

}  // namespace

TEST(PosixShm, RejectsBadNames) {
    for (const char* bad : {"", "/", "noslash", "/a/b", "/.", "/.."})
        EXPECT_THROW(shared_memory::open(bad, 64), std::invalid_argument) << bad;
    EXPECT_THROW(shared_memory::open("/" + std::string(300, 'x'), 64), std::invalid_argument);
    EXPECT_THROW(shared_memory::remove("x"), std::invalid_argument);
}

TEST(PosixShm, CreateIsPrivateExclusiveAndSized) {
    auto name = shm_name("shm-create");
    shm_remover rm(name);
    shm_options perms;
    perms.permissions = 0660;
    auto shm = [&] {
        // A umask of 077 would make 0600 of 0660: the fchmod must undo it.
        test::umask_guard strict(077);
        return shared_memory::open(name, 10000, perms);
    }();
    EXPECT_TRUE(shm.created());
    EXPECT_EQ(shm.size(), 10000u);
    struct stat st {};
    ASSERT_EQ(::fstat(shm.fd(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    {
        test::umask_guard open_all(0);  // nor may a lax umask widen the private default
        auto plain = shared_memory::open(name + "-private", 64);
        shm_remover rm_plain(name + "-private");
        ASSERT_EQ(::fstat(plain.fd(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        ASSERT_EQ(::fstat(shm.fd(), &st), 0);
    }
    EXPECT_EQ(static_cast<std::size_t>(st.st_size), 10000u);
    EXPECT_EQ(st.st_blocks * 512 >= 10000, true);  // reserved, not sparse
    int flags = ::fcntl(shm.fd(), F_GETFD);
    EXPECT_TRUE(flags & FD_CLOEXEC);

    EXPECT_EQ(error_code([&] { shared_memory::open(name, 10000); }), EEXIST);
    auto same = shared_memory::open(name, 10000, with(open_mode::open_or_create));
    EXPECT_FALSE(same.created());
    EXPECT_EQ(same.size(), 10000u);
    // An existing object smaller than required is refused before mapping.
    try {
        shared_memory::open(name, 20000, with(open_mode::open_only));
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("10000 bytes"), std::string::npos) << e.what();
    }
    EXPECT_EQ(
        error_code([&] { shared_memory::open(name + "-none", 0, with(open_mode::open_only)); }),
        ENOENT);
    EXPECT_EQ(error_code([&] { shared_memory::open(name + "-zero", 0); }), EINVAL);

    // An object of size 0 whose creator is alive (it holds the creation lock)
    // has not been reserved yet: a second open_or_create says "try again",
    // not "wrong size". Once no creator holds the lock, it died: an error
    // saying so, not "try again" for ever.
    const std::string unsized = name + "-unsized";
    shm_remover rm_unsized(unsized);
    int raw = ::shm_open(unsized.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(raw, 0);
    ASSERT_EQ(::flock(raw, LOCK_EX), 0);
    try {
        shared_memory::open(unsized, 4096, with(open_mode::open_or_create));
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), EAGAIN);
        EXPECT_NE(std::string(e.what()).find("has not finished sizing"), std::string::npos)
            << e.what();
    }
    // Unlocked but new: its creator may be between its shm_open and its
    // flock (descheduled on a loaded machine). Still "try again".
    ASSERT_EQ(::flock(raw, LOCK_UN), 0);
    EXPECT_EQ(error_code([&] { shared_memory::open(unsized, 0, with(open_mode::open_only)); }),
              EAGAIN);
    // Unlocked and a while old: the creator died.
    const timespec an_hour_ago[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
    ASSERT_EQ(::futimens(raw, an_hour_ago), 0);
    ::close(raw);
    try {
        shared_memory::open(unsized, 0, with(open_mode::open_only));
        FAIL();
    } catch (const error& e) {
        EXPECT_EQ(e.code().value(), EPROTO);
        EXPECT_NE(std::string(e.what()).find("its creator died"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("ipckit rm shm:" + unsized), std::string::npos)
            << e.what();
    }
}

// The creator holds the creation lock from shm_open until finish_creation().
TEST(PosixShm, CreatorHoldsTheCreationLockUntilFinished) {
    auto name = shm_name("shm-lock");
    shm_remover rm(name);
    auto made = shared_memory::open(name, 4096);
    auto seen = shared_memory::open(name, 0, with(open_mode::open_only));
    EXPECT_TRUE(seen.creator_active());
    made.finish_creation();
    EXPECT_FALSE(seen.creator_active());
    EXPECT_FALSE(shared_memory::open(name, 0, with(open_mode::open_only)).creator_active());
}

TEST(PosixShm, ProducerChildConsumerParent) {
    auto name = shm_name("shm-pc");
    shm_remover rm(name);
    auto shm = shared_memory::open(name, 4096);
    test::forked_child child([&] {
        auto mine = shared_memory::open(name, 4096, with(open_mode::open_only));
        auto m = mine.map();
        std::memcpy(m.data(), "Operating Systems Is Fun!", 26);
        return 0;
    });
    auto st = child.wait(10s);
    ASSERT_TRUE(st && st->success());
    auto ro = shared_memory::open(name, 0, [] {
        shm_options o;
        o.how = open_mode::open_only;
        o.access = shm_access::read_only;
        return o;
    }());
    auto m = ro.map();
    EXPECT_STREQ(reinterpret_cast<const char*>(m.data()), "Operating Systems Is Fun!");
    EXPECT_TRUE(shared_memory::remove(name));
    EXPECT_FALSE(shared_memory::remove(name));
}

TEST(PosixShm, FullDevShmIsENOSPCAtCreationWithUsage) {
    auto name = shm_name("shm-huge");
    shm_remover rm(name);
    // Far beyond any /dev/shm here: the reservation must fail up front.
    try {
        shared_memory::open(name, std::size_t{1} << 46);
        FAIL() << "a 64 TiB object was reserved";
    } catch (const error& e) {
        EXPECT_TRUE(e.code().value() == ENOSPC || e.code().value() == EFBIG) << e.what();
        EXPECT_NE(std::string(e.what()).find("/dev/shm is"), std::string::npos) << e.what();
    }
    // The half-made object is gone.
    EXPECT_EQ(error_code([&] { shared_memory::open(name, 0, with(open_mode::open_only)); }),
              ENOENT);
}

TEST(Memfd, SealedSizeCannotChangeAndSharesByFd) {
    auto shm = shared_memory::memfd("sealed", 8192);
    EXPECT_EQ(shm.size(), 8192u);
    auto m = shm.map();
    std::memcpy(m.data(), "memfd", 6);
    shm.seal_size();
    EXPECT_NE(::ftruncate(shm.fd(), 100), 0);
    EXPECT_EQ(errno, EPERM);
    auto copy = shared_memory::from_fd(dup_cloexec(shm.fd()));
    EXPECT_EQ(copy.size(), 8192u);
    test::forked_child child([&] {
        auto cm = copy.map();
        return std::strcmp(reinterpret_cast<const char*>(cm.data()), "memfd") == 0 ? 0 : 1;
    });
    auto st = child.wait(10s);
    ASSERT_TRUE(st && st->success());
    EXPECT_THROW(shared_memory::memfd("zero", 0), error);
}

TEST(Mapping, MoveTransfersOwnership) {
    auto shm = shared_memory::memfd("move", 4096);
    mapping a = shm.map();
    auto* p = a.data();
    mapping b = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.data(), p);
    b = mapping{};
    EXPECT_FALSE(b.valid());
}

TEST(SysvShm, PrivateSegmentSharedWithChild) {
    auto seg = sysv_shm::open(sysv_key::private_key(), 128);
    sysv_shm_remover rm(seg.id());
    EXPECT_TRUE(seg.created());
    auto info = seg.stat();
    EXPECT_EQ(info.size, 128u);
    EXPECT_EQ(info.mode, 0600u);
    EXPECT_EQ(info.owner, ::geteuid());
    EXPECT_EQ(info.attached, 0u);
    auto at = seg.attach();
    EXPECT_EQ(seg.stat().attached, 1u);
    test::forked_child child([&] {
        auto mine = sysv_shm::from_id(seg.id()).attach();
        std::memcpy(mine.data(), "Ola Mundo!", 11);
        return 0;
    });
    auto st = child.wait(10s);
    ASSERT_TRUE(st && st->success());
    EXPECT_STREQ(reinterpret_cast<const char*>(at.data()), "Ola Mundo!");
    seg.remove();
    EXPECT_TRUE(seg.stat().marked_for_removal);  // still attached here
    at = sysv_shm::attachment{};
    EXPECT_FALSE(sysv_shm::remove(seg.id()));
}

TEST(SysvShm, KeyedCreateOnlyOpenOnlyAndSize) {
    auto path = test::unique_path("sysv-shm-key");
    { std::ofstream(path) << "key"; }
    test::scoped_unlink unlink_key(path);
    auto key = sysv_key::from_path(path, 7);
    auto seg = sysv_shm::open(key, 4096);
    sysv_shm_remover rm(seg.id());
    EXPECT_EQ(error_code([&] { sysv_shm::open(key, 4096); }), EEXIST);
    auto same = sysv_shm::open(key, 0, open_mode::open_only);
    EXPECT_EQ(same.id(), seg.id());
    EXPECT_FALSE(same.created());
    auto both = sysv_shm::open(key, 100, open_mode::open_or_create);
    EXPECT_EQ(both.id(), seg.id());
    EXPECT_EQ(error_code([&] { sysv_shm::open(key, 8192, open_mode::open_only); }), EINVAL);
    EXPECT_THROW(sysv_shm::open(sysv_key::private_key(), 0, open_mode::open_only), error);
    EXPECT_THROW(sysv_shm::from_id(-5), error);
    seg.remove();
    EXPECT_EQ(error_code([&] { sysv_shm::open(key, 0, open_mode::open_only); }), ENOENT);
}
