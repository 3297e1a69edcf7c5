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

/* exit_group and exit, from any process of the session: one that leaves
 * children is Python's (it judges them while their line still leads to the
 * shell); one without goes on. A child another thread makes after its
 * list was read is judged as an orphan (strict): a slip toward refusing. */
int h_exit_group(Req *r) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/task", r->n.pid);
    DIR *threads = opendir(path);
    if (threads == NULL)
        return DEFER;
    int none = 1;
    struct dirent *entry;
    while (none && (entry = readdir(threads)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char name[96], buf[16];
        snprintf(name, sizeof name, "/proc/%u/task/%s/children", r->n.pid, entry->d_name);
        int fd = open(name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            none = 0;
            break;
        }
        ssize_t got = read(fd, buf, sizeof buf);
        close(fd);
        if (got != 0)
            none = 0; /* a child, or an error: Python's */
    }
    closedir(threads);
    return none ? continue_(r) : DEFER;
}
