// Named pipes (FIFOs): safe creation, opening with deadlines, removal.
//
// Safety rules: created with mode 0600 by default; create_only fails if
// anything exists at the path (FIFO, file, dangling symlink); open_or_create
// accepts an existing object only if it is a FIFO owned by the caller's
// effective uid and not a symlink (checked with lstat, then re-checked -
// type and owner - with fstat on the opened fd, so a FIFO swapped in between
// is refused too). A FIFO this call created is reached through an O_PATH
// descriptor, never by its path again: the exact mode is set through it
// (whatever the umask, even one that removes the owner's own read bit), and
// open_fifo_reader opens the read end through it (/proc/self/fd).
//
// Several writers, one reader: a write of at most PIPE_BUF (4096) bytes is
// atomic. ipckit's fifo: channel sends a frame up to PIPE_BUF in one write
// and a larger one as chunk records of at most PIPE_BUF, each one write, that
// the reader reassembles per writer (writers take turns for large messages,
// under flock within the send deadline): frames never interleave, and a
// writer killed mid-frame leaves nothing torn behind. With ?frame=line or
// raw, writes longer than PIPE_BUF are made under flock(LOCK_EX). Writers
// that are not ipckit (echo, cat) must keep their lines below PIPE_BUF.
#pragma once

#include <optional>
#include <string>

#include "ipckit/deadline.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/url.hpp"

namespace ipckit {

/// mkfifo(path, mode) honouring mode exactly (umask does not weaken or widen
/// it). create_only: EEXIST if anything is at path. open_or_create: an
/// existing FIFO is accepted only after the ownership checks above.
/// Returns true if this call created the FIFO.
bool create_fifo(const std::string& path, open_mode how = open_mode::create_only,
                 unsigned mode = 0600);

/// Opens the read end without waiting for a writer (O_NONBLOCK, O_CLOEXEC,
/// O_NOFOLLOW); verifies on the descriptor that it is a FIFO owned by the
/// caller's euid (EPERM naming the owner otherwise). With how != open_only the
/// FIFO is created first (see create_fifo).
unique_fd open_fifo_reader(const std::string& path, open_mode how = open_mode::open_only,
                           unsigned mode = 0600);

/// Opens the write end, waiting until a reader exists or the deadline passes
/// (nullopt: nobody is reading). Opening a FIFO for writing has no pollable
/// event, so the wait retries ENXIO with a short backoff (<= 10 ms).
/// Throws if the path does not exist or is not a FIFO (checked on the
/// descriptor). The owner is not checked: writing to another user's FIFO
/// (a service's request FIFO, mode 0622) is a normal use.
std::optional<unique_fd> open_fifo_writer(const std::string& path,
                                          const deadline& until = deadline::never());

/// Removes the FIFO at path; false if nothing was there. Refuses (EINVAL) to
/// remove something that is not a FIFO.
bool remove_fifo(const std::string& path);

/// Removes a FIFO when it goes out of scope (errors ignored).
class fifo_remover {
  public:
    explicit fifo_remover(std::string path) : path_(std::move(path)) {}
    fifo_remover(fifo_remover&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
    fifo_remover(const fifo_remover&) = delete;
    fifo_remover& operator=(const fifo_remover&) = delete;
    ~fifo_remover();
    /// Keeps the FIFO.
    void release() noexcept { path_.clear(); }

  private:
    std::string path_;
};

}  // namespace ipckit
