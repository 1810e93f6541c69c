// ipckit ls [--json] [--dir D]... [--kind K]...  and  ipckit rm URL...
//
// ls lists every IPC object this machine (this IPC namespace) holds: POSIX
// queues (/dev/mqueue) and shared memory (/dev/shm), System V queues, shared
// memory and semaphores (/proc/sysvipc/*), FIFOs and socket files under the
// given directories, and bound Unix sockets (/proc/net/unix, incl. abstract).
// rm removes named objects by URL.
#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <pwd.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ipckit/error.hpp"
#include "ipckit/mqueue.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/sysv.hpp"
#include "ipckit/url.hpp"

namespace ipckit::cli {
namespace {

namespace fs = std::filesystem;

constexpr long kMqueueMagic = 0x19800202;  // statfs f_type of the mqueue filesystem

struct entry {
    std::string kind;  // mq, shm, sem, sysvmq, sysvshm, sysvsem, fifo, unix
    std::string name;  // path, /name, key or @abstract
    std::string url;   // what `ipckit rm` / a channel accepts ("" if none)
    std::optional<uid_t> uid;
    std::optional<unsigned> mode;
    std::optional<unsigned long long> size;      // bytes (queued bytes for queues)
    std::optional<unsigned long long> messages;  // queues
    std::optional<unsigned long long> attached;  // shm: processes mapping/attached
    std::string detail;
};

std::string user_name(uid_t uid) {
    static std::map<uid_t, std::string> cache;
    if (auto it = cache.find(uid); it != cache.end()) return it->second;
    std::string name = std::to_string(uid);
    passwd pw{};
    passwd* res = nullptr;
    char buf[1024];
    if (::getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) name = res->pw_name;
    return cache[uid] = name;
}

// Reads /proc/sysvipc/<file> into rows keyed by the header's column names.
std::vector<std::map<std::string, std::string>> read_sysvipc(const std::string& file) {
    std::vector<std::map<std::string, std::string>> rows;
    std::ifstream in("/proc/sysvipc/" + file);
    std::string line;
    if (!std::getline(in, line)) return rows;
    std::vector<std::string> header;
    std::istringstream hs(line);
    for (std::string col; hs >> col;)
        header.push_back(col);
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::map<std::string, std::string> row;
        std::string value;
        for (std::size_t i = 0; i < header.size() && ls >> value; ++i)
            row[header[i]] = value;
        if (!row.empty()) rows.push_back(std::move(row));
    }
    return rows;
}

unsigned long long num(const std::map<std::string, std::string>& row, const std::string& k) {
    auto it = row.find(k);
    return it == row.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
}

std::string key_text(long long key) {
    return key == 0 ? std::string("IPC_PRIVATE")
                    : fmt::format("0x{:08x}", static_cast<unsigned>(static_cast<int>(key)));
}

// What `ipckit rm` takes for a System V object: its key, or its id when it
// has none (IPC_PRIVATE).
std::string sysv_rm_name(const char* kind, long long key, const std::string& id) {
    return std::string(kind) + ":" + (key != 0 ? key_text(key) : "id=" + id);
}

void list_sysv(std::vector<entry>& out) {
    for (const auto& r : read_sysvipc("msg")) {
        entry e;
        e.kind = "sysvmq";
        long long key = std::strtoll(r.at("key").c_str(), nullptr, 10);
        e.name = key_text(key) + " (id " + r.at("msqid") + ")";
        e.url = sysv_rm_name("sysvmq", key, r.at("msqid"));
        e.uid = static_cast<uid_t>(num(r, "uid"));
        e.mode = static_cast<unsigned>(std::strtoul(r.at("perms").c_str(), nullptr, 8) & 0777);
        e.size = num(r, "cbytes");
        e.messages = num(r, "qnum");
        e.detail =
            fmt::format("last send pid {}, last receive pid {}", num(r, "lspid"), num(r, "lrpid"));
        out.push_back(std::move(e));
    }
    for (const auto& r : read_sysvipc("shm")) {
        entry e;
        e.kind = "sysvshm";
        long long key = std::strtoll(r.at("key").c_str(), nullptr, 10);
        e.name = key_text(key) + " (id " + r.at("shmid") + ")";
        e.url = sysv_rm_name("sysvshm", key, r.at("shmid"));
        e.uid = static_cast<uid_t>(num(r, "uid"));
        e.mode = static_cast<unsigned>(std::strtoul(r.at("perms").c_str(), nullptr, 8) & 0777);
        e.size = num(r, "size");
        e.attached = num(r, "nattch");
        e.detail = fmt::format("creator pid {}, last pid {}", num(r, "cpid"), num(r, "lpid"));
        out.push_back(std::move(e));
    }
    for (const auto& r : read_sysvipc("sem")) {
        entry e;
        e.kind = "sysvsem";
        long long key = std::strtoll(r.at("key").c_str(), nullptr, 10);
        e.name = key_text(key) + " (id " + r.at("semid") + ")";
        e.url = sysv_rm_name("sysvsem", key, r.at("semid"));
        e.uid = static_cast<uid_t>(num(r, "uid"));
        e.mode = static_cast<unsigned>(std::strtoul(r.at("perms").c_str(), nullptr, 8) & 0777);
        e.detail = fmt::format("{} semaphores", num(r, "nsems"));
        out.push_back(std::move(e));
    }
}

// Processes mapping each /dev/shm file, from /proc/*/maps (only the
// processes we may inspect are counted).
std::map<std::string, std::set<pid_t>> shm_mappers(const std::string& shm_dir) {
    std::map<std::string, std::set<pid_t>> users;
    std::error_code ec;
    for (const auto& d : fs::directory_iterator("/proc", ec)) {
        std::string pid_text = d.path().filename();
        if (pid_text.empty() || !std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) continue;
        std::ifstream maps(d.path() / "maps");
        std::string line;
        while (std::getline(maps, line)) {
            auto pos = line.find(shm_dir + "/");
            if (pos == std::string::npos) continue;
            std::string path = line.substr(pos);
            if (auto del = path.find(" (deleted)"); del != std::string::npos) path.resize(del);
            users[path].insert(static_cast<pid_t>(std::atoi(pid_text.c_str())));
        }
    }
    return users;
}

void list_posix(std::vector<entry>& out, std::vector<std::string>& warnings) {
    const char* env = std::getenv("IPCKIT_MQUEUE_DIR");  // for tests: another mount point
    std::string mq_dir = env && *env ? env : "/dev/mqueue";
    struct statfs sf {};
    if (::statfs(mq_dir.c_str(), &sf) != 0 || static_cast<long>(sf.f_type) != kMqueueMagic) {
        warnings.push_back("POSIX message queues are not listed: no mqueue filesystem at " +
                           mq_dir + " (mount it with: mount -t mqueue none /dev/mqueue)");
    } else {
        std::error_code ec;
        for (const auto& d : fs::directory_iterator(mq_dir, ec)) {
            entry e;
            e.kind = "mq";
            e.name = std::string("/").append(d.path().filename().string());
            e.url = "mq:" + e.name;
            struct stat st {};
            if (::lstat(d.path().c_str(), &st) == 0) {
                e.uid = st.st_uid;
                e.mode = st.st_mode & 0777;
            }
            // The file reads "QSIZE:<bytes> NOTIFY:... ".
            std::ifstream f(d.path());
            std::string word;
            if (f >> word && word.rfind("QSIZE:", 0) == 0)
                e.size = std::strtoull(word.c_str() + 6, nullptr, 10);
            // Counts and capacity need the queue itself; opening it read-only
            // and non-blocking consumes nothing.
            mqd_t q = ::mq_open(e.name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
            if (q != static_cast<mqd_t>(-1)) {
                mq_attr a{};
                if (::mq_getattr(q, &a) == 0) {
                    e.messages = static_cast<unsigned long long>(a.mq_curmsgs);
                    e.detail = fmt::format("capacity {} x {} bytes", a.mq_maxmsg, a.mq_msgsize);
                }
                ::mq_close(q);
            }
            out.push_back(std::move(e));
        }
    }

    const std::string shm_dir = "/dev/shm";
    auto mappers = shm_mappers(shm_dir);
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(shm_dir, ec)) {
        struct stat st {};
        if (::lstat(d.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        entry e;
        const std::string file = d.path().filename().string();
        if (file.rfind("sem.", 0) == 0) {  // glibc keeps named semaphore "/x" as sem.x
            e.kind = "sem";
            e.name = "/" + file.substr(4);
            e.url = "sem:" + e.name;
        } else {
            e.kind = "shm";
            e.name = "/" + file;
            e.url = "shm:" + e.name;
        }
        e.uid = st.st_uid;
        e.mode = st.st_mode & 0777;
        e.size = static_cast<unsigned long long>(st.st_size);
        auto it = mappers.find(d.path().string());
        e.attached = it == mappers.end() ? 0 : it->second.size();
        out.push_back(std::move(e));
    }
}

struct unix_socket {
    std::string type;
    std::string state;
};

// Bound Unix sockets from /proc/net/unix, keyed by path ("@name" if abstract).
std::map<std::string, unix_socket> read_proc_net_unix() {
    std::map<std::string, unix_socket> result;
    std::ifstream in("/proc/net/unix");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string num, refs, proto, flags, type, st, inode, path;
        if (!(ls >> num >> refs >> proto >> flags >> type >> st >> inode)) continue;
        std::getline(ls >> std::ws, path);
        if (path.empty()) continue;  // unnamed (socketpair, connected ends)
        unix_socket s;
        s.type = type == "0001"   ? "stream"
                 : type == "0002" ? "dgram"
                 : type == "0005" ? "seqpacket"
                                  : type;
        bool listening = (std::strtoul(flags.c_str(), nullptr, 16) & 0x10000) != 0;
        s.state = listening ? "listening" : st == "03" ? "connected" : "unconnected";
        auto [it, fresh] = result.emplace(path, s);
        // A listening entry says more than the accepted connections sharing its path.
        if (!fresh && listening) it->second = s;
    }
    return result;
}

void list_files(std::vector<entry>& out, const std::vector<std::string>& dirs) {
    auto bound = read_proc_net_unix();
    std::set<std::string> seen;
    for (const auto& dir : dirs) {
        std::error_code ec;
        fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
        for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it.depth() > 4) {  // deep trees (build dirs) hold no rendezvous points
                it.disable_recursion_pending();
                continue;
            }
            struct stat st {};
            if (::lstat(it->path().c_str(), &st) != 0) continue;
            if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) continue;
            std::string path = it->path().string();
            if (!seen.insert(path).second) continue;
            entry e;
            e.kind = S_ISFIFO(st.st_mode) ? "fifo" : "unix";
            e.name = path;
            e.url = e.kind + ":" + path;
            e.uid = st.st_uid;
            e.mode = st.st_mode & 0777;
            if (e.kind == "unix") {
                auto b = bound.find(path);
                e.detail = b == bound.end() ? "socket file, nobody bound (stale)"
                                            : b->second.type + ", " + b->second.state;
            }
            out.push_back(std::move(e));
        }
    }
    for (const auto& [path, s] : bound) {
        if (seen.count(path)) continue;
        entry e;
        e.kind = "unix";
        e.name = path;
        e.url = "unix:" + path;
        e.detail = s.type + ", " + s.state + (path[0] == '@' ? ", abstract" : "");
        out.push_back(std::move(e));
    }
}

