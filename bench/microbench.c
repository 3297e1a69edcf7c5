/* peninsula bench: per-op cost of opens, timed inside the process.
 *
 * usage: microbench DIR N [PHASES]
 *
 * PHASES is a comma-separated subset of the phases below (default: all, in
 * this order); without "create", files cNNNNN must already exist in DIR.
 *
 * Phases (each N operations, after a short warm-up), all inside DIR:
 *   create     open("cNNNNN", O_CREAT|O_WRONLY) + close, a new file each time
 *   write      open("cNNNNN", O_CREAT|O_WRONLY) + close on those existing files
 *   write_abs  the same with an absolute path (DIR/cNNNNN)
 *   read       open("cNNNNN", O_RDONLY) + close
 * Prints "phase ns_per_op" lines. Write-intent opens are what peninsula's
 * filter sends to its supervisor; read-only opens never leave the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "microbench: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void open_close(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open", path);
    close(fd);
}

static double phase(const char *dir, const char *prefix, long n, int flags, int absolute) {
    char path[PATH_MAX];
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (absolute)
            snprintf(path, sizeof path, "%s/%s%05ld", dir, prefix, i);
        else
            snprintf(path, sizeof path, "%s%05ld", prefix, i);
        open_close(path, flags);
    }
    return (now_ns() - t0) / n;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: microbench DIR N [create,write,write_abs,read]\n");
        return 2;
    }
    char dir[PATH_MAX];
    if (!realpath(argv[1], dir))
        die("realpath", argv[1]);
    long n = atol(argv[2]);
    if (n <= 0 || n > 99999) {
        fprintf(stderr, "microbench: N must be 1..99999\n");
        return 2;
    }
    if (chdir(dir) < 0)
        die("chdir", dir);
    const char *phases = argc == 4 ? argv[3] : "create,write,write_abs,read";
    char list[256];
    snprintf(list, sizeof list, ",%s,", phases);
    long warm = n / 20 + 1;
    phase(dir, "w", warm, O_CREAT | O_WRONLY, 0); /* warm-up: creates */
    phase(dir, "w", warm, O_CREAT | O_WRONLY, 0); /* warm-up: reopens */
    if (strstr(list, ",create,"))
        printf("create %.1f\n", phase(dir, "c", n, O_CREAT | O_WRONLY, 0));
    if (strstr(list, ",write,"))
        printf("write %.1f\n", phase(dir, "c", n, O_CREAT | O_WRONLY, 0));
    if (strstr(list, ",write_abs,"))
        printf("write_abs %.1f\n", phase(dir, "c", n, O_CREAT | O_WRONLY, 1));
    if (strstr(list, ",read,"))
        printf("read %.1f\n", phase(dir, "c", n, O_RDONLY, 0));
    return 0;
}
