"""Nesting: the kernel allows one user-notify listener per filter chain.
`peninsula run` under any other notify sandbox must say so in plain words
and exit 125, never hang; under `peninsula run` it nests in the outer
run's supervisor (issue 14; run/test_run_in_run.py)."""

from __future__ import annotations

from .conftest import SYSTEM_PYTHON, compile_c, no_traceback

OTHER_SANDBOX_C = r'''
/* A minimal notify sandbox: a filter that sends acct(2) to a listener we
 * serve (answering CONTINUE), then runs argv[1...] under it. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_acct, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof *code, code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) { perror("no_new_privs"); return 2; }
    int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0) { perror("seccomp"); return 2; }
    pid_t child = fork();
    if (child == 0) {
        close(listener);
        execvp(argv[1], argv + 1);
        perror("exec");
        _exit(127);
    }
    for (;;) {
        int status;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct pollfd p = {listener, POLLIN, 0};
        if (poll(&p, 1, 50) > 0 && (p.revents & POLLIN)) {
            struct seccomp_notif req;
            struct seccomp_notif_resp resp;
            memset(&req, 0, sizeof req);
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
                memset(&resp, 0, sizeof resp);
                resp.id = req.id;
                resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
            }
        }
    }
}
'''


def check_refusal(proc, rc_line: bytes | None = None) -> None:
    err = proc.stderr.decode("utf-8", "replace")
    lines = [l for l in err.splitlines() if l.strip()]
    nest = [l for l in lines if "EBUSY" in l]
    assert len(nest) == 1, lines
    assert "cannot nest" in nest[0] and "user-notify" in nest[0], nest


def test_run_inside_run(lay):
    marker = lay.project / "inner-ran"
    inner = f"{SYSTEM_PYTHON} -m peninsula run -- touch {marker}; echo inner=$?"
    proc = lay.run(["sh", "-c", inner], timeout=60)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert b"inner=0" in proc.stdout, (proc.stdout, proc.stderr)
    assert b"EBUSY" not in proc.stderr and b"cannot nest" not in proc.stderr, proc.stderr
    assert marker.exists()


def test_run_under_another_notify_sandbox(lay):
    other = compile_c(OTHER_SANDBOX_C, "other_sandbox")
    marker = lay.project / "ran"
    proc = lay.who.run([other, SYSTEM_PYTHON, "-m", "peninsula", "run", "--", "touch", marker], cwd=lay.project, timeout=60)
    assert proc.returncode == 125, (proc.returncode, proc.stderr)
    check_refusal(proc)
    assert b"Traceback" not in proc.stderr
    assert not marker.exists()
    # the control: the other sandbox runs commands fine
    ok = lay.who.run([other, "touch", marker], cwd=lay.project, timeout=60)
    assert ok.returncode == 0 and marker.exists(), ok.stderr
