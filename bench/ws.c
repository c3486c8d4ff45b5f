/* ws.c: one worker thread's epoll loop, TCP connects and the WebSocket client framing (RFC 6455). */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH (256 * 1024)
#define MAX_MESSAGE (16u << 20)

int64_t nb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rnd(nb_thread *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

static void grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 512;
    while (n < need) n *= 2;
    char *p = realloc(*buf, n);
    if (!p) { fprintf(stderr, "natter-bench: out of memory\n"); exit(3); }
    *buf = p;
    *cap = n;
}

/* ------------------------------------------------------------------ helpers for dialects */

const char *nb_room_name(int room, char *buf, size_t cap)
{
    if (room < 0 && nb_o.shared_name) snprintf(buf, cap, "%s", nb_o.shared_name);
    else if (room < 0) snprintf(buf, cap, "%s-shared", nb_o.room_prefix);
    else snprintf(buf, cap, "%s%d", nb_o.room_prefix, room);
    return buf;
}

int nb_room_of(const nb_conn *c) { return (int)(c->id % (uint32_t)nb_o.rooms); }

/* "<ts> xxxx…" of msg_size bytes (at least the timestamp). */
size_t nb_fill_payload(char *buf, size_t cap, int64_t ts)
{
    int n = snprintf(buf, cap, "%lld ", (long long)ts);
    size_t want = (size_t)nb_o.msg_size < cap - 1 ? (size_t)nb_o.msg_size : cap - 1;
    size_t len = (size_t)n;
    while (len < want) buf[len++] = 'x';
    buf[len] = 0;
    return len;
}

int64_t nb_parse_ts(const char *p, const char *end)
{
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 19) { v = v * 10 + (*p++ - '0'); digits++; }
    return digits ? v : -1;
}

void nb_record_delivery(nb_conn *c, int64_t ts)
{
    nb_thread *t = c->th;
    t->n.deliveries_total++;
    if (atomic_load_explicit(&nb_phase, memory_order_relaxed) != NB_PH_MEASURE) return;
    t->n.deliveries_window++;
    int64_t now = nb_now();
    if (ts <= 0 || now < ts) return;
    nb_hist_add(&t->lat, (uint64_t)(now - ts));
    int64_t sec = (now - atomic_load_explicit(&nb_measure_ns, memory_order_relaxed)) / 1000000000;
    if (sec >= 0 && sec < nb_nsec) nb_hist_add(&t->lat_sec[sec], (uint64_t)(now - ts));
}

void nb_record_ack(nb_conn *c, int64_t ts)
{
    nb_thread *t = c->th;
    t->n.acks_total++;
    if (atomic_load_explicit(&nb_phase, memory_order_relaxed) != NB_PH_MEASURE) return;
    t->n.acks_window++;
    int64_t now = nb_now();
    if (ts > 0 && now >= ts) nb_hist_add(&t->ack, (uint64_t)(now - ts));
}

void nb_protocol_error(nb_conn *c, const char *what, const char *p, size_t n)
{
    nb_thread *t = c->th;
    t->n.protocol_errors++;
    if (!t->errbuf) {
        t->errbuf = malloc(400);
        if (t->errbuf) snprintf(t->errbuf, 400, "conn %u: %s: %.*s", c->id, what, (int)(n > 300 ? 300 : n), p ? p : "");
    }
}

void nb_conn_ready(nb_conn *c)
{
    if (c->state == NB_READY) return;
    c->state = NB_READY;
    nb_thread *t = c->th;
    t->handshaking--;
    int64_t now = nb_now();
    int64_t zero = 0;
    atomic_compare_exchange_strong(&t->first_ready_ns, &zero, now);
    atomic_store(&t->last_ready_ns, now);
    atomic_fetch_add(&t->ready, 1);
}

/* ------------------------------------------------------------------ output */

