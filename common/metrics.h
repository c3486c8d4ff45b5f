/* metrics.h: the registry of Prometheus counters and gauges and its text rendering. */
#ifndef NT_METRICS_H
#define NT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nt_metric nt_metric;
typedef int64_t (*nt_metric_fn)(void *arg);

/* Registers a metric (at start-up, loop thread). `name` may carry labels:
 * "natter_gateway_closed_total{reason=\"slow\"}"; HELP/TYPE are written once per
 * base name. The registry owns the metric for the life of the process: registering a
 * name again (a context created again in one process) returns the same metric, its
 * value kept and its fn and arg replaced. */
nt_metric *nt_metric_counter(const char *name, const char *help);
nt_metric *nt_metric_gauge(const char *name, const char *help);
/* A gauge whose value is fn(arg), read at scrape time on the loop thread. */
nt_metric *nt_metric_gauge_fn(const char *name, const char *help, nt_metric_fn fn, void *arg);
/* The same for a count that only grows (TYPE counter). */
nt_metric *nt_metric_counter_fn(const char *name, const char *help, nt_metric_fn fn, void *arg);
void nt_metric_add(nt_metric *m, int64_t delta);   /* atomic, any thread */
void nt_metric_set(nt_metric *m, int64_t value);   /* atomic, any thread */
int64_t nt_metric_get(nt_metric *m);

/* Renders the text exposition format, including process_resident_memory_bytes,
 * process_cpu_seconds_total and natter_alloc_bytes. nt_malloc'd; caller frees. */
char *nt_metrics_render(size_t *len);

/* The listener (nt_metrics_listen, nt_metrics_close) is metrics_http.h, included here
 * so that existing users of this header keep compiling. */
#include "metrics_http.h"

#endif
