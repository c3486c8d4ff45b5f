/* rooms.h: local interest: which rooms and users this gateway subscribes on NATS
 * (only while a local connection needs them) and fan-out to local connections. */
#ifndef GW_ROOMS_H
#define GW_ROOMS_H

#include <stdint.h>
#include "bus.h"
#include "conn.h"
#include "envelope.h"
#include "jwt.h"

typedef struct gw_ctx gw_ctx;

struct gw_user {                  /* one user with >= 1 authenticated local connection */
    nt_bus_sub *sub;
    nt_list conns;                /* of gw_conn, through gw_conn.link; see gw_user_conns */
    uint32_t nconns;
    uint32_t barrier;             /* the bus barrier that confirms sub (session.c) */
    const char *app;              /* in this block, after subject */
    const char *id;               /* the <user> part of subject */
    char *name;                   /* display name from the latest token; owned, or the shared "" */
    gw_user_limits lim;           /* per-user rate limits on this gateway (ratelimit.h) */
    uint32_t presence_ms;         /* loop ms a presence change was last forwarded; 0: never */
    struct gw_presence_hold *presence_held; /* the latest change held back by the interval
                                               (presence.c), or NULL */
    char subject[];               /* natter.user.<app>.<user>; the registry key; then app */
};

typedef struct gw_room {
    const char *id;               /* the <room> part of subject */
    nt_bus_sub *sub;
    nt_list members;              /* of gw_member, through gw_member.rlink */
    int64_t last_seq;             /* highest message seq forwarded (0 = none yet) */
    struct gw_repair *repair;     /* a gap being filled (repair.c), or NULL */
    uint32_t interest;            /* memberships + joins in flight */
    char subject[];               /* natter.room.<app>.<room>; the registry key */
} gw_room;

typedef struct gw_replay {        /* a member recovering with since_seq (recovery.c) */
    uint64_t gen;                 /* tells a stale history reply from the current one */
    uint32_t n, cap, max;         /* buffered live events; max: NATTER_RECOVERY_BUFFER */
    bool overflow;                /* more than max arrived: the recovery fails */
    gw_buf **bufs;
    int64_t *seqs;                /* message seq of each buffered event, -1 for others */
} gw_replay;

struct gw_member {                /* a connection receiving a room's events */
    gw_room *room;
    gw_conn *conn;
    gw_replay *replay;            /* non-NULL while replaying: live events are buffered */
    nt_list rlink;                /* in the room */
    gw_member *cnext;             /* in the connection */
};

/* Links an authenticated connection to its user, subscribing the user subject
 * for the first one. NT_EUNAVAIL when the subscription failed. */
nt_status gw_user_attach(gw_conn *c, const nt_claims *cl);
/* Unlinks; the last connection of a user drops the user subject. */
void gw_user_detach(gw_conn *c);
/* The user's connections, newest first: `for (c = gw_user_conns(u, NULL); c;
 * c = gw_user_conns(u, c))`; the body must not detach c. */
static inline gw_conn *gw_user_conns(const gw_user *u, const gw_conn *c)
{
    const nt_list *n = c ? c->link.next : u->conns.next;
    return n != &u->conns ? nt_list_entry(n, gw_conn, link) : NULL;
}
gw_user *gw_user_find(const char *app, const char *user);
/* Where what arrives on a user subject, and the acks riding room events, are handed. */
typedef struct gw_rooms_hooks {
    /* the ack of u's sends pending on cmid (a message event carrying it) */
    void (*ack)(gw_user *u, const char *cmid, size_t clen, const char *json, size_t jlen);
    /* an envelope on u's subject that is not an event (disconnect, revoke, ack, ...) */
    void (*user_envelope)(gw_user *u, const nt_envr *r);
    /* a room's message event of seq (b borrowed), to be put in order (repair.c); NULL:
     * each seq above the room's last is delivered at once, the others dropped */
    void (*message)(gw_room *room, gw_buf *b, int64_t seq);
    /* room is about to be freed */
    void (*room_freed)(gw_room *room);
} gw_rooms_hooks;
/* Creates this module's state in ctx and subscribes the subjects every gateway listens
 * to (unread batches); h is copied. NT_EUNAVAIL (and no state) when that fails. */
nt_status gw_rooms_start(gw_ctx *ctx, const gw_rooms_hooks *h);
/* Drops those subscriptions and frees the state; every user and room is gone first. */
void gw_rooms_stop(gw_ctx *ctx);

/* Takes one interest reference on a room, subscribing its subject first when this
 * gateway had none. NULL when the subscription failed. */
gw_room *gw_room_acquire(const char *app, const char *room);
/* One more interest reference on a room already held (a send awaiting its ack in
 * the room's message event keeps the subject subscribed). */
void gw_room_hold(gw_room *r);
/* Drops one reference; the last one unsubscribes and frees the room. */
void gw_room_release(gw_room *r);
size_t gw_room_count(void);
/* Calls fn for every room this gateway subscribes; fn must not free rooms. */
void gw_rooms_foreach(void (*fn)(gw_room *r, void *arg), void *arg);
/* Delivers a message event of seq to every member of r (a replaying member buffers
 * it) and makes seq the room's last; the caller keeps b. */
void gw_room_deliver(gw_room *r, gw_buf *b, int64_t seq);

gw_member *gw_member_find(gw_conn *c, const char *room_id);
/* Starts live delivery of r to c, taking over one interest reference of the caller. */
void gw_member_add(gw_conn *c, gw_room *r);
/* Stops live delivery and drops the membership's interest reference. */
void gw_member_remove(gw_conn *c, gw_member *m);
/* Enters replaying state: live events of the room for m are buffered (at most max)
 * instead of delivered. Returns the replay's generation. */
uint64_t gw_member_replay_start(gw_member *m, uint32_t max);
/* Leaves replaying state: delivers the buffered events except messages with seq <=
 * last_seq (already replayed), in arrival order, and frees the buffer. */
void gw_member_replay_finish(gw_member *m, int64_t last_seq);
/* Removes every membership of a closing connection. */
void gw_rooms_conn_closed(gw_conn *c);

#endif