nlohmann::json to_json(const entry& e) {
    nlohmann::json j{{"kind", e.kind}, {"name", e.name}};
    if (!e.url.empty()) j["url"] = e.url;
    if (e.uid) {
        j["uid"] = *e.uid;
        j["owner"] = user_name(*e.uid);
    }
    if (e.mode) j["mode"] = fmt::format("{:04o}", *e.mode);
    if (e.size) j["size"] = *e.size;
    if (e.messages) j["messages"] = *e.messages;
    if (e.attached) j["attached"] = *e.attached;
    if (!e.detail.empty()) j["detail"] = e.detail;
    return j;
}

const std::set<std::string> kKinds{"mq",      "shm",     "sem",  "sysvmq",
                                   "sysvshm", "sysvsem", "fifo", "unix"};

// rm names of objects that are not channels: sysvshm:KEY, sysvsem:KEY,
// sysv{mq,shm,sem}:id=N (IPC_PRIVATE ones have no key) and sem:/name. False
// when text is not one of them (then it is a channel URL).
bool remove_non_channel(const std::string& text) {
    const auto colon = text.find(':');
    if (colon == std::string::npos) return false;
    const std::string kind = text.substr(0, colon);
    const std::string rest = text.substr(colon + 1);
    if (kind == "sem") {
        if (!named_semaphore::remove(rest))
            throw_error(ENOENT, "sem_unlink", rest, "no such semaphore");
        return true;
    }
    const bool by_id = rest.rfind("id=", 0) == 0;
    if (kind != "sysvshm" && kind != "sysvsem" && !(kind == "sysvmq" && by_id)) return false;
    const std::string number = by_id ? rest.substr(3) : rest;
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(number.c_str(), &end, by_id ? 10 : 0);
    if (number.empty() || *end != '\0' || errno != 0 || value < 0 || value > 0xffffffffLL ||
        (!by_id && value == 0))
        throw url_error(text, colon + 1, rest.size(),
                        by_id ? "id= must be a number" : "must be a key like 0x1234, or id=N");
    int id = static_cast<int>(value);
    if (!by_id) {
        const auto key = static_cast<key_t>(static_cast<std::uint32_t>(value));
        id = kind == "sysvshm" ? ::shmget(key, 0, 0) : ::semget(key, 0, 0);
        if (id < 0) throw_errno(kind == "sysvshm" ? "shmget" : "semget", text);
    }
    int rc = kind == "sysvshm"   ? ::shmctl(id, IPC_RMID, nullptr)
             : kind == "sysvsem" ? ::semctl(id, 0, IPC_RMID)
                                 : ::msgctl(id, IPC_RMID, nullptr);
    if (rc != 0) throw_errno("IPC_RMID", text);
    return true;
}

