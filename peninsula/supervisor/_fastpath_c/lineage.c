/* The shell session's signal traps (handlers/lineage.py). */
#include "common.h"

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
