/* conn.c: connection registry, send queues of shared buffers, closing, keepalive and the
 * auth and token deadlines (what a deadline means to the client is the session's hook). */
#include "conn.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "alloc.h"
#include "compat_lws.h"
#include "gw.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "util.h"

#define GW_CLOSE_SENT 0x8000        /* in close_code: the close frame is out (close codes < 5000) */

_Static_assert(sizeof(gw_conn) <= 120, "gw_conn must stay within a 128-byte malloc chunk");

gw_buf *gw_buf_create(const char *payload, size_t len)
{
    gw_buf *b = nt_malloc(sizeof *b + LWS_PRE + len);
    b->refs = 1;
    b->len = (uint32_t)len;
    memcpy(b->data + LWS_PRE, payload, len);
    return b;
}

void gw_buf_retain(gw_buf *b) { b->refs++; }

void gw_buf_release(gw_buf *b)
{
    if (b && --b->refs == 0)
        nt_free(b);
}

const unsigned char *gw_buf_payload(const gw_buf *b) { return b->data + LWS_PRE; }

static void queue_drop(gw_conn *c)
{
    uint32_t mask = (1u << c->q_shift) - 1;
    for (uint32_t i = 0; i < c->q_len; i++)
        gw_buf_release(c->q[(c->q_first + i) & mask]);
    nt_free(c->q);
    c->q = NULL;
    c->q_first = c->q_len = 0;
    c->q_shift = 0;
    c->lazy_only = 0;
    nt_metric_add(gw->m.bytes_queued, -(int64_t)c->q_bytes);
    c->q_bytes = 0;
}

/* ---- end-of-turn flush ----
 * A frame queued to an idle connection used to ask lws for WRITEABLE: an epoll_ctl to
 * turn POLLOUT on, a wake-up, the write, an epoll_ctl to turn it off, per connection
 * per burst. Instead the connection joins flushq, and after the loop turn's I/O
 * callbacks (uv_check) its frames go out in one send unless lws still holds part
 * of an earlier one; only such a socket (or a close, or a ping) waits for WRITEABLE.
 * flushq holds each connection at most once (flush_pending), so it is bounded by the
 * connection count. */
typedef struct conn_list {       /* connections, each at most once (a flag on it says so) */
    gw_conn **v;
    size_t len, cap;
} conn_list;

static void conn_list_add(conn_list *l, gw_conn *c)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = nt_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->len++] = c;
}

/* A destroyed connection's slot: skipped by whoever walks the list. */
static void conn_list_forget(conn_list *l, const gw_conn *c)
{
    for (size_t i = 0; i < l->len; i++)
        if (l->v[i] == c)
            l->v[i] = NULL;
}

static void conn_list_free(conn_list *l)
{
    nt_free(l->v);
    *l = (conn_list){ 0 };
}

/* This module's state (gw->conns), from gw_conn_init until its handles are closed. */
typedef struct gw_conns {
    nt_map conns;                   /* by id */
    uint64_t next_id;
    nt_list auth_fifo;              /* unauthenticated, deadline ascending */
    size_t sweep_slot;              /* keepalive: next slot of `conns` to visit */
    gw_conn_hooks hooks;            /* the session's part in the deadlines (gw_conn_init) */
    conn_list flushq;               /* written after this loop turn (flush_check) */
    conn_list lazyq;                /* written when lazy_timer fires */
    uv_check_t flush_check;
    uv_timer_t lazy_timer;
    int open_handles;               /* freed when the last one is closed */
} gw_conns;

gw_conn *gw_conn_create(struct lws *wsi)
{
    gw_conns *s = gw->conns;
    gw_conn *c = nt_calloc(1, sizeof *c);
    nt_list_init(&c->link);
    c->wsi = wsi;
    c->rx_s = gw_conn_clock_s();
    snprintf(c->id, sizeof c->id, "%016llx", (unsigned long long)s->next_id++);
    nt_map_put(&s->conns, c->id, c);
    nt_metric_add(gw->m.connections, 1);
    return c;
}

static void flush_later(gw_conn *c)
{
    if (c->flush_pending)
        return;
    conn_list_add(&gw->conns->flushq, c);
    c->flush_pending = 1;
}

/* A write for c soon: after this loop turn, or at WRITEABLE if lws still holds part
 * of its last send. */
static void write_soon(gw_conn *c)
{
    if (c->congested)
        lws_callback_on_writable(c->wsi);
    else
        flush_later(c);
}

