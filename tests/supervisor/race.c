/* Path-swap attacker for invariant 2 (no TOCTOU).
 *
 * race IN OUT SECONDS
 *   IN and OUT are directories whose paths have the same length.
 *   A flipper thread rewrites shared path buffers between names inside IN
 *   and the same names inside OUT, as fast as it can; worker threads call
 *   open(O_CREAT), mkdir, rename, link, symlink, chmod and truncate on those
 *   buffers in a loop, and one thread swaps IN/sw between a directory and a
 *   symlink to OUT with renameat2(RENAME_EXCHANGE); IN/ext is swapped the
 *   same way by another process (outside the sandbox). Prints counts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NBUF 6
static char in_names[NBUF][4096], out_names[NBUF][4096];
static char buffers[NBUF][4096];
static size_t lengths[NBUF];
static volatile int stop;
static atomic_long attempts, successes, flips, swaps;
static char in_dir[4096];

static void *flipper(void *arg) {
    (void)arg;
    while (!stop) {
        for (int i = 0; i < NBUF; i++) memcpy(buffers[i], out_names[i], lengths[i] + 1);
        for (int i = 0; i < NBUF; i++) memcpy(buffers[i], in_names[i], lengths[i] + 1);
        atomic_fetch_add(&flips, 1);
    }
    return NULL;
}

static void *swapper(void *arg) {
    (void)arg;
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/sw", in_dir);
    snprintf(b, sizeof b, "%s/sw_alt", in_dir);
    while (!stop) {
        if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) == 0)
            atomic_fetch_add(&swaps, 1);
    }
    return NULL;
}

static void count(long r) {
    atomic_fetch_add(&attempts, 1);
    if (r >= 0) atomic_fetch_add(&successes, 1);
}

static void *worker(void *arg) {
    long id = (long)arg;
    char sw[4200], ext[4200], tmp[4200], src[4200];
    snprintf(sw, sizeof sw, "%s/sw/f%ld", in_dir, id);
    snprintf(ext, sizeof ext, "%s/ext/e%ld", in_dir, id);
    while (!stop) {
        int fd = open(buffers[0], O_CREAT | O_WRONLY | O_TRUNC, 0644);
        count(fd);
        if (fd >= 0) { (void)!write(fd, "x", 1); close(fd); }
        fd = openat(AT_FDCWD, buffers[1], O_CREAT | O_RDWR, 0600);
        count(fd);
        if (fd >= 0) close(fd);
        count(mkdir(buffers[2], 0755));
        snprintf(src, sizeof src, "%s/src%ld", in_dir, id);
        fd = open(src, O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
        count(rename(src, buffers[3]));
        snprintf(tmp, sizeof tmp, "%s/lk%ld", in_dir, id);
        fd = open(tmp, O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
        count(link(tmp, buffers[4]));
        unlink(tmp);
        count(symlink("target", buffers[5]));
        count(chmod(buffers[0], 0600));
        count(truncate(buffers[1], 0));
        fd = open(sw, O_CREAT | O_WRONLY, 0644);
        count(fd);
        if (fd >= 0) close(fd);
        count(mkdir(sw, 0755));
        /* IN/ext is swapped with a symlink to OUT by a process outside */
        fd = open(ext, O_CREAT | O_WRONLY, 0644);
        count(fd);
        if (fd >= 0) close(fd);
        count(mkdir(ext, 0755));
        unlink(ext); rmdir(ext);
        /* clean up so creates keep happening inside */
        unlink(buffers[0]); unlink(buffers[1]); rmdir(buffers[2]);
        unlink(buffers[3]); unlink(buffers[4]); unlink(buffers[5]);
        unlink(sw); rmdir(sw);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: race IN OUT SECONDS\n"); return 2; }
    const char *names[NBUF] = {"open", "openat", "mkdir", "renamed", "linked", "symlinked"};
    if (strlen(argv[1]) != strlen(argv[2])) { fprintf(stderr, "IN and OUT must have the same length\n"); return 2; }
    snprintf(in_dir, sizeof in_dir, "%s", argv[1]);
    for (int i = 0; i < NBUF; i++) {
        snprintf(in_names[i], sizeof in_names[i], "%s/%s", argv[1], names[i]);
        snprintf(out_names[i], sizeof out_names[i], "%s/%s", argv[2], names[i]);
        lengths[i] = strlen(in_names[i]);
        memcpy(buffers[i], in_names[i], lengths[i] + 1);
    }
    int seconds = atoi(argv[3]);
    pthread_t f, s, w[3];
    pthread_create(&f, NULL, flipper, NULL);
    pthread_create(&s, NULL, swapper, NULL);
    for (long i = 0; i < 3; i++) pthread_create(&w[i], NULL, worker, (void *)i);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sleep(seconds);
    stop = 1;
    pthread_join(f, NULL);
    pthread_join(s, NULL);
    for (int i = 0; i < 3; i++) pthread_join(w[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("RACE attempts=%ld successes=%ld flips=%ld swaps=%ld seconds=%.1f\n",
           (long)attempts, (long)successes, (long)flips, (long)swaps,
           (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
