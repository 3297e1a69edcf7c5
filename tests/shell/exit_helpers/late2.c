/* late2 MODE PROJ TARGET: an unconfined process makes a child (which makes a trapped call,
 * so it is judged unconfined), walks into PROJ, then tries to make the child write TARGET. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile char *shared;     /* MAP_SHARED page: [0]=go flag, [8..]=path */
static void (*volatile hook)(void);  /* for clonevm: the child calls this */
static char path_buf[4096];
static void idle(void) { usleep(20000); }
static void evil(void) {
    int fd = open(path_buf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dprintf(2, "child (clonevm) open: %s\n", fd >= 0 ? "WRITTEN" : strerror(errno));
    hook = idle;
}
static int vmchild(void *arg) {
    (void)arg;
    int t = open("/tmp/pt-r2-late2-touch", O_WRONLY | O_CREAT, 0644); if (t >= 0) close(t);
    for (;;) hook();
    return 0;
}
static void poller(void) {
    int t = open("/tmp/pt-r2-late2-touch", O_WRONLY | O_CREAT, 0644); if (t >= 0) close(t);
    for (;;) {
        if (shared[0]) {
            int fd = open((const char *)shared + 8, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dprintf(2, "child (poller) open: %s\n", fd >= 0 ? "WRITTEN" : strerror(errno));
            shared[0] = 0;
        }
        usleep(20000);
    }
}
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    const char *mode = argv[1], *target = argv[3];
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    static char priv[4096];  /* private copy for vmwrite: child polls priv */
    pid_t c;
    if (!strcmp(mode, "clonevm")) {
        hook = idle;
        char *stack = malloc(1 << 20);
        c = clone(vmchild, stack + (1 << 20), CLONE_VM | SIGCHLD, NULL);
    } else if (!strcmp(mode, "vmwrite")) {
        c = fork();
        if (c == 0) {
            int t = open("/tmp/pt-r2-late2-touch", O_WRONLY | O_CREAT, 0644); if (t >= 0) close(t);
            for (;;) { if (priv[0]) { int fd = open(priv + 8, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                dprintf(2, "child (vmwrite) open: %s\n", fd >= 0 ? "WRITTEN" : strerror(errno)); priv[0] = 0; } usleep(20000); }
        }
    } else {
        c = fork();
        if (c == 0) poller();
    }
    dprintf(2, "child pid %d\n", c);
    usleep(300 * 1000);
    if (!strcmp(mode, "preattach")) {
        if (ptrace(PTRACE_ATTACH, c, 0, 0)) { perror("preattach"); }
        int st; waitpid(c, &st, 0);  /* left stopped */
    }
    if (chdir(argv[2]) != 0) { perror("chdir"); return 1; }
    char own[4200]; snprintf(own, sizeof own, "%s-parent", target);
    int fd = open(own, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dprintf(2, "parent own write after walk-in: %s\n", fd >= 0 ? "WRITTEN (not confined!)" : strerror(errno));
    char tgt[3000]; snprintf(tgt, sizeof tgt, "%s", target);
    if (!strcmp(mode, "clonevm")) {
        snprintf(path_buf, sizeof path_buf, "%s", tgt);
        hook = evil;
    } else if (!strcmp(mode, "shared")) {
        snprintf((char *)shared + 8, 4000, "%s", tgt); shared[0] = 1;
    } else if (!strcmp(mode, "vmwrite")) {
        char buf[4096] = {1}; snprintf(buf + 8, 4000, "%s", tgt);
        struct iovec l = {buf + 1, 4095}, r = {priv + 1, 4095};
        ssize_t n = process_vm_writev(c, &l, 1, &r, 1, 0);
        struct iovec l2 = {buf, 1}, r2 = {priv, 1};
        if (n >= 0) n = process_vm_writev(c, &l2, 1, &r2, 1, 0);
        dprintf(2, "process_vm_writev: %s\n", n >= 0 ? "ok" : strerror(errno));
    } else if (!strcmp(mode, "procmem")) {
        char p[64]; snprintf(p, sizeof p, "/proc/%d/mem", c);
        int m = open(p, O_RDWR);
        dprintf(2, "open /proc/C/mem rw: %s\n", m >= 0 ? "ok" : strerror(errno));
    } else if (!strcmp(mode, "preattach")) {
        struct user_regs_struct regs;
        long r = ptrace(PTRACE_GETREGS, c, 0, &regs);
        dprintf(2, "GETREGS on pre-attached: %s\n", r == 0 ? "ok" : strerror(errno));
        r = ptrace(PTRACE_POKEDATA, c, (void *)(shared), 1);
        dprintf(2, "POKEDATA on pre-attached: %s\n", r == 0 ? "ok" : strerror(errno));
        ptrace(PTRACE_DETACH, c, 0, 0);
    } else if (!strcmp(mode, "prlimit")) {
        struct rlimit rl = {1, 1};
        int r = prlimit(c, RLIMIT_CPU, &rl, NULL);
        dprintf(2, "prlimit child: %s\n", r == 0 ? "ok" : strerror(errno));
    } else if (!strcmp(mode, "getfd")) {
        int pfd = syscall(SYS_pidfd_open, c, 0);
        int g = syscall(SYS_pidfd_getfd, pfd, 2, 0);
        dprintf(2, "pidfd_getfd child's fd 2: %s\n", g >= 0 ? "ok" : strerror(errno));
    }
    sleep(1);
    kill(c, SIGKILL);  /* may be refused */
    dprintf(2, "kill child: %s\n", kill(c, SIGKILL) == 0 ? "ok" : strerror(errno));
    return 0;
}