/* ---- frames that may wait ----
 * An unread-count update is already up to NATTER_UNREAD_FLUSH_MS late: queued lazily
 * it asks for no send() of its own and goes out with the connection's next frame, or
 * when the lazy timer fires (NATTER_LAZY_FLUSH_MS after the first such frame of a
 * round). In the chat mix every user gets one a second and a message every 200 ms, so
 * most ride along. lazyq, like flushq, holds each connection at most once. */
static void on_lazy(uv_timer_t *t)
{
    conn_list *lazyq = &((gw_conns *)t->data)->lazyq;
    for (size_t i = 0; i < lazyq->len; i++) {
        gw_conn *c = lazyq->v[i];
        if (!c)
            continue;                  /* destroyed meanwhile */
        c->lazy_listed = 0;
        if (c->lazy_only && c->q_len && !c->held)
            write_soon(c);
        c->lazy_only = 0;
    }
    lazyq->len = 0;
}

static void lazy_later(gw_conn *c)
{
    c->lazy_only = 1;
    if (c->lazy_listed)
        return;
    gw_conns *s = gw->conns;
    if (s->lazyq.len == 0)
        uv_timer_start(&s->lazy_timer, on_lazy, gw->cfg.lazy_flush_ms, 0);
    conn_list_add(&s->lazyq, c);
    c->lazy_listed = 1;
}

static void on_flush(uv_check_t *h)
{
    conn_list *flushq = &((gw_conns *)h->data)->flushq;
    for (size_t i = 0; i < flushq->len; i++) {
        gw_conn *c = flushq->v[i];
        if (!c)
            continue;                  /* destroyed meanwhile */
        c->flush_pending = 0;
        if (!c->q_len || c->held)
            continue;
        /* lws_send_pipe_choked() would poll(2) every socket: a send the kernel does
         * not take whole is left over in lws's buffer, and that is the sign */
        if (c->close_code || c->ping_due || lws_partial_buffered(c->wsi))
            lws_callback_on_writable(c->wsi);
        else if (gw_conn_writeable(c) < 0)
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    flushq->len = 0;                   /* the capacity stays: at most one slot per connection */
}

void gw_conn_init(gw_ctx *ctx, const gw_conn_hooks *h)
{
    gw_conns *s = nt_calloc(1, sizeof *s);
    s->hooks = *h;
    nt_list_init(&s->auth_fifo);
    if (getrandom(&s->next_id, sizeof s->next_id, 0) != sizeof s->next_id)
        s->next_id = (uint64_t)uv_hrtime();
    uv_check_init(ctx->loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, on_flush);
    uv_unref((uv_handle_t *)&s->flush_check);
    uv_timer_init(ctx->loop, &s->lazy_timer);
    s->lazy_timer.data = s;
    uv_unref((uv_handle_t *)&s->lazy_timer);
    s->open_handles = 2;
    ctx->conns = s;
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_conns *s = h->data;
    if (--s->open_handles == 0)
        nt_free(s);
}

void gw_conn_stop(gw_ctx *ctx)
{
    gw_conns *s = ctx->conns;
    if (!s)
        return;
    ctx->conns = NULL;
    uv_check_stop(&s->flush_check);
    uv_close((uv_handle_t *)&s->flush_check, on_handle_closed);
    conn_list_free(&s->flushq);
    uv_timer_stop(&s->lazy_timer);
    uv_close((uv_handle_t *)&s->lazy_timer, on_handle_closed);
    conn_list_free(&s->lazyq);
    nt_map_free(&s->conns);
}

void gw_conn_destroy(gw_conn *c)
{
    gw_conns *s = gw->conns;
    if (c->flush_pending)
        conn_list_forget(&s->flushq, c);
    if (c->lazy_listed)
        conn_list_forget(&s->lazyq, c);
    gw_conn_auth_untrack(c);
    queue_drop(c);
    nt_free(c->rx);
    nt_map_del(&s->conns, c->id);
    nt_metric_add(gw->m.connections, -1);
    nt_free(c);
}

/* NULL once the module is stopped: a late reply finds no connection. */
gw_conn *gw_conn_find(const char *id)
{
    return gw && gw->conns ? nt_map_get(&gw->conns->conns, id) : NULL;
}

size_t gw_conn_count(void) { return gw && gw->conns ? gw->conns->conns.count : 0; }

void gw_conn_foreach(void (*fn)(gw_conn *c, void *arg), void *arg)
{
    nt_map_entry *e;
    for (size_t i = 0; (e = nt_map_next(&gw->conns->conns, &i));)
        fn(e->val, arg);
}

static const char *close_text(const gw_conn *c)
{
    switch (c->close_code & ~GW_CLOSE_SENT) {
    case 1001: return c->ping_timeout ? "ping timeout" : "going away";
    case 1003: return "binary frames are not supported";
    case 1007: return "invalid UTF-8";
    case 1008: return "slow consumer";
    case 1009: return "frame too large";
    case 4001: return c->exp_s && nt_now_ms() / 1000 >= c->exp_s ? "token expired" : "unauthorized";
    case 4003: return "disconnected by the server";
    case 4029: return "rate limited too often";
    default: return "";
    }
}

/* After the close frame: half-close and wait for the peer to hang up (frames it
 * still sends are dropped unread by server.c), as RFC 6455 asks. Closing at once
 * would reset a socket holding bytes we never read, and a peer that flooded us into
 * this close would lose the close frame and see 1006 instead of the code. The
 * timeout set by gw_conn_close ends a peer that never hangs up. */
static int linger(gw_conn *c)
{
    int fd = lws_get_socket_fd(c->wsi);
    if (lws_partial_buffered(c->wsi) || fd < 0 || shutdown(fd, SHUT_WR) != 0)
        return -1;
    c->close_code |= GW_CLOSE_SENT;
    return 0;
}

void gw_conn_close(gw_conn *c, uint16_t code)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->held = 0;                       /* what was held goes out before the close */
    lws_callback_on_writable(c->wsi);
    /* a peer that never reads never makes us writeable: kill it regardless */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
}

