/* What every compiled handler stands on (handlers/request.py, kernel/resolve.py):
 * the request's fds, answering it, the policy test, reading the target's
 * memory and status, acting as the target, pinning paths, and choosing the
 * policy a request is judged by. */
#include "common.h"

/* -- small tools ------------------------------------------------------------ */

int keep(Req *r, int fd) {
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

void release(Req *r) {
    for (int i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    r->nfds = 0;
    r->statted = 0;
}

/* fstat of an fd the request holds, taken once: its device, inode and type
 * cannot change (it is our O_PATH fd on one object), and its link count is
 * as fresh as when a check used to fstat it again a few microseconds later. */
int held_stat(Req *r, int fd, struct stat *out) {
    for (int i = 0; i < r->nfds; i++) {
        if (r->fds[i] != fd)
            continue;
        if (!(r->statted & (1u << i))) {
            if (fstat(fd, &r->stats[i]) != 0)
                return -1;
            r->statted |= 1u << i;
        }
        *out = r->stats[i];
        return 0;
    }
    return fstat(fd, out);
}

int openat2_(int dirfd, const char *path, uint64_t flags) {
    struct how how = {flags, 0, RESOLVE_NO_MAGICLINKS};
    return (int)syscall(NR_OPENAT2, dirfd, path, &how, sizeof how);
}

int valid(Req *r) {
    uint64_t id = r->n.id;
    return ioctl(r->listener, IOCTL_ID_VALID, &id) == 0;
}

void send_(Req *r, int64_t val, int err, uint32_t flags) {
    struct resp resp = {r->n.id, val, err ? -err : 0, flags};
    while (ioctl(r->listener, IOCTL_SEND, &resp) != 0 && errno == EINTR)
        ;
    /* ENOENT: the target died or was interrupted; nothing to answer. */
}

/* ADDFD, then SEND with the new number (see seccomp.Listener.reply_fd for
 * why it is two steps). */
void reply_fd(Req *r, int fd, int cloexec) {
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
int allowed(const Pol *e, const char *path, size_t len) {
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
int protected_beneath(const Pol *e, const char *path, size_t len) {
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
int location(Req *r, int fd, char *out, size_t size, size_t *len) {
    Engine *e = r->engine;
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
    if (out[0] == '/' && (fstatat(AT_FDCWD, out, &named, AT_SYMLINK_NOFOLLOW) != 0 || held_stat(r, fd, &held) != 0 ||
                          named.st_dev != held.st_dev || named.st_ino != held.st_ino))
        return -1;
    return 0;
}

/* The target's path argument: read up to each page end, as target.read_cstring. */
int read_path(Req *r, uint64_t addr, char *out) {
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

int read_memory(Req *r, uint64_t addr, void *out, size_t size) {
    struct iovec local = {out, size}, remote = {(void *)(uintptr_t)addr, size};
    return addr && process_vm_readv((pid_t)r->n.pid, &local, 1, &remote, 1, 0) == (ssize_t)size ? 0 : -1;
}

int cmp_gid(const void *a, const void *b) {
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return x < y ? -1 : x > y;
}

void forget_status(Engine *e) {
    for (int i = 0; i < STATUS_SLOTS; i++)
        if (e->status[i].tid) {
            close(e->status[i].fd);
            e->status[i].tid = 0;
        }
}

/* The text of the request's /proc/TID/status, through the fd kept for that
 * thread (StatusFd); a thread seen for the first time, or whose kept fd no
 * longer reads (it died and the tid is another thread's now), costs an open. */
static ssize_t status_text(Req *r, char *text, size_t size) {
    StatusFd *s = &r->engine->status[r->n.pid % STATUS_SLOTS];
    if (s->tid == (pid_t)r->n.pid) {
        ssize_t n = pread(s->fd, text, size, 0);
        if (n > 0)
            return n;
        close(s->fd);
        s->tid = 0;
    }
    char name[64];
    snprintf(name, sizeof name, "%u/status", r->n.pid);
    int fd = openat(r->engine->proc_dir, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, size);
    if (n <= 0) {
        close(fd);
        return -1;
    }
    if (s->tid)
        close(s->fd);
    s->tid = (pid_t)r->n.pid;
    s->fd = fd;
    return n;
}

/* The lines of /proc/TID/status a decision needs (target.Status). */
int read_status(Req *r) {
    if (r->have_status)
        return 0;
    char text[8192];
    ssize_t n = status_text(r, text, sizeof text - 1);
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

int get_caps(uint64_t out[3]) {
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

/* Act as the target for everything done for the request (request._Identity).
 * A supervisor that is not root serves only targets of its own ids. */
/* Its identity and capabilities are read from /proc/TID/status for every
 * request (through a kept fd, but the text is the kernel's of now): nothing
 * a thread does to them (set*id, capset, an execve by a non-leader thread,
 * which takes over the leader's tid) goes unseen. */
int become_target(Req *r) {
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

void become_self(Req *r) {
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

/* 0 when the target can take one more fd (opens._room_for_fd); -1 when
 * its table may be full and Python must look closer. */
int room_for_fd(Req *r) {
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
    return held_stat(r, fd, &st) != 0 || st.st_dev == r->engine->proc_dev;
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
int pin(Req *r, int dirfd, const char *path, int follow) {
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

/* 1 when head names no directory by a walk that crosses no symlink: then
 * the target's own walk, which is ours (same directories, and its identity
 * since become_target), fails ENOENT there too, before any permission or
 * Landlock check on the entry. A symlink may mean another thing to the
 * target (its /proc/self, /dev/fd/N): Python follows those (resolve._pin_slow). */
static int no_such_directory(int base, const char *head) {
    struct how how = {O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS};
    int fd = (int)syscall(NR_OPENAT2, base, head, &how, sizeof how);
    if (fd >= 0) {
        close(fd); /* it appeared since: Python resolves it again */
        return 0;
    }
    return errno == ENOENT;
}

/* 1 unless the directory where that walk stopped (the deepest existing
 * prefix of head, found without symlinks as no_such_directory walked) is
 * known to lie outside procfs: there the kernel's checks (ptrace access
 * to the process, our own /proc/PID) are not the target's, and Python
 * answers (resolve.Context._gate), wherever the path's text said it goes. */
static int stops_on_proc(Req *r, int base, const char *head) {
    char prefix[PATH_MAX];
    size_t n = strlen(head);
    if (n >= sizeof prefix)
        return 1;
    memcpy(prefix, head, n + 1);
    for (;;) {
        char *slash = strrchr(prefix, '/');
        if (slash == NULL)
            strcpy(prefix, ".");
        else if (slash == prefix)
            prefix[1] = 0;
        else
            *slash = 0;
        struct how how = {O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS};
        int fd = (int)syscall(NR_OPENAT2, base, prefix, &how, sizeof how);
        if (fd >= 0) {
            struct stat st;
            int proc = fstat(fd, &st) != 0 || st.st_dev == r->engine->proc_dev;
            close(fd);
            return proc;
        }
        if (errno != ENOENT || strcmp(prefix, ".") == 0 || strcmp(prefix, "/") == 0)
            return 1;
    }
}

/* The pinned parent of path's last component, the name, and the entry's
 * location (resolve.entry); PIN_MISSING when that parent does not exist
 * (the kernel's ENOENT), -1 when Python must resolve it. */
int entry(Req *r, int dirfd, char *path, size_t len, Entry *out) {
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
    int missing = parent < 0 && errno == ENOENT && no_such_directory(base, head) && !stops_on_proc(r, base, head);
    if (cut)
        *slash = '/';
    if (missing)
        return PIN_MISSING;
    if (keep(r, parent) < 0 || on_proc(r, parent))
        return -1;
    size_t loc;
    if (location(r, parent, out->where, PATH_MAX, &loc) != 0 || out->where[0] != '/')
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
int fd_object(Req *r, int fd) {
    if (fd < 0)
        return -1;
    int obj = anchor(r, fd);
    if (obj < 0 || on_proc(r, obj))
        return -1;
    return obj;
}

/* request.Request.check_fd for a file, directory or symlink: 0 when allowed
 * here, -1 when Python decides. is_dir is set for chmod's set-id rule. */
int check_object(Req *r, int fd, int *is_dir) {
    struct stat st;
    char where[PATH_MAX];
    size_t len;
    if (held_stat(r, fd, &st) != 0)
        return -1;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return -1;
    if (S_ISREG(st.st_mode) && st.st_nlink > 1 && !r->pol->hardlinked_writes)
        return -1;
    if (location(r, fd, where, sizeof where, &len) != 0 || !allowed(r->pol, where, len))
        return -1;
    if (is_dir)
        *is_dir = S_ISDIR(st.st_mode);
    return 0;
}

/* -- what the handlers share ------------------------------------------------ */

int privileged(mode_t mode, int is_dir) {
    return !is_dir && ((mode & S_ISUID) || ((mode & S_ISGID) && (mode & S_IXGRP)));
}

int answer(Req *r, int rc) {
    send_(r, 0, rc < 0 ? errno : 0, 0);
    return DONE;
}

int answer_errno(Req *r, int err) {
    send_(r, 0, err, 0);
    return DONE;
}

void forget_judged(Judged *j) {
    if (j->tid) {
        close(j->pidfd);
        j->tid = 0;
    }
}

/* Which policy the request's process is under: the one policy of a run, or
 * what the judge (the shell supervisor's timeline) says, remembered for the
 * thread's life. 0 with r->pol set; UNCONFINED; ASK_PYTHON. */
int choose_policy(Req *r) {
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

int continue_(Req *r) {
    send_(r, 0, 0, FLAG_CONTINUE);
    return DONE;
}
