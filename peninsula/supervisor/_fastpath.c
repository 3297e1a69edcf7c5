/* peninsula._fastpath: the supervisor's hot path, compiled.
 *
 * Engine.serve(listener_fd) receives requests and answers each here when
 * it is one of the common writes of a confined process (open of a regular
 * file, create, mkdir, unlink, rename, link, and chmod, chown or utimensat
 * of a file, directory or symlink) and the policy allows it under plain
 * writable roots and plain protections. Every other request, every refusal
 * included, is handed back to the Python supervisor as the raw
 * notification ("deferred") before anything is done for it, so
 * peninsula/supervisor/handlers/ stay the one place that refuses, logs and handles
 * the rare cases (/proc and /dev paths, symlinks to magic links, FIFOs,
 * devices, O_TMPFILE, openat2, globs, deep paths, errors).
 *
 * What is done here follows the handlers and kernel/resolve.py step for step: the
 * path is read once, resolved by the supervisor with RESOLVE_NO_MAGICLINKS
 * from the target's cwd or dirfd, the object or its parent is pinned, the
 * decision is made on where the pinned object really is, ID_VALID is
 * checked after the last read of the target's state, and the call is made
 * on the pinned object with the target's umask (and, for a root
 * supervisor, its fsuid, fsgid, groups and effective capabilities, read
 * for every request). Opens are answered with ADDFD,
 * never CONTINUE.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The notify interface, spelled out so old kernel headers do not matter. */
#define IOCTL_RECV 0xc0502100UL
#define IOCTL_SEND 0xc0182101UL
#define IOCTL_ID_VALID 0x40082102UL
#define IOCTL_ADDFD 0x40182103UL

struct notif {
    uint64_t id;
    uint32_t pid;
    uint32_t flags;
    int32_t nr;
    uint32_t arch;
    uint64_t ip;
    uint64_t args[6];
};

struct resp {
    uint64_t id;
    int64_t val;
    int32_t error;
    uint32_t flags;
};

struct addfd {
    uint64_t id;
    uint32_t flags;
    uint32_t srcfd;
    uint32_t newfd;
    uint32_t newfd_flags;
};

struct how {
    uint64_t flags, mode, resolve;
};

#define NR_OPENAT2 437
#define NR_FCHMODAT2 452
#define RESOLVE_NO_MAGICLINKS 0x02
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif
#define WRITE_INTENT (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)
#define VALID_OPEN (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC | \
                    020000 | O_DIRECT | 0100000 | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | 020000000)
#define MAX_GROUPS 256
#define MAX_FDS 8
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/* What a handler says. */
enum { DONE = 0, DEFER = 1 };

typedef struct {
    char *text;
    size_t len;
    int position;
    int negated;
} Rule;

/* One policy (policy.Policy, as fastpath.spec gives it). */
typedef struct {
    Rule *roots;
    int nroots;
    Rule *protect;  /* plain patterns */
    int nprotect;
    Rule *globs;    /* literal prefix of each glob pattern */
    int nglobs;
    Rule *devices;  /* decided by Python: devices are more than a place */
    int ndevices;
    int hardlinked_writes;
} Pol;

/* What the judge said of a thread's process: the policy slot, or
 * UNCONFINED. Kept while that very thread lives (the pidfd tells). */
typedef struct {
    pid_t tid;
    int pidfd;
    pid_t tgid;
    int slot;
} Judged;

#define JUDGED_SLOTS 256
#define UNCONFINED (-1)
#define ASK_PYTHON (-2)

typedef struct {
    PyObject_HEAD
    Pol *pols;
    int npols;
    PyObject *judge;  /* None for one fixed policy (run); else judge(tid) -> (slot, tgid) */
    Judged judged[JUDGED_SLOTS];
    int root;
    uid_t uid;
    gid_t gid;
    gid_t groups[MAX_GROUPS];
    int ngroups;
    dev_t proc_dev;
    /* /proc and our own /proc/PID/fd, opened once: a lookup of one or two
     * names from them is cheaper than walking the whole path each time. */
    int proc_dir, fd_dir;
    pid_t owner;  /* the process fd_dir belongs to */
    uint64_t caps[3]; /* our effective, permitted and inheritable sets */
    unsigned long long handled, deferred;
} Engine;

typedef struct {
    Engine *engine;
    const Pol *pol;
    PyThreadState **tstate;  /* to call the judge with the GIL */
    int listener;
    struct notif n;
    int fds[MAX_FDS];
    int nfds;
    int have_status;
    mode_t umask;
    uid_t fsuid;
    gid_t fsgid;
    gid_t groups[MAX_GROUPS];
    int ngroups;
    long fdsize;
    uint64_t cap_effective;
    int switched;
    int capped;
} Req;

/* -- small tools ------------------------------------------------------------ */

static int keep(Req *r, int fd) {
    if (fd < 0)
        return fd;
    if (r->nfds == MAX_FDS) {
        close(fd);
        errno = EMFILE;
        return -1;
    }
    r->fds[r->nfds++] = fd;
    return fd;
}

