/* request.h: reading router request envelopes (validated ids) and writing error replies. */
#ifndef RT_REQUEST_H
#define RT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "router.h"

#define RT_ID_MAX 64

typedef char rt_id[RT_ID_MAX + 1];

/* Copies the string field `key` into out (NUL-terminated). False when it is
 * absent or not [A-Za-z0-9_-]{1,64}; `why` then names the field. */
bool rt_req_id(const nt_envr *r, const char *key, rt_id out, char *why, size_t whylen);

/* Copies each of the NULL-terminated `keys` into the matching `outs` slot, stopping
 * at the first bad one (see rt_req_id). */
bool rt_req_ids(const nt_envr *r, const char *const *keys, char *const *outs,
                char *why, size_t whylen);

/* Publishes {ok:false, code, message} to `reply`; nothing when reply is NULL.
 * `code` is an error code of docs/protocol.md. */
void rt_reply_error(rt_router *rt, const char *reply, const char *code, const char *message);

/* The same with retry_after_ms (a rate_limited refusal: when to retry), which the
 * gateway passes on to the client; 0 writes none. */
void rt_reply_error_retry(rt_router *rt, const char *reply, const char *code, const char *message,
                          int64_t retry_after_ms);

/* Sends EVAL script with nkeys keys; `args` (keys then argv) is NULL-terminated,
 * at most 16 entries. Same contract as rt_redis_command. */
nt_status rt_eval(rt_router *rt, const char *script, int nkeys, const char *const *args,
                  rt_redis_cb cb, void *arg);

/* Publishes {type:"event", json, skip_user?} to `subject` (a room or user subject,
 * forwarded verbatim by gateways). skip_user may be NULL. */
void rt_publish_event(rt_router *rt, const char *subject, const char *json, size_t len,
                      const char *skip_user);

/* Front half of a query (request/reply): needs a reply subject and an envelope
 * with the ids `keys` (copied into `outs`). Otherwise replies bad_request (when
 * it can), counts it, and returns false. `what` names the subject in logs. */
bool rt_query_begin(rt_router *rt, const nt_bus_msg *msg, const char *what,
                    const char *const *keys, char *const *outs);

/* Publishes {ok:true, json} to `reply`; nothing when reply is NULL. */
void rt_reply_json(rt_router *rt, const char *reply, const char *json, size_t len);

/* Publishes `data` unchanged to `reply`; nothing when reply is NULL. */
void rt_reply_raw(rt_router *rt, const char *reply, const void *data, size_t len);

/* A query naming a `user` (REST on behalf of a token) is passed to handler only
 * after the persister confirmed the user may see the room (natter.rpc.persist.access:
 * a private room is members only); its refusal is the reply. A query without a
 * user goes straight on (the gateway checked the connection's subscription). */
void rt_with_room_access(rt_router *rt, const nt_bus_msg *msg, nt_bus_msg_cb handler, void *arg);

#endif
