/* conn.h: one WebSocket connection: identity, send queue of shared buffers, registry by id. */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>
#include "list.h"
#include "rate.h"

/* At most this many bytes of queued frames go into one send(); lws is told the
 * same limit (its tx_packet_size), a few bytes more for its own framing. */
#define GW_COALESCE_BYTES (64 * 1024)
#define GW_TX_PACKET (GW_COALESCE_BYTES + 64)

struct lws;
typedef struct gw_ctx gw_ctx;
typedef struct gw_user gw_user;
typedef struct gw_member gw_member;
typedef struct gw_pending gw_pending;

/* An encoded outgoing frame with LWS_PRE bytes of headroom, shared by every queue
 * it is on (room fan-out encodes once). */
typedef struct gw_buf {
    uint32_t refs;
    uint32_t len;                 /* payload bytes after the headroom */
    unsigned char data[];         /* LWS_PRE + len */
} gw_buf;

/* Copies payload into a new buffer with one reference. */
gw_buf *gw_buf_create(const char *payload, size_t len);
void gw_buf_retain(gw_buf *b);
void gw_buf_release(gw_buf *b);
const unsigned char *gw_buf_payload(const gw_buf *b);

/* A message spanning several lws callbacks, reassembled. */
typedef struct gw_rx {
    uint32_t len;
    char data[];
} gw_rx;

typedef struct gw_conn {         /* ordered without padding: 120 bytes, a 128-byte malloc chunk */
    struct lws *wsi;
    gw_user *user;                /* NULL until authenticated */
    nt_list link;                 /* the auth-deadline FIFO, then the user's connections */
    union {
        int64_t auth_deadline_ms; /* while unauthenticated */
        gw_conn_limits lim;       /* once authenticated (rate.h) */
    };
    gw_buf **q;                   /* send queue: ring of 1 << q_shift slots; NULL while empty */
    gw_rx *rx;                    /* NULL unless a message spans several callbacks */
    gw_member *rooms;             /* live memberships (rooms.c) */
    gw_pending *pending;          /* send_message awaiting ack (core/sends.c) */
    uint32_t q_first, q_len;      /* ring index of the oldest frame; frames queued */
    uint32_t q_bytes;
    uint32_t exp_s;               /* the token's exp, s since the epoch; 0 while unauthenticated */
    uint16_t over_since;          /* loop time in 100 ms units (low bit set) the queue went over
                                     the soft limit; 0 = under */
    uint16_t expiring_lead_s;     /* token_expiring goes out this long before exp_s */
    uint16_t nrooms;              /* memberships + joins in flight */
    uint16_t npending;
    uint16_t close_code;          /* nonzero: close once the queue is written */
    uint16_t rx_s;                /* keepalive: gw_conn_clock_s() of the last frame received */
    uint8_t q_shift : 5;
    uint8_t expiring_sent : 1;    /* token_expiring went out for the current exp_s */
    uint8_t congested : 1;        /* the last write left bytes in lws's buffer */
    uint8_t pinged : 1;           /* keepalive: a ping went out since rx_s */
    uint8_t ping_due : 1;         /* keepalive: the next WRITEABLE writes a ping first */
    uint8_t ping_timeout : 1;     /* closing (1001) because nothing came back in time */
    uint8_t flush_pending : 1;    /* in the list gw_conn_flush writes at the end of the loop turn */
    uint8_t held : 1;             /* authenticated, `connected` not out yet: frames wait queued */
    uint8_t lazy_only : 1;        /* the queue holds only frames that may wait: no write asked */
    uint8_t lazy_listed : 1;      /* in the list the lazy timer writes */
    uint8_t dialect : 2;          /* gw_dialect_id: the wire dialect it speaks (dialect.h) */
    uint8_t nreq;                 /* requests awaiting their answer (ratelimit.h) */
    char id[17];                  /* connection_id, hex */
} gw_conn;

