/* Directory entries made, removed, renamed and linked (handlers/names.py). */
#include "common.h"

static int read_entry(Req *r, int dirfd, uint64_t addr, char *path, Entry *ent) {
    int len = read_path(r, addr, path);
    if (len <= 0 || become_target(r) != 0)
        return -1;
    int got = entry(r, dirfd, path, (size_t)len, ent);
    if (got != 0)
        return got; /* PIN_MISSING: its parent does not exist */
    return allowed(r->pol, ent->where, ent->len) ? 0 : -1;
}

static int do_mkdir(Req *r, int dirfd, uint64_t addr, uint64_t mode) {
    char path[PATH_MAX];
    Entry ent;
    int got = read_entry(r, dirfd, addr, path, &ent);
    if (got == PIN_MISSING)
        return valid(r) ? answer_errno(r, ENOENT) : DONE;
    if (got != 0 || read_status(r) != 0)
        return DEFER;
    if (!valid(r))
        return DONE;
    return answer(r, mkdirat(ent.parent, ent.name, (mode_t)(mode & 07777) & ~r->umask));
}

/* A directory entry that may be a project root, or hold one: in the shell
 * session (the engine has a judge) Python's to move or remove
 * (names._refuse_moving_a_root). */
static int is_directory(const Entry *ent) {
    struct stat st;
    return fstatat(ent->parent, ent->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int do_remove(Req *r, int dirfd, uint64_t addr, int flag) {
    char path[PATH_MAX];
    Entry ent;
    if ((flag & AT_REMOVEDIR) && r->engine->judge)
        return DEFER;
    if (read_entry(r, dirfd, addr, path, &ent) != 0)
        return DEFER;
    if (!valid(r))
        return DONE;
    return answer(r, unlinkat(ent.parent, ent.name, flag));
}

enum { RENAME, LINK };

/* rename and link: both ends must be allowed (names._rename, _link). */
static int do_two_names(Req *r, int op, int olddir, uint64_t oldaddr, int newdir, uint64_t newaddr, unsigned flags) {
    char oldpath[PATH_MAX], newpath[PATH_MAX];
    Entry from, to;
    if (read_entry(r, olddir, oldaddr, oldpath, &from) != 0 || read_entry(r, newdir, newaddr, newpath, &to) != 0)
        return DEFER;
    if (op == RENAME && ((r->engine->judge && (is_directory(&from) || is_directory(&to)))
                         || protected_beneath(r->pol, from.where, from.len) || protected_beneath(r->pol, to.where, to.len)))
        return DEFER;
    if (!valid(r))
        return DONE;
    if (op == RENAME)
        return answer(r, renameat2(from.parent, from.name, to.parent, to.name, flags));
    return answer(r, linkat(from.parent, from.name, to.parent, to.name, 0));
}

int h_mkdir(Req *r) {
    uint64_t *a = r->n.args;
    return do_mkdir(r, AT_FDCWD, a[0], a[1]);
}

int h_mkdirat(Req *r) {
    uint64_t *a = r->n.args;
    return do_mkdir(r, (int)a[0], a[1], a[2]);
}

int h_unlink(Req *r) {
    return do_remove(r, AT_FDCWD, r->n.args[0], 0);
}

int h_rmdir(Req *r) {
    return do_remove(r, AT_FDCWD, r->n.args[0], AT_REMOVEDIR);
}

int h_unlinkat(Req *r) {
    uint64_t *a = r->n.args;
    if ((int)a[2] & ~AT_REMOVEDIR)
        return DEFER;
    return do_remove(r, (int)a[0], a[1], (int)a[2]);
}

int h_rename(Req *r) {
    uint64_t *a = r->n.args;
    return do_two_names(r, RENAME, AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
}

int h_renameat(Req *r) {
    uint64_t *a = r->n.args;
    return do_two_names(r, RENAME, (int)a[0], a[1], (int)a[2], a[3], 0);
}

int h_renameat2(Req *r) {
    uint64_t *a = r->n.args;
    return do_two_names(r, RENAME, (int)a[0], a[1], (int)a[2], a[3], (unsigned)a[4]);
}

int h_link(Req *r) {
    uint64_t *a = r->n.args;
    return do_two_names(r, LINK, AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
}

int h_linkat(Req *r) {
    uint64_t *a = r->n.args;
    if ((int)a[4] != 0)
        return DEFER; /* AT_SYMLINK_FOLLOW, AT_EMPTY_PATH */
    return do_two_names(r, LINK, (int)a[0], a[1], (int)a[2], a[3], 0);
}
