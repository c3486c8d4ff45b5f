/* metrics.h: Prometheus counters/gauges and the small HTTP listener that serves
 * /metrics, /healthz and /readyz on NATTER_METRICS_LISTEN for every process. */
#ifndef NT_METRICS_H
#define NT_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "status.h"

typedef struct nt_metric nt_metric;
typedef int64_t (*nt_metric_fn)(void *arg);

/* Registers a metric (at start-up, loop thread). `name` may carry labels:
 * "natter_gateway_closed_total{reason=\"slow\"}"; HELP/TYPE are written once per
 * base name. The registry owns the metric for the life of the process. */
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

typedef bool (*nt_ready_fn)(void *arg);
/* Listens on "host:port" and serves GET /metrics, /healthz (200 "ok") and /readyz
 * (200 when ready(arg), else 503), one request per connection. Reads
 * NATTER_METRICS_IDLE_MS (a connection has that long to send its request, and its
 * answer that long to be written, else it is closed) and NATTER_METRICS_MAX_CONNS
 * (over it a new connection gets 503 and is closed, counted in
 * natter_<process>_metrics_refused_total, <process> from nt_log_init's name); an
 * invalid one exits 2 (nt_config_int). Loop thread, once (until nt_metrics_close).
 * NT_EINVAL for a bad address, NT_EIO when bind fails. */
nt_status nt_metrics_listen(uv_loop_t *loop, const char *hostport, nt_ready_fn ready, void *arg);
/* Closes the listener, its timer and its connections; each connection is freed
 * exactly once in its close callback (run the loop afterwards). */
void nt_metrics_close(void);

#endif