static void release(Req *r) {
    for (int i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    r->nfds = 0;
}

static int openat2_(int dirfd, const char *path, uint64_t flags) {
    struct how how = {flags, 0, RESOLVE_NO_MAGICLINKS};
    return (int)syscall(NR_OPENAT2, dirfd, path, &how, sizeof how);
}

static int valid(Req *r) {
    uint64_t id = r->n.id;
    return ioctl(r->listener, IOCTL_ID_VALID, &id) == 0;
}

#define FLAG_CONTINUE 1u /* SECCOMP_USER_NOTIF_FLAG_CONTINUE */

static void send_(Req *r, int64_t val, int err, uint32_t flags) {
    struct resp resp = {r->n.id, val, err ? -err : 0, flags};
    while (ioctl(r->listener, IOCTL_SEND, &resp) != 0 && errno == EINTR)
        ;
    /* ENOENT: the target died or was interrupted; nothing to answer. */
}

/* ADDFD, then SEND with the new number (see seccomp.Listener.reply_fd for
 * why it is two steps). */
static void reply_fd(Req *r, int fd, int cloexec) {
    struct addfd add = {r->n.id, 0, (uint32_t)fd, 0, cloexec ? O_CLOEXEC : 0};
    long newfd;
    while ((newfd = ioctl(r->listener, IOCTL_ADDFD, &add)) < 0 && errno == EINTR)
        ;
    if (newfd < 0) {
        if (errno != ENOENT && errno != EINPROGRESS)
            send_(r, 0, errno, 0);
        return;
    }
    send_(r, newfd, 0, 0);
}

static int beneath(const char *path, size_t len, const Rule *root) {
    if (root->len == 1 && root->text[0] == '/')
        return len > 0 && path[0] == '/';
    return len >= root->len && memcmp(path, root->text, root->len) == 0 && (len == root->len || path[root->len] == '/');
}

/* 1 when the policy surely allows a write at path; 0 when Python must
 * decide (it may allow it: a device, the process's own /proc entry, a glob). */
static int allowed(const Pol *e, const char *path, size_t len) {
    static const char deleted[] = " (deleted)";
    if (len == 0 || path[0] != '/' || memchr(path, 0, len))
        return 0;
    if (len >= sizeof deleted - 1 && memcmp(path + len - (sizeof deleted - 1), deleted, sizeof deleted - 1) == 0)
        return 0;
    if ((len >= 5 && memcmp(path, "/proc", 5) == 0 && (len == 5 || path[5] == '/')))
        return 0;
    for (int i = 0; i < e->ndevices; i++)
        if (beneath(path, len, &e->devices[i]))
            return 0;
    int inside = 0;
    for (int i = 0; i < e->nroots && !inside; i++)
        inside = beneath(path, len, &e->roots[i]);
    if (!inside)
        return 0;
    int best = -1, negated = 0;
    for (int i = 0; i < e->nprotect; i++)
        if (e->protect[i].position > best && beneath(path, len, &e->protect[i])) {
            best = e->protect[i].position;
            negated = e->protect[i].negated;
        }
    for (int i = 0; i < e->nglobs; i++)
        if (e->globs[i].position > best && len >= e->globs[i].len && memcmp(path, e->globs[i].text, e->globs[i].len) == 0)
            return 0;
    return best < 0 || negated;
}

/* 1 when a protection may lie strictly beneath path: renaming it would
 * move that protection to an unprotected name, so Python decides
 * (policy.protected_beneath). A glob counts when its literal prefix and
 * path's subtree overlap. */
static int protected_beneath(const Pol *e, const char *path, size_t len) {
    if (len == 1)
        len = 0; /* "/": everything lies beneath */
    for (int i = 0; i < e->nprotect; i++) {
        const Rule *p = &e->protect[i];
        if (!p->negated && p->len > len + 1 && memcmp(p->text, path, len) == 0 && p->text[len] == '/')
            return 1;
    }
    for (int i = 0; i < e->nglobs; i++) {
        const Rule *g = &e->globs[i];
        size_t common = g->len < len ? g->len : len;
        if (memcmp(g->text, path, common) == 0 && (g->len <= len || g->text[len] == '/'))
            return 1;
    }
    return 0;
}

/* Where the kernel says a pinned object is (resolve.location). */
static int location(Engine *e, int fd, char *out, size_t size, size_t *len) {
    char link[16];
    snprintf(link, sizeof link, "%d", fd);
    ssize_t n = readlinkat(e->fd_dir, link, out, size);
    if (n <= 0 || (size_t)n >= size)
        return -1;
    out[n] = 0;
    *len = (size_t)n;
    /* Believed only when it leads to the same object from our root: an
     * object on a detached mount, or another namespace's, is named relative
     * to its mount's root (resolve.reachable). Python refuses it. */
    struct stat named, held;
    if (out[0] == '/' && (fstatat(AT_FDCWD, out, &named, AT_SYMLINK_NOFOLLOW) != 0 || fstat(fd, &held) != 0 ||
                          named.st_dev != held.st_dev || named.st_ino != held.st_ino))
        return -1;
    return 0;
}

/* The target's path argument: read up to each page end, as target.read_cstring. */
static int read_path(Req *r, uint64_t addr, char *out) {
    if (addr == 0)
        return -1;
    size_t got = 0;
    while (got < PATH_MAX) {
        size_t chunk = 4096 - (addr % 4096);
        if (chunk > PATH_MAX - got)
            chunk = PATH_MAX - got;
        struct iovec local = {out + got, chunk}, remote = {(void *)(uintptr_t)addr, chunk};
        ssize_t n = process_vm_readv((pid_t)r->n.pid, &local, 1, &remote, 1, 0);
        if (n <= 0)
            return -1;
        char *nul = memchr(out + got, 0, (size_t)n);
        if (nul)
            return (int)(nul - out);
        got += (size_t)n;
        addr += (uint64_t)n;
    }
    return -1;
}

static int read_memory(Req *r, uint64_t addr, void *out, size_t size) {
    struct iovec local = {out, size}, remote = {(void *)(uintptr_t)addr, size};
    return addr && process_vm_readv((pid_t)r->n.pid, &local, 1, &remote, 1, 0) == (ssize_t)size ? 0 : -1;
}

static int cmp_gid(const void *a, const void *b) {
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return x < y ? -1 : x > y;
}

/* The lines of /proc/TID/status a decision needs (target.Status). */
static int read_status(Req *r) {
    if (r->have_status)
        return 0;
    char name[64], text[8192];
    snprintf(name, sizeof name, "%u/status", r->n.pid);
    int fd = openat(r->engine->proc_dir, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
    int seen = 0;
    r->umask = 022;
    r->fdsize = 0;
    r->ngroups = 0;
    for (char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, "Umask:", 6) == 0) {
            r->umask = (mode_t)strtoul(line + 6, NULL, 8);
        } else if (strncmp(line, "Uid:", 4) == 0 || strncmp(line, "Gid:", 4) == 0) {
            char *p = line + 4;
            unsigned long id = 0;
            for (int i = 0; i < 4; i++)
                id = strtoul(p, &p, 10);
            if (line[0] == 'U')
                r->fsuid = (uid_t)id;
            else
                r->fsgid = (gid_t)id;
            seen++;
        } else if (strncmp(line, "FDSize:", 7) == 0) {
            r->fdsize = strtol(line + 7, NULL, 10);
        } else if (strncmp(line, "Groups:", 7) == 0) {
            char *p = line + 7, *end;
            for (;;) {
                unsigned long g = strtoul(p, &end, 10);
                if (end == p)
                    break;
                if (r->ngroups == MAX_GROUPS)
                    return -1;
                r->groups[r->ngroups++] = (gid_t)g;
                p = end;
            }
            seen++;
        } else if (strncmp(line, "CapEff:", 7) == 0) {
            r->cap_effective = strtoull(line + 7, NULL, 16);
            seen++;
            break; /* the lines after CapEff are not needed */
        }
    }
    if (seen != 4)
        return -1;
    qsort(r->groups, (size_t)r->ngroups, sizeof(gid_t), cmp_gid);
    r->have_status = 1;
    return 0;
}

