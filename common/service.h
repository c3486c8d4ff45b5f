/* service.h: the process cycle written once (nginx's worker cycle): logging, the loop, the
 * bus, the metrics listener, signals, and a phased drain over the process's modules. */
#ifndef NT_SERVICE_H
#define NT_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "metrics_http.h"
#include "status.h"

typedef struct nt_service nt_service;

/* One part of a process. Every callback runs on the loop thread and gets `arg`; any may be
 * NULL. The cycle:
 *   boot:    start, in list order, before the loop runs;
 *   signal:  (first SIGINT or SIGTERM; later ones are ignored) stop_intake, in list order;
 *   drain:   the loop runs until every pending() is 0 or drain_ms has passed;
 *   destroy: destroy, in reverse list order; then flush_ms more of the loop (and every
 *            nt_service_hold released) before the bus and the listener are closed.
 * So a module that others call into, or whose callbacks reach into others, is listed
 * where reverse order destroys it at the right moment: after its users when they call it,
 * before them when its destroy fails work back into them. */
typedef struct nt_module {
    const char *name;             /* for log lines and the default start error */
    /* NT_OK, or a failure with a one-line reason in err (errlen bytes): the service prints
     * it, "cannot start <name>: <status text>" when err is left empty, and exits 2. */
    nt_status (*start)(nt_service *svc, void *arg, char *err, size_t errlen);
    void (*stop_intake)(nt_service *svc, void *arg);   /* take no new work */
    size_t (*pending)(void *arg);                      /* work still in flight */
    /* Frees the module. Its asynchronous rest, if any, holds the service (nt_service_hold). */
    void (*destroy)(nt_service *svc, void *arg);
    void *arg;
} nt_module;

typedef struct nt_service_opts {
    nt_bus_opts bus;              /* bus.url NULL: no bus (unit tests) */
    const char *metrics_prefix;   /* the bus's metrics: "natter_router"; NULL: not registered */
    const char *metrics_listen;   /* NATTER_METRICS_LISTEN "host:port"; NULL: no listener */
    /* /readyz: not stopping, the bus connected, and ready(ready_arg) when not NULL */
    nt_ready_fn ready;
    void *ready_arg;
    uint64_t drain_ms;            /* longest wait for pending work; 0: 2000 */
    uint64_t drain_tick_ms;       /* how often pending() is asked while draining; 0: 20 */
    uint64_t flush_ms;            /* loop time for last replies before the bus closes; 0: 100 */
} nt_service_opts;

/* First call of main: sets the log name (nt_log_init; a bad NATTER_LOG_LEVEL prints one
 * line and exits 2), routes jansson's allocations through nt_malloc/nt_free (so they count
 * in natter_alloc_bytes: free what json_dumps returns with nt_free), ignores SIGPIPE and
 * initialises the loop. Returns the service (owned by it until nt_service_run returns). */
nt_service *nt_service_init(const char *process);

/* The loop, for everything the process creates before and during start. */
uv_loop_t *nt_service_loop(nt_service *svc);
/* The bus: NULL before nt_service_start created it, after it closed, or without one. */
nt_bus *nt_service_bus(nt_service *svc);
/* True from the first signal on (or nt_service_stop). */
bool nt_service_stopping(const nt_service *svc);
/* The signal that started the drain; 0 before, or after nt_service_stop. */
int nt_service_signal(const nt_service *svc);

/* Boot, before the loop runs: creates the bus from opts->bus ("cannot reach NATS at <url>
 * (NATTER_NATS_URL): <why>" and exit 2 on failure) and registers its metrics, listens on
 * opts->metrics_listen ("cannot listen on NATTER_METRICS_LISTEN=<addr>: <why>", exit 2),
 * then starts the n modules in order (a failure exits 2, see nt_module). `opts` is copied;
 * `modules` is kept and must outlive the service. Once only. */
void nt_service_start(nt_service *svc, const nt_service_opts *opts, const nt_module *modules,
                      size_t n);

/* Runs the loop through the whole cycle (nt_module) and returns the exit code, 0. Frees
 * the service and closes the loop (a warning when handles are left open). */
int nt_service_run(nt_service *svc);

/* Starts the drain as a signal would (signal number 0): for a fatal condition found on
 * the loop, or a test. Idempotent. Loop thread. */
void nt_service_stop(nt_service *svc);

/* Asks pending() now instead of at the next tick, for a module whose work just settled.
 * Does nothing unless draining. Loop thread. */
void nt_service_drain_check(nt_service *svc);

/* A destroy whose module finishes later (a thread to join, a last request) holds the
 * service and releases it when done; the bus closes once every hold is released, or
 * drain_ms after the flush with a warning naming how many are left. Loop thread. */
void nt_service_hold(nt_service *svc);
void nt_service_release(nt_service *svc);

#endif
