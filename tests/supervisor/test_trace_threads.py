"""A debugger attaches to every thread of its own child by thread id
(strace -p, gdb), and process_vm_writev and prlimit take a thread id too:
the supervisor pins such a target by a pidfd of that one thread. The same
program run without peninsula is the control."""

from .conftest import compile_c

# Forks a child with a second thread; prints what seizing the child by its
# pid and its other thread by that thread's id gives, and what writing
# the thread's memory and setting its limits by thread id give.
TRACER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[2];
static char mark[8] = "before";

static void *second(void *arg) {
    (void)arg;
    pid_t tid = gettid();
    if (write(fds[1], &tid, sizeof tid) != sizeof tid) _exit(1);
    pause();
    return NULL;
}

static void show(const char *name, long rc) {
    printf("%s %ld %d\n", name, rc, rc == -1 ? errno : 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(fds) != 0) return 2;
    pid_t child = fork();
    if (child == 0) {
        pthread_t t;
        pthread_create(&t, NULL, second, NULL);
        pause();
        _exit(0);
    }
    pid_t tid;
    if (read(fds[0], &tid, sizeof tid) != sizeof tid) return 2;
    char byte = 'X';
    struct iovec local = {&byte, 1}, remote = {mark, 1};
    show("vm_write_thread", process_vm_writev(tid, &local, 1, &remote, 1, 0));
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);  /* the child's too: set it to itself */
    show("prlimit_thread", prlimit(tid, RLIMIT_NOFILE, &limit, NULL));
    show("seize_leader", ptrace(PTRACE_SEIZE, child, 0, 0));
    show("seize_thread", ptrace(PTRACE_SEIZE, tid, 0, 0));
    kill(child, SIGKILL);
    waitpid(tid, NULL, __WALL);  /* a traced thread is its tracer's to reap, before its leader */
    waitpid(child, NULL, __WALL);
    return 0;
}
"""

EXPECTED = [b"vm_write_thread 1 0", b"prlimit_thread 0 0", b"seize_leader 0 0", b"seize_thread 0 0"]


def test_a_childs_threads_are_reached_by_thread_id(who):
    tracer = compile_c(TRACER_C, "trace-threads", ("-pthread",))
    project = who.mkdir(who.base / "proj")
    plain = who.run([tracer], cwd=project)
    assert plain.stdout.split(b"\n")[:4] == EXPECTED, plain.stdout + plain.stderr
    confined = who.peninsula("run", "--quiet", "--project", project, "--", tracer, cwd=project)
    assert confined.stdout.split(b"\n")[:4] == EXPECTED, confined.stdout + confined.stderr
