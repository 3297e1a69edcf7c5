/* Hostile input for the supervisor: every trapped syscall with random and
 * adversarial arguments (NULL, unmapped and unterminated pointers, PATH_MAX+1,
 * embedded NUL, non-UTF-8, /proc magic links, deep ".." chains, symlink
 * loops, huge flags and modes, bad fds). Paths only ever name things in the
 * project or the outside directory, however they get there, so a sandbox
 * bug shows up as a change outside, never as damage elsewhere.
 *
 * usage: fuzz PROJ OUTSIDE SEED ITERATIONS FOREIGN_PID confined|control
 * prints "T name result" for the fixed table, then one summary line
 * "SUMMARY {json}" and "FINAL ok|errno".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPATHS 512
#define NSYS 48

static uint64_t rng;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static uint64_t pick(uint64_t n) { return next() % n; }

static const char *proj, *outside;
static char *paths[NPATHS];
static int npaths;
static uintptr_t badptr[8];
static int nbad;
static int fds[16], nfds, pidfds[4];
static pid_t pids[8];
static int npids;
static char *bufs[8];
static int nbufs;

static void addpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void addpath(const char *fmt, ...) {
    if (npaths >= NPATHS) return;
    char *p = malloc(8192);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, 8192, fmt, ap);
    va_end(ap);
    paths[npaths++] = p;
}

static const char *leaves[] = {"x", "f1", "d1", "d1/", "new", "d1/f2", "loop1", "loop1/x", "self", "toout",
                               "toout/x", "toout/f1", "toout_f", "dangling_out", "rel_out", "d1/../f1", ".", "..",
                               "\xff\xfe-odd", "f1/", "toproc", "toproc/x"};
#define NLEAVES (sizeof leaves / sizeof *leaves)

static void make_fixture(void) {
    char p[8192], q[8192];
    struct stat st;
    chmod(proj, 0755);
    /* d1 and f1 may have become symlinks (to ".", say): chmod would follow */
    snprintf(p, sizeof p, "%s/d1", proj);
    if (lstat(p, &st) == 0 && !S_ISDIR(st.st_mode)) unlink(p);
    mkdir(p, 0755); chmod(p, 0755);
    snprintf(p, sizeof p, "%s/f1", proj);
    if (lstat(p, &st) == 0 && !S_ISREG(st.st_mode)) { unlink(p); rmdir(p); }
    close(open(p, O_CREAT | O_WRONLY, 0644)); chmod(p, 0644);
    snprintf(p, sizeof p, "%s/loop1", proj); unlink(p); symlink("loop2", p);
    snprintf(p, sizeof p, "%s/loop2", proj); unlink(p); symlink("loop1", p);
    snprintf(p, sizeof p, "%s/self", proj); unlink(p); symlink("self", p);
    snprintf(p, sizeof p, "%s/toout", proj); unlink(p); symlink(outside, p);
    snprintf(p, sizeof p, "%s/toout_f", proj); snprintf(q, sizeof q, "%s/f1", outside); unlink(p); symlink(q, p);
    snprintf(p, sizeof p, "%s/dangling_out", proj); snprintf(q, sizeof q, "%s/newfile", outside); unlink(p); symlink(q, p);
    snprintf(p, sizeof p, "%s/rel_out", proj); unlink(p); symlink("../outside/g", p);
    snprintf(p, sizeof p, "%s/toproc", proj); snprintf(q, sizeof q, "/proc/self/fd/%d", fds[1]); unlink(p); symlink(q, p);
}

static long fuzz_int(void) {
    switch (pick(8)) {
    case 0: return 0;
    case 1: return -1;
    case 2: return (long)next();
    case 3: return (int)next();
    case 4: return 0x7fffffff;
    case 5: return pick(16);
    case 6: return 1L << pick(64);
    default: return (long)(next() & 0xffff);
    }
}

static long fuzz_flags(void) {
    static const long common[] = {O_CREAT | O_WRONLY, O_CREAT | O_RDWR | O_TRUNC, O_WRONLY, O_RDWR, O_TRUNC,
                                  O_CREAT | O_EXCL | O_WRONLY, O_TMPFILE | O_RDWR, O_PATH | O_WRONLY,
                                  O_DIRECTORY | O_CREAT, O_NOFOLLOW | O_WRONLY, O_CREAT, O_APPEND | O_WRONLY,
                                  O_CREAT | O_RDONLY, O_WRONLY | O_NOCTTY | O_CLOEXEC, -1, 0x7fffffff};
    long f = pick(3) ? common[pick(sizeof common / sizeof *common)] : fuzz_int();
    if (pick(3) == 0) f |= next() & 0xffffffffL;
    f |= O_NONBLOCK;   /* never wait on a FIFO or device (a hang of our own) */
    return f;
}

