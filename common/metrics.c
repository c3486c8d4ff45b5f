/* metrics.c: the metric registry and its Prometheus text rendering (the listener that
 * serves it is metrics_http.c, which calls down into this file, never the reverse). */
#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"

#define METRICS_MAX 256

typedef enum { METRIC_COUNTER, METRIC_GAUGE } metric_kind;

struct nt_metric {
    char *name;               /* full name, labels included */
    size_t base_len;          /* length of the name before '{' */
    char *help;
    metric_kind kind;
    _Atomic int64_t value;
    nt_metric_fn fn;          /* gauge_fn, counter_fn: value read at scrape time */
    void *arg;
};

static nt_metric metrics[METRICS_MAX];
static _Atomic size_t metrics_count;
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

static nt_metric *metric_register(const char *name, const char *help, metric_kind kind,
                                  nt_metric_fn fn, void *arg)
{
    pthread_mutex_lock(&metrics_lock);
    size_t i = atomic_load(&metrics_count);
    for (size_t k = 0; k < i; k++)
        if (metrics[k].kind == kind && strcmp(metrics[k].name, name) == 0) {
            metrics[k].fn = fn;          /* a module created again: the same series */
            metrics[k].arg = arg;
            pthread_mutex_unlock(&metrics_lock);
            return &metrics[k];
        }
    if (i == METRICS_MAX) {
        nt_log(NT_LOG_ERROR, "metric registry full (%d) registering %s", METRICS_MAX, name);
        abort();
    }
    nt_metric *m = &metrics[i];
    m->name = nt_strdup(name);
    m->base_len = strcspn(name, "{");
    m->help = nt_strdup(help != NULL ? help : "");
    m->kind = kind;
    m->fn = fn;
    m->arg = arg;
    atomic_store(&m->value, 0);
    atomic_store(&metrics_count, i + 1);
    pthread_mutex_unlock(&metrics_lock);
    return m;
}

nt_metric *nt_metric_counter(const char *name, const char *help)
{
    return metric_register(name, help, METRIC_COUNTER, NULL, NULL);
}

nt_metric *nt_metric_gauge(const char *name, const char *help)
{
    return metric_register(name, help, METRIC_GAUGE, NULL, NULL);
}

nt_metric *nt_metric_gauge_fn(const char *name, const char *help, nt_metric_fn fn, void *arg)
{
    return metric_register(name, help, METRIC_GAUGE, fn, arg);
}

nt_metric *nt_metric_counter_fn(const char *name, const char *help, nt_metric_fn fn, void *arg)
{
    return metric_register(name, help, METRIC_COUNTER, fn, arg);
}

void nt_metric_add(nt_metric *m, int64_t delta)
{
    atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void nt_metric_set(nt_metric *m, int64_t value)
{
    atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

int64_t nt_metric_get(nt_metric *m)
{
    if (m->fn != NULL)
        return m->fn(m->arg);
    return atomic_load_explicit(&m->value, memory_order_relaxed);
}

/* ---- rendering ---- */

/* The texts below are built in unbounded nt_bufs (the registry and a response bound
 * them), so an append can only abort on out-of-memory: its status is not checked. */
#define put_fmt(b, ...) ((void)nt_buf_append_fmt((b), __VA_ARGS__))

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void put_help(nt_buf *b, const char *base, size_t base_len, const char *help,
                    const char *type)
{
    put_fmt(b, "# HELP %.*s ", (int)base_len, base);
    for (const char *h = help; *h; h++) {
        if (*h == '\\')
            put_fmt(b, "\\\\");
        else if (*h == '\n')
            put_fmt(b, "\\n");
        else
            put_fmt(b, "%c", *h);
    }
    put_fmt(b, "\n# TYPE %.*s %s\n", (int)base_len, base, type);
}

static bool same_base(const nt_metric *a, const nt_metric *b)
{
    return a->base_len == b->base_len && memcmp(a->name, b->name, a->base_len) == 0;
}

static int64_t resident_bytes(void)
{
    long long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lld %lld", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

char *nt_metrics_render(size_t *len)
{
    nt_buf b = NT_BUF_INIT(0);
    (void)nt_buf_reserve(&b, 4096);
    size_t n = atomic_load(&metrics_count);
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = same_base(&metrics[j], &metrics[i]);
        if (seen)
            continue;
        put_help(&b, metrics[i].name, metrics[i].base_len, metrics[i].help,
                metrics[i].kind == METRIC_COUNTER ? "counter" : "gauge");
        for (size_t j = i; j < n; j++)
            if (same_base(&metrics[j], &metrics[i]))
                put_fmt(&b, "%s %" PRId64 "\n", metrics[j].name, nt_metric_get(&metrics[j]));
    }

    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    put_help(&b, "process_resident_memory_bytes", 29, "Resident memory size in bytes.", "gauge");
    put_fmt(&b, "process_resident_memory_bytes %" PRId64 "\n", resident_bytes());
    put_help(&b, "process_cpu_seconds_total", 25, "Total user and system CPU time spent in seconds.",
            "counter");
    put_fmt(&b, "process_cpu_seconds_total %.6f\n", cpu);
    put_help(&b, "process_open_fds", 16, "Number of open file descriptors.", "gauge");
    put_fmt(&b, "process_open_fds %" PRId64 "\n", open_fds());
    put_help(&b, "natter_alloc_bytes", 18, "Bytes currently allocated through nt_malloc.", "gauge");
    put_fmt(&b, "natter_alloc_bytes %" PRIu64 "\n", nt_alloc_used());

    return nt_buf_detach(&b, len);
}
