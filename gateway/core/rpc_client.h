/* rpc_client.h: the gateway's requests to the router and the persister (internals.md,
 * "RPC"), written once for the WebSocket side and REST: each encodes its envelope,
 * sends it with NATTER_REQUEST_TIMEOUT_MS and hands the reply to cb; gw_rpc_ok reads
 * the reply. Every request returns NT_OK when sent (cb is then called exactly once),
 * else the bus's error and cb is never called. */
#ifndef GW_RPC_CLIENT_H
#define GW_RPC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "bus.h"
#include "envelope.h"
#include "frame.h"

/* Who asks: the identity fields every request and control message carries. */
typedef struct gw_rpc_who {
    const char *app, *user, *conn;   /* conn may be NULL (REST) */
} gw_rpc_who;

/* Interprets an RPC reply envelope (internals.md): true when ok (r parsed, free it
 * with nt_envr_free in every case); else err holds the code and message to show. */
bool gw_rpc_ok(nt_status st, const nt_bus_msg *msg, const char *service, nt_envr *r,
               gw_error *err);
/* natter.rpc.persist.history for user in room. */
nt_status gw_rpc_history(const char *app, const char *room, const char *user,
                         const gw_history_req *h, nt_bus_reply_cb cb, void *arg,
                         uint64_t *id_out);
/* The id of the room create_room makes: data.room_id or a new uuid. */
void gw_rpc_room_id(const gw_create_req *cr, char room[65]);
/* natter.rpc.persist.create of room for cr, owned by owner. */
nt_status gw_rpc_create(const char *app, const char *owner, const char *room,
                        const gw_create_req *cr, nt_bus_reply_cb cb, void *arg,
                        uint64_t *id_out);
/* natter.rpc.persist.read (or .delivered) for user in room; the ok reply's "json" is
 * the ack data. */
nt_status gw_rpc_mark(const char *app, const char *room, const char *user, bool delivered,
                      const gw_mark_req *m, nt_bus_reply_cb cb, void *arg, uint64_t *id_out);
/* natter.rpc.persist.unread (rooms false) or .rooms (rooms true) for user; the ok
 * reply's "json" is {rooms:{…},total} or {rooms:[…]}. */
nt_status gw_rpc_user_query(const char *app, const char *user, bool rooms, nt_bus_reply_cb cb,
                            void *arg, uint64_t *id_out);
/* The router query `subject` {app, <key>: id, user?: asker} (natter.rpc.router.online,
 * .typing, .presence); with an asker the router first checks that the asker may see
 * the room. The ok reply's "json" is the answer. */
nt_status gw_rpc_router_query(const char *subject, const char *app, const char *key,
                              const char *id, const char *asker, nt_bus_reply_cb cb, void *arg,
                              uint64_t *id_out);
/* natter.rpc.router.join of room by who (named name), with an access code or NULL. */
nt_status gw_rpc_join(const gw_rpc_who *who, const char *name, const char *room,
                      const char *access_code, nt_bus_reply_cb cb, void *arg);
/* natter.rpc.router.leave of room by who (the membership ends). */
nt_status gw_rpc_leave(const gw_rpc_who *who, const char *room, nt_bus_reply_cb cb, void *arg);
/* natter.rpc.persist.lookup of the message app/sender stored with cmid; digest is the
 * resend's nt_msg_digest (another room or text: a `conflict` error naming the first). */
nt_status gw_rpc_lookup(const char *app, const char *sender, const char *cmid, int64_t digest,
                        nt_bus_reply_cb cb, void *arg);
/* natter.rpc.persist.dm: finds or creates the direct-message room of user and peer. */
nt_status gw_rpc_dm(const char *app, const char *room, const char *user, const char *peer,
                    nt_bus_reply_cb cb, void *arg);

/* natter.rpc.persist.member_add (remove false) or .member_remove of user in room, asked
 * by actor (admin: an admin token's role). */
nt_status gw_rpc_member(const char *app, const char *room, const char *user, const char *actor,
                        bool admin, bool remove, nt_bus_reply_cb cb, void *arg,
                        uint64_t *id_out);
/* natter.rpc.router.stats of the cluster, of one app unless app is NULL or ""; the ok
 * reply's "json" is the answer. */
nt_status gw_rpc_stats(const char *app, nt_bus_reply_cb cb, void *arg, uint64_t *id_out);

#endif
