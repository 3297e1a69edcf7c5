/* peninsula.supervisor._fastpath: what the files of the compiled hot path
 * share (see module.c). */
#ifndef PENINSULA_FASTPATH_COMMON_H
#define PENINSULA_FASTPATH_COMMON_H

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
#define RESOLVE_NO_SYMLINKS 0x04
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

/* An open /proc/TID/status per thread (read_status): the fd is bound to
 * that thread's struct pid, not to its number, so a reused tid never reads
 * another thread's status through it (a dead thread's read fails ESRCH),
 * and each pread from offset 0 has the kernel generate the text afresh. */
typedef struct {
    pid_t tid;
    int fd;
} StatusFd;

#define STATUS_SLOTS 64
#define UNCONFINED (-1)
#define ASK_PYTHON (-2)

/* A compiled handler: DONE when it answered the request, DEFER when the
 * request is Python's (nothing was done for it). */
struct Req;
typedef int (*handler_fn)(struct Req *r);
#define MAX_NR 512 /* above every x86_64 syscall number */

typedef struct {
    PyObject_HEAD
    Pol *pols;
    int npols;
    PyObject *judge;  /* None for one fixed policy (run); else judge(tid) -> (slot, tgid) */
    Judged judged[JUDGED_SLOTS];
    StatusFd status[STATUS_SLOTS];
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
    handler_fn by_nr[MAX_NR]; /* what it may answer, as the syscall table says (supervisor/table.py) */
    unsigned char before_judging[MAX_NR]; /* by_nr[nr] answers any caller (module.c's table) */
} Engine;

typedef struct Req {
    Engine *engine;
    const Pol *pol;
    PyThreadState **tstate;  /* to call the judge with the GIL */
    int listener;
    struct notif n;
    int fds[MAX_FDS];
    int nfds;
    struct stat stats[MAX_FDS]; /* fstat of fds[i], taken once (held_stat) */
    unsigned statted;           /* bit i: stats[i] is taken */
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

typedef struct {
    int parent;
    const char *name;
    char where[PATH_MAX + NAME_MAX + 2];
    size_t len;
} Entry;

#define PIN_MISSING (-2)
#define FLAG_CONTINUE 1u /* SECCOMP_USER_NOTIF_FLAG_CONTINUE */

/* Everything below is the extension's own (only PyInit__fastpath is
 * exported): no other library's symbol of the same name can be bound to it. */
#pragma GCC visibility push(hidden)

/* request.c */
int keep(Req *r, int fd);
void release(Req *r);
int openat2_(int dirfd, const char *path, uint64_t flags);
int valid(Req *r);
void send_(Req *r, int64_t val, int err, uint32_t flags);
void reply_fd(Req *r, int fd, int cloexec);
int allowed(const Pol *e, const char *path, size_t len);
int protected_beneath(const Pol *e, const char *path, size_t len);
int held_stat(Req *r, int fd, struct stat *out);
int location(Req *r, int fd, char *out, size_t size, size_t *len);
void forget_status(Engine *e);
int read_path(Req *r, uint64_t addr, char *out);
int read_memory(Req *r, uint64_t addr, void *out, size_t size);
int cmp_gid(const void *a, const void *b);
int read_status(Req *r);
int get_caps(uint64_t out[3]);
int become_target(Req *r);
void become_self(Req *r);
int room_for_fd(Req *r);
int pin(Req *r, int dirfd, const char *path, int follow);
int entry(Req *r, int dirfd, char *path, size_t len, Entry *out);
int fd_object(Req *r, int fd);
int check_object(Req *r, int fd, int *is_dir);
int privileged(mode_t mode, int is_dir);
int answer(Req *r, int rc);
int answer_errno(Req *r, int err);
void forget_judged(Judged *j);
int choose_policy(Req *r);
int continue_(Req *r);

/* The handlers, one per syscall, named in module.c's table. */
int h_open(Req *r);       /* open.c */
int h_openat(Req *r);
int h_creat(Req *r);
int h_mkdir(Req *r);      /* names.c */
int h_mkdirat(Req *r);
int h_unlink(Req *r);
int h_rmdir(Req *r);
int h_unlinkat(Req *r);
int h_rename(Req *r);
int h_renameat(Req *r);
int h_renameat2(Req *r);
int h_link(Req *r);
int h_linkat(Req *r);
int h_fchmod(Req *r);     /* metadata.c */
int h_fchown(Req *r);
int h_chmod(Req *r);
int h_fchmodat(Req *r);
int h_fchmodat2(Req *r);
int h_chown(Req *r);
int h_lchown(Req *r);
int h_fchownat(Req *r);
int h_utimensat(Req *r);
int h_kill(Req *r);
int h_exit_group(Req *r);       /* lineage.c */
int h_tgkill(Req *r);
int h_rt_tgsigqueueinfo(Req *r);

#pragma GCC visibility pop

#endif
