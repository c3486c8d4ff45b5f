/* wire.h: what natter's processes must agree on: subjects, envelope keys and types, settings. */
#ifndef NT_WIRE_H
#define NT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- fixed subjects (docs/internals.md) ---- */

/* X(NAME, subject): each becomes the constant NT_SUBJ_<NAME>. */
#define NT_SUBJECT_MAP(X)                                                    \
    X(CTL_LIVE, "natter.ctl.live")                                           \
    X(CTL_CONN, "natter.ctl.conn")                                           \
    X(CTL_PRESENCE, "natter.ctl.presence")                                   \
    X(CTL_TYPING, "natter.ctl.typing")                                       \
    X(CTL_REVOKE, "natter.ctl.revoke")                                       \
    X(CTL_HB, "natter.ctl.hb")                                               \
    X(UNREAD, "natter.unread")                                               \
    X(RPC_ROUTER_JOIN, "natter.rpc.router.join")                             \
    X(RPC_ROUTER_LEAVE, "natter.rpc.router.leave")                           \
    X(RPC_ROUTER_ONLINE, "natter.rpc.router.online")                         \
    X(RPC_ROUTER_TYPING, "natter.rpc.router.typing")                         \
    X(RPC_ROUTER_PRESENCE, "natter.rpc.router.presence")                     \
    X(RPC_ROUTER_STATS, "natter.rpc.router.stats")                           \
    X(RPC_ROUTER_REVOCATIONS, "natter.rpc.router.revocations")               \
    X(RPC_PERSIST_JOIN, "natter.rpc.persist.join")                           \
    X(RPC_PERSIST_LEAVE, "natter.rpc.persist.leave")                         \
    X(RPC_PERSIST_HISTORY, "natter.rpc.persist.history")                     \
    X(RPC_PERSIST_LOOKUP, "natter.rpc.persist.lookup")                       \
    X(RPC_PERSIST_READ, "natter.rpc.persist.read")                           \
    X(RPC_PERSIST_DELIVERED, "natter.rpc.persist.delivered")                 \
    X(RPC_PERSIST_UNREAD, "natter.rpc.persist.unread")                       \
    X(RPC_PERSIST_ROOMS, "natter.rpc.persist.rooms")                         \
    X(RPC_PERSIST_CREATE, "natter.rpc.persist.create")                       \
    X(RPC_PERSIST_DM, "natter.rpc.persist.dm")                               \
    X(RPC_PERSIST_ACCESS, "natter.rpc.persist.access")                       \
    X(RPC_PERSIST_MEMBER_ADD, "natter.rpc.persist.member_add")               \
    X(RPC_PERSIST_MEMBER_REMOVE, "natter.rpc.persist.member_remove")         \
    X(IN_ALL, "natter.in.>")

/* Queue groups of the request and control subjects. */
#define NT_WIRE_QUEUE_MAP(X)                                                 \
    X(ROUTER, "router")                                                      \
    X(PERSISTER, "persister")

/* ---- envelope keys (common/envelope.h) ---- */

/* X(NAME, key): each becomes the constant NT_KEY_<NAME>. */
#define NT_KEY_MAP(X)                                                        \
    X(TYPE, "type")                                                          \
    X(APP, "app")                                                            \
    X(ROOM, "room")                                                          \
    X(USER, "user")                                                          \
    X(NAME, "name")                                                          \
    X(GW, "gw")                                                              \
    X(CONN, "conn")                                                          \
    X(CONNS, "conns")                                                        \
    X(JSON, "json")                                                          \
    X(OK, "ok")                                                              \
    X(CODE, "code")                                                          \
    X(MESSAGE, "message")                                                    \
    X(RETRY_AFTER_MS, "retry_after_ms")                                      \
    X(SKIP_USER, "skip_user")                                                \
    X(LAZY, "lazy")                                                          \
    X(ROOMS, "rooms")                                                        \
    X(SEQ, "seq")                                                            \
    X(SENDER, "sender")                                                      \
    X(CMID, "cmid")                                                          \
    X(ACK, "ack")                                                            \
    X(RACK, "rack")                                                          \
    X(MTYPE, "mtype")                                                        \
    X(BODY, "body")                                                          \
    X(REPLY_TO, "reply_to")                                                  \
    X(TS, "ts")                                                              \
    X(ACCESS_CODE, "access_code")                                            \
    X(LAST_SEQ, "last_seq")                                                  \
    X(LAST_READ_SEQ, "last_read_seq")                                        \
    X(UNREAD, "unread")                                                      \
    X(CREATED, "created")                                                    \
    X(FOUND, "found")                                                        \
    X(VISIBILITY, "visibility")                                              \
    X(OWNER, "owner")                                                        \
    X(MEMBERS, "members")                                                    \
    X(ACTOR, "actor")                                                        \
    X(ADMIN, "admin")                                                        \
    X(PEER, "peer")                                                          \
    X(BEFORE_SEQ, "before_seq")                                              \
    X(AFTER_SEQ, "after_seq")                                                \
    X(LIMIT, "limit")                                                        \
    X(IDS, "ids")                                                            \
    X(STATUS, "status")                                                      \
    X(DEVICE, "device")                                                      \
    X(STATUS_TEXT, "status_text")                                            \
    X(IS_TYPING, "is_typing")                                                \
    X(BEFORE, "before")                                                      \
    X(APPS, "apps")                                                          \
    X(USERS, "users")                                                        \
    X(JSONS, "jsons")                                                        \
    X(DIGEST, "digest")

