/* metrics_http.c: the small HTTP listener on the loop for /metrics, /healthz and /readyz,
 * with its idle timeout and connection cap; it reads the registry (metrics.c). */
#include "metrics_http.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "metrics.h"

#define HTTP_REQ_MAX 8192

/* Each connection serves one request (Connection: close). A connection must have
 * delivered its whole request within idle_ms of being accepted, and its answer must
 * be written within idle_ms of the request; one timer, armed for the earliest
 * deadline, closes the ones that did not. Over max_conns open connections a new
 * one is answered 503 and closed. */

#define HTTP_IDLE_MS_DEFAULT 5000
#define HTTP_MAX_CONNS_DEFAULT 64
#define HTTP_REFUSED_LOG_MS 1000

typedef struct http_conn {
    uv_tcp_t tcp;
    uv_write_t wreq;
    nt_list node;                    /* in http.conns, for nt_metrics_close and the sweep */
    char *resp;                      /* response being written; nt_malloc'd */
    uint64_t deadline_ms;            /* loop time by which the request (or answer) is complete */
    size_t len;                      /* request bytes in buf */
    bool responded;
    char buf[HTTP_REQ_MAX];
} http_conn;

static struct {
    uv_tcp_t server;
    uv_timer_t idle_timer;           /* fires at the earliest deadline; unref'd */
    uv_tcp_t refuse;                 /* the connection over the cap being refused */
    bool open;                       /* server handle initialised and not yet closed */
    bool timer_open;                 /* idle_timer initialised and not yet closed */
    bool refusing;                   /* refuse is closing: the next refusal waits for it */
    bool accept_waiting;             /* a connection is queued on server, not accepted yet */
    nt_ready_fn ready;
    void *ready_arg;
    uint64_t idle_ms;                /* NATTER_METRICS_IDLE_MS */
    size_t max_conns;                /* NATTER_METRICS_MAX_CONNS */
    size_t nconns;                   /* accepted and not yet freed */
    nt_metric *refused;              /* <prefix>_metrics_refused_total */
    nt_log_limit refused_log;
    nt_list conns;                   /* http_conn.node: accepted and not yet freed */
} http = { .conns = NT_LIST_INIT(http.conns) };

static void http_accept_next(void);

static void http_conn_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    nt_list_remove(&c->node);
    nt_free(c->resp);
    nt_free(c);
    http.nconns--;
    if (http.accept_waiting)
        http_accept_next();
}

static void http_conn_close(http_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, http_conn_closed);
}

/* Closes the connections past their deadline and re-arms for the next one. Deadlines
 * only move later, so a timer armed for an older one fires early and just re-arms. */
static void http_idle_sweep(uv_timer_t *t)
{
    uint64_t now = uv_now(t->loop), next = 0;
    nt_list *n;
    nt_list_foreach(n, &http.conns) {
        http_conn *c = nt_list_entry(n, http_conn, node);
        if (uv_is_closing((uv_handle_t *)&c->tcp))
            continue;
        if (c->deadline_ms <= now)
            http_conn_close(c);
        else if (next == 0 || c->deadline_ms < next)
            next = c->deadline_ms;
    }
    if (next != 0)
        uv_timer_start(t, http_idle_sweep, next - now, 0);
}

static void http_written(uv_write_t *req, int status)
{
    http_conn_close(req->data);
}

static void http_respond(http_conn *c, const char *status, const char *ctype,
                         const char *body, size_t body_len, bool head_only)
{
    nt_buf b = NT_BUF_INIT(0);                /* unbounded: only out-of-memory (abort) stops it */
    (void)nt_buf_reserve(&b, 256 + body_len);
    (void)nt_buf_append_fmt(&b, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n", status, ctype, body_len);
    if (!head_only)
        (void)nt_buf_append(&b, body, body_len);
    size_t resp_len;
    c->responded = true;
    c->resp = nt_buf_detach(&b, &resp_len);
    c->deadline_ms = uv_now(c->tcp.loop) + http.idle_ms;   /* a reader that never reads */
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_buf_t ub = uv_buf_init(c->resp, (unsigned)resp_len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, http_written) != 0)
        http_conn_close(c);
}

