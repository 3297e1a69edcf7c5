/* The shell session's signal and exit traps (handlers/lineage.py). */
#include "common.h"

#include <dirent.h>

/* kill, tgkill, rt_tgsigqueueinfo (the shell session traps them) from a
 * confined thread to its own process (raise, abort, a runtime's preemption
 * signals): lineage.py allows that, and the receiver is a register value.
 * Everything else is Python's. */
static int own_signal(Req *r) {
    pid_t tid = (pid_t)r->n.pid;
    Judged *j = &r->engine->judged[tid % JUDGED_SLOTS];
    if (j->tid == tid && j->tgid > 0 && (pid_t)r->n.args[0] == j->tgid)
        return continue_(r);
    return DEFER;
}

int h_kill(Req *r) {
    return own_signal(r);
}

int h_tgkill(Req *r) {
    return own_signal(r);
}

int h_rt_tgsigqueueinfo(Req *r) {
    return own_signal(r);
}

/* 1 when any of the process's threads has a child, or when that cannot be
 * read (for Python to see); 0 when none has. */
static int has_children(uint32_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/task", pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 1;
    int children = 0;
    struct dirent *entry;
    while (!children && (entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char name[64], buf[16];
        snprintf(name, sizeof name, "/proc/%u/task/%lu/children", pid, strtoul(entry->d_name, NULL, 10));
        int fd = open(name, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd < 0 ? -1 : read(fd, buf, sizeof buf);
        if (fd >= 0)
            close(fd);
        if (got != 0)
            children = 1; /* a child, or an error */
    }
    closedir(dir);
    return children;
}

/* exit_group, from any process of the session: one that leaves children
 * is Python's (it judges them while their line still leads to the shell);
 * one without goes on. A child another thread makes after its list was
 * read is judged as an orphan (strict): a slip toward refusing. */
int h_exit_group(Req *r) {
    return has_children(r->n.pid) ? DEFER : continue_(r);
}