/* Values of the "type" key. X(NAME, value): each becomes NT_TYPE_<NAME>. */
#define NT_TYPE_MAP(X)                                                       \
    X(EVENT, "event")                                                        \
    X(SEND, "send")                                                          \
    X(ACK, "ack")                                                            \
    X(SEND_ERROR, "send_error")                                              \
    X(REVOKE, "revoke")                                                      \
    X(DISCONNECT, "disconnect")                                              \
    X(UNREAD, "unread")                                                      \
    X(OPEN, "open")                                                          \
    X(CLOSE, "close")                                                        \
    X(SUB, "sub")                                                            \
    X(UNSUB, "unsub")

/* The constants are arrays, so they work in static initializers (address constants)
 * and with strlen; sizeof does not see their length outside wire.c. */
#define NT_WIRE_DECLARE_SUBJ(name, text) extern const char NT_SUBJ_##name[];
#define NT_WIRE_DECLARE_QUEUE(name, text) extern const char NT_QUEUE_##name[];
#define NT_WIRE_DECLARE_KEY(name, text) extern const char NT_KEY_##name[];
#define NT_WIRE_DECLARE_TYPE(name, text) extern const char NT_TYPE_##name[];
NT_SUBJECT_MAP(NT_WIRE_DECLARE_SUBJ)
NT_WIRE_QUEUE_MAP(NT_WIRE_DECLARE_QUEUE)
NT_KEY_MAP(NT_WIRE_DECLARE_KEY)
NT_TYPE_MAP(NT_WIRE_DECLARE_TYPE)
#undef NT_WIRE_DECLARE_SUBJ
#undef NT_WIRE_DECLARE_QUEUE
#undef NT_WIRE_DECLARE_KEY
#undef NT_WIRE_DECLARE_TYPE

/* Every fixed subject, in NT_SUBJECT_MAP order, NULL-terminated (tests, docs checks). */
extern const char *const nt_wire_subjects[];

/* ---- parametrised subjects ---- */

/* The <kind> of natter.<kind>.<app>.<id>. */
#define NT_SUBJ_KIND_ROOM "room"
#define NT_SUBJ_KIND_USER "user"

/* A buffer this size holds every subject the builders below make from valid ids
 * (a kind of at most 8 characters): "natter." kind "." 64 "." 64 and the NUL. */
#define NT_SUBJ_CAP 160

/* The builders write a NUL-terminated subject into buf[0..cap) and return its length.
 * Every app, room, user and id must match [A-Za-z0-9_-]{1,64} (nt_valid_id), so a
 * part can never add a token or a wildcard to the subject. They return -1, leaving
 * buf "" when cap > 0, when a part is not such an id or the subject does not fit:
 * never a truncated subject. */

/* natter.<kind>.<app>.<id>; kind is a non-empty [a-z]{1,8} word. */
int nt_subj_target(char *buf, size_t cap, const char *kind, const char *app, const char *id);
/* natter.room.<app>.<room>: a room's events. */
int nt_subj_room(char *buf, size_t cap, const char *app, const char *room);
/* natter.user.<app>.<user>: one user's acks, events, disconnects and revokes. */
int nt_subj_user(char *buf, size_t cap, const char *app, const char *user);
/* natter.in.<app>.<partition>: the JetStream send subject of partition p. */
int nt_subj_in(char *buf, size_t cap, const char *app, unsigned partition);
/* natter.in.*.<partition>: the filter of partition p's pull consumer. */
int nt_subj_in_filter(char *buf, size_t cap, unsigned partition);

