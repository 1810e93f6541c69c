// Everything in ipckit at once. Prefer the one header you use (e.g.
// <ipckit/fifo.hpp>) in libraries; this one is for programs and quick tries.
#pragma once

#include "ipckit/channel.hpp"
#include "ipckit/deadline.hpp"
#include "ipckit/error.hpp"
#include "ipckit/fd.hpp"
#include "ipckit/fifo.hpp"
#include "ipckit/mqueue.hpp"
#include "ipckit/pipe.hpp"
#include "ipckit/ring.hpp"
#include "ipckit/rpc.hpp"
#include "ipckit/shm.hpp"
#include "ipckit/signal.hpp"
#include "ipckit/socket.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/sysv.hpp"
#include "ipckit/url.hpp"