// rm: one URL. Throws on failure.
void remove_url(const std::string& text) {
    if (remove_non_channel(text)) return;
    url u = parse_url(text);
    if (u.scheme == "mq") {
        if (!message_queue::remove(u.path))
            throw_error(ENOENT, "mq_unlink", u.path, "no such queue");
    } else if (u.scheme == "sysvmq") {
        sysv_key key =
            u.sysv_key
                ? sysv_key::from_number(static_cast<key_t>(*u.sysv_key))
                : sysv_key::from_path(u.path, static_cast<int>(u.unsigned_param("id").value_or(1)));
        if (!sysv_message_queue::remove(key))
            throw_error(ENOENT, "msgctl IPC_RMID", key.to_string(), "no queue with this key");
    } else if (u.scheme == "shm") {
        if (::shm_unlink(u.path.c_str()) != 0) throw_errno("shm_unlink", u.path);
    } else if (u.scheme == "fifo" || u.scheme == "unix") {
        if (!u.path.empty() && u.path[0] == '@')
            throw_error(EINVAL, "rm", text,
                        "an abstract socket has no file: it vanishes when closed");
        struct stat st {};
        if (::lstat(u.path.c_str(), &st) != 0) throw_errno("rm", u.path);
        bool ok = u.scheme == "fifo" ? S_ISFIFO(st.st_mode) : S_ISSOCK(st.st_mode);
        if (!ok)
            throw_error(EINVAL, "rm", u.path,
                        u.scheme == "fifo" ? "not a FIFO; refusing to remove it"
                                           : "not a socket; refusing to remove it");
        if (::unlink(u.path.c_str()) != 0) throw_errno("unlink", u.path);
    } else {
        throw_error(EINVAL, "rm", text,
                    "rm removes mq:, sysvmq:, shm:, sem:, sysvshm:, sysvsem:, fifo: and unix: "
                    "objects");
    }
}

}  // namespace

