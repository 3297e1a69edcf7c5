/* peninsula bench: what one trapped call costs, by kind and by the work between calls.
 *
 * usage: spacing DIR N GAP_US[,GAP_US...]
 *
 * For each gap and each kind, N calls, each followed by GAP_US microseconds
 * of busy work (a spin on the clock, no syscall): only the call itself is
 * timed. A workload that computes between its trapped calls (compileall)
 * leaves the supervisor idle long enough to sleep; one that issues them back
 * to back (tar) finds it awake. Kinds, all inside DIR:
 *   write   open("w", O_WRONLY) + close of an existing file
 *   mkdir   mkdir("d") of an existing directory (EEXIST), as os.makedirs(exist_ok=True) does
 *   rename  rename("r0", "r1"), then back
 *   link    link("l0", "l1") + unlink("l1"), git's loose-object pair
 * Prints "kind gap_us ns_per_call" lines (rename and link: per syscall).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "spacing: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static void spin(double ns) {
    double until = now_ns() + ns;
    while (now_ns() < until)
        ;
}

static int call(const char *kind, int i) {
    if (strcmp(kind, "write") == 0) {
        int fd = open("w", O_WRONLY | O_CLOEXEC);
        check(fd >= 0, "open w");
        close(fd);
        return 1;
    }
    if (strcmp(kind, "mkdir") == 0) {
        check(mkdir("d", 0755) != 0 && errno == EEXIST, "mkdir d (expected EEXIST)");
        return 1;
    }
    if (strcmp(kind, "rename") == 0) {
        check(rename(i % 2 ? "r1" : "r0", i % 2 ? "r0" : "r1") == 0, "rename");
        return 1;
    }
    check(link("l0", "l1") == 0, "link");
    check(unlink("l1") == 0, "unlink");
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: spacing DIR N GAP_US[,GAP_US...]\n");
        return 2;
    }
    check(chdir(argv[1]) == 0, "chdir");
    long n = atol(argv[2]);
    int fd = open("w", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    check(fd >= 0, "create w");
    close(fd);
    check(mkdir("d", 0755) == 0 || errno == EEXIST, "mkdir d");
    fd = open("r0", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    check(fd >= 0, "create r0");
    close(fd);
    fd = open("l0", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    check(fd >= 0, "create l0");
    close(fd);
    const char *kinds[] = {"write", "mkdir", "rename", "link"};
    char *gaps = strdup(argv[3]);
    for (char *gap = strtok(gaps, ","); gap; gap = strtok(NULL, ",")) {
        double gap_ns = atof(gap) * 1000.0;
        for (int k = 0; k < 4; k++) {
            for (int i = 0; i < 50; i++)  /* warm-up; leaves rename's file at r0 */
                call(kinds[k], i);
            double spent = 0;
            int calls = 0;
            for (long i = 0; i < n; i++) {
                double t0 = now_ns();
                calls += call(kinds[k], (int)i);
                spent += now_ns() - t0;
                spin(gap_ns);
            }
            if (n % 2 && strcmp(kinds[k], "rename") == 0)
                call(kinds[k], 1);
            printf("%s %s %.0f\n", kinds[k], gap, spent / calls);
        }
    }
    return 0;
}