/* A room burst may push a healthy reader over NATTER_SEND_QUEUE_BYTES for a
 * moment: it gets NATTER_SLOW_GRACE_MS to drain back under it. A reader still
 * over it after that, or over NATTER_SEND_QUEUE_HARD_BYTES at any time, is slow. */
static bool over_limit(gw_conn *c, uint32_t add)
{
    uint64_t bytes = (uint64_t)c->q_bytes + add;
    if (bytes > gw->cfg.send_queue_hard_bytes)
        return true;
    if (bytes <= gw->cfg.send_queue_bytes)
        return false;
    uint16_t now = (uint16_t)(uv_now(gw->loop) / 100) | 1;   /* wraps in 109 min: grace <= 60 s */
    if (!c->over_since) {
        c->over_since = now;
        return false;
    }
    return (uint32_t)(uint16_t)(now - c->over_since) * 100 > gw->cfg.slow_grace_ms;
}

static bool enqueue(gw_conn *c, gw_buf *b, bool lazy)
{
    if (c->close_code)
        return false;
    if (over_limit(c, b->len)) {
        nt_warn("connection %s is a slow consumer (%u bytes queued), closing", c->id, c->q_bytes);
        nt_metric_add(gw->m.slow_closed, 1);
        queue_drop(c);
        gw_conn_close(c, 1008);
        return false;
    }
    /* The queue holds only references: a room event is one shared buffer, and a
     * queued frame costs 8 bytes per connection. The ring is freed once empty,
     * so an idle connection holds none. */
    if (!c->q) {
        c->q_shift = 3;
        c->q = nt_malloc(sizeof *c->q << c->q_shift);
        c->q_first = 0;
    } else if (c->q_len == 1u << c->q_shift) {
        if (c->q_shift >= 31) {   /* unreachable under the hard byte limit */
            gw_conn_close(c, 1008);
            return false;
        }
        uint32_t cap = 1u << c->q_shift, mask = cap - 1;
        gw_buf **nq = nt_malloc(sizeof *nq * cap * 2);
        for (uint32_t i = 0; i < c->q_len; i++)
            nq[i] = c->q[(c->q_first + i) & mask];
        nt_free(c->q);
        c->q = nq;
        c->q_first = 0;
        c->q_shift++;
    }
    /* no write asked for yet: the queue was empty or held only frames that may wait */
    bool unasked = c->q_len == 0 || c->lazy_only;
    gw_buf_retain(b);
    c->q[(c->q_first + c->q_len) & ((1u << c->q_shift) - 1)] = b;
    c->q_len++;
    c->q_bytes += b->len;
    nt_metric_add(gw->m.bytes_queued, b->len);
    if (!unasked || c->held)
        return true;
    if (lazy) {
        lazy_later(c);
    } else {
        c->lazy_only = 0;
        write_soon(c);
    }
    return true;
}

bool gw_conn_enqueue(gw_conn *c, gw_buf *b) { return enqueue(c, b, false); }

bool gw_conn_enqueue_lazy(gw_conn *c, gw_buf *b)
{
    return enqueue(c, b, gw->cfg.lazy_flush_ms > 0);
}

void gw_conn_hold(gw_conn *c)
{
    c->held = 1;
}