void register_ls(CLI::App& app, verb& v) {
    struct options {
        bool json = false;
        std::vector<std::string> dirs;
        std::vector<std::string> kinds;
    };
    auto o = std::make_shared<options>();
    auto* cmd = app.add_subcommand(
        "ls", "List IPC objects: queues, shared memory, semaphores, FIFOs, sockets");
    cmd->footer(
        "Sources: /dev/mqueue, /dev/shm, /proc/sysvipc/{msg,shm,sem}, /proc/net/unix, and FIFOs\n"
        "and socket files under each --dir (default /tmp and /run, 4 levels deep).\n"
        "SIZE is queued bytes for queues, the object size for shared memory; ATT counts\n"
        "attached processes (POSIX shm: processes mapping it that we may inspect).\n"
        "Examples:\n"
        "  ipckit ls\n"
        "  ipckit ls --kind mq --kind sysvmq --json\n"
        "  ipckit ls --dir /var/run/myapp");
    cmd->add_flag("--json", o->json, "Print {\"objects\": [...], \"warnings\": [...]}");
    cmd->add_option("--dir", o->dirs, "Directory to search for FIFOs and sockets (repeatable)");
    cmd->add_option("--kind", o->kinds,
                    "Only these kinds: mq shm sem sysvmq sysvshm sysvsem fifo unix")
        ->check(CLI::IsMember(std::vector<std::string>(kKinds.begin(), kKinds.end())));
    v.app = cmd;
    v.action = [o]() -> int {
        std::vector<entry> all;
        std::vector<std::string> warnings;
        list_posix(all, warnings);
        list_sysv(all);
        list_files(all, o->dirs.empty() ? std::vector<std::string>{"/tmp", "/run"} : o->dirs);
        if (!o->kinds.empty()) {
            std::set<std::string> want(o->kinds.begin(), o->kinds.end());
            if (!want.count("mq")) warnings.clear();  // the only warning is about mq
            std::erase_if(all, [&](const entry& e) { return !want.count(e.kind); });
        }
        if (o->json) {
            nlohmann::json objects = nlohmann::json::array();
            for (const auto& e : all)
                objects.push_back(to_json(e));
            fmt::print("{}\n",
                       nlohmann::json{{"objects", objects}, {"warnings", warnings}}.dump(2));
            return exit_ok;
        }
        fmt::print("{:<8} {:<40} {:<10} {:<5} {:>10} {:>5} {:>4}  {}\n", "KIND", "NAME", "OWNER",
                   "MODE", "SIZE", "MSGS", "ATT", "DETAIL");
        auto opt = [](const auto& v) { return v ? std::to_string(*v) : std::string("-"); };
        for (const auto& e : all) {
            fmt::print("{:<8} {:<40} {:<10} {:<5} {:>10} {:>5} {:>4}  {}\n", e.kind, e.name,
                       e.uid ? user_name(*e.uid) : "-",
                       e.mode ? fmt::format("{:04o}", *e.mode) : "-", opt(e.size), opt(e.messages),
                       opt(e.attached), e.detail);
        }
        for (const auto& w : warnings)
            print_error(w);
        return exit_ok;
    };
}

