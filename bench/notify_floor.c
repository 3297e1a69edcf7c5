/* peninsula bench: the floor of any seccomp user-notify supervisor here.
 *
 * usage: notify_floor [--sync] [--addfd] [--work US] CMD [ARGS...]
 *
 * Runs CMD under a filter that sends write-intent open/openat calls (the
 * same flag test as peninsula's filter) to this process, which answers each
 * with SECCOMP_USER_NOTIF_FLAG_CONTINUE at once: no path read, no decision.
 * The per-op time of bench/microbench.c under it, minus plain, is the cost
 * of the notification round trip alone; --sync sets SYNC_WAKE_UP as
 * peninsula does. --addfd answers as peninsula answers an open: ADDFD of a
 * /dev/null fd, then SEND with its number. --work US busy-waits that long
 * before answering, standing in for a supervisor's own work (how long the
 * other CPU sits idle before the answer wakes the target). Prints the
 * number of requests answered on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
#define WRITE_BITS (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)

static int install_filter(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JA, 2, 0, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, WRITE_BITS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static void busy_wait(long us) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < us * 1000L);
}

int main(int argc, char **argv) {
    int sync = 0, addfd = 0, first = 1;
    long work = 0;
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--sync") == 0)
            sync = 1;
        else if (strcmp(argv[first], "--addfd") == 0)
            addfd = 1;
        else if (strcmp(argv[first], "--work") == 0 && first + 1 < argc)
            work = atol(argv[++first]);
        else
            break;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: notify_floor [--sync] [--addfd] [--work US] CMD [ARGS...]\n");
        return 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        return perror("socketpair"), 1;
    pid_t child = fork();
    if (child == 0) {
        close(sv[0]);
        int listener = install_filter();
        if (listener < 0)
            return perror("seccomp"), 1;
        char byte = 0, ctrl[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&byte, 1};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &listener, sizeof(int));
        if (sendmsg(sv[1], &msg, 0) < 0)
            return perror("sendmsg"), 1;
        close(listener);
        execvp(argv[first], argv + first);
        perror("execvp");
        _exit(127);
    }
    close(sv[1]);
    char byte, ctrl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl};
    if (recvmsg(sv[0], &msg, 0) <= 0)
        return perror("recvmsg"), 1;
    int listener;
    memcpy(&listener, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
    if (sync) {
        /* the flags are the ioctl's value, not a pointer (EINVAL otherwise) */
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0) {
            perror("notify_floor: SECCOMP_IOCTL_NOTIF_SET_FLAGS");
            return 1;
        }
    }
    long answered = 0;
    for (;;) {
        struct pollfd pfd = {listener, POLLIN, 0};
        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (!(pfd.revents & POLLIN))
            break; /* POLLHUP: the last process under the filter is gone */
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
            if (errno == EINTR || errno == ENOENT)
                continue; /* the target went away before we read it */
            break;
        }
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        if (work)
            busy_wait(work);
        if (addfd) {
            int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
            struct seccomp_notif_addfd add = {.id = req.id, .srcfd = (__u32)fd};
            resp.val = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
            close(fd);
            if (resp.val < 0)
                continue; /* the target went away */
        } else {
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        }
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0)
            answered++;
    }
    int status;
    waitpid(child, &status, 0);
    fprintf(stderr, "notify_floor: %ld requests answered\n", answered);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