static long fuzz_mode(void) {
    long m = pick(4) ? (long)(next() & 07777) : fuzz_int();
    return m;
}

static long fuzz_mknod_mode(void) {
    long m = fuzz_mode() & 0xffffffffL;
    long type = m & S_IFMT;
    if (type == S_IFIFO || type == S_IFBLK) m = (m & ~(long)S_IFMT) | S_IFREG;  /* no FIFOs, no disks */
    return m;
}

static long fuzz_dev(void) {
    static const long devs[] = {0, 0x103 /* 1:3 null */, 0x105 /* 1:5 zero */};
    return devs[pick(3)];
}

static long fuzz_fd(void) {
    switch (pick(10)) {
    case 0: return -1;
    case 1: return 9999;
    case 2: return AT_FDCWD;
    case 3: return 0x7fffffff;
    case 4: return (1L << 32) + fds[pick(nfds)];   /* high bits: the kernel sees an int */
    case 5: return fuzz_int();
    default: return fds[pick(nfds)];
    }
}

static uintptr_t fuzz_path(void) {
    if (pick(8) == 0) return badptr[pick(nbad)];
    return (uintptr_t)paths[pick(npaths)];
}

static uintptr_t fuzz_buf(void) {
    if (pick(4) == 0) return badptr[pick(nbad)];
    return (uintptr_t)bufs[pick(nbufs)];
}

static long fuzz_size(void) {
    static const long sizes[] = {0, 1, 8, 16, 24, 32, 64, 4096, 4097, 65536, 65537};
    return pick(4) ? sizes[pick(sizeof sizes / sizeof *sizes)] : fuzz_int();
}

/* Only our own processes, the supervisor (when confined), one sacrificial
 * process of the test outside the sandbox, and pids nobody has: a random
 * small pid could be init or a test runner, and an unconfined control run
 * (or a sandbox bug) must never stop them. */
static long fuzz_pid(void) {
    static const long none[] = {0, -1, 0x3fffffff, -0x7fffffff};
    return pick(6) ? pids[pick(npids)] : none[pick(4)];
}

static long fuzz_atflags(void) {
    static const long f[] = {0, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, AT_SYMLINK_FOLLOW, AT_REMOVEDIR,
                             AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW};
    return pick(4) ? f[pick(6)] : fuzz_int();
}

static uintptr_t fuzz_xname(void) {
    static const char *names[] = {"user.a", "user.b", "trusted.t", "security.s", "system.posix_acl_access", "", "bogus",
                                  "user.\xff"};
    if (pick(6) == 0) return badptr[pick(nbad)];
    return (uintptr_t)names[pick(sizeof names / sizeof *names)];
}

/* name, number, argument kinds:
 * p path, d dirfd, f fd, F open flags, m mode, M mknod mode, D dev, a AT flags,
 * b buffer, s size, u id, x xattr name, P pid, r ptrace request, i int, L length */
static const struct { const char *name; long nr; const char *args; } SYS[] = {
    {"open", 2, "pFm"}, {"openat", 257, "dpFm"}, {"openat2", 437, "dpbs"}, {"creat", 85, "pm"},
    {"open_by_handle_at", 304, "dbF"},
    {"mkdir", 83, "pm"}, {"mkdirat", 258, "dpm"}, {"mknod", 133, "pMD"}, {"mknodat", 259, "dpMD"},
    {"unlink", 87, "p"}, {"unlinkat", 263, "dpa"}, {"rmdir", 84, "p"},
    {"rename", 82, "pp"}, {"renameat", 264, "dpdp"}, {"renameat2", 316, "dpdpi"},
    {"link", 86, "pp"}, {"linkat", 265, "dpdpa"}, {"symlink", 88, "pp"}, {"symlinkat", 266, "pdp"},
    {"truncate", 76, "pL"},
    {"chmod", 90, "pm"}, {"fchmodat", 268, "dpm"}, {"fchmodat2", 452, "dpma"},
    {"chown", 92, "puu"}, {"lchown", 94, "puu"}, {"fchownat", 260, "dpuua"},
    {"utime", 132, "pb"}, {"utimes", 235, "pb"}, {"utimensat", 280, "dpba"}, {"futimesat", 261, "dpb"},
    {"setxattr", 188, "pxbsi"}, {"lsetxattr", 189, "pxbsi"}, {"removexattr", 197, "px"}, {"lremovexattr", 198, "px"},
    {"setxattrat", 463, "dpaxbs"}, {"removexattrat", 466, "dpax"}, {"file_setattr", 469, "dpbsa"},
    {"fchmod", 91, "fm"}, {"fchown", 93, "fuu"}, {"fsetxattr", 190, "fxbsi"}, {"fremovexattr", 199, "fx"},
    {"ptrace", 101, "rPbb"}, {"process_vm_writev", 311, "PbibiI"}, {"pidfd_getfd", 438, "gfi"},
};
#define NSYSCALLS (sizeof SYS / sizeof *SYS)