void register_rm(CLI::App& app, verb& v) {
    auto urls = std::make_shared<std::vector<std::string>>();
    auto* cmd = app.add_subcommand("rm", "Remove IPC objects by URL");
    cmd->footer(
        "Removes POSIX queues (mq:/name), System V queues (sysvmq:KEY or sysvmq:/path?id=N),\n"
        "POSIX shared memory objects (shm:/name) and named semaphores (sem:/name), System V\n"
        "segments and semaphore sets (sysvshm:KEY, sysvsem:KEY), System V objects by id\n"
        "(sysvmq:id=N, sysvshm:id=N, sysvsem:id=N: what `ipckit ls` prints for IPC_PRIVATE),\n"
        "FIFOs (fifo:/path) and socket files (unix:/path). A path is only removed if it is of\n"
        "the named kind. Every URL is tried; the exit status is 1 if any failed.\n"
        "Examples:\n"
        "  ipckit rm mq:/jobs sysvmq:0x1234 sysvshm:id=32769\n"
        "  ipckit rm fifo:/tmp/demo unix:/tmp/demo.sock");
    cmd->add_option("url", *urls, "Objects to remove")->required();
    v.app = cmd;
    v.action = [urls]() -> int {
        int rc = exit_ok;
        for (const auto& text : *urls) {
            try {
                remove_url(text);
                fmt::print("removed {}\n", text);
            } catch (const url_error& e) {
                print_error(e.what());
                rc = exit_usage;
            } catch (const std::exception& e) {
                print_error(e.what());
                if (rc == exit_ok) rc = exit_failure;
            }
        }
        return rc;
    };
}

}  // namespace ipckit::cli
