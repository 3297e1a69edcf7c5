/* chmod, chown and utimensat of a file, directory or symlink (handlers/metadata.py). */
#include "common.h"

enum { CHMOD, CHOWN, UTIMES };

/* chmod, chown or utimes of a pinned object, once it is allowed. */
static int metadata(Req *r, int obj, int op, uint64_t a, uint64_t b, const struct timespec *times) {
    int is_dir = 0;
    if (obj < 0 || check_object(r, obj, &is_dir) != 0)
        return DEFER;
    if (op == CHMOD && privileged((mode_t)a, is_dir))
        return DEFER;
    if (!valid(r))
        return DONE;
    int rc;
    if (op == CHMOD) {
        rc = (int)syscall(NR_FCHMODAT2, obj, "", (mode_t)(a & 07777), AT_EMPTY_PATH);
        if (rc != 0 && errno == ENOSYS) {
            struct stat st;
            if (fstat(obj, &st) == 0 && S_ISLNK(st.st_mode)) {
                errno = EOPNOTSUPP;
            } else {
                char source[64];
                snprintf(source, sizeof source, "/proc/self/fd/%d", obj);
                rc = chmod(source, (mode_t)(a & 07777));
            }
        }
    } else if (op == CHOWN) {
        rc = fchownat(obj, "", (uid_t)a, (gid_t)b, AT_EMPTY_PATH);
    } else {
        rc = utimensat(obj, "", times, AT_EMPTY_PATH);
    }
    return answer(r, rc);
}

static int fd_metadata(Req *r, int fd, int op, uint64_t a, uint64_t b) {
    if (become_target(r) != 0)
        return DEFER;
    return metadata(r, fd_object(r, fd), op, a, b, NULL);
}

/* fchownat and utimensat: a path (or NULL / "" with AT_EMPTY_PATH) and AT_ flags. */
static int at_metadata(Req *r, int dirfd, uint64_t addr, int flags, int op, uint64_t a, uint64_t b,
                       const struct timespec *times) {
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return DEFER;
    char path[PATH_MAX];
    int len = 0;
    if (addr != 0 || op != UTIMES) {
        len = read_path(r, addr, path);
        if (len < 0 || (len == 0 && !(flags & AT_EMPTY_PATH)))
            return DEFER;
    }
    if (become_target(r) != 0)
        return DEFER;
    int obj;
    if (len == 0) {
        obj = fd_object(r, dirfd);
    } else {
        obj = pin(r, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW));
        if (obj < 0)
            return DEFER;
    }
    return metadata(r, obj, op, a, b, times);
}

static int do_utimensat(Req *r) {
    uint64_t *args = r->n.args;
    struct timespec times[2], *given = NULL;
    if (args[2]) {
        if (read_memory(r, args[2], times, sizeof times) != 0)
            return DEFER;
        given = times;
    }
    return at_metadata(r, (int)args[0], args[1], (int)args[3], UTIMES, 0, 0, given);
}

int h_fchmod(Req *r) {
    uint64_t *a = r->n.args;
    return fd_metadata(r, (int)a[0], CHMOD, a[1], 0);
}

int h_fchown(Req *r) {
    uint64_t *a = r->n.args;
    return fd_metadata(r, (int)a[0], CHOWN, a[1], a[2]);
}

int h_chmod(Req *r) {
    uint64_t *a = r->n.args;
    return at_metadata(r, AT_FDCWD, a[0], 0, CHMOD, a[1], 0, NULL);
}

int h_fchmodat(Req *r) {
    uint64_t *a = r->n.args;
    return at_metadata(r, (int)a[0], a[1], 0, CHMOD, a[2], 0, NULL);
}

int h_fchmodat2(Req *r) {
    uint64_t *a = r->n.args;
    return at_metadata(r, (int)a[0], a[1], (int)a[3], CHMOD, a[2], 0, NULL);
}

int h_chown(Req *r) {
    uint64_t *a = r->n.args;
    return at_metadata(r, AT_FDCWD, a[0], 0, CHOWN, a[1], a[2], NULL);
}

int h_lchown(Req *r) {
    uint64_t *a = r->n.args;
    return at_metadata(r, AT_FDCWD, a[0], AT_SYMLINK_NOFOLLOW, CHOWN, a[1], a[2], NULL);
}

int h_fchownat(Req *r) {
    uint64_t *a = r->n.args;
    return at_metadata(r, (int)a[0], a[1], (int)a[4], CHOWN, a[2], a[3], NULL);
}

int h_utimensat(Req *r) {
    return do_utimensat(r);
}
