/* natsws.c: NATS client protocol over WebSocket (INFO, CONNECT, SUB, PUB, MSG, PING/PONG). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void w_path(nb_conn *c, char *buf, size_t cap)
{
    (void)c;
    snprintf(buf, cap, "/");
}

static void w_on_open(nb_conn *c) { (void)c; }   /* wait for INFO */

static void on_info(nb_conn *c)
{
    char name[96], f[512];
    int n = snprintf(f, sizeof f, "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n");
    n += snprintf(f + n, sizeof f - (size_t)n, "SUB room.%s 1\r\n", nb_room_name(nb_room_of(c), name, sizeof name));
    if (nb_o.shared_room) n += snprintf(f + n, sizeof f - (size_t)n, "SUB room.%s 2\r\n", nb_room_name(-1, name, sizeof name));
    n += snprintf(f + n, sizeof f - (size_t)n, "PING\r\n");
    c->pending = 1;
    nb_send_text(c, f, (size_t)n);
}

/* Parses complete protocol messages from p; returns bytes consumed. */
static size_t parse(nb_conn *c, const char *p, size_t n)
{
    size_t at = 0;
    while (at < n) {
        const char *line = p + at;
        const char *eol = memmem(line, n - at, "\r\n", 2);
        if (!eol) break;
        size_t ll = (size_t)(eol - line);
        if (ll >= 4 && memcmp(line, "MSG ", 4) == 0) {
            const char *sp = eol;
            while (sp > line && sp[-1] != ' ') sp--;
            size_t len = (size_t)strtoul(sp, NULL, 10);
            size_t need = ll + 2 + len + 2;
            if (n - at < need) break;
            nb_record_delivery(c, nb_parse_ts(eol + 2, eol + 2 + len));
            at += need;
            continue;
        }
        if (ll >= 4 && memcmp(line, "PING", 4) == 0) { nb_send_text(c, "PONG\r\n", 6); c->th->n.pings++; }
        else if (ll >= 4 && memcmp(line, "PONG", 4) == 0) {
            if (c->pending && --c->pending == 0 && c->state == NB_OPEN) nb_conn_ready(c);
        } else if (ll >= 4 && memcmp(line, "INFO", 4) == 0) on_info(c);
        else if (ll >= 4 && memcmp(line, "-ERR", 4) == 0) { c->th->n.errors++; nb_protocol_error(c, "nats", line, ll); }
        at += ll + 2;
    }
    return at;
}

static void w_on_message(nb_conn *c, const char *p, size_t n)
{
    if (!c->stream_len) {
        size_t used = parse(c, p, n);
        if (used < n) {
            c->stream = malloc(n - used);
            if (!c->stream) exit(3);
            memcpy(c->stream, p + used, n - used);
            c->stream_len = n - used;
        }
        return;
    }
    char *s = realloc(c->stream, c->stream_len + n);
    if (!s) exit(3);
    memcpy(s + c->stream_len, p, n);
    c->stream = s;
    c->stream_len += n;
    size_t used = parse(c, c->stream, c->stream_len);
    memmove(c->stream, c->stream + used, c->stream_len - used);
    c->stream_len -= used;
    if (!c->stream_len) { free(c->stream); c->stream = NULL; }
}

static void w_send(nb_conn *c, int64_t ts)
{
    char name[96], body[70000], f[72000];
    size_t bl = nb_fill_payload(body, sizeof body, ts);
    int n = snprintf(f, sizeof f, "PUB room.%s %zu\r\n%.*s\r\n",
                     nb_room_name(nb_room_of(c), name, sizeof name), bl, (int)bl, body);
    nb_send_text(c, f, (size_t)n);
}

const nb_dialect nb_dialect_natsws = { "natsws", w_path, w_on_open, w_on_message, w_send };
