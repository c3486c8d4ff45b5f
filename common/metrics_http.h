/* metrics_http.h: the HTTP listener that serves /metrics, /healthz and /readyz on
 * NATTER_METRICS_LISTEN for every process. */
#ifndef NT_METRICS_HTTP_H
#define NT_METRICS_HTTP_H

#include <stdbool.h>
#include <uv.h>

#include "status.h"

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