static long counts[NSYSCALLS][2];   /* [ok, failed] */
static long errcount[NSYSCALLS][134];
static long anomalies, supervisor_touched;

static long arg_of(char kind, int index, long *args) {
    switch (kind) {
    case 'p': return (long)fuzz_path();
    case 'd': return fuzz_fd();
    case 'f': return fuzz_fd();
    case 'g': return pick(5) ? pidfds[pick(4)] : fuzz_int();
    case 'F': return fuzz_flags();
    case 'm': return fuzz_mode();
    case 'M': return fuzz_mknod_mode();
    case 'D': return fuzz_dev();
    case 'a': return fuzz_atflags();
    case 'b': return (long)fuzz_buf();
    case 's': return fuzz_size();
    case 'u': { static const long ids[] = {0, 1001, -1, 65534}; return pick(5) ? ids[pick(4)] : fuzz_int(); }
    case 'x': return (long)fuzz_xname();
    case 'P': return fuzz_pid();
    case 'r': { static const long r[] = {16 /*ATTACH*/, 0x4206 /*SEIZE*/, 2 /*PEEKDATA*/, 5 /*POKEDATA*/, 17 /*DETACH*/, 0x4207};
                return pick(5) ? r[pick(6)] : fuzz_int() | 1; /* never TRACEME (0) */ }
    case 'L': return pick(3) ? (long)pick(100000) : fuzz_int();
    case 'I': return 0;
    default: return fuzz_int();
    }
    (void)index; (void)args;
}