void gw_conn_release(gw_conn *c, const char *const *payloads, const size_t *lens, size_t n,
                     bool drop)
{
    if (!c->held) {                    /* nothing held (or closing): in order */
        for (size_t i = 0; i < n; i++)
            gw_conn_send(c, payloads[i], lens[i]);
        return;
    }
    c->held = 0;
    /* the held frames move behind the new ones: take them out, queue, put back (a
     * reply to a request made before authenticate that is still unwritten goes
     * behind them too: replies are matched by ref, events must follow `connected`) */
    uint32_t len = c->q_len, mask = (1u << c->q_shift) - 1, first = c->q_first;
    gw_buf **held = c->q;
    uint32_t bytes = c->q_bytes;
    c->q = NULL;
    c->q_first = c->q_len = c->q_bytes = 0;
    c->q_shift = 0;
    c->lazy_only = 0;
    nt_metric_add(gw->m.bytes_queued, -(int64_t)bytes);
    for (size_t i = 0; i < n; i++)
        gw_conn_send(c, payloads[i], lens[i]);
    for (uint32_t i = 0; i < len; i++) {
        gw_buf *b = held[(first + i) & mask];
        if (!drop)
            gw_conn_enqueue(c, b);
        gw_buf_release(b);
    }
    nt_free(held);
}

bool gw_conn_send(gw_conn *c, const char *payload, size_t len)
{
    gw_buf *b = gw_buf_create(payload, len);
    bool ok = gw_conn_enqueue(c, b);
    gw_buf_release(b);
    return ok;
}

#define GW_CONGESTED_BYTES (4 * 1024)

static gw_buf *queue_head(const gw_conn *c) { return c->q_len ? c->q[c->q_first] : NULL; }

static void queue_pop(gw_conn *c)
{
    gw_buf *b = c->q[c->q_first];
    c->q_first = (c->q_first + 1) & ((1u << c->q_shift) - 1);
    c->q_bytes -= b->len;
    nt_metric_add(gw->m.bytes_queued, -(int64_t)b->len);
    gw_buf_release(b);
    if (--c->q_len == 0) {
        nt_free(c->q);
        c->q = NULL;
        c->q_first = 0;
        c->q_shift = 0;
    }
}

int gw_conn_writeable(gw_conn *c)
{
    /* Frames for one send(): the loop is single-threaded, so one scratch buffer serves all. */
    static unsigned char out[LWS_PRE + GW_COALESCE_BYTES];
    size_t used = 0;
    c->lazy_only = 0;   /* what stays queued asks for WRITEABLE below */
    if (c->ping_due) {        /* keepalive: a ping leads the batch */
        c->ping_due = 0;
        if (!c->close_code)
            used = gw_lws_ping_frame(out + LWS_PRE);
    }
    if ((!c->q_len || c->held) && !used) {
        if (!c->close_code)
            return 0;
        /* the close frame, then a half-close that waits for the peer (compat_lws.h) */
        if (c->close_code & GW_CLOSE_SENT)
            return 0;
        if (!gw_lws_write_close(c->wsi, c->close_code, close_text(c)))
            return -1;
        return linger(c);
    }
    /* Every queued frame that fits goes out in ONE send: lws_write with
     * LWS_WRITE_RAW on a ws connection skips lws's framing and sends the bytes
     * as they are (lws buffers a partial send itself and writes the rest before
     * the next WRITEABLE), so the frames are framed here. One frame per send,
     * or a poll(2) per frame to ask whether the socket takes more, costs two
     * system calls per delivered message; this costs one per burst. */
    /* A socket that did not take the whole last write gets small batches: what
     * it leaves over is copied into lws's buffer per connection, while our queue
     * keeps references to shared frames (a room burst to many slow readers
     * would otherwise copy every frame once per reader). */
    size_t limit = c->congested ? GW_CONGESTED_BYTES : GW_COALESCE_BYTES;
    int frames = 0;
    gw_buf *b;
    while (!c->held && (b = queue_head(c))) {
        if (used + b->len + GW_WS_HEADER_MAX > limit) {
            if (used > 0)
                break;
            /* Larger than the batch limit: lws frames it from its own headroom. */
            int w = lws_write(c->wsi, b->data + LWS_PRE, b->len, LWS_WRITE_TEXT);
            nt_metric_add(gw->m.writes, 1);
            uint32_t len = b->len;
            queue_pop(c);
            if (w < (int)len)
                return -1;
            frames = 1;
            break;
        }
        used += gw_lws_text_header(out + LWS_PRE + used, b->len);
        memcpy(out + LWS_PRE + used, b->data + LWS_PRE, b->len);
        used += b->len;
        frames++;
        queue_pop(c);
    }
    if (used > 0) {
        nt_metric_add(gw->m.writes, 1);
        if (!gw_lws_write_raw(c->wsi, out + LWS_PRE, used))
            return -1;
    }
    c->congested = gw_lws_congested(c->wsi);
    nt_metric_add(gw->m.frames_out, frames);
    if (c->q_bytes <= gw->cfg.send_queue_bytes)
        c->over_since = 0;
    if ((c->q_len && !c->held) || c->close_code)
        lws_callback_on_writable(c->wsi);
    return 0;
}

