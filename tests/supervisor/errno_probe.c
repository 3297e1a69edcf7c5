/* errno_probe: make a list of raw syscalls against a tree and print each
 * one's errno (0 for success), for the errno-parity twin test.
 *
 *   errno_probe populate DIR                   make the tree in DIR
 *   errno_probe shared DIR SIDE CASES [MARK]   every case against DIR
 *   errno_probe fresh DIR SIDE CASES           each case against a tree as
 *                                              populated, DIR/cN/t and SIDE/cN
 *                                              (a new one after each success:
 *                                              a failed call changes nothing)
 *
 * A case is one line: name, syscall number, then its arguments, separated
 * by tabs. An argument is
 *   i:N      the integer N          u / g    our uid / gid
 *   s:TEXT   the string TEXT        a:TEXT   the tree's path + "/" + TEXT
 *   x:TEXT   SIDE's path + "/" + TEXT      N        NULL
 *   D        an O_RDONLY fd on the tree     f:TEXT / p:TEXT an O_RDONLY /
 *                                           O_PATH|O_NOFOLLOW fd on TEXT
 *   h:F,M,R  a struct open_how      T:S,NS,S,NS  struct timespec[2]
 *   V:S,US,S,US struct timeval[2]   U:A,M    struct utimbuf
 *   X:FLAGS  struct xattr_args for the value "v"
 * With MARK, a mkdir of MARK/.mN (which peninsula refuses and logs) goes
 * before case N, so the log says which case each refusal belongs to.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

#define MAX_FIELDS 12

static char tree[4096], side[4096];
static int tree_fd = -1;
static int extra_fds[MAX_FIELDS];
static int n_extra;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void make_file(const char *path, const char *data) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data) || close(fd) != 0)
        die(path);
}

/* The tree every case runs against; the same in every twin. */
static void populate(const char *dir) {
    if (chdir(dir) != 0)
        die(dir);
    make_file("file", "data\n");
    if (mkdir("dir", 0755) != 0 || mkdir("empty", 0755) != 0)
        die("mkdir");
    make_file("dir/inner", "inner\n");
    if (symlink("file", "link_file") != 0 || symlink("dir", "link_dir") != 0 || symlink("nowhere", "dangling") != 0 ||
        symlink("loop", "loop") != 0)
        die("symlink");
    if (mknod("fifo", S_IFIFO | 0644, 0) != 0)
        die("mkfifo");
    if (chmod("file", 0644) || chmod("dir", 0755) || chmod("empty", 0755) || chmod("dir/inner", 0644) ||
        chmod("fifo", 0644))
        die("chmod");
}

static void populate_side(const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die(dir);
    char path[8192];
    snprintf(path, sizeof path, "%s/own", dir);
    make_file(path, "own\n");
    chmod(path, 0644);
}

static void *buffer(size_t size) {
    void *p = calloc(1, size);
    if (!p)
        die("calloc");
    return p;
}

static long arg(char *text, char **to_free, int *n_free) {
    if (strcmp(text, "N") == 0)
        return 0;
    if (strcmp(text, "D") == 0)
        return tree_fd;
    if (strcmp(text, "u") == 0)
        return (long)getuid();
    if (strcmp(text, "g") == 0)
        return (long)getgid();
    char kind = text[0];
    char *rest = text + 2;
    if (text[1] != ':')
        die(text);
    switch (kind) {
    case 'i':
        return strtol(rest, NULL, 0);
    case 's':
        return (long)rest;
    case 'a':
    case 'x': {
        size_t n = strlen(rest) + 8200;
        char *p = buffer(n);
        snprintf(p, n, "%s/%s", kind == 'a' ? tree : side, rest);
        to_free[(*n_free)++] = p;
        return (long)p;
    }
    case 'f':
    case 'p': {
        int fd = openat(tree_fd, rest, kind == 'f' ? O_RDONLY | O_NONBLOCK : O_PATH | O_NOFOLLOW);
        if (fd < 0)
            die(rest);
        extra_fds[n_extra++] = fd;
        return fd;
    }
    case 'h': {
        uint64_t *how = buffer(24);
        sscanf(rest, "%lu,%lu,%lu", &how[0], &how[1], &how[2]);
        to_free[(*n_free)++] = (char *)how;
        return (long)how;
    }
    case 'T': {
        struct timespec *ts = buffer(sizeof(struct timespec) * 2);
        sscanf(rest, "%ld,%ld,%ld,%ld", &ts[0].tv_sec, &ts[0].tv_nsec, &ts[1].tv_sec, &ts[1].tv_nsec);
        to_free[(*n_free)++] = (char *)ts;
        return (long)ts;
    }
    case 'V': {
        struct timeval *tv = buffer(sizeof(struct timeval) * 2);
        sscanf(rest, "%ld,%ld,%ld,%ld", &tv[0].tv_sec, &tv[0].tv_usec, &tv[1].tv_sec, &tv[1].tv_usec);
        to_free[(*n_free)++] = (char *)tv;
        return (long)tv;
    }
    case 'U': {
        struct utimbuf *ub = buffer(sizeof *ub);
        sscanf(rest, "%ld,%ld", &ub->actime, &ub->modtime);
        to_free[(*n_free)++] = (char *)ub;
        return (long)ub;
    }
    case 'X': {
        /* struct xattr_args { __aligned_u64 value; __u32 size; __u32 flags; } */
        uint64_t *xa = buffer(16);
        xa[0] = (uint64_t)(uintptr_t) "v";
        ((uint32_t *)xa)[2] = 1;
        ((uint32_t *)xa)[3] = (uint32_t)strtoul(rest, NULL, 0);
        to_free[(*n_free)++] = (char *)xa;
        return (long)xa;
    }
    }
    die(text);
    return 0;
}

