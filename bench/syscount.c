/* System calls made by the server processes over the measured window: one
 * perf_event_open counter of the raw_syscalls:sys_enter tracepoint per thread of
 * each --pid process (a counter follows one thread; threads started after the
 * counters are opened are not counted). Needs tracefs and, with
 * perf_event_paranoid above 1, root; without them every count is -1 and
 * nb_syscount_error() says why. */
#include "syscount.h"

#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct nb_syscount {
    int *fds;
    int nfds;
};

static char sc_error[160];

const char *nb_syscount_error(void) { return sc_error[0] ? sc_error : NULL; }

static long tracepoint_id(void)
{
    static const char *paths[] = {
        "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
        "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        FILE *f = fopen(paths[i], "r");
        long id = -1;
        if (!f) continue;
        if (fscanf(f, "%ld", &id) != 1) id = -1;
        fclose(f);
        if (id >= 0) return id;
    }
    snprintf(sc_error, sizeof sc_error, "no raw_syscalls:sys_enter tracepoint (tracefs not mounted?)");
    return -1;
}

nb_syscount *nb_syscount_open(int pid)
{
    static long id = -2;
    if (id == -2) id = tracepoint_id();
    if (id < 0) return NULL;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) return NULL;
    nb_syscount *sc = calloc(1, sizeof *sc);
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name);
        if (tid <= 0) continue;
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_TRACEPOINT;
        a.config = (unsigned long long)id;
        int fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0) {
            if (errno == ESRCH) continue;      /* the thread ended meanwhile */
            snprintf(sc_error, sizeof sc_error, "perf_event_open(raw_syscalls:sys_enter, thread %d): %s", tid,
                     strerror(errno));
            break;
        }
        if (sc->nfds == cap) {
            cap = cap ? 2 * cap : 16;
            sc->fds = realloc(sc->fds, (size_t)cap * sizeof *sc->fds);
        }
        sc->fds[sc->nfds++] = fd;
    }
    closedir(d);
    if (sc_error[0]) {
        nb_syscount_close(sc);
        return NULL;
    }
    return sc;
}

long long nb_syscount_read(const nb_syscount *sc)
{
    if (!sc) return -1;
    long long sum = 0;
    for (int i = 0; i < sc->nfds; i++) {
        unsigned long long v = 0;
        if (read(sc->fds[i], &v, sizeof v) == (ssize_t)sizeof v) sum += (long long)v;
    }
    return sum;
}

void nb_syscount_close(nb_syscount *sc)
{
    if (!sc) return;
    for (int i = 0; i < sc->nfds; i++) close(sc->fds[i]);
    free(sc->fds);
    free(sc);
}