void gw_conn_auth_track(gw_conn *c, int64_t deadline_ms)
{
    c->auth_deadline_ms = deadline_ms;
    nt_list_insert_tail(&gw->conns->auth_fifo, &c->link);
}

void gw_conn_auth_untrack(gw_conn *c)
{
    /* In the FIFO only until authenticated: after that the link holds the user's
     * connections and the deadline's bytes are the limits' (detach unlinks it). */
    if (c->user || !nt_list_linked(&c->link))
        return;
    nt_list_remove(&c->link);
    c->auth_deadline_ms = 0;
}

void gw_conn_auth_sweep(int64_t now_ms)
{
    gw_conns *s = gw->conns;
    nt_list *n;
    while ((n = nt_list_first(&s->auth_fifo)) != NULL) {
        gw_conn *c = nt_list_entry(n, gw_conn, link);
        if (c->auth_deadline_ms > now_ms)
            break;
        gw_conn_auth_untrack(c);
        s->hooks.auth_timeout(c);
    }
}

/* Keepalive. lws's own (retry_and_idle_policy) keeps one timer per connection in
 * one sorted list per thread, so every ping or pong re-inserts in O(connections);
 * instead one walk per second over the registry, spread over the ticks. */
uint16_t gw_conn_clock_s(void) { return (uint16_t)(uv_now(gw->loop) / 1000); }

void gw_conn_token_set(gw_conn *c, int64_t exp, int64_t now)
{
    int64_t lead = (exp - now) / 2;
    if (lead > gw->cfg.expiring_lead_s)
        lead = gw->cfg.expiring_lead_s;
    c->exp_s = exp > UINT32_MAX ? UINT32_MAX : (uint32_t)exp;
    c->expiring_lead_s = (uint16_t)(lead > 0 ? lead : 0);
    c->expiring_sent = 0;
}

/* Token lifetime, checked once a second per connection by the keepalive sweep. */
static void token_check(gw_conn *c, int64_t now)
{
    if (!c->user || !c->exp_s)
        return;
    if (now >= c->exp_s) {
        gw->conns->hooks.token_expired(c);
        return;
    }
    if (!c->expiring_sent && now + c->expiring_lead_s >= c->exp_s) {
        c->expiring_sent = 1;
        gw->conns->hooks.token_expiring(c);
    }
}

static void keepalive_check(gw_conn *c, uint16_t now_s, int64_t now)
{
    if (c->close_code)
        return;
    token_check(c, now);
    if (c->close_code)
        return;
    uint16_t age = (uint16_t)(now_s - c->rx_s);
    if (age >= gw->cfg.ping_timeout_s) {
        nt_metric_add(gw->m.ping_closed, 1);
        c->ping_timeout = 1;
        gw_conn_close(c, 1001);
        return;
    }
    if (c->pinged)
        return;
    /* Connections that arrived together (a storm, a reconnect wave) would all be
     * pinged in the same second: each waits interval minus a stagger taken from
     * its address (consecutive 128-byte blocks), up to a fifth of the interval. */
    uint32_t spread = gw->cfg.ping_interval_s / 5;
    uint32_t due = gw->cfg.ping_interval_s -
                   (spread ? (uint32_t)(((uintptr_t)c >> 7) % spread) : 0);
    if (age < due)
        return;
    c->pinged = 1;
    c->ping_due = 1;
    lws_callback_on_writable(c->wsi);
}

void gw_conn_keepalive_sweep(unsigned parts)
{
    gw_conns *s = gw->conns;
    nt_map *conns = &s->conns;
    if (!conns->cap || !parts)
        return;
    uint16_t now_s = gw_conn_clock_s();
    int64_t now = nt_now_ms() / 1000;
    size_t n = (conns->cap + parts - 1) / parts;
    if (s->sweep_slot >= conns->cap)   /* the table shrank or grew: start over */
        s->sweep_slot = 0;
    size_t end = s->sweep_slot + n < conns->cap ? s->sweep_slot + n : conns->cap;
    for (size_t i = s->sweep_slot; i < end; i++)
        if (conns->slots[i].key)
            keepalive_check(conns->slots[i].val, now_s, now);
    s->sweep_slot = end == conns->cap ? 0 : end;
}