/* Creates the connection for an established WebSocket and registers it. */
gw_conn *gw_conn_create(struct lws *wsi);
/* Unregisters and frees (from LWS_CALLBACK_CLOSED, after rooms/users let go). */
void gw_conn_destroy(gw_conn *c);
/* What the deadlines this module watches mean to the client (the session sets them). */
typedef struct gw_conn_hooks {
    void (*auth_timeout)(gw_conn *c);      /* no valid auth within NATTER_AUTH_TIMEOUT_MS */
    void (*token_expired)(gw_conn *c);     /* the token's exp has passed */
    void (*token_expiring)(gw_conn *c);    /* exp is near (gw_conn_token_set): once per token */
} gw_conn_hooks;
/* Creates this module's state in ctx (the registry, the deadlines) and starts the
 * end-of-turn flush (a uv_check on ctx->loop): frames queued during a loop turn are
 * written right after it, straight to each socket that takes them; h is copied. */
void gw_conn_init(gw_ctx *ctx, const gw_conn_hooks *h);
/* Stops it and frees the state (before the loop closes; its handles' close callbacks
 * free the rest, so run the loop once more). Every connection is destroyed first;
 * gw_conn_find and gw_conn_count then find none. */
void gw_conn_stop(gw_ctx *ctx);
gw_conn *gw_conn_find(const char *id);
size_t gw_conn_count(void);
/* Calls fn for every connection; fn must not destroy connections. */
void gw_conn_foreach(void (*fn)(gw_conn *c, void *arg), void *arg);

/* Queues b (retained) for writing. Over NATTER_SEND_QUEUE_BYTES the connection is a
 * slow consumer: its queue is dropped and it is closed with 1008. Returns false
 * when the frame was not queued (closing or slow). */
bool gw_conn_enqueue(gw_conn *c, gw_buf *b);
/* The same for a frame that may wait (an unread-count update, an announcement): it
 * asks for no write of its own, but goes out with the connection's next frame, or
 * when the lazy timer's round ends, at most NATTER_LAZY_FLUSH_MS after it was queued. */
bool gw_conn_enqueue_lazy(gw_conn *c, gw_buf *b);
/* Copies payload into a fresh buffer and queues it. */
bool gw_conn_send(gw_conn *c, const char *payload, size_t len);
/* Writes one queued frame (LWS_CALLBACK_SERVER_WRITEABLE); returns -1 to close. */
int gw_conn_writeable(gw_conn *c);
/* Closes with `code` after what is already queued is written. */
void gw_conn_close(gw_conn *c, uint16_t code);
/* Holds c's frames in its queue (still counted against its limits) until
 * gw_conn_release: nothing may reach the client before `connected`. */
void gw_conn_hold(gw_conn *c);
/* Ends the hold: the n payloads go out first, then the frames queued meanwhile
 * (drop: those are discarded instead). */
void gw_conn_release(gw_conn *c, const char *const *payloads, const size_t *lens, size_t n,
                     bool drop);

/* Keepalive (lws's own ping/validity timers are off: see server.c). The clock is
 * loop seconds, kept in 16 bits per connection (ages are taken modulo 2^16 s). */
uint16_t gw_conn_clock_s(void);
/* A frame (data or pong) arrived: the peer is alive. */
static inline void gw_conn_alive(gw_conn *c, uint16_t now_s)
{
    c->rx_s = now_s;
    c->pinged = 0;
}
/* Visits 1/parts of the connections (call `parts` times a second): pings one idle
 * for its ping time (NATTER_PING_INTERVAL_S minus a per-connection stagger of up
 * to a fifth), closes one silent for NATTER_PING_TIMEOUT_S with 1001. */
void gw_conn_keepalive_sweep(unsigned parts);

/* The token of c is valid until exp (s since the epoch): the token_expiring hook runs
 * min(NATTER_TOKEN_EXPIRING_LEAD_S, half the remaining life) before it, and at exp the
 * token_expired hook, unless a refresh moved it. */
void gw_conn_token_set(gw_conn *c, int64_t exp, int64_t now);

/* Unauthenticated connections, oldest first: the auth timeout sweep. */
void gw_conn_auth_track(gw_conn *c, int64_t deadline_ms);
void gw_conn_auth_untrack(gw_conn *c);
/* Hands connections whose deadline has passed to the auth_timeout hook. */
void gw_conn_auth_sweep(int64_t now_ms);

#endif
