/* Opens with write intent (handlers/opens.py). */
#include "common.h"

static int do_open(Req *r, int dirfd, uint64_t addr, uint64_t flags64, uint64_t mode) {
    unsigned flags = (unsigned)flags64 & VALID_OPEN;
    if (flags & (O_PATH | O_DIRECTORY | 020000000) || !(flags & WRITE_INTENT))
        return DEFER;
    char path[PATH_MAX];
    int len = read_path(r, addr, path);
    if (len <= 0 || become_target(r) != 0)
        return DEFER;
    int cloexec = (flags & O_CLOEXEC) != 0;
    int exclusive = (flags & O_CREAT) && (flags & O_EXCL);
    if (!exclusive) {
        int fd = pin(r, dirfd, path, !(flags & O_NOFOLLOW));
        if (fd >= 0) {
            struct stat st;
            char where[PATH_MAX];
            size_t wlen;
            if (held_stat(r, fd, &st) != 0 || !S_ISREG(st.st_mode))
                return DEFER;
            if (flags & (O_WRONLY | O_RDWR | O_TRUNC)) {
                if (st.st_nlink > 1 && !r->pol->hardlinked_writes)
                    return DEFER;
                if (location(r, fd, where, sizeof where, &wlen) != 0 || !allowed(r->pol, where, wlen))
                    return DEFER;
            }
            if ((flags & O_TRUNC) && room_for_fd(r) != 0)
                return DEFER;
            if (!valid(r))
                return DONE;
            char source[16];
            snprintf(source, sizeof source, "%d", fd);
            int opened = openat(r->engine->fd_dir, source,
                                (int)((flags | O_CLOEXEC | O_NOCTTY) & ~(unsigned)(O_CREAT | O_EXCL | O_NOFOLLOW)));
            if (opened < 0)
                return answer(r, -1);
            reply_fd(r, opened, cloexec);
            close(opened);
            return DONE;
        }
        if (fd != PIN_MISSING || !(flags & O_CREAT))
            return DEFER;
    }
    Entry ent;
    int got = entry(r, dirfd, path, (size_t)len, &ent);
    if (got == PIN_MISSING)
        return valid(r) ? answer_errno(r, ENOENT) : DONE;
    if (got != 0)
        return DEFER;
    /* A dangling symlink: Python follows it. With O_EXCL the kernel does
     * not (EEXIST), and neither does the create below. */
    char link[8];
    if (!exclusive && readlinkat(ent.parent, ent.name, link, sizeof link) >= 0)
        return DEFER;
    if (!allowed(r->pol, ent.where, ent.len) || read_status(r) != 0)
        return DEFER;
    mode_t create_mode = (mode_t)(mode & 07777) & ~r->umask;
    if (privileged(create_mode, 0) || room_for_fd(r) != 0)
        return DEFER;
    if (!valid(r))
        return DONE;
    /* O_EXCL always: whatever appeared at the name since we looked was not
     * checked. Then nothing was created, and Python resolves it again. */
    int opened = openat(ent.parent, ent.name, (int)(flags | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), create_mode);
    if (opened < 0) {
        if ((errno == EEXIST && !(flags & O_EXCL)) || (errno == ELOOP && !(flags & O_NOFOLLOW)))
            return DEFER;
        return answer(r, -1);
    }
    reply_fd(r, opened, cloexec);
    close(opened);
    return DONE;
}

int h_open(Req *r) {
    uint64_t *a = r->n.args;
    return do_open(r, AT_FDCWD, a[0], a[1], a[2]);
}

int h_openat(Req *r) {
    uint64_t *a = r->n.args;
    return do_open(r, (int)a[0], a[1], a[2], a[3]);
}

int h_creat(Req *r) {
    uint64_t *a = r->n.args;
    return do_open(r, AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1]);
}