static void want_out(nb_conn *c, int on)
{
    if (c->epollout == on || c->fd < 0) return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(c->th->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epollout = (uint8_t)on;
}

static void conn_close(nb_conn *c, int failure);

static void flush_out(nb_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) { c->out_off += (size_t)w; c->th->n.bytes_out += (uint64_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { want_out(c, 1); return; }
        c->dead = 1;                  /* closed by on_event, never under a parser */
        c->out_off = c->out_len = 0;
        return;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > 64 * 1024) { free(c->out); c->out = NULL; c->out_cap = 0; }
    want_out(c, 0);
}

static void queue_raw(nb_conn *c, const void *p, size_t n)
{
    if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    grow(&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* A masked client frame; flushed at once unless output is already waiting. */
static void send_frame(nb_conn *c, int opcode, const char *p, size_t n)
{
    if (c->state == NB_CLOSED || c->fd < 0 || c->dead) return;
    if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    grow(&c->out, &c->out_cap, c->out_len + n + 14);
    unsigned char *h = (unsigned char *)c->out + c->out_len;
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) h[1] = (unsigned char)(0x80 | n);
    else if (n < 65536) { h[1] = 0x80 | 126; h[2] = (unsigned char)(n >> 8); h[3] = (unsigned char)n; hl = 4; }
    else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t key = (uint32_t)rnd(c->th);
    unsigned char mk[4] = { (unsigned char)key, (unsigned char)(key >> 8), (unsigned char)(key >> 16), (unsigned char)(key >> 24) };
    memcpy(h + hl, mk, 4);
    hl += 4;
    unsigned char *d = h + hl;
    for (size_t i = 0; i < n; i++) d[i] = (unsigned char)p[i] ^ mk[i & 3];
    c->out_len += hl + n;
    if (!c->epollout) flush_out(c);
}

void nb_send_text(nb_conn *c, const char *p, size_t n) { send_frame(c, 1, p, n); }

/* ------------------------------------------------------------------ connection life */

static void conn_close(nb_conn *c, int failure)
{
    if (c->state == NB_CLOSED) return;
    nb_thread *t = c->th;
    if (c->state == NB_READY) t->n.disconnects++;
    else {
        t->handshaking--;
        if (failure) t->n.connect_failures++;
    }
    c->state = NB_CLOSED;
    if (c->fd >= 0) { epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
    c->fd = -1;
    free(c->in); c->in = NULL; c->in_len = c->in_cap = 0;
    free(c->frag); c->frag = NULL; c->frag_len = 0;
    free(c->out); c->out = NULL; c->out_off = c->out_len = c->out_cap = 0;
    free(c->stream); c->stream = NULL; c->stream_len = 0;
    atomic_fetch_add(&t->closed, 1);
}

static void conn_open(nb_thread *t, nb_conn *c)
{
    t->handshaking++;
    atomic_fetch_add(&t->opened, 1);
    c->state = NB_CONNECTING;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) nb_protocol_error(c, "socket: open files limit reached", NULL, 0);
        c->fd = -1;
        conn_close(c, 1);
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nb_o.source_base) {
        /* Spread source addresses over 127/8; the port is chosen at connect() per 4-tuple. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(nb_o.source_base + c->id % (uint32_t)nb_o.source_count);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            nb_protocol_error(c, "bind source address", strerror(errno), strlen(strerror(errno)));
            conn_close(c, 1);
            return;
        }
    }
    const nb_url *u = &nb_o.urls[c->url];
    if (connect(fd, (const struct sockaddr *)&u->addr, sizeof u->addr) < 0 && errno != EINPROGRESS) {
        conn_close(c, 1);
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    c->epollout = 1;
    epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void send_upgrade(nb_conn *c)
{
    char path[2048], req[3072];
    unsigned char key[16];
    char key64[32];
    for (int i = 0; i < 16; i++) key[i] = (unsigned char)rnd(c->th);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int k = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];
        key64[k++] = b64[v >> 18]; key64[k++] = b64[(v >> 12) & 63];
        key64[k++] = b64[(v >> 6) & 63]; key64[k++] = b64[v & 63];
    }
    uint32_t v = (uint32_t)key[15] << 16;
    key64[k++] = b64[v >> 18]; key64[k++] = b64[(v >> 12) & 63];
    key64[k++] = '='; key64[k++] = '='; key64[k] = 0;
    nb_o.dialect->path(c, path, sizeof path);
    const nb_url *u = &nb_o.urls[c->url];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, u->host, u->port, key64);
    c->state = NB_UPGRADING;
    queue_raw(c, req, (size_t)n);
    flush_out(c);
}

/* Handles one frame; returns 0, or -1 when the connection was closed. */
static int on_frame(nb_conn *c, int fin, int op, const char *p, size_t n)
{
    switch (op) {
    case 0x9: c->th->n.pings++; send_frame(c, 0xA, p, n); return 0;
    case 0xA: return 0;
    case 0x8:
        if (!c->closing) { c->closing = 1; send_frame(c, 0x8, p, n >= 2 ? 2 : 0); }
        if (c->state == NB_READY || c->state == NB_OPEN) {
            unsigned code = n >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 0;
            char why[200];
            int wl = snprintf(why, sizeof why, "server closed with %u %.*s", code, (int)(n > 2 ? (n - 2 > 100 ? 100 : n - 2) : 0), p + 2);
            nb_protocol_error(c, "close", why, (size_t)wl);
        }
        conn_close(c, 0);
        return -1;
    case 0x0:
        if (!c->frag_op) { nb_protocol_error(c, "continuation without start", NULL, 0); conn_close(c, 1); return -1; }
        break;
    case 0x1: case 0x2:
        if (fin) { nb_o.dialect->on_message(c, p, n); return c->state == NB_CLOSED ? -1 : 0; }
        c->frag_op = (uint8_t)op;
        break;
    default:
        nb_protocol_error(c, "unknown opcode", NULL, 0);
        conn_close(c, 1);
        return -1;
    }
    size_t cap = c->frag_len;   /* frag buffer is exact-size */
    char *f = realloc(c->frag, cap + n + 1);
    if (!f) exit(3);
    memcpy(f + c->frag_len, p, n);
    c->frag = f;
    c->frag_len += n;
    if (fin) {
        nb_o.dialect->on_message(c, c->frag, c->frag_len);
        if (c->state == NB_CLOSED) return -1;
        free(c->frag); c->frag = NULL; c->frag_len = 0; c->frag_op = 0;
    }
    return 0;
}

/* Parses frames (or the HTTP answer) from p; returns bytes consumed or -1 when closed. */
static ssize_t parse(nb_conn *c, const char *p, size_t n)
{
    size_t at = 0;
    if (c->state == NB_UPGRADING) {
        const char *e = memmem(p, n, "\r\n\r\n", 4);
        if (!e) return 0;
        if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
            nb_protocol_error(c, "upgrade refused", p, (size_t)(e - p));
            conn_close(c, 1);
            return -1;
        }
        at = (size_t)(e - p) + 4;
        c->state = NB_OPEN;
        nb_o.dialect->on_open(c);
        if (c->state == NB_CLOSED || c->dead) return -1;
    }
    while (n - at >= 2) {
        const unsigned char *h = (const unsigned char *)p + at;
        size_t avail = n - at, hl = 2;
        uint64_t len = h[1] & 0x7f;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
            hl = 10;
        }
        int masked = h[1] & 0x80;
        if (masked) hl += 4;
        if (len > MAX_MESSAGE) { nb_protocol_error(c, "frame too large", NULL, 0); conn_close(c, 1); return -1; }
        if (avail < hl + len) break;
        char *payload = (char *)p + at + hl;
        if (masked) for (uint64_t i = 0; i < len; i++) payload[i] ^= (char)h[hl - 4 + (i & 3)];
        if (on_frame(c, h[0] & 0x80, h[0] & 0x0f, payload, (size_t)len) < 0 || c->dead) return -1;
        at += hl + (size_t)len;
    }
    return (ssize_t)at;
}

static void on_readable(nb_conn *c)
{
    nb_thread *t = c->th;
    for (int round = 0; round < 8 && c->state != NB_CLOSED; round++) {
        ssize_t r = recv(c->fd, t->scratch, SCRATCH, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) { conn_close(c, c->state != NB_READY); return; }
        t->n.bytes_in += (uint64_t)r;
        ssize_t used;
        if (c->in_len) {
            grow(&c->in, &c->in_cap, c->in_len + (size_t)r);
            memcpy(c->in + c->in_len, t->scratch, (size_t)r);
            c->in_len += (size_t)r;
            used = parse(c, c->in, c->in_len);
            if (used < 0) return;
            memmove(c->in, c->in + used, c->in_len - (size_t)used);
            c->in_len -= (size_t)used;
            if (!c->in_len && c->in_cap > 64 * 1024) { free(c->in); c->in = NULL; c->in_cap = 0; }
        } else {
            used = parse(c, t->scratch, (size_t)r);
            if (used < 0) return;
            if ((size_t)used < (size_t)r) {
                grow(&c->in, &c->in_cap, (size_t)r - (size_t)used);
                memcpy(c->in, t->scratch + used, (size_t)r - (size_t)used);
                c->in_len = (size_t)r - (size_t)used;
            }
        }
        if (r < SCRATCH) return;
    }
}

static void on_event(nb_conn *c, uint32_t ev)
{
    if (c->state == NB_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            if (err) nb_protocol_error(c, "connect", strerror(err), strlen(strerror(err)));
            conn_close(c, 1);
            return;
        }
        if (ev & EPOLLOUT) send_upgrade(c);
        if (c->dead) conn_close(c, 1);
        return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
    if (c->state != NB_CLOSED && !c->dead && (ev & EPOLLOUT)) flush_out(c);
    if (c->dead && c->state != NB_CLOSED) conn_close(c, c->state != NB_READY);
}

/* ------------------------------------------------------------------ the loop */

static void open_more(nb_thread *t, int64_t now, int64_t start)
{
    int cc = nb_o.connect_concurrency / nb_o.threads;
    if (cc < 1) cc = 1;
    int limit = t->nconns;
    if (nb_o.connect_rate > 0) {
        double per_thread = nb_o.connect_rate / nb_o.threads;
        limit = (int)(per_thread * (double)(now - start) / 1e9) + 1;
        if (limit > t->nconns) limit = t->nconns;
    }
    while (t->next_open < limit && t->handshaking < cc) conn_open(t, &t->conns[t->next_open++]);
}

static void send_due(nb_thread *t, double rate, int64_t now, int64_t *send_start, uint64_t *sent_since)
{
    if (rate <= 0 || !t->nsenders) return;
    if (!*send_start) { *send_start = now; *sent_since = 0; }
    double due = rate * (double)(now - *send_start) / 1e9 - (double)*sent_since;
    if (due < 1) return;
    uint64_t n = (uint64_t)due;
    uint64_t cap = (uint64_t)(rate / 10) + 1;      /* never more than 100 ms of catch-up at once */
    if (n > cap) { t->n.send_behind += n - cap; *sent_since += n - cap; n = cap; }
    int measuring = atomic_load(&nb_phase) == NB_PH_MEASURE;
    for (uint64_t i = 0; i < n; i++) {
        nb_conn *c = &t->conns[t->senders[t->next_sender]];
        t->next_sender = (t->next_sender + 1) % t->nsenders;
        (*sent_since)++;
        if (c->state != NB_READY || c->out_len - c->out_off > NB_OUT_LIMIT) { t->n.send_skipped++; continue; }
        nb_o.dialect->send_msg(c, nb_now());
        if (c->dead) { conn_close(c, 0); continue; }
        c->sent++;
        t->n.sent_total++;
        if (measuring) t->n.sent_window++;
    }
}

void nb_thread_run(nb_thread *t)
{
    struct epoll_event evs[512];
    t->scratch = malloc(SCRATCH + 1);
    if (!t->scratch) exit(3);
    t->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)t->index * 0x2545F4914F6CDD1Dull) ^ (uint64_t)nb_now();
    if (!t->rng) t->rng = 1;
    double rate = nb_o.rate / nb_o.threads;
    int64_t start = nb_now(), send_start = 0;
    uint64_t sent_since = 0;
    for (;;) {
        int ph = atomic_load(&nb_phase);
        if (ph == NB_PH_STOP) break;
        int64_t now = nb_now();
        if (t->next_open < t->nconns) open_more(t, now, start);
        int sending = (ph == NB_PH_WARMUP || ph == NB_PH_MEASURE) && rate > 0;
        if (sending) send_due(t, rate, now, &send_start, &sent_since);
        int n = epoll_wait(t->ep, evs, 512, sending ? 1 : 20);
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    }
    for (int i = 0; i < t->nconns; i++) {
        nb_conn *c = &t->conns[i];
        if (c->state == NB_READY || c->state == NB_OPEN) {
            send_frame(c, 0x8, "\x03\xe8", 2);
        }
        if (c->fd >= 0) { close(c->fd); c->fd = -1; }
    }
    free(t->scratch);
}
