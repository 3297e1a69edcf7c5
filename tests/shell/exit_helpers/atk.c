/* Ways for a process to leave children whose parent goes away.
 * usage: atk MODE TARGET RESULT
 * The "payload" process waits, then tries open(TARGET, O_WRONLY|O_CREAT) and writes
 * "written" or the errno name to RESULT (a temp dir: writable even when strict). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *TARGET, *RESULT;
static volatile int go;

static void record(const char *what) {
    int fd = open(RESULT, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { dprintf(fd, "%s\n", what); close(fd); }
}

static void payload(unsigned ms) {
    usleep(ms * 1000);
    int fd = open(TARGET, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[128];
    if (fd >= 0) { write(fd, "escaped\n", 8); close(fd); snprintf(buf, sizeof buf, "written pid=%d ppid=%d", getpid(), getppid()); }
    else snprintf(buf, sizeof buf, "%s pid=%d ppid=%d", strerrorname_np(errno), getpid(), getppid());
    record(buf);
    syscall(SYS_exit_group, 0);
}

static void *forker(void *arg) {
    (void)arg;
    while (!go) ;
    for (int i = 0; i < 200; i++) {
        pid_t p = fork();
        if (p == 0) payload(800);
    }
    return NULL;
}

static void *late_exit(void *arg) {
    usleep((long)(size_t)arg * 1000);
    syscall(SYS_exit_group, 0);
    return NULL;
}

static void *thread_fork_then_exit(void *arg) {
    (void)arg;
    if (fork() == 0) payload(800);
    syscall(SYS_exit, 0); /* this thread only: its child goes to another thread of the group */
    return NULL;
}

static void *thread_fork_then_exec(void *arg) {
    (void)arg;
    if (fork() == 0) payload(800);
    char *argv[] = {"/bin/true", NULL};
    execv(argv[0], argv); /* de_thread: the leader dies without an exit call */
    record("exec failed");
    return NULL;
}


/* Become a subreaper whose child q makes the payload and dies by SIGKILL,
 * so the payload is adopted here. Returns q. */
static pid_t adopt_after_kill(void) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t q = fork();
    if (q == 0) {
        if (fork() == 0) payload(800);
        kill(getpid(), SIGKILL);
    }
    return q;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    const char *mode = argv[1];
    TARGET = argv[2];
    RESULT = argv[3];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(mode, "direct")) { payload(0); }
    if (!strcmp(mode, "daemon")) { if (fork() == 0) payload(500); syscall(SYS_exit_group, 0); }
    if (!strcmp(mode, "thread_race")) {
        /* threads fork while main calls exit_group */
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, forker, NULL);
        go = 1;
        usleep(200);
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "main_exit")) {
        /* the main thread exits alone (exit 60) while its child lives; the last thread exits later */
        if (fork() == 0) payload(800);
        pthread_t t;
        pthread_create(&t, NULL, late_exit, (void *)(size_t)300);
        syscall(SYS_exit, 0);
    }
    if (!strcmp(mode, "thread_exit")) {
        pthread_t t;
        pthread_create(&t, NULL, thread_fork_then_exit, NULL);
        usleep(300 * 1000);
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "exec_nonleader")) {
        pthread_t t;
        pthread_create(&t, NULL, thread_fork_then_exec, NULL);
        pause();
    }
    if (!strcmp(mode, "vfork")) {
        pid_t p = vfork();
        if (p == 0) {
            /* in the vfork child: raw fork, then raw exit */
            if (syscall(SYS_fork) == 0) payload(800);
            syscall(SYS_exit_group, 0);
        }
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "subreaper")) {
        adopt_after_kill();
        /* reap q, then the adopted one, then exit */
        while (wait(NULL) > 0) ;
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "subreaper_exit")) {
        /* subreaper adopts, then exits while the adoptee lives */
        waitpid(adopt_after_kill(), NULL, 0);
        usleep(100 * 1000);
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "pidns")) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) { char b[64]; snprintf(b, sizeof b, "unshare %s", strerrorname_np(errno)); record(b); return 1; }
        pid_t init = fork();
        if (init == 0) {
            /* pid 1 of the new namespace: a daemon inside, its parent killed */
            pid_t q = fork();
            if (q == 0) {
                if (fork() == 0) payload(800);
                kill(getpid(), SIGKILL);
            }
            while (wait(NULL) > 0) ;
            syscall(SYS_exit_group, 0);
        }
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "kill_parent")) {
        pid_t parent = getpid();
        if (fork() == 0) {
            if (kill(parent, SIGKILL) != 0) { char b[64]; snprintf(b, sizeof b, "kill %s", strerrorname_np(errno)); record(b); }
            payload(500);
        }
        pause();
    }
    if (!strcmp(mode, "sigchld_ign")) {
        /* auto-reaped children churn pids while the parent exits with a live daemon child */
        signal(SIGCHLD, SIG_IGN);
        if (fork() == 0) payload(800);
        for (int i = 0; i < 300; i++) if (fork() == 0) syscall(SYS_exit_group, 0);
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "clone_parent")) {
        pid_t p = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
        if (p == 0) payload(300);
        char b[64];
        snprintf(b, sizeof b, "clone_parent %s", p < 0 ? strerrorname_np(errno) : "made");
        record(b);
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "clone3")) {
        long r = syscall(435, NULL, 0);
        char b[64];
        snprintf(b, sizeof b, "clone3 %s", r < 0 ? strerrorname_np(errno) : "ok");
        record(b);
        return 0;
    }
    if (!strcmp(mode, "many_children")) {
        /* more children than the 8192-byte children read holds, then one daemon */
        int n = atoi(getenv("ATK_N") ? getenv("ATK_N") : "1500");
        for (int i = 0; i < n; i++) if (fork() == 0) { alarm(8); pause(); _exit(0); } /* gone by SIGALRM */
        if (fork() == 0) payload(1500);
        syscall(SYS_exit_group, 0);
    }
    if (!strcmp(mode, "ptrace_parent")) {
        /* the child seizes its exiting parent, to hold it at its exit */
        pid_t parent = getpid();
        if (fork() == 0) {
            long r = ptrace(PTRACE_SEIZE, parent, 0, (void *)PTRACE_O_TRACEEXIT);
            char b[64];
            snprintf(b, sizeof b, "seize_parent %s", r == 0 ? "ok" : strerrorname_np(errno));
            record(b);
            payload(500);
        }
        usleep(200 * 1000);
        syscall(SYS_exit_group, 0);
    }
    record("unknown mode");
    return 2;
}