static void http_text(http_conn *c, const char *status, const char *body, bool head_only)
{
    http_respond(c, status, "text/plain; charset=utf-8", body, strlen(body), head_only);
}

/* Parses the request line in c->buf and answers it. */
static void http_handle(http_conn *c)
{
    char method[16], target[1024];
    int end = 0;
    if (sscanf(c->buf, "%15[A-Z] %1023[^ \r\n] HTTP/%n", method, target, &end) != 2 || end == 0) {
        http_text(c, "400 Bad Request", "bad request\n", false);
        return;
    }
    target[strcspn(target, "?")] = '\0';
    bool head = strcmp(method, "HEAD") == 0;
    bool known = strcmp(target, "/metrics") == 0 || strcmp(target, "/healthz") == 0 ||
                 strcmp(target, "/readyz") == 0;
    if (!known) {
        http_text(c, "404 Not Found", "not found\n", head);
    } else if (!head && strcmp(method, "GET") != 0) {
        http_text(c, "405 Method Not Allowed", "method not allowed\n", false);
    } else if (strcmp(target, "/metrics") == 0) {
        size_t len;
        char *body = nt_metrics_render(&len);
        http_respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head);
        nt_free(body);
    } else if (strcmp(target, "/healthz") == 0) {
        http_text(c, "200 OK", "ok\n", head);
    } else if (http.ready == NULL || http.ready(http.ready_arg)) {
        http_text(c, "200 OK", "ready\n", head);
    } else {
        http_text(c, "503 Service Unavailable", "not ready\n", head);
    }
}

static void http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn *c = h->data;
    /* keep one byte for the NUL http_handle adds */
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(HTTP_REQ_MAX - 1 - c->len));
}

static void http_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = s->data;
    if (c->responded)
        return;
    if (nread < 0) {
        http_conn_close(c);
        return;
    }
    size_t from = c->len >= 3 ? c->len - 3 : 0;
    c->len += (size_t)nread;
    c->buf[c->len] = '\0';
    if (strstr(c->buf + from, "\r\n\r\n") != NULL)
        http_handle(c);
    else if (c->len >= HTTP_REQ_MAX - 1)
        http_text(c, "431 Request Header Fields Too Large", "request too large\n", false);
}

static void http_refuse_closed(uv_handle_t *h)
{
    http.refusing = false;
    if (http.accept_waiting)
        http_accept_next();
}

/* Over the cap: no http_conn is allocated; the connection goes into the one static
 * `refuse` handle, gets its 503 if the socket takes it at once, and is closed. */
static void http_refuse(void)
{
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 17\r\nConnection: close\r\n\r\n"
                               "too many clients\n";
    uv_loop_t *loop = http.server.loop;
    uv_tcp_init(loop, &http.refuse);
    http.refusing = true;
    if (uv_accept((uv_stream_t *)&http.server, (uv_stream_t *)&http.refuse) == 0) {
        uv_buf_t b = uv_buf_init((char *)resp, sizeof(resp) - 1);
        (void)uv_try_write((uv_stream_t *)&http.refuse, &b, 1);
    }
    uv_close((uv_handle_t *)&http.refuse, http_refuse_closed);
    nt_metric_add(http.refused, 1);
    uint64_t n;
    if (nt_log_limit_due(&http.refused_log, uv_now(loop), HTTP_REFUSED_LOG_MS, &n))
        nt_warn("metrics listener: refused %" PRIu64 " connection(s): %zu open, limit %zu "
                "(NATTER_METRICS_MAX_CONNS)", n, http.nconns, http.max_conns);
}

/* Takes the connection queued on the server: into a new http_conn under the cap,
 * else into `refuse`. While `refuse` is still closing the connection stays queued
 * (libuv stops reading the listener until uv_accept), and is taken when `refuse`
 * or a connection has been closed. */
