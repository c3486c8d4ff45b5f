/* natter.c: the natter native dialect (?token=JWT, subscribe, send_message, ack/message events). */
#include "bench.h"

#include <stdio.h>
#include <string.h>

static void n_path(nb_conn *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "/ws?token=%s", nb_tokens[c->id]);
}

static void n_on_open(nb_conn *c) { (void)c; }   /* wait for the "connected" event */

static void subscribe(nb_conn *c, int room)
{
    char name[96], f[256];
    int n = snprintf(f, sizeof f, "{\"action\":\"subscribe\",\"channel\":\"room.%s\",\"ref\":\"s%d\"}",
                     nb_room_name(room, name, sizeof name), room < 0 ? 0 : 1);
    c->pending++;
    nb_send_text(c, f, (size_t)n);
}

static const char *find(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle));
}

static void n_on_message(nb_conn *c, const char *p, size_t n)
{
    const char *end = p + n, *m;
    if ((m = find(p, n, "\"event\":\"message\""))) {
        const char *v = find(p, n, "\"message\":\"");
        nb_record_delivery(c, v ? nb_parse_ts(v + 11, end) : -1);
        return;
    }
    if ((m = find(p, n, "\"event\":\"ack\""))) {
        const char *r = find(p, n, "\"ref\":");
        if (!r) return;
        r += 6;
        if (*r == '"') {                        /* a subscribe ack */
            if (c->pending && --c->pending == 0 && c->state == NB_OPEN) nb_conn_ready(c);
        } else {
            nb_record_ack(c, nb_parse_ts(r, end));
        }
        return;
    }
    if (find(p, n, "\"event\":\"connected\"")) {
        subscribe(c, nb_room_of(c));
        if (nb_o.shared_room) subscribe(c, -1);
        return;
    }
    if (find(p, n, "\"event\":\"error\"")) {
        c->th->n.errors++;
        const char *r = find(p, n, "\"ref\":");
        if (r && r + 6 < end && r[6] >= '0' && r[6] <= '9') c->th->n.send_errors++;   /* a send's ref is its time */
        nb_protocol_error(c, "error event", p, n);
        return;
    }
}

static void n_send(nb_conn *c, int64_t ts)
{
    char name[96], body[70000], f[72000];
    size_t bl = nb_fill_payload(body, sizeof body, ts);
    int n = snprintf(f, sizeof f,
                     "{\"action\":\"send_message\",\"channel\":\"room.%s\",\"data\":{\"message\":\"%.*s\","
                     "\"client_msg_id\":\"%s-%u-%llu\"},\"ref\":%lld}",
                     nb_room_name(nb_room_of(c), name, sizeof name), (int)bl, body,
                     nb_o.room_prefix, c->id, (unsigned long long)c->sent, (long long)ts);
    nb_send_text(c, f, (size_t)n);
}

const nb_dialect nb_dialect_natter = { "natter", n_path, n_on_open, n_on_message, n_send };
