/* An unconfined process forks an idle child, (optionally) has
 * one of its threads exit (the exit trap judges its children now), walks into
 * a project (confined from then on), and makes the child write TARGET through
 * ptrace.  usage: lateenter thread|nothread PROJ TARGET RESULT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *RESULT;
static void record(const char *fmt, long a) {
    int fd = open(RESULT, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { dprintf(fd, fmt, a); dprintf(fd, "\n"); close(fd); }
}
static void *quit(void *arg) { (void)arg; syscall(SYS_exit, 0); return NULL; }

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    const char *target = argv[3];
    RESULT = argv[4];
    pid_t c = fork();
    if (c == 0) {
        if (!strcmp(argv[1], "trapped")) { /* one trapped call before the parent walks in: judged then */
            int t = open("/tmp/pt-r1-late-touch", O_WRONLY | O_CREAT, 0644);
            if (t >= 0) close(t);
        }
        for (;;) syscall(SYS_pause);
    }
    usleep(100 * 1000);
    if (!strcmp(argv[1], "thread")) {
        pthread_t t;
        pthread_create(&t, NULL, quit, NULL);
        pthread_join(t, NULL);
    }
    usleep(100 * 1000);
    if (chdir(argv[2]) != 0) { record("chdir failed %ld", errno); return 1; }
    /* now confined: a direct write outside is refused */
    char own[4200];
    snprintf(own, sizeof own, "%s-parent", target);
    int fd = open(own, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    record(fd >= 0 ? "parent direct write: written %ld" : "parent direct write: refused errno %ld", fd >= 0 ? 0 : errno);
    if (ptrace(PTRACE_ATTACH, c, 0, 0) != 0) { record("attach errno %ld", errno); kill(c, SIGKILL); return 1; }
    int st;
    waitpid(c, &st, 0);
    struct user_regs_struct regs, saved;
    ptrace(PTRACE_GETREGS, c, 0, &regs);
    saved = regs;
    long word = ptrace(PTRACE_PEEKTEXT, c, regs.rip - 2, 0);
    if ((word & 0xffff) != 0x050f) { record("no syscall insn at rip-2: %lx", word); kill(c, SIGKILL); return 1; }
    unsigned long where = (regs.rsp - 8192) & ~7UL;
    size_t len = strlen(target) + 1;
    for (size_t i = 0; i < len; i += 8) {
        long w = 0;
        memcpy(&w, target + i, len - i < 8 ? len - i : 8);
        ptrace(PTRACE_POKEDATA, c, where + i, w);
    }
    regs.orig_rax = -1;
    regs.rip = saved.rip - 2;
    regs.rax = SYS_openat;
    regs.rdi = (unsigned long)AT_FDCWD;
    regs.rsi = where;
    regs.rdx = O_WRONLY | O_CREAT | O_TRUNC;
    regs.r10 = 0644;
    ptrace(PTRACE_SETREGS, c, 0, &regs);
    ptrace(PTRACE_SINGLESTEP, c, 0, 0);
    waitpid(c, &st, 0);
    ptrace(PTRACE_GETREGS, c, 0, &regs);
    long rc = (long)regs.rax;
    record(rc >= 0 ? "child openat via ptrace: fd %ld (written)" : "child openat via ptrace: errno %ld", rc >= 0 ? rc : -rc);
    /* end the child from inside (a confined kill of it may be refused) */
    regs = saved;
    regs.orig_rax = -1;
    regs.rip = saved.rip - 2;
    regs.rax = SYS_exit_group;
    regs.rdi = 0;
    ptrace(PTRACE_SETREGS, c, 0, &regs);
    ptrace(PTRACE_CONT, c, 0, 0);
    waitpid(c, &st, 0);
    return 0;
}