static void http_accept_next(void)
{
    http.accept_waiting = false;
    if (!http.open || uv_is_closing((uv_handle_t *)&http.server))
        return;
    if (http.nconns >= http.max_conns) {
        if (http.refusing)
            http.accept_waiting = true;
        else
            http_refuse();
        return;
    }
    uv_loop_t *loop = http.server.loop;
    http_conn *c = nt_calloc(1, sizeof(*c));
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    nt_list_insert_head(&http.conns, &c->node);
    http.nconns++;
    c->deadline_ms = uv_now(loop) + http.idle_ms;
    if (!uv_is_active((uv_handle_t *)&http.idle_timer))
        uv_timer_start(&http.idle_timer, http_idle_sweep, http.idle_ms, 0);
    if (uv_accept((uv_stream_t *)&http.server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, http_alloc, http_read) != 0)
        http_conn_close(c);
}

static void http_accept(uv_stream_t *server, int status)
{
    if (status < 0) {
        nt_log(NT_LOG_WARN, "metrics listener: accept failed: %s", uv_strerror(status));
        return;
    }
    http_accept_next();
}

static void http_server_closed(uv_handle_t *h)
{
    http.open = false;
}

static void http_timer_closed(uv_handle_t *h)
{
    http.timer_open = false;
}

/* "<prefix>_metrics_refused_total" with the prefix of the process's own metrics,
 * taken from its log name: natter-gateway -> natter_gateway, persister -> natter_persister. */
static void refused_metric_name(char *buf, size_t len)
{
    char proc[64];
    const char *p = nt_log_process();
    if (strncmp(p, "natter", 6) == 0)
        p += 6;
    p += strspn(p, "-_");
    size_t n = 0;
    for (; p[n] != '\0' && n < sizeof(proc) - 1; n++)
        proc[n] = (p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') ? p[n] : '_';
    proc[n] = '\0';
    if (n == 0)
        snprintf(buf, len, "natter_metrics_listener_refused_total");
    else
        snprintf(buf, len, "natter_%s_metrics_refused_total", proc);
}

nt_status nt_metrics_listen(uv_loop_t *loop, const char *hostport, nt_ready_fn ready, void *arg)
{
    char host[256];
    int port;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    if (http.open || http.timer_open || http.refusing)
        return NT_EINVAL;
    http.idle_ms = (uint64_t)nt_config_int("NATTER_METRICS_IDLE_MS", HTTP_IDLE_MS_DEFAULT, 10,
                                           3600000);
    http.max_conns = (size_t)nt_config_int("NATTER_METRICS_MAX_CONNS", HTTP_MAX_CONNS_DEFAULT,
                                           1, 4096);
    if (nt_config_split_hostport(hostport, host, sizeof(host), &port) != 0)
        return NT_EINVAL;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (uv_ip4_addr(host, port, &addr.in4) != 0 && uv_ip6_addr(host, port, &addr.in6) != 0)
        return NT_EINVAL;
    if (http.refused == NULL) {
        char name[128];
        refused_metric_name(name, sizeof(name));
        http.refused = nt_metric_counter(name, "Metrics listener connections refused "
                                               "over NATTER_METRICS_MAX_CONNS");
    }

    uv_tcp_init(loop, &http.server);
    http.open = true;
    http.ready = ready;
    http.ready_arg = arg;
    int rc = uv_tcp_bind(&http.server, &addr.sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&http.server, 64, http_accept);
    if (rc != 0) {
        nt_log(NT_LOG_ERROR, "metrics listener: cannot listen on %s: %s", hostport,
               uv_strerror(rc));
        uv_close((uv_handle_t *)&http.server, http_server_closed);
        return NT_EIO;
    }
    uv_timer_init(loop, &http.idle_timer);
    uv_unref((uv_handle_t *)&http.idle_timer);
    http.timer_open = true;
    return NT_OK;
}

void nt_metrics_close(void)
{
    if (http.open && !uv_is_closing((uv_handle_t *)&http.server))
        uv_close((uv_handle_t *)&http.server, http_server_closed);
    if (http.timer_open && !uv_is_closing((uv_handle_t *)&http.idle_timer))
        uv_close((uv_handle_t *)&http.idle_timer, http_timer_closed);
    http.accept_waiting = false;
    nt_list *n;
    nt_list_foreach(n, &http.conns)
        http_conn_close(nt_list_entry(n, http_conn, node));
}