/* The parts of natter.<kind>.<app>.<id>, pointing into the parsed subject. */
typedef struct nt_subj_parts {
    const char *app;
    size_t app_len;
    const char *id;              /* room or user id */
    size_t id_len;
} nt_subj_parts;

/* Splits subject[0..len) when it is natter.<kind>.<app>.<id> with both parts valid
 * ids; false otherwise (out is then zeroed). No copy: out points into subject. */
bool nt_subj_parse(const char *subject, size_t len, const char *kind, nt_subj_parts *out);
/* nt_subj_parse for natter.room.<app>.<room>. */
bool nt_subj_parse_room(const char *subject, size_t len, nt_subj_parts *out);

/* ---- settings read by more than one process ---- */

/* X(NAME, env, default, min, max). The bounds are the ones every process reading the
 * setting accepts (the intersection of what each used to take), so a value passes
 * everywhere or nowhere:
 * - NATTER_PARTITIONS: 1..1024 (the persister's limit; the gateway took up to 4096,
 *   where the persister refused to start). Must be equal on every process.
 * - NATTER_MAX_MESSAGE_CHARS: 1..1000000 (the persister's; the gateway took up to
 *   1048576, so a longer limit there let through messages the persister refused).
 * - NATTER_REQUEST_TIMEOUT_MS, NATTER_MAX_TOKEN_LIFETIME_S (gateway, router) and
 *   NATTER_BUS_QUEUE (router, persister) already agreed. */
#define NT_WIRE_SETTING_MAP(X)                                                            \
    X(PARTITIONS, "NATTER_PARTITIONS", 4, 1, 1024)                                        \
    X(MAX_MESSAGE_CHARS, "NATTER_MAX_MESSAGE_CHARS", 5000, 1, 1000000)                    \
    X(REQUEST_TIMEOUT_MS, "NATTER_REQUEST_TIMEOUT_MS", 5000, 100, 600000)                 \
    X(MAX_TOKEN_LIFETIME_S, "NATTER_MAX_TOKEN_LIFETIME_S", 7 * 86400, 60, 366 * 86400)    \
    X(BUS_QUEUE, "NATTER_BUS_QUEUE", 65536, 16, 16777216)

/* String settings: X(NAME, env, default). */
#define NT_WIRE_STR_SETTING_MAP(X)                                                        \
    X(NATS_URL, "NATTER_NATS_URL", "nats://127.0.0.1:4222")

typedef enum {
#define NT_WIRE_SETTING_ENUM(name, env, def, min, max) NT_SET_##name,
    NT_WIRE_SETTING_MAP(NT_WIRE_SETTING_ENUM)
#undef NT_WIRE_SETTING_ENUM
    NT_SET_COUNT
} nt_wire_setting;

typedef enum {
#define NT_WIRE_STR_SETTING_ENUM(name, env, def) NT_SET_##name,
    NT_WIRE_STR_SETTING_MAP(NT_WIRE_STR_SETTING_ENUM)
#undef NT_WIRE_STR_SETTING_ENUM
    NT_SET_STR_COUNT
} nt_wire_str_setting;

/* One row of NT_WIRE_SETTING_MAP. */
typedef struct nt_wire_bounds {
    const char *env;
    int64_t def, min, max;
} nt_wire_bounds;

/* The row of an integer setting; NULL for an id out of range. */
const nt_wire_bounds *nt_wire_setting_bounds(nt_wire_setting id);
/* Reads an integer setting with its one default and bounds (nt_config_int: a bad
 * value prints one line and exits 2). An id out of range is a programming error:
 * it aborts. */
int64_t nt_wire_int(nt_wire_setting id);
/* Reads a string setting (nt_config_str, its default when unset or empty); the
 * result is the environment's string or a constant, never freed. Aborts on a bad id. */
const char *nt_wire_str(nt_wire_str_setting id);

/* The processes, for what differs between them on purpose. */
typedef enum { NT_WIRE_GATEWAY, NT_WIRE_ROUTER, NT_WIRE_PERSISTER } nt_wire_proc;

/* NATTER_METRICS_LISTEN: one name, a port of its own per process by default
 * (gateway 127.0.0.1:9101, router :9102, persister :9103). Never freed. */
const char *nt_wire_metrics_listen(nt_wire_proc proc);

/* ---- message identity ---- */

/* The digest of a message's room and text (FNV-1a 64 of room, a NUL, then text): a
 * resend with the same client_msg_id must have the same one, or it is a `conflict`.
 * The gateway sends it with a lookup, the persister compares it with the stored row. */
int64_t nt_msg_digest(const char *room, const char *text, size_t text_len);

#endif