int main(int argc, char **argv) {
    proj = argv[1];
    outside = argv[2];
    rng = strtoull(argv[3], NULL, 0) | 1;
    long iterations = atol(argv[4]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (chdir(proj)) { perror("chdir"); return 2; }
    /* fd 0 may be /dev/null, and random fds hit 0: make it a project file */
    chmod(proj, 0755);           /* an earlier run may have left it (or the file) unusable */
    unlink("stdin-file");
    int zero = open("stdin-file", O_RDONLY | O_CREAT, 0644);
    if (zero < 0 || dup2(zero, 0) != 0) { perror("stdin"); return 2; }
    close(zero);

    /* fds */
    fds[nfds++] = open(proj, O_RDONLY | O_DIRECTORY);
    fds[nfds++] = open(outside, O_RDONLY | O_DIRECTORY);
    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s/f1", outside);
    fds[nfds++] = open(tmp, O_RDONLY);                 /* a file outside, opened for reading */
    fds[nfds++] = open(outside, O_PATH);
    snprintf(tmp, sizeof tmp, "%s/keep", proj);
    fds[nfds++] = open(tmp, O_RDWR | O_CREAT, 0644);
    int pfd[2];
    if (pipe(pfd)) return 2;
    fds[nfds++] = pfd[0];
    fds[nfds++] = pfd[1];

    /* pids: the supervisor (our parent), init, ourselves, a child of ours */
    pid_t child = fork();
    if (child == 0) { for (;;) pause(); }
    pid_t foreign = atoi(argv[5]);
    int confined = !strcmp(argv[6], "confined");
    pid_t sup = confined ? getppid() : foreign;   /* unconfined, our parent is the test runner: hands off */
    pids[npids++] = sup;
    pids[npids++] = foreign;
    pids[npids++] = getpid();
    pids[npids++] = child;
    int pidfd_sup = syscall(SYS_pidfd_open, sup, 0);
    int pidfd_child = syscall(SYS_pidfd_open, child, 0);
    /* pidfds only for pidfd_getfd: a chmod through one would reach the
     * anon inode every such fd shares, outside any directory tree */
    pidfds[0] = pidfd_sup;
    pidfds[1] = pidfd_child;
    pidfds[2] = fds[0];
    pidfds[3] = -1;

    /* bad pointers */
    badptr[nbad++] = 0;
    char *gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, 4096);
    badptr[nbad++] = (uintptr_t)gone;
    char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(two + 4096, 4096);
    memset(two, 'a', 4096);
    snprintf(two, 4096, "%s/", proj);
    two[strlen(two)] = 'a';                            /* a path with no NUL before the hole */
    badptr[nbad++] = (uintptr_t)(two + 4096 - 16);     /* "aaaa..." running into it */
    badptr[nbad++] = (uintptr_t)two;                   /* "/proj/aaaa..." 4096 bytes, no NUL */
    badptr[nbad++] = 1;
    badptr[nbad++] = (uintptr_t)0xffff800000000000ULL; /* kernel space */
    badptr[nbad++] = (uintptr_t)-1;

    /* buffers: random bytes, valid times, an open_how, xattr_args, iovecs */
    for (int i = 0; i < 3; i++) {
        bufs[nbufs] = malloc(70000);
        for (int j = 0; j < 70000; j++) bufs[nbufs][j] = (char)next();
        nbufs++;
    }
    struct timespec *ts = calloc(4, sizeof *ts);
    ts[0].tv_sec = 1; ts[1].tv_nsec = UTIME_OMIT; ts[2].tv_nsec = UTIME_NOW;
    bufs[nbufs++] = (char *)ts;
    uint64_t *how = calloc(8, 8);
    how[0] = O_CREAT | O_WRONLY | O_NONBLOCK; how[1] = 0644; how[2] = 0;
    bufs[nbufs++] = (char *)how;
    uint64_t *how2 = calloc(8, 8);
    how2[0] = O_WRONLY | O_NONBLOCK; how2[1] = 0; how2[2] = 0x10 /* IN_ROOT */;
    bufs[nbufs++] = (char *)how2;
    static char local[64];
    static struct iovec iov[2];   /* set again before each use: PTRACE_PEEKDATA may write into a buffer */
    uint64_t *xargs = calloc(4, 8);
    xargs[0] = (uint64_t)(uintptr_t)"v"; xargs[1] = 1;
    bufs[nbufs++] = (char *)xargs;

    /* paths: every way we know to name the project and the outside dir */
    char deep_in[8192] = "", deep_out[8192] = "";
    for (int i = 0; i < 300; i++) strcat(deep_in, "d1/../");
    for (int i = 0; i < 60; i++) strcat(deep_out, "../");
    char longname[8192];
    memset(longname, 'L', 4097);
    longname[4097] = 0;
    for (unsigned i = 0; i < NLEAVES; i++) {
        const char *l = leaves[i];
        addpath("%s/%s", proj, l);
        addpath("%s/%s", outside, l);
        if (pick(2)) addpath("%s", l);
        if (pick(2)) addpath("../outside/%s", l);
        if (pick(2)) addpath("/proc/self/cwd/%s", l);
        if (pick(2)) addpath("/proc/self/cwd/../outside/%s", l);
        if (pick(2)) addpath("/proc/self/root%s/%s", outside, l);
        if (pick(2)) addpath("/proc/1/root%s/%s", outside, l);
        if (pick(2)) addpath("/proc/thread-self/root%s/%s", proj, l);
        if (pick(2)) addpath("/proc/self/fd/%d/%s", fds[0], l);
        if (pick(2)) addpath("/proc/self/fd/%d/%s", fds[1], l);
        if (pick(2)) addpath("/dev/fd/%d/%s", fds[1], l);
        if (pick(3) == 0) addpath("%s%s", deep_in, l);
        if (pick(3) == 0) addpath("%s%s/%s", deep_out, outside, l);
        if (pick(3) == 0) addpath("%s/%s", proj, deep_in);
    }
    addpath("/proc/self/fd/%d", fds[2]);   /* the outside file, by magic link */
    addpath("/proc/self/fd/%d", fds[3]);
    addpath("/proc/self/fd/%d", fds[1]);
    addpath("/proc/self/fd/%d", fds[4]);
    addpath("/proc/%d/fd/%d", getpid(), fds[2]);
    addpath("/dev/fd/%d", fds[2]);
    addpath("%s", "");
    addpath("%s/%s", proj, longname);                   /* PATH_MAX+1 */
    addpath("%s/", outside);
    addpath("%s", outside);
    addpath("%s", proj);
    {
        char *emb = malloc(8192);
        int n = snprintf(emb, 8192, "%s/emb", proj);
        snprintf(emb + n + 1, 8192 - n - 1, "/../../outside/x");   /* embedded NUL */
        if (npaths < NPATHS) paths[npaths++] = emb;
    }

    make_fixture();

    long t0 = 0;
    for (long it = 0; it < iterations; it++) {
        if (it % 100 == 0) make_fixture();
        int s = pick(NSYSCALLS);
        long args[6] = {0};
        for (int a = 0; SYS[s].args[a]; a++) args[a] = arg_of(SYS[s].args[a], a, args);
        if (SYS[s].nr == 311) {   /* process_vm_writev: real iovecs, remote unmapped */
            iov[0].iov_base = local; iov[0].iov_len = 8;             /* local side */
            iov[1].iov_base = (void *)0x10000; iov[1].iov_len = 8;   /* remote: unmapped, EFAULT once allowed */
            args[1] = (long)&iov[0]; args[2] = 1; args[3] = (long)&iov[1]; args[4] = 1; args[5] = 0;
            if (pick(4) == 0) args[2] = fuzz_int();
        }
        errno = 0;
        long r = syscall(SYS[s].nr, args[0], args[1], args[2], args[3], args[4], args[5]);
        int e = errno;
        if (r >= 0) {
            counts[s][0]++;
            if (SYS[s].nr == 2 || SYS[s].nr == 257 || SYS[s].nr == 437 || SYS[s].nr == 85 || SYS[s].nr == 304 ||
                SYS[s].nr == 438) {
                if (r > 2 && r < 1024) { int keep = 0; for (int k = 0; k < nfds; k++) if (fds[k] == r) keep = 1; if (!keep) close(r); }
            }
            if (SYS[s].nr == 311 && (args[0] == sup || args[0] == foreign)) supervisor_touched++;
            if (SYS[s].nr == 101 && (args[1] == sup || args[1] == foreign)) supervisor_touched++;
            if (SYS[s].nr == 438 && args[0] == pidfd_sup) supervisor_touched++;
            if (SYS[s].nr == 101 && args[1] != child && (args[0] == 16 || args[0] == 0x4206)) {
                /* never leave anyone stopped: wait for the attach stop, let go */
                if (args[0] == 16) waitpid(args[1], NULL, __WALL);
                syscall(SYS_ptrace, 17 /* DETACH */, args[1], 0, 0);
                kill(args[1], SIGCONT);
            }
        } else {
            counts[s][1]++;
            /* allowed by the sandbox, then failed on our unmapped address */
            if (SYS[s].nr == 311 && e == EFAULT && (args[0] == sup || args[0] == foreign)) supervisor_touched++;
            if (r != -1 || e <= 0 || e >= 134) { anomalies++; printf("ANOMALY %s r=%ld errno=%d\n", SYS[s].name, r, e); }
            else errcount[s][e]++;
        }
        if (SYS[s].nr == 101 && r == 0) {   /* attached to our own child: let it go */
            waitpid(child, NULL, __WALL | WNOHANG);
            syscall(SYS_ptrace, 17, child, 0, 0);
        }
    }
    (void)t0;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    /* summary: per syscall ok count and errno histogram */
    printf("SUMMARY {\"anomalies\": %ld, \"supervisor_touched\": %ld, \"calls\": {", anomalies, supervisor_touched);
    for (unsigned s = 0; s < NSYSCALLS; s++) {
        printf("%s\"%s\": {\"ok\": %ld", s ? ", " : "", SYS[s].name, counts[s][0]);
        for (int e = 1; e < 134; e++) if (errcount[s][e]) printf(", \"%d\": %ld", e, errcount[s][e]);
        printf("}");
    }
    printf("}}\n");
    /* the supervisor still serves (in a project the fuzz may have chmodded) */
    make_fixture();
    snprintf(tmp, sizeof tmp, "%s/final", proj);
    unlink(tmp);
    int fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, "final\n", 6) == 6 && close(fd) == 0;
    snprintf(tmp, sizeof tmp, "%s/final-out", outside);
    int out = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    char where[4096] = "";
    if (out >= 0) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", out);
        ssize_t n = readlink(link, where, sizeof where - 1);
        if (n > 0) where[n] = 0;
    }
    printf("FINAL %s %s %d %s [%s]\n", ok ? "ok" : strerror(errno), out >= 0 ? "out-open" : "out-denied", out, where, tmp);
    return 0;
}