static int is_open(long nr) {
    return nr == SYS_open || nr == SYS_openat || nr == SYS_creat || nr == SYS_openat2;
}

/* Run one case line; prints "name errno" and returns the errno. */
static int run_case(char *line) {
    char *fields[MAX_FIELDS + 2];
    int n = 0;
    char *save = NULL;
    for (char *f = strtok_r(line, "\t", &save); f && n < MAX_FIELDS + 2; f = strtok_r(NULL, "\t", &save))
        fields[n++] = f;
    if (n < 2)
        die("short case");
    char *to_free[MAX_FIELDS];
    int n_free = 0;
    long a[6] = {0};
    n_extra = 0;
    for (int i = 2; i < n && i < 8; i++)
        a[i - 2] = arg(fields[i], to_free, &n_free);
    long nr = strtol(fields[1], NULL, 10);
    long rc;
    int err;
    /* openat2 with RESOLVE_BENEATH or RESOLVE_IN_ROOT answers EAGAIN when a
     * rename or mount anywhere on the system raced its ".." (the kernel
     * asks the caller to retry): on a busy machine, either tree. */
    for (int tries = 0;; tries++) {
        errno = 0;
        rc = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        err = rc < 0 ? errno : 0;
        if (!(nr == SYS_openat2 && err == EAGAIN && tries < 1000))
            break;
    }
    if (rc >= 0 && is_open(nr))
        close((int)rc);
    printf("%s %d\n", fields[0], err);
    for (int i = 0; i < n_free; i++)
        free(to_free[i]);
    for (int i = 0; i < n_extra; i++)
        close(extra_fds[i]);
    return err;
}

static void enter(const char *dir) {
    snprintf(tree, sizeof tree, "%s", dir);
    if (tree_fd >= 0)
        close(tree_fd);
    tree_fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (tree_fd < 0 || chdir(dir) != 0)
        die(dir);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "populate") == 0) {
        populate(argv[2]);
        return 0;
    }
    if (argc < 5)
        die("usage");
    int fresh = strcmp(argv[1], "fresh") == 0;
    const char *mark = argc > 5 ? argv[5] : NULL;
    FILE *cases = fopen(argv[4], "r");
    if (!cases)
        die(argv[4]);
    umask(022);
    if (!fresh) {
        enter(argv[2]);
        snprintf(side, sizeof side, "%s", argv[3]);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int changed = 1;
    for (int index = 0; (len = getline(&line, &cap, cases)) > 0; index++) {
        if (line[len - 1] == '\n')
            line[len - 1] = 0;
        if (fresh && changed) {
            char dir[4096];
            snprintf(side, sizeof side, "%s/c%d", argv[3], index);
            populate_side(side);
            /* DIR/cN/t: even ".." of the tree is the case's own */
            snprintf(dir, sizeof dir, "%s/c%d", argv[2], index);
            if (mkdir(dir, 0755) != 0)
                die(dir);
            strcat(dir, "/t");
            if (mkdir(dir, 0755) != 0)
                die(dir);
            populate(dir);
            enter(dir);
        } else if (mark) {
            char path[4096];
            snprintf(path, sizeof path, "%s/.m%d", mark, index);
            syscall(SYS_mkdir, path, 0755);
        }
        /* Each case in a process of its own: the supervisor's log collapses
           repeats of one process's identical refusal, and this test ties
           each log line to its case. */
        fflush(stdout);
        pid_t child = fork();
        if (child < 0)
            die("fork");
        if (child == 0) {
            int result = run_case(line);
            fflush(stdout);
            _exit(result == 0 ? 0 : 1);
        }
        int status;
        if (waitpid(child, &status, 0) != child)
            die("waitpid");
        changed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    return 0;
}