static int set_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups) {
    /* Raw syscalls: they change only this thread (glibc's would change all). */
    if (syscall(SYS_setgroups, ngroups, groups) != 0)
        return -1;
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    if ((uid_t)syscall(SYS_setfsuid, -1) != uid || (gid_t)syscall(SYS_setfsgid, -1) != gid) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* Capabilities (caps.py): capget/capset of the calling thread only. */
#define CAP_VERSION_3 0x20080522
#define CAPS_KEPT ((1ULL << 6) | (1ULL << 7) | (1ULL << 19)) /* SETGID, SETUID, SYS_PTRACE: caps.KEEP */

struct cap_header { uint32_t version; int pid; };
struct cap_data { uint32_t effective, permitted, inheritable; };

static int get_caps(uint64_t out[3]) {
    struct cap_header h = {CAP_VERSION_3, 0};
    struct cap_data d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    out[0] = d[0].effective | (uint64_t)d[1].effective << 32;
    out[1] = d[0].permitted | (uint64_t)d[1].permitted << 32;
    out[2] = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
    return 0;
}

static int set_caps(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct cap_header h = {CAP_VERSION_3, 0};
    struct cap_data d[2] = {
        {(uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable},
        {(uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32)},
    };
    return (int)syscall(SYS_capset, &h, d);
}

/* Act as the target for everything done for the request (emulate._Identity).
 * A supervisor that is not root serves only targets of its own ids. */
static void become_self(Req *r);

/* Its identity and capabilities are read from /proc/TID/status for every
 * request: nothing a thread does to them (set*id, capset, an execve by a
 * non-leader thread, which takes over the leader's tid) goes unseen. */
static int become_target(Req *r) {
    Engine *e = r->engine;
    if (r->switched || r->capped)
        return 0; /* already acting as the target for this request */
    if (!e->root)
        return 0;
    if (read_status(r) != 0)
        return -1;
    if (!(r->fsuid == e->uid && r->fsgid == e->gid && r->ngroups == e->ngroups &&
          memcmp(r->groups, e->groups, sizeof(gid_t) * (size_t)r->ngroups) == 0)) {
        if (set_identity(r->fsuid, r->fsgid, r->groups, r->ngroups) != 0) {
            set_identity(e->uid, e->gid, e->groups, e->ngroups);
            return -1;
        }
        r->switched = 1;
    }
    uint64_t wanted = (r->cap_effective & e->caps[1]) | (e->caps[0] & CAPS_KEPT);
    if (wanted != e->caps[0]) {
        if (set_caps(wanted, e->caps[1], e->caps[2]) != 0) {
            become_self(r);
            return -1;
        }
        r->capped = 1;
    }
    return 0;
}

static void become_self(Req *r) {
    Engine *e = r->engine;
    if (r->capped) {
        set_caps(e->caps[0], e->caps[1], e->caps[2]); /* first: the identity needs CAP_SETUID */
        r->capped = 0;
    }
    if (r->switched) {
        set_identity(e->uid, e->gid, e->groups, e->ngroups);
        r->switched = 0;
    }
}

/* 0 when the target can take one more fd (emulate._room_for_fd); -1 when
 * its table may be full and Python must look closer. */
static int room_for_fd(Req *r) {
    struct rlimit limit;
    if (prlimit((pid_t)r->n.pid, RLIMIT_NOFILE, NULL, &limit) != 0)
        return 0;
    if (read_status(r) != 0)
        return -1;
    if (limit.rlim_cur == RLIM_INFINITY || (rlim_t)r->fdsize < limit.rlim_cur)
        return 0;
    return -1;
}

/* -- resolution (resolve.Context) ------------------------------------------- */

/* Paths whose meaning is the target's, not ours: /proc/self, /dev/fd... */
static int magic_prefix(const char *path) {
    return strncmp(path, "/proc", 5) == 0 || strncmp(path, "/dev/fd", 7) == 0 || strncmp(path, "/dev/std", 8) == 0;
}

static int on_proc(Req *r, int fd) {
    struct stat st;
    return fstat(fd, &st) != 0 || st.st_dev == r->engine->proc_dev;
}

/* The fd to resolve a relative path from: the target's cwd or its dirfd. */
static int anchor(Req *r, int dirfd) {
    char name[64];
    if (dirfd == AT_FDCWD) {
        snprintf(name, sizeof name, "%u/cwd", r->n.pid);
        return keep(r, openat(r->engine->proc_dir, name, O_PATH | O_DIRECTORY | O_CLOEXEC));
    }
    if (dirfd < 0)
        return -1;
    snprintf(name, sizeof name, "%u/fd/%d", r->n.pid, dirfd);
    return keep(r, openat(r->engine->proc_dir, name, O_PATH | O_CLOEXEC));
}

static int base_for(Req *r, int dirfd, const char *path) {
    if (path[0] == '/')
        return magic_prefix(path) ? -1 : AT_FDCWD;
    return anchor(r, dirfd);
}

#define PIN_MISSING (-2)

static int fd_object(Req *r, int fd);

/* The number N of "/proc/self/fd/N" (tar's way to chmod an O_PATH fd), else -1. */
static int own_fd_path(const char *path) {
    static const char prefix[] = "/proc/self/fd/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return -1;
    const char *digits = path + sizeof prefix - 1;
    size_t n = strspn(digits, "0123456789");
    if (n == 0 || n > 9 || digits[n] != 0)
        return -1;
    return atoi(digits);
}

/* An O_PATH fd on the existing object path names (resolve.pin); PIN_MISSING
 * when the kernel found no such name, -1 when Python must resolve it. */
static int pin(Req *r, int dirfd, const char *path, int follow) {
    if (path[0] == 0)
        return -1;
    int own = follow ? own_fd_path(path) : -1;
    if (own >= 0)
        return fd_object(r, own); /* the target's own open file, as the kernel would follow it */
    int base = base_for(r, dirfd, path);
    if (base == -1)
        return -1;
    int fd = openat2_(base, path, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return errno == ENOENT ? PIN_MISSING : -1;
    if (keep(r, fd) < 0 || on_proc(r, fd))
        return -1;
    return fd;
}

typedef struct {
    int parent;
    const char *name;
    char where[PATH_MAX + NAME_MAX + 2];
    size_t len;
} Entry;

/* The pinned parent of path's last component, the name, and the entry's
 * location (resolve.entry); -1 when Python must resolve it. */
static int entry(Req *r, int dirfd, char *path, size_t len, Entry *out) {
    if (len == 0 || path[len - 1] == '/')
        return -1;
    int base = base_for(r, dirfd, path);
    if (base == -1)
        return -1;
    char *slash = strrchr(path, '/');
    const char *head = ".";
    out->name = path;
    if (slash) {
        out->name = slash + 1;
        head = slash == path ? "/" : path;
    }
    if (strcmp(out->name, ".") == 0 || strcmp(out->name, "..") == 0)
        return -1;
    int cut = slash && slash != path;
    if (cut)
        *slash = 0;
    int parent = openat2_(base, head, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cut)
        *slash = '/';
    if (keep(r, parent) < 0 || on_proc(r, parent))
        return -1;
    size_t loc;
    if (location(r->engine, parent, out->where, PATH_MAX, &loc) != 0 || out->where[0] != '/')
        return -1;
    size_t nlen = strlen(out->name);
    if (nlen > NAME_MAX || loc + 1 + nlen + 1 > sizeof out->where)
        return -1; /* a name the kernel refuses (ENAMETOOLONG): Python says so */
    if (loc == 1)
        loc = 0; /* "/" + name */
    out->where[loc] = '/';
    memcpy(out->where + loc + 1, out->name, nlen + 1);
    out->len = loc + 1 + nlen;
    out->parent = parent;
    return 0;
}

/* The target's own fd (resolve.Context.fd_object). */
static int fd_object(Req *r, int fd) {
    if (fd < 0)
        return -1;
    int obj = anchor(r, fd);
    if (obj < 0 || on_proc(r, obj))
        return -1;
    return obj;
}

/* emulate.Request.check_fd for a file, directory or symlink: 0 when allowed
 * here, -1 when Python decides. is_dir is set for chmod's set-id rule. */
static int check_object(Req *r, int fd, int *is_dir) {
    struct stat st;
    char where[PATH_MAX];
    size_t len;
    if (fstat(fd, &st) != 0)
        return -1;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return -1;
    if (S_ISREG(st.st_mode) && st.st_nlink > 1 && !r->pol->hardlinked_writes)
        return -1;
    if (location(r->engine, fd, where, sizeof where, &len) != 0 || !allowed(r->pol, where, len))
        return -1;
    if (is_dir)
        *is_dir = S_ISDIR(st.st_mode);
    return 0;
}

/* -- handlers (emulate.h_*) -------------------------------------------------- */

static int privileged(mode_t mode, int is_dir) {
    return !is_dir && ((mode & S_ISUID) || ((mode & S_ISGID) && (mode & S_IXGRP)));
}

static int answer(Req *r, int rc) {
    send_(r, 0, rc < 0 ? errno : 0, 0);
    return DONE;
}

static int do_open(Req *r, int dirfd, uint64_t addr, uint64_t flags64, uint64_t mode) {
    unsigned flags = (unsigned)flags64 & VALID_OPEN;
    if (flags & (O_PATH | O_DIRECTORY | 020000000) || !(flags & WRITE_INTENT))
        return DEFER;
    char path[PATH_MAX];
    int len = read_path(r, addr, path);
    if (len <= 0 || become_target(r) != 0)
        return DEFER;
    int cloexec = (flags & O_CLOEXEC) != 0;
    int exclusive = (flags & O_CREAT) && (flags & O_EXCL);
    if (!exclusive) {
        int fd = pin(r, dirfd, path, !(flags & O_NOFOLLOW));
        if (fd >= 0) {
            struct stat st;
            char where[PATH_MAX];
            size_t wlen;
            if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
                return DEFER;
            if (flags & (O_WRONLY | O_RDWR | O_TRUNC)) {
                if (st.st_nlink > 1 && !r->pol->hardlinked_writes)
                    return DEFER;
                if (location(r->engine, fd, where, sizeof where, &wlen) != 0 || !allowed(r->pol, where, wlen))
                    return DEFER;
            }
            if ((flags & O_TRUNC) && room_for_fd(r) != 0)
                return DEFER;
            if (!valid(r))
                return DONE;
            char source[16];
            snprintf(source, sizeof source, "%d", fd);
            int opened = openat(r->engine->fd_dir, source,
                                (int)((flags | O_CLOEXEC | O_NOCTTY) & ~(unsigned)(O_CREAT | O_EXCL | O_NOFOLLOW)));
            if (opened < 0)
                return answer(r, -1);
            reply_fd(r, opened, cloexec);
            close(opened);
            return DONE;
        }
        if (fd != PIN_MISSING || !(flags & O_CREAT))
            return DEFER;
    }
    Entry ent;
    if (entry(r, dirfd, path, (size_t)len, &ent) != 0)
        return DEFER;
    char link[8];
    if (readlinkat(ent.parent, ent.name, link, sizeof link) >= 0)
        return DEFER; /* a dangling symlink: Python follows it */
    if (!allowed(r->pol, ent.where, ent.len) || read_status(r) != 0)
        return DEFER;
    mode_t create_mode = (mode_t)(mode & 07777) & ~r->umask;
    if (privileged(create_mode, 0) || room_for_fd(r) != 0)
        return DEFER;
    if (!valid(r))
        return DONE;
    /* O_EXCL always: whatever appeared at the name since we looked was not
     * checked. Then nothing was created, and Python resolves it again. */
    int opened = openat(ent.parent, ent.name, (int)(flags | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), create_mode);
    if (opened < 0) {
        if ((errno == EEXIST && !(flags & O_EXCL)) || (errno == ELOOP && !(flags & O_NOFOLLOW)))
            return DEFER;
        return answer(r, -1);
    }
    reply_fd(r, opened, cloexec);
    close(opened);
    return DONE;
}

static int read_entry(Req *r, int dirfd, uint64_t addr, char *path, Entry *ent) {
    int len = read_path(r, addr, path);
    if (len <= 0 || become_target(r) != 0 || entry(r, dirfd, path, (size_t)len, ent) != 0)
        return -1;
    return allowed(r->pol, ent->where, ent->len) ? 0 : -1;
}

static int do_mkdir(Req *r, int dirfd, uint64_t addr, uint64_t mode) {
    char path[PATH_MAX];
    Entry ent;
    if (read_entry(r, dirfd, addr, path, &ent) != 0 || read_status(r) != 0)
        return DEFER;
    if (!valid(r))
        return DONE;
    return answer(r, mkdirat(ent.parent, ent.name, (mode_t)(mode & 07777) & ~r->umask));
}

/* A directory entry that may be a project root, or hold one: in the shell
 * session (the engine has a judge) Python's to move or remove
 * (emulate._refuse_moving_a_root). */
static int is_directory(const Entry *ent) {
    struct stat st;
    return fstatat(ent->parent, ent->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int do_remove(Req *r, int dirfd, uint64_t addr, int flag) {
    char path[PATH_MAX];
    Entry ent;
    if ((flag & AT_REMOVEDIR) && r->engine->judge)
        return DEFER;
    if (read_entry(r, dirfd, addr, path, &ent) != 0)
        return DEFER;
    if (!valid(r))
        return DONE;
    return answer(r, unlinkat(ent.parent, ent.name, flag));
}

enum { RENAME, LINK };

/* rename and link: both ends must be allowed (emulate._rename, _link). */
static int do_two_names(Req *r, int op, int olddir, uint64_t oldaddr, int newdir, uint64_t newaddr, unsigned flags) {
    char oldpath[PATH_MAX], newpath[PATH_MAX];
    Entry from, to;
    if (read_entry(r, olddir, oldaddr, oldpath, &from) != 0 || read_entry(r, newdir, newaddr, newpath, &to) != 0)
        return DEFER;
    if (op == RENAME && ((r->engine->judge && (is_directory(&from) || is_directory(&to)))
                         || protected_beneath(r->pol, from.where, from.len) || protected_beneath(r->pol, to.where, to.len)))
        return DEFER;
    if (!valid(r))
        return DONE;
    if (op == RENAME)
        return answer(r, renameat2(from.parent, from.name, to.parent, to.name, flags));
    return answer(r, linkat(from.parent, from.name, to.parent, to.name, 0));
}

enum { CHMOD, CHOWN, UTIMES };

/* chmod, chown or utimes of a pinned object, once it is allowed. */
static int metadata(Req *r, int obj, int op, uint64_t a, uint64_t b, const struct timespec *times) {
    int is_dir = 0;
    if (obj < 0 || check_object(r, obj, &is_dir) != 0)
        return DEFER;
    if (op == CHMOD && privileged((mode_t)a, is_dir))
        return DEFER;
    if (!valid(r))
        return DONE;
    int rc;
    if (op == CHMOD) {
        rc = (int)syscall(NR_FCHMODAT2, obj, "", (mode_t)(a & 07777), AT_EMPTY_PATH);
        if (rc != 0 && errno == ENOSYS) {
            struct stat st;
            if (fstat(obj, &st) == 0 && S_ISLNK(st.st_mode)) {
                errno = EOPNOTSUPP;
            } else {
                char source[64];
                snprintf(source, sizeof source, "/proc/self/fd/%d", obj);
                rc = chmod(source, (mode_t)(a & 07777));
            }
        }
    } else if (op == CHOWN) {
        rc = fchownat(obj, "", (uid_t)a, (gid_t)b, AT_EMPTY_PATH);
    } else {
        rc = utimensat(obj, "", times, AT_EMPTY_PATH);
    }
    return answer(r, rc);
}

static int fd_metadata(Req *r, int fd, int op, uint64_t a, uint64_t b) {
    if (become_target(r) != 0)
        return DEFER;
    return metadata(r, fd_object(r, fd), op, a, b, NULL);
}

/* fchownat and utimensat: a path (or NULL / "" with AT_EMPTY_PATH) and AT_ flags. */
static int at_metadata(Req *r, int dirfd, uint64_t addr, int flags, int op, uint64_t a, uint64_t b,
                       const struct timespec *times) {
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return DEFER;
    char path[PATH_MAX];
    int len = 0;
    if (addr != 0 || op != UTIMES) {
        len = read_path(r, addr, path);
        if (len < 0 || (len == 0 && !(flags & AT_EMPTY_PATH)))
            return DEFER;
    }
    if (become_target(r) != 0)
        return DEFER;
    int obj;
    if (len == 0) {
        obj = fd_object(r, dirfd);
    } else {
        obj = pin(r, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
        if (obj < 0)
            return DEFER;
    }
    return metadata(r, obj, op, a, b, times);
}

static int do_utimensat(Req *r) {
    uint64_t *args = r->n.args;
    struct timespec times[2], *given = NULL;
    if (args[2]) {
        if (read_memory(r, args[2], times, sizeof times) != 0)
            return DEFER;
        given = times;
    }
    return at_metadata(r, (int)args[0], args[1], (int)args[3], UTIMES, 0, 0, given);
}

static void forget_judged(Judged *j) {
    if (j->tid) {
        close(j->pidfd);
        j->tid = 0;
    }
}

/* Which policy the request's process is under: the one policy of a run, or
 * what the judge (the shell supervisor's timeline) says, remembered for the
 * thread's life. 0 with r->pol set; UNCONFINED; ASK_PYTHON. */
static int choose_policy(Req *r) {
    Engine *e = r->engine;
    if (e->judge == NULL) {
        r->pol = e->npols ? &e->pols[0] : NULL;
        return r->pol ? 0 : ASK_PYTHON;
    }
    pid_t tid = (pid_t)r->n.pid;
    Judged *j = &e->judged[tid % JUDGED_SLOTS];
    int slot;
    if (j->tid == tid && syscall(SYS_pidfd_send_signal, j->pidfd, 0, NULL, 0) == 0) {
        slot = j->slot;
    } else {
        int pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
        int tgid = 0;
        slot = ASK_PYTHON;
        PyEval_RestoreThread(*r->tstate);
        PyObject *said = PyObject_CallFunction(e->judge, "i", (int)tid);
        if (said == NULL || !PyArg_ParseTuple(said, "ii", &slot, &tgid)) {
            PyErr_WriteUnraisable(e->judge);  /* a bug costs this request the fast path, nothing more */
            slot = ASK_PYTHON;
        }
        Py_XDECREF(said);
        *r->tstate = PyEval_SaveThread();
        /* ASK_PYTHON is remembered too: the shell's own requests would
         * otherwise cost a judge call each. */
        if (pidfd >= 0 && slot >= ASK_PYTHON && slot < e->npols) {
            forget_judged(j);
            j->tid = tid;
            j->pidfd = pidfd;
            j->tgid = tgid;
            j->slot = slot;
        } else if (pidfd >= 0) {
            close(pidfd);
        }
    }
    if (slot == UNCONFINED)
        return UNCONFINED;
    if (slot < 0 || slot >= e->npols)
        return ASK_PYTHON;
    r->pol = &e->pols[slot];
    return 0;
}

static int continue_(Req *r) {
    send_(r, 0, 0, FLAG_CONTINUE);
    return DONE;
}

/* kill, tgkill, rt_tgsigqueueinfo (the shell session traps them) from a
 * confined thread to its own process (raise, abort, a runtime's preemption
 * signals): lineage.py allows that, and the receiver is a register value.
 * Everything else is Python's. */
static int own_signal(Req *r) {
    pid_t tid = (pid_t)r->n.pid;
    Judged *j = &r->engine->judged[tid % JUDGED_SLOTS];
    if (j->tid == tid && j->tgid > 0 && (pid_t)r->n.args[0] == j->tgid)
        return continue_(r);
    return DEFER;
}

static int handled_here(int nr) {
    switch (nr) {
    case SYS_open: case SYS_openat: case SYS_creat: case SYS_mkdir: case SYS_mkdirat: case SYS_unlink:
    case SYS_rmdir: case SYS_unlinkat: case SYS_rename: case SYS_renameat: case SYS_renameat2: case SYS_link:
    case SYS_linkat: case SYS_fchmod: case SYS_fchown: case SYS_chmod: case SYS_fchmodat: case NR_FCHMODAT2:
    case SYS_chown: case SYS_lchown: case SYS_fchownat: case SYS_utimensat:
    case SYS_kill: case SYS_tgkill: case SYS_rt_tgsigqueueinfo:
        return 1;
    default:
        return 0;
    }
}

static int dispatch(Req *r) {
    uint64_t *a = r->n.args;
    if (!handled_here(r->n.nr))
        return DEFER;
    int chosen = choose_policy(r);
    if (chosen == UNCONFINED)
        return continue_(r); /* no restriction bears on an unconfined process */
    if (chosen != 0)
        return DEFER;
    switch (r->n.nr) {
    case SYS_open:
        return do_open(r, AT_FDCWD, a[0], a[1], a[2]);
    case SYS_openat:
        return do_open(r, (int)a[0], a[1], a[2], a[3]);
    case SYS_creat:
        return do_open(r, AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1]);
    case SYS_mkdir:
        return do_mkdir(r, AT_FDCWD, a[0], a[1]);
    case SYS_mkdirat:
        return do_mkdir(r, (int)a[0], a[1], a[2]);
    case SYS_unlink:
        return do_remove(r, AT_FDCWD, a[0], 0);
    case SYS_rmdir:
        return do_remove(r, AT_FDCWD, a[0], AT_REMOVEDIR);
    case SYS_unlinkat:
        if ((int)a[2] & ~AT_REMOVEDIR)
            return DEFER;
        return do_remove(r, (int)a[0], a[1], (int)a[2]);
    case SYS_rename:
        return do_two_names(r, RENAME, AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
    case SYS_renameat:
        return do_two_names(r, RENAME, (int)a[0], a[1], (int)a[2], a[3], 0);
    case SYS_renameat2:
        return do_two_names(r, RENAME, (int)a[0], a[1], (int)a[2], a[3], (unsigned)a[4]);
    case SYS_link:
        return do_two_names(r, LINK, AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
    case SYS_linkat:
        if ((int)a[4] != 0)
            return DEFER; /* AT_SYMLINK_FOLLOW, AT_EMPTY_PATH */
        return do_two_names(r, LINK, (int)a[0], a[1], (int)a[2], a[3], 0);
    case SYS_fchmod:
        return fd_metadata(r, (int)a[0], CHMOD, a[1], 0);
    case SYS_fchown:
        return fd_metadata(r, (int)a[0], CHOWN, a[1], a[2]);
    case SYS_chmod:
        return at_metadata(r, AT_FDCWD, a[0], 0, CHMOD, a[1], 0, NULL);
    case SYS_fchmodat:
        return at_metadata(r, (int)a[0], a[1], 0, CHMOD, a[2], 0, NULL);
    case NR_FCHMODAT2:
        return at_metadata(r, (int)a[0], a[1], (int)a[3], CHMOD, a[2], 0, NULL);
    case SYS_chown:
        return at_metadata(r, AT_FDCWD, a[0], 0, CHOWN, a[1], a[2], NULL);
    case SYS_lchown:
        return at_metadata(r, AT_FDCWD, a[0], AT_SYMLINK_NOFOLLOW, CHOWN, a[1], a[2], NULL);
    case SYS_fchownat:
        return at_metadata(r, (int)a[0], a[1], (int)a[4], CHOWN, a[2], a[3], NULL);
    case SYS_utimensat:
        return do_utimensat(r);
    case SYS_kill: case SYS_tgkill: case SYS_rt_tgsigqueueinfo:
        return own_signal(r);
    default:
        return DEFER;
    }
}

/* -- the Python face -------------------------------------------------------- */

static int rules_from(PyObject *seq, Rule **out, int *count, int with_position) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    *out = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Rule));
    *count = 0;
    if (!*out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        PyObject *text = item;
        int position = 0, negated = 0;
        if (with_position && !PyArg_ParseTuple(item, "Oip", &text, &position, &negated)) {
            Py_DECREF(fast);
            return -1;
        }
        char *data;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(text, &data, &len) != 0) {
            Py_DECREF(fast);
            return -1;
        }
        Rule *rule = &(*out)[i];
        rule->text = PyMem_Malloc((size_t)len + 1);
        if (!rule->text) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(rule->text, data, (size_t)len + 1);
        rule->len = (size_t)len;
        rule->position = position;
        rule->negated = negated;
        (*count)++;
    }
    Py_DECREF(fast);
    return 0;
}

static void free_rules(Rule *rules, int count) {
    if (!rules)
        return;
    for (int i = 0; i < count; i++)
        PyMem_Free(rules[i].text);
    PyMem_Free(rules);
}

static int open_dirs(Engine *self) {
    if (self->fd_dir >= 0)
        close(self->fd_dir);
    if (self->proc_dir < 0)
        self->proc_dir = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    self->fd_dir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    self->owner = getpid();
    return self->proc_dir >= 0 && self->fd_dir >= 0 ? 0 : -1;
}

static void free_pol(Pol *p) {
    free_rules(p->roots, p->nroots);
    free_rules(p->protect, p->nprotect);
    free_rules(p->globs, p->nglobs);
    free_rules(p->devices, p->ndevices);
    memset(p, 0, sizeof *p);
}

/* Drop every policy and everything judged: the caller's policies changed. */
static void reset(Engine *self) {
    for (int i = 0; i < self->npols; i++)
        free_pol(&self->pols[i]);
    PyMem_Free(self->pols);
    self->pols = NULL;
    self->npols = 0;
    for (int i = 0; i < JUDGED_SLOTS; i++)
        forget_judged(&self->judged[i]);
}

static void Engine_dealloc(Engine *self) {
    if (self->proc_dir >= 0)
        close(self->proc_dir);
    if (self->fd_dir >= 0)
        close(self->fd_dir);
    reset(self);
    Py_XDECREF(self->judge);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Engine *self = (Engine *)PyType_GenericNew(type, args, kwargs);
    if (self)
        self->proc_dir = self->fd_dir = -1;
    return (PyObject *)self;
}

static char *policy_names[] = {"roots", "protect", "globs", "devices", "hardlinked_writes", NULL};

/* Append a policy; its slot, or -1 with an exception. */
static int add_policy(Engine *self, PyObject *args, PyObject *kwargs) {
    PyObject *roots, *protect, *globs, *devices;
    int hardlinked = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOp", policy_names, &roots, &protect, &globs, &devices,
                                     &hardlinked))
        return -1;
    Pol *grown = PyMem_Realloc(self->pols, sizeof(Pol) * (size_t)(self->npols + 1));
    if (!grown) {
        PyErr_NoMemory();
        return -1;
    }
    self->pols = grown;
    Pol *p = &self->pols[self->npols];
    memset(p, 0, sizeof *p);
    if (rules_from(roots, &p->roots, &p->nroots, 0) || rules_from(protect, &p->protect, &p->nprotect, 1) ||
        rules_from(globs, &p->globs, &p->nglobs, 1) || rules_from(devices, &p->devices, &p->ndevices, 0)) {
        free_pol(p);
        return -1;
    }
    p->hardlinked_writes = hardlinked;
    return self->npols++;
}

static int Engine_init(Engine *self, PyObject *args, PyObject *kwargs) {
    if (self->owner)
        return 0; /* initialised once */
    PyObject *judge = kwargs ? PyDict_GetItemString(kwargs, "judge") : NULL;
    if (judge != NULL && judge != Py_None) {
        if (PyTuple_GET_SIZE(args) || PyDict_Size(kwargs) != 1) {
            PyErr_SetString(PyExc_TypeError, "Engine(judge=...) takes no policy: add them with add_policy()");
            return -1;
        }
        Py_INCREF(judge);
        self->judge = judge;
    } else if (add_policy(self, args, kwargs) < 0) {
        return -1;
    }
    self->uid = geteuid();
    self->gid = getegid();
    self->root = self->uid == 0;
    int n = getgroups(MAX_GROUPS, self->groups);
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->ngroups = n;
    qsort(self->groups, (size_t)n, sizeof(gid_t), cmp_gid);
    if (get_caps(self->caps) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct stat st;
    if (stat("/proc", &st) != 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc");
        return -1;
    }
    self->proc_dev = st.st_dev;
    if (open_dirs(self) != 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc/self/fd");
        return -1;
    }
    return 0;
}

static PyObject *Engine_add_policy(Engine *self, PyObject *args, PyObject *kwargs) {
    int slot = add_policy(self, args, kwargs);
    return slot < 0 ? NULL : PyLong_FromLong(slot);
}

static PyObject *Engine_reset(Engine *self, PyObject *unused) {
    (void)unused;
    reset(self);
    Py_RETURN_NONE;
}

static PyObject *Engine_forget(Engine *self, PyObject *arg) {
    long tgid = PyLong_AsLong(arg);
    if (tgid == -1 && PyErr_Occurred())
        return NULL;
    for (int i = 0; i < JUDGED_SLOTS; i++)
        if (self->judged[i].tid && self->judged[i].tgid == (pid_t)tgid)
            forget_judged(&self->judged[i]);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(serve_doc,
             "serve(listener_fd, block=True) -> None | bytes\n\n"
             "Answer requests as they come, until one needs the Python supervisor: return that\n"
             "raw notification (nothing was done for it). None when the listener hung up (no\n"
             "process is left), a signal is to be handled, a request vanished, or (block=False)\n"
             "no request is waiting.");

static PyObject *Engine_serve(Engine *self, PyObject *args) {
    int listener, block = 1;
    if (!PyArg_ParseTuple(args, "i|p", &listener, &block))
        return NULL;
    if (self->owner != getpid() && open_dirs(self) != 0)  /* used after a fork */
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc/self/fd");
    Req *r = PyMem_Malloc(sizeof(Req));
    if (!r)
        return PyErr_NoMemory();
    int rc = DONE, err = 0;
    unsigned long long handled = 0;
    PyThreadState *tstate = PyEval_SaveThread();
    for (int first = 1;; first = 0) {
        struct pollfd ready = {listener, POLLIN, 0};
        /* The caller polled for the first request; after it, wait for more
         * only when this listener is all the caller serves. */
        int n = poll(&ready, 1, first ? 0 : (block ? -1 : 0));
        if (n < 0) {
            err = errno == EINTR ? 0 : errno;
            break;
        }
        if (n == 0 || !(ready.revents & POLLIN))
            break; /* nothing now, or POLLHUP: the caller's poll sees it too */
        memset(r, 0, sizeof *r);
        r->engine = self;
        r->listener = listener;
        r->tstate = &tstate;
        if (ioctl(r->listener, IOCTL_RECV, &r->n) != 0) {
            if (errno != ENOENT && errno != EAGAIN)
                err = errno == EINTR ? 0 : errno;
            break;
        }
        rc = dispatch(r);
        become_self(r);
        release(r);
        if (rc == DEFER)
            break;
        handled++;
    }
    PyEval_RestoreThread(tstate);
    self->handled += handled;
    PyObject *out;
    if (err) {
        errno = err;
        out = PyErr_SetFromErrno(PyExc_OSError);
    } else if (rc == DEFER) {
        self->deferred++;
        out = PyBytes_FromStringAndSize((const char *)&r->n, sizeof r->n);
    } else {
        out = Py_None;
        Py_INCREF(out);
    }
    PyMem_Free(r);
    return out;
}

static PyObject *Engine_allowed(Engine *self, PyObject *args) {
    char *path;
    Py_ssize_t len;
    int slot = 0;
    if (!PyArg_ParseTuple(args, "y#|i", &path, &len, &slot))
        return NULL;
    if (slot < 0 || slot >= self->npols) {
        PyErr_SetString(PyExc_IndexError, "no such policy slot");
        return NULL;
    }
    return PyBool_FromLong(allowed(&self->pols[slot], path, (size_t)len));
}

static PyObject *Engine_counts(Engine *self, PyObject *unused) {
    (void)unused;
    return Py_BuildValue("KK", self->handled, self->deferred);
}

static PyMethodDef Engine_methods[] = {
    {"serve", (PyCFunction)Engine_serve, METH_VARARGS, serve_doc},
    {"allowed", (PyCFunction)Engine_allowed, METH_VARARGS,
     "allowed(location, slot=0) -> bool: True when this engine answers a write there itself"},
    {"add_policy", (PyCFunction)(void (*)(void))Engine_add_policy, METH_VARARGS | METH_KEYWORDS,
     "add_policy(roots, protect, globs, devices, hardlinked_writes) -> slot"},
    {"reset", (PyCFunction)Engine_reset, METH_NOARGS, "reset(): drop every policy and everything judged"},
    {"forget", (PyCFunction)Engine_forget, METH_O, "forget(tgid): judge that process again at its next request"},
    {"counts", (PyCFunction)Engine_counts, METH_NOARGS, "counts() -> (handled, deferred)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "peninsula._fastpath.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Engine(roots, protect, globs, devices, hardlinked_writes): the compiled hot path for one policy;\n"
               "Engine(judge=f): for several, added with add_policy(); f(tid) -> (slot, tgid), slot -1 for an\n"
               "unconfined process, -2 for one Python must handle",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "peninsula.supervisor._fastpath",
    .m_doc = "The supervisor's compiled hot path (see peninsula/fastpath.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
