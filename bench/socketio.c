/* socketio.c: Socket.IO 4 over Engine.IO v4 WebSocket (0 open, 40 connect, 42 events, 2/3 ping). */
#include "bench.h"

#include <stdio.h>
#include <string.h>

static void s_path(nb_conn *c, char *buf, size_t cap)
{
    (void)c;
    snprintf(buf, cap, "/socket.io/?EIO=4&transport=websocket");
}

static void s_on_open(nb_conn *c) { (void)c; }   /* wait for the Engine.IO "0{…}" open packet */

static void join(nb_conn *c, int room)
{
    char name[96], f[256];
    /* 42<ackid>["join",room]: the peer answers 43<ackid>["ok"] */
    int n = snprintf(f, sizeof f, "42%d[\"join\",\"%s\"]", room < 0 ? 1 : 2, nb_room_name(room, name, sizeof name));
    c->pending++;
    nb_send_text(c, f, (size_t)n);
}

static void s_on_message(nb_conn *c, const char *p, size_t n)
{
    if (n == 0) return;
    switch (p[0]) {
    case '2': nb_send_text(c, "3", 1); c->th->n.pings++; return;           /* ping -> pong */
    case '0': nb_send_text(c, "40", 2); return;                              /* open -> connect */
    case '1': nb_protocol_error(c, "engine.io close", p, n); return;
    case '4': break;
    default: return;
    }
    if (n < 2) return;
    if (p[1] == '0') {                                                       /* namespace connected */
        join(c, nb_room_of(c));
        if (nb_o.shared_room) join(c, -1);
        return;
    }
    if (p[1] == '3') {                                                       /* ack of a join */
        if (c->pending && --c->pending == 0 && c->state == NB_OPEN) nb_conn_ready(c);
        return;
    }
    if (p[1] == '2') {
        const char *m = memmem(p, n, "\"m\":\"", 5);
        if (m) nb_record_delivery(c, nb_parse_ts(m + 5, p + n));
        return;
    }
    if (p[1] == '4' || p[1] == '1') nb_protocol_error(c, "socket.io error/disconnect", p, n);
}

static void s_send(nb_conn *c, int64_t ts)
{
    char name[96], body[70000], f[72000];
    size_t bl = nb_fill_payload(body, sizeof body, ts);
    int n = snprintf(f, sizeof f, "42[\"chat\",{\"room\":\"%s\",\"m\":\"%.*s\"}]",
                     nb_room_name(nb_room_of(c), name, sizeof name), (int)bl, body);
    nb_send_text(c, f, (size_t)n);
}

const nb_dialect nb_dialect_socketio = { "socketio", s_path, s_on_open, s_on_message, s_send };
