/* membership.h: a connection's rooms: subscribe (with since_seq recovery), unsubscribe,
 * leave, create_room, and the end of a membership the persister revoked. */
#ifndef GW_MEMBERSHIP_H
#define GW_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "command.h"
#include "conn.h"
#include "envelope.h"

struct gw_user;

/* subscribe: live delivery of room to c once the router admits the join (access_code
 * may be NULL); since_seq >= 0 recovers what c missed after it (recovery.h). */
void gw_membership_subscribe(gw_conn *c, const json_t *ref, const char *room,
                             const char *access_code, int64_t since_seq);
/* unsubscribe: live delivery stops; the membership stays. Always acked. */
void gw_membership_unsubscribe(gw_conn *c, const json_t *ref, const char *room);
/* leave: live delivery stops and the membership ends (the router answers). */
void gw_membership_leave(gw_conn *c, const json_t *ref, const char *room);
/* create_room: the creator becomes the owner but is not subscribed. */
void gw_membership_create(gw_conn *c, const json_t *ref, const gw_create_req *cr);
/* Stops live delivery of room to c; true when it was subscribed. */
bool gw_membership_stop(gw_conn *c, const char *room);
/* A {type:"revoke"} envelope on u's subject: each of u's connections in the room stops
 * receiving it at once and gets the member_left event (its own user_id) last. */
void gw_membership_revoked(struct gw_user *u, const nt_envr *r);
/* The connection is closing: the router is told each live membership ends. */
void gw_membership_conn_closed(gw_conn *c);
/* natter.ctl.live or natter.ctl.conn `type` for c (room, or its name when NULL). */
void gw_membership_publish_ctl(const char *subject, const char *type, const gw_conn *c,
                               const char *room);

#endif
