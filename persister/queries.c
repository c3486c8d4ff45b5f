/* queries.c: membership, history and send lookups for gateways and routers. Each
 * request becomes one pipeline segment on the read connection; the reply is an
 * envelope with ok (and code/message when false). */
#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "envelope.h"
#include "log.h"
#include "receipts.h"
#include "rpc.h"
#include "unread.h"
#include "util.h"
#include "wire.h"

#define RPC_HISTORY_DEFAULT 50
#define RPC_SEQ_MAX "9223372036854775807"
#define RPC_READ_MAX_IDS 100

/* "small": room $2 of app $1 has at most max members, the joining or leaving one
 * included; counted only when the membership changed (cond), else NULL. The count
 * uses the statement's snapshot, from before the change: a join needs fewer than max
 * (op "<"), a leave at most max (op "<="). */
#define ROOM_SMALL(cond, op, max)                                                             \
    "CASE WHEN " cond " THEN (SELECT count(*) FROM (SELECT 1 FROM members mc"                 \
    " WHERE mc.app = $1 AND mc.room = $2 LIMIT " max "::int + 1) mcs) " op " " max "::int"    \
    " END AS small"

const ps_pg_stmt ps_queries_stmts[] = {
    /* The last column of join, leave, member_add and member_remove: whether the room
     * is small enough for member_joined / member_left (at most $N members, counted up
     * to N + 1 only, so the check costs O(N) whatever the room's size). */
    { "join",
      "SELECT j.*, " ROOM_SMALL("j.joined", "<", "$6") " FROM natter_join($1, $2, $3, $4, $5) j", 6 },
    { "leave",
      "WITH d AS (DELETE FROM members WHERE app = $1 AND room = $2 AND user_id = $3"
      " RETURNING name) SELECT d.name, " ROOM_SMALL("true", "<=", "$4") " FROM d", 4 },
    { "create", "SELECT * FROM natter_create($1, $2, $3, $4, $5, $6::text[], $7)", 7 },
    { "dm", "SELECT * FROM natter_dm($1, $2, $3, $4)", 4 },
    { "lookup",
      "SELECT room, id, seq, natter_ts(created_at), body FROM messages"
      " WHERE app = $1 AND sender = $2 AND client_msg_id = $3", 3 },
    { "access", "SELECT natter_room_access($1, $2, $3)", 3 },
    { "member_add", "SELECT m.*, " ROOM_SMALL("m.status = 'ok'", "<", "$6")
      " FROM natter_add_member($1, $2, $3, $4::boolean, $5) m", 6 },
    { "member_remove", "SELECT m.*, " ROOM_SMALL("m.status = 'ok'", "<=", "$6")
      " FROM natter_remove_member($1, $2, $3, $4::boolean, $5) m", 6 },
    { "hist_desc",
      "SELECT id, room, seq, sender, sender_name, body, type, reply_to, client_msg_id,"
      " natter_ts(created_at) FROM messages"
      " WHERE app = $1 AND room = $2 AND seq < $3::bigint AND seq > $4::bigint"
      " ORDER BY seq DESC LIMIT $5::int", 5 },
    { "hist_asc",
      "SELECT id, room, seq, sender, sender_name, body, type, reply_to, client_msg_id,"
      " natter_ts(created_at) FROM messages"
      " WHERE app = $1 AND room = $2 AND seq < $3::bigint AND seq > $4::bigint"
      " ORDER BY seq ASC LIMIT $5::int", 5 },
    { "read", "SELECT * FROM natter_read($1, $2, $3, $4::bigint, $5::text[])", 5 },
    { "delivered", "SELECT * FROM natter_delivered($1, $2, $3, $4::bigint)", 4 },
    { "unread",
      "SELECT m.room, greatest(r.last_seq - m.last_read_seq, 0) FROM members m"
      " JOIN rooms r ON r.app = m.app AND r.room = m.room"
      " WHERE m.app = $1 AND m.user_id = $2 ORDER BY m.room", 2 },
    /* the chat list: columns 0-5 the room, 6-15 its newest message as in hist_* */
    { "rooms",
      "SELECT r.room, r.name, r.kind, r.last_seq, greatest(r.last_seq - m.last_read_seq, 0),"
      " natter_ts(r.last_activity_at), lm.id, lm.room, lm.seq, lm.sender, lm.sender_name,"
      " lm.body, lm.type, lm.reply_to, lm.client_msg_id, natter_ts(lm.created_at)"
      " FROM members m JOIN rooms r ON r.app = m.app AND r.room = m.room"
      " LEFT JOIN LATERAL (SELECT * FROM messages x WHERE x.app = r.app AND x.room = r.room"
      " ORDER BY x.seq DESC LIMIT 1) lm ON true"
      " WHERE m.app = $1 AND m.user_id = $2"
      " ORDER BY r.last_activity_at DESC, r.room LIMIT 100", 2 },
    /* unread.c: counts of the dirty (app, user, room) triples ($1-$3) and of every
     * member of the dirty (app, room) pairs ($4-$5), with each user's total. Linear
     * in the dirty users whatever the planner guesses for unnest (10 rows on a
     * generic plan): the dirty member rows are found by primary key, grouped per
     * user, and each user's rooms are read once through members_by_user in a LATERAL
     * subquery that its window function keeps a per-user index lookup. */
    { "unread_flush",
      "WITH dirty AS ("
      "  SELECT m.app, m.user_id, m.room"
      "    FROM unnest($1::text[], $2::text[], $3::text[]) AS d(app, user_id, room)"
      "    JOIN members m ON m.app = d.app AND m.user_id = d.user_id AND m.room = d.room"
      "  UNION"
      "  SELECT m.app, m.user_id, m.room FROM unnest($4::text[], $5::text[]) AS d(app, room)"
      "    JOIN members m ON m.app = d.app AND m.room = d.room),"
      " u AS (SELECT app, user_id, array_agg(room) AS rooms FROM dirty GROUP BY app, user_id)"
      " SELECT u.app, u.user_id, x.room, x.unread, x.total"
      " FROM u CROSS JOIN LATERAL ("
      "  SELECT m.room, greatest(r.last_seq - m.last_read_seq, 0) AS unread,"
      "   (sum(greatest(r.last_seq - m.last_read_seq, 0)) OVER ())::bigint AS total"
      "  FROM members m JOIN rooms r ON r.app = m.app AND r.room = m.room"
      "  WHERE m.app = u.app AND m.user_id = u.user_id) x"
      " WHERE x.room = ANY (u.rooms)"
      " ORDER BY u.app, u.user_id", 5 },
};
const size_t ps_queries_nstmts = sizeof(ps_queries_stmts) / sizeof(ps_queries_stmts[0]);

/* The rpc kinds: the subject each is requested on, the statement it runs first
 * with its number of parameters and the callback of its result, and the function
 * that queues its statements (rpc_send_fn). */
#define RPC_MAP(X)                                                                      \
    X(JOIN, NT_SUBJ_RPC_PERSIST_JOIN, "join", 6, on_join, send_one)                     \
    X(LEAVE, NT_SUBJ_RPC_PERSIST_LEAVE, "leave", 4, on_leave, send_one)                 \
    X(HISTORY, NT_SUBJ_RPC_PERSIST_HISTORY, "access", 3, on_access, send_history)       \
    X(LOOKUP, NT_SUBJ_RPC_PERSIST_LOOKUP, "lookup", 3, on_lookup, send_one)             \
    X(READ, NT_SUBJ_RPC_PERSIST_READ, "read", 5, on_read, send_one)                     \
    X(DELIVERED, NT_SUBJ_RPC_PERSIST_DELIVERED, "delivered", 4, on_delivered, send_one) \
    X(UNREAD, NT_SUBJ_RPC_PERSIST_UNREAD, "unread", 2, on_unread, send_one)             \
    X(ROOMS, NT_SUBJ_RPC_PERSIST_ROOMS, "rooms", 2, on_rooms, send_one)                 \
    X(CREATE, NT_SUBJ_RPC_PERSIST_CREATE, "create", 7, on_status, send_one)             \
    X(DM, NT_SUBJ_RPC_PERSIST_DM, "dm", 4, on_status, send_one)                         \
    X(ACCESS, NT_SUBJ_RPC_PERSIST_ACCESS, "access", 3, on_status, send_one)             \
    X(MEMBER_ADD, NT_SUBJ_RPC_PERSIST_MEMBER_ADD, "member_add", 6, on_member, send_one) \
    X(MEMBER_REMOVE, NT_SUBJ_RPC_PERSIST_MEMBER_REMOVE, "member_remove", 6, on_member,  \
      send_one)

typedef enum {
#define RPC_ENUM(name, subject, stmt, nparams, done, send) RPC_##name,
    RPC_MAP(RPC_ENUM)
#undef RPC_ENUM
    RPC_KINDS
} rpc_kind;

/* The subjects, for logs and subscriptions (rpc_kinds, below, has the rest). */
static const char *const rpc_subjects[RPC_KINDS] = {
#define RPC_SUBJECT(name, subject, stmt, nparams, done, send) subject,
    RPC_MAP(RPC_SUBJECT)
#undef RPC_SUBJECT
};

#define RPC_MEMBERS_MAX 1000

struct ps_queries {
    ps_ctx *ctx;
    nt_bus_sub *subs[RPC_KINDS];
    size_t pending;
};

typedef struct rpc_req {
    ps_queries *qs;
    ps_ctx *ctx;
    rpc_kind kind;
    char *reply;
    char *app, *room, *user, *name, *access_code, *cmid;
    bool has_digest;      /* lookup: the resend's nt_msg_digest, to tell a conflict */
    int64_t digest;
    bool ascending;       /* history paging forward from after_seq */
    int limit;
    char *ids;            /* read: message ids as an array literal, NULL for seq */
    char seq[24];         /* read/delivered: the mark asked for */
    char *access;         /* natter_room_access result */
    bool access_failed;
    char *visibility;     /* create: public or private */
    char *members;        /* create: member ids as an array literal, NULL for none */
    char *peer;           /* dm: the other user; member_add/remove: the actor */
    bool actor_admin;     /* member_add/remove: the actor's token has role admin */
    char *status;         /* create/dm: the function's status, answered after the commit */
    char *event;          /* member_joined/member_left frame, published after the commit */
    char *revoke;         /* member_remove: the removed user's member_left frame, sent on
                             their user subject after the commit (their gateways cut them off) */
} rpc_req;

static void req_free(rpc_req *q)
{
    bool counted = q->qs != NULL;
    if (counted)
        q->qs->pending--;
    nt_free(q->reply);
    nt_free(q->app);
    nt_free(q->room);
    nt_free(q->user);
    nt_free(q->name);
    nt_free(q->access_code);
    nt_free(q->cmid);
    nt_free(q->access);
    nt_free(q->ids);
    nt_free(q->visibility);
    nt_free(q->members);
    nt_free(q->peer);
    nt_free(q->status);
    nt_free(q->event);
    nt_free(q->revoke);
    ps_ctx *ctx = q->ctx;
    nt_free(q);
    if (counted)
        ps_settled(ctx);
}

/* Sends the reply envelope w (common/rpc.h) and frees it. */
static void reply_env(ps_ctx *ctx, const char *reply, nt_envw *w)
{
    nt_rpc_send(ctx->bus, reply, w);
    nt_metric_add(ctx->m.rpc_requests, 1);
}

static void reply_error(ps_ctx *ctx, const char *reply, const char *code, const char *message)
{
    nt_envw w;
    nt_rpc_error_init(&w, code, message, 0);
    reply_env(ctx, reply, &w);
}

/* Answers a failed query: NULL is a lost connection, anything else an SQL error. */
static void reply_pg_failure(rpc_req *q, PGresult *res)
{
    if (res == NULL) {
        reply_error(q->ctx, q->reply, "unavailable", "database connection lost");
        return;
    }
    nt_error("%s: query failed: %s", rpc_subjects[q->kind], PQresultErrorMessage(res));
    reply_error(q->ctx, q->reply, "internal", "database error");
}

static int64_t col_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static json_t *col_str(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* The member_joined / member_left frame of q (nt_malloc'd). */
static char *member_frame(const rpc_req *q, const char *event, const char *name)
{
    char channel[80];
    snprintf(channel, sizeof channel, "room.%s", q->room);
    json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:s?}}", "event", event, "channel", channel,
                          "data", "room_id", q->room, "user_id", q->user, "name", name);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = nt_strdup(js ? js : "{}");
    nt_free(js);
    json_decref(o);
    return out;
}

/* Keeps the member_joined / member_left frame of q for on_sync. */
static void member_event(rpc_req *q, const char *event, const char *name)
{
    nt_free(q->event);
    q->event = member_frame(q, event, name);
}

/* Columns: status, last_seq, last_read_seq, unread, created, joined, small. */
static void on_join(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res) || PQntuples(res) != 1) {
        reply_pg_failure(q, res);
    } else if (strcmp(PQgetvalue(res, 0, 0), "wrong_code") == 0) {
        reply_error(q->ctx, q->reply, "forbidden", "wrong access code");
    } else if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "room %s is private", q->room);
        reply_error(q->ctx, q->reply, "forbidden", msg);
    } else {
        nt_envw w;
        nt_rpc_ok_init(&w);
        nt_envw_cstr(&w, NT_KEY_ROOM, q->room);
        nt_envw_int(&w, NT_KEY_LAST_SEQ, col_int(res, 0, 1));
        nt_envw_int(&w, NT_KEY_LAST_READ_SEQ, col_int(res, 0, 2));
        nt_envw_int(&w, NT_KEY_UNREAD, col_int(res, 0, 3));
        nt_envw_bool(&w, NT_KEY_CREATED, strcmp(PQgetvalue(res, 0, 4), "t") == 0);
        reply_env(q->ctx, q->reply, &w);
        if (strcmp(PQgetvalue(res, 0, 5), "t") == 0 && strcmp(PQgetvalue(res, 0, 6), "t") == 0)
            member_event(q, "member_joined", q->name ? q->name : q->user);
    }
}

static void on_leave(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res)) {
        reply_pg_failure(q, res);
    } else {
        nt_envw w;
        nt_rpc_ok_init(&w);
        reply_env(q->ctx, q->reply, &w);
        if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0)
            member_event(q, "member_left",
                         PQgetisnull(res, 0, 0) ? q->user : PQgetvalue(res, 0, 0));
    }
}

/* create / dm: the status is kept and answered by on_sync once committed. */
static void on_status(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (ps_pg_ok(res) && PQntuples(res) == 1)
        q->status = nt_strdup(PQgetvalue(res, 0, 0));
    else if (res != NULL)
        nt_error("%s: query failed: %s", rpc_subjects[q->kind], PQresultErrorMessage(res));
}

static void reply_status(rpc_req *q)
{
    char msg[160];
    if (strcmp(q->status, "ok") != 0) {
        if (q->kind == RPC_CREATE) {
            snprintf(msg, sizeof msg, "room %s already exists", q->room);
            reply_error(q->ctx, q->reply, "bad_request", msg);
        } else {
            snprintf(msg, sizeof msg, "room %s is private", q->room);
            reply_error(q->ctx, q->reply, "forbidden", msg);
        }
        return;
    }
    nt_envw w;
    nt_rpc_ok_init(&w);
    nt_envw_cstr(&w, NT_KEY_ROOM, q->room);
    reply_env(q->ctx, q->reply, &w);
}

static void reply_json(rpc_req *q, json_t *o);

/* member_add / member_remove: status (and for a removal the member's name) kept
 * for on_sync; the membership event is published only once committed. */
static void on_member(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res) || PQntuples(res) != 1) {
        if (res != NULL)
            nt_error("%s: query failed: %s", rpc_subjects[q->kind], PQresultErrorMessage(res));
        return;
    }
    q->status = nt_strdup(PQgetvalue(res, 0, 0));
    if (q->kind == RPC_MEMBER_REMOVE && strcmp(q->status, "ok") == 0)   /* whatever the room's size */
        q->revoke = member_frame(q, "member_left",
                                 PQgetisnull(res, 0, 1) ? q->user : PQgetvalue(res, 0, 1));
    if (strcmp(q->status, "ok") != 0 || strcmp(PQgetvalue(res, 0, PQnfields(res) - 1), "t") != 0)
        return;                            /* the last column: small (ROOM_SMALL) */
    if (q->kind == RPC_MEMBER_ADD)
        member_event(q, "member_joined", q->user);
    else
        member_event(q, "member_left",
                     PQgetisnull(res, 0, 1) ? q->user : PQgetvalue(res, 0, 1));
}

static void reply_member(rpc_req *q)
{
    char msg[200];
    bool add = q->kind == RPC_MEMBER_ADD;
    if (strcmp(q->status, "not_found") == 0) {
        snprintf(msg, sizeof msg, "room %s does not exist", q->room);
        reply_error(q->ctx, q->reply, "not_found", msg);
    } else if (strcmp(q->status, "forbidden") == 0) {
        reply_error(q->ctx, q->reply, "forbidden",
                    add ? "only the room's owner or an admin may add members"
                        : "only the room's owner or an admin may remove members");
    } else if (!add && strcmp(q->status, "noop") == 0) {
        snprintf(msg, sizeof msg, "user %s is not a member of room %s", q->user, q->room);
        reply_error(q->ctx, q->reply, "not_found", msg);
    } else {
        bool changed = strcmp(q->status, "ok") == 0;
        reply_json(q, json_pack("{s:s,s:s,s:b}", "room_id", q->room, "user_id", q->user,
                                add ? "added" : "removed", changed));
    }
}

/* The segment's sync point: its transaction is committed (or failed). Answers
 * create/dm, publishes a membership event, and frees q. */
/* natter.rpc.persist.access: may q->user see q->room (natter_room_access)? */
static void reply_access(rpc_req *q)
{
    char msg[160];
    if (strcmp(q->status, "ok") == 0) {
        nt_envw w;
        nt_rpc_ok_init(&w);
        reply_env(q->ctx, q->reply, &w);
    } else if (strcmp(q->status, "not_found") == 0) {
        snprintf(msg, sizeof msg, "room %s does not exist", q->room);
        reply_error(q->ctx, q->reply, "not_found", msg);
    } else {
        snprintf(msg, sizeof msg, "room %s is private", q->room);
        reply_error(q->ctx, q->reply, "forbidden", msg);
    }
}

/* Publishes {type, room, json, lazy?} on natter.<kind>.<app>.<id> after q's commit. */
static void publish_frame(const rpc_req *q, const char *kind, const char *id, const char *type,
                          const char *json, bool lazy)
{
    char subject[NT_SUBJ_CAP];
    if (nt_subj_target(subject, sizeof subject, kind, q->app, id) < 0) {
        nt_warn("no subject for %s %s of app %s", kind, id, q->app);
        return;
    }
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_TYPE, type);
    nt_envw_cstr(&w, NT_KEY_ROOM, q->room);
    nt_envw_cstr(&w, NT_KEY_JSON, json);
    if (lazy)
        nt_envw_bool(&w, NT_KEY_LAZY, true);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(q->ctx->bus, subject, NULL, data, len) != NT_OK)
        nt_warn("publish to %s failed", subject);
    nt_envw_free(&w);
}

static void on_sync(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    bool committed = res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    if (q->kind == RPC_ACCESS) {
        if (committed && q->status != NULL)
            reply_access(q);
        else
            reply_pg_failure(q, res);
    }
    if (q->kind == RPC_CREATE || q->kind == RPC_DM) {
        if (committed && q->status != NULL)
            reply_status(q);
        else
            reply_pg_failure(q, res);
    }
    if (q->kind == RPC_MEMBER_ADD || q->kind == RPC_MEMBER_REMOVE) {
        if (committed && q->status != NULL)
            reply_member(q);
        else
            reply_pg_failure(q, res);
    }
    /* The revoke first, so the removed user's gateways have cut them off before the
     * room's member_left (and anything after it) arrives: one connection, in order. */
    if (committed && q->revoke != NULL)
        publish_frame(q, NT_SUBJ_KIND_USER, q->user, NT_TYPE_REVOKE, q->revoke, false);
    if (committed && q->event != NULL)   /* an announcement: may ride with the next frame */
        publish_frame(q, NT_SUBJ_KIND_ROOM, q->room, NT_TYPE_EVENT, q->event, true);
    req_free(q);
}

static void on_lookup(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res)) {
        reply_pg_failure(q, res);
        return;
    }
    if (PQntuples(res) == 1 && q->has_digest &&
        nt_msg_digest(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 4), (size_t)PQgetlength(res, 0, 4)) !=
            q->digest) {
        char msg[300];
        snprintf(msg, sizeof msg, "client_msg_id %s was already used for message %s (seq %s in "
                 "room %s): a resend must have the same room and text; use a new client_msg_id",
                 q->cmid, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0));
        reply_error(q->ctx, q->reply, "conflict", msg);
        return;
    }
    nt_envw w;
    nt_rpc_ok_init(&w);
    nt_envw_bool(&w, NT_KEY_FOUND, PQntuples(res) == 1);
    if (PQntuples(res) == 1) {
        json_t *o = json_object();
        json_object_set_new(o, "id", col_str(res, 0, 1));
        json_object_set_new(o, "room_id", col_str(res, 0, 0));
        json_object_set_new(o, "seq", json_integer(col_int(res, 0, 2)));
        json_object_set_new(o, "created_at", col_str(res, 0, 3));
        json_object_set_new(o, "client_msg_id", json_string(q->cmid));
        char *js = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        nt_envw_cstr(&w, NT_KEY_JSON, js);
        nt_free(js);
    }
    reply_env(q->ctx, q->reply, &w);
}

static void on_access(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res) || PQntuples(res) != 1) {
        q->access_failed = true;
        return;
    }
    q->access = nt_strdup(PQgetvalue(res, 0, 0));
}

/* A message object from ten columns starting at c (the order of hist_*). */
static json_t *message_at(const PGresult *res, int row, int c)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", col_str(res, row, c + 0));
    json_object_set_new(m, "room_id", col_str(res, row, c + 1));
    json_object_set_new(m, "seq", json_integer(col_int(res, row, c + 2)));
    json_object_set_new(m, "sender_id", col_str(res, row, c + 3));
    json_object_set_new(m, "sender_name", col_str(res, row, c + 4));
    json_object_set_new(m, "message", col_str(res, row, c + 5));
    json_object_set_new(m, "message_type", col_str(res, row, c + 6));
    json_object_set_new(m, "reply_to", col_str(res, row, c + 7));
    json_object_set_new(m, "client_msg_id", col_str(res, row, c + 8));
    json_object_set_new(m, "created_at", col_str(res, row, c + 9));
    return m;
}

static json_t *history_row(const PGresult *res, int row)
{
    return message_at(res, row, 0);
}

/* Replies ok with `json` = o (consumed). */
static void reply_json(rpc_req *q, json_t *o)
{
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    nt_envw w;
    nt_rpc_ok_json_init(&w, js, js != NULL ? strlen(js) : 0);
    reply_env(q->ctx, q->reply, &w);
    nt_free(js);
}

/* natter_read / natter_delivered status other than ok. */
static void reply_mark_refused(rpc_req *q, const char *status)
{
    char msg[128];
    if (strcmp(status, "not_found") == 0) {
        snprintf(msg, sizeof msg, "room %s does not exist", q->room);
        reply_error(q->ctx, q->reply, "not_found", msg);
    } else {
        snprintf(msg, sizeof msg, "not a member of room %s", q->room);
        reply_error(q->ctx, q->reply, "forbidden", msg);
    }
}

/* Columns: status, last_read_seq, unread, moved, at. */
static void on_read(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res) || PQntuples(res) != 1) {
        reply_pg_failure(q, res);
    } else if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
        reply_mark_refused(q, PQgetvalue(res, 0, 0));
    } else {
        int64_t seq = col_int(res, 0, 1);
        reply_json(q, json_pack("{s:I,s:I}", "last_read_seq", (json_int_t)seq, "unread",
                                (json_int_t)col_int(res, 0, 2)));
        if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
            ps_receipts_note(q->ctx->receipts, q->app, q->room, q->user, false, seq,
                             PQgetvalue(res, 0, 4));
            ps_unread_user(q->ctx->unread, q->app, q->user, q->room);
        }
    }
}

/* Columns: status, last_delivered_seq, moved, at. */
static void on_delivered(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res) || PQntuples(res) != 1) {
        reply_pg_failure(q, res);
    } else if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
        reply_mark_refused(q, PQgetvalue(res, 0, 0));
    } else {
        int64_t seq = col_int(res, 0, 1);
        reply_json(q, json_pack("{s:I}", "last_delivered_seq", (json_int_t)seq));
        if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
            ps_receipts_note(q->ctx->receipts, q->app, q->room, q->user, true, seq,
                             PQgetvalue(res, 0, 3));
    }
}

static void on_unread(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res)) {
        reply_pg_failure(q, res);
    } else {
        json_t *rooms = json_object();
        int64_t total = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            int64_t n = col_int(res, i, 1);
            json_object_set_new(rooms, PQgetvalue(res, i, 0), json_integer(n));
            total += n;
        }
        reply_json(q, json_pack("{s:o,s:I}", "rooms", rooms, "total", (json_int_t)total));
    }
}

static void on_rooms(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    if (!ps_pg_ok(res)) {
        reply_pg_failure(q, res);
    } else {
        json_t *list = json_array();
        for (int i = 0; i < PQntuples(res); i++) {
            json_t *last = PQgetisnull(res, i, 6) ? json_null() : message_at(res, i, 6);
            json_array_append_new(list, json_pack("{s:o,s:o,s:o,s:I,s:I,s:o,s:o}",
                "room_id", col_str(res, i, 0), "name", col_str(res, i, 1),
                "kind", col_str(res, i, 2), "last_seq", (json_int_t)col_int(res, i, 3),
                "unread", (json_int_t)col_int(res, i, 4), "last_message", last,
                "last_activity_at", col_str(res, i, 5)));
        }
        reply_json(q, list);
    }
}

/* True for a 36-character 8-4-4-4-12 hex UUID: only those can be message ids. */
static bool uuid_like(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char ch = s[i];
        if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                                 (ch >= 'A' && ch <= 'F')))
            return false;
    }
    return true;
}

/* read: ids (array of strings, at most RPC_READ_MAX_IDS) or seq (>= 0). Ids that
 * cannot be message ids are left out: they match nothing in the room anyway. */
static const char *decode_mark(rpc_req *q, const nt_envr *r)
{
    const msgpack_object *ids = q->kind == RPC_READ ? nt_envr_get(r, NT_KEY_IDS) : NULL;
    int64_t seq = 0;
    if (ids != NULL) {
        if (ids->type != MSGPACK_OBJECT_ARRAY || ids->via.array.size > RPC_READ_MAX_IDS)
            return "ids must be an array of at most 100 message ids";
        size_t cap = 2 + ids->via.array.size * 37, len = 0;
        q->ids = nt_malloc(cap + 1);
        q->ids[len++] = '{';
        for (uint32_t i = 0; i < ids->via.array.size; i++) {
            const msgpack_object *o = &ids->via.array.ptr[i];
            if (o->type != MSGPACK_OBJECT_STR)
                return "ids must be an array of strings";
            if (!uuid_like(o->via.str.ptr, o->via.str.size))
                continue;
            if (len > 1)
                q->ids[len++] = ',';
            memcpy(q->ids + len, o->via.str.ptr, 36);
            len += 36;
        }
        q->ids[len++] = '}';
        q->ids[len] = '\0';
        return NULL;
    }
    if (!nt_envr_int(r, NT_KEY_SEQ, &seq) || seq < 0)
        return "seq must be an integer >= 0";
    snprintf(q->seq, sizeof q->seq, "%lld", (long long)seq);
    return NULL;
}

static void on_history(PGresult *res, void *arg)
{
    rpc_req *q = arg;
    char msg[128];
    if (!ps_pg_ok(res)) {
        reply_pg_failure(q, res);
    } else if (q->access_failed) {
        reply_error(q->ctx, q->reply, "internal", "database error");
    } else if (q->access == NULL || strcmp(q->access, "not_found") == 0) {
        snprintf(msg, sizeof(msg), "room %s does not exist", q->room);
        reply_error(q->ctx, q->reply, "not_found", msg);
    } else if (strcmp(q->access, "ok") != 0) {
        snprintf(msg, sizeof(msg), "not a member of room %s", q->room);
        reply_error(q->ctx, q->reply, "forbidden", msg);
    } else {
        int rows = PQntuples(res);
        bool has_more = rows > q->limit;
        int n = has_more ? q->limit : rows;
        json_t *list = json_array();
        for (int i = 0; i < n; i++) {
            int row = q->ascending ? i : n - 1 - i;
            json_array_append_new(list, history_row(res, row));
        }
        json_t *o = json_object();
        json_object_set_new(o, "messages", list);
        json_object_set_new(o, "has_more", json_boolean(has_more));
        reply_json(q, o);
    }
}

static char *field_id(const nt_envr *r, const char *key)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    return s != NULL && nt_valid_id(s, len) ? nt_strndup(s, len) : NULL;
}

static char *field_text(const nt_envr *r, const char *key, size_t max)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    if (s == NULL || len > max || !nt_valid_utf8(s, len) || memchr(s, '\0', len) != NULL)
        return NULL;
    return nt_strndup(s, len);
}

/* create: members (array of at most RPC_MEMBERS_MAX user ids) as an array literal;
 * ids need no quoting ([A-Za-z0-9_-]). */
static const char *decode_members(rpc_req *q, const nt_envr *r)
{
    const msgpack_object *m = nt_envr_get(r, NT_KEY_MEMBERS);
    if (m == NULL || m->type == MSGPACK_OBJECT_NIL)
        return NULL;
    if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size > RPC_MEMBERS_MAX)
        return "members must be an array of at most 1000 user ids";
    size_t len = 0;
    q->members = nt_malloc(2 + m->via.array.size * 65 + 1);
    q->members[len++] = '{';
    for (uint32_t i = 0; i < m->via.array.size; i++) {
        const msgpack_object *o = &m->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR || !nt_valid_id(o->via.str.ptr, o->via.str.size))
            return "members must hold user ids of 1-64 [A-Za-z0-9_-]";
        if (len > 1)
            q->members[len++] = ',';
        memcpy(q->members + len, o->via.str.ptr, o->via.str.size);
        len += o->via.str.size;
    }
    q->members[len++] = '}';
    q->members[len] = '\0';
    return NULL;
}

static const char *decode_create(rpc_req *q, const nt_envr *r)
{
    q->room = field_id(r, NT_KEY_ROOM);
    q->user = field_id(r, NT_KEY_OWNER);
    if (q->room == NULL || q->user == NULL)
        return "missing or invalid room or owner";
    if (nt_envr_str_eq(r, NT_KEY_VISIBILITY, "public") ||
        nt_envr_str_eq(r, NT_KEY_VISIBILITY, "private"))
        q->visibility = field_text(r, NT_KEY_VISIBILITY, 16);
    else
        return "visibility must be public or private";
    size_t len;
    if (nt_envr_str(r, NT_KEY_NAME, &len) != NULL &&
        (q->name = field_text(r, NT_KEY_NAME, 512)) == NULL)
        return "invalid name";
    if (nt_envr_str(r, NT_KEY_ACCESS_CODE, &len) != NULL) {
        q->access_code = field_text(r, NT_KEY_ACCESS_CODE, 512);
        if (q->access_code == NULL || len < 4)
            return "invalid access_code";
        if (strcmp(q->visibility, "private") != 0)
            return "access_code is for private rooms";
    }
    return decode_members(q, r);
}

/* Fills q from the request; returns NULL or the reason it is a bad request. */
static const char *req_decode(rpc_req *q, const nt_envr *r)
{
    q->app = field_id(r, NT_KEY_APP);
    if (q->app == NULL)
        return "missing or invalid app";
    if (q->kind == RPC_LOOKUP) {
        q->user = field_id(r, NT_KEY_SENDER);
        q->cmid = field_text(r, NT_KEY_CMID, 64);
        if (q->user == NULL || q->cmid == NULL)
            return "missing or invalid sender or cmid";
        q->has_digest = nt_envr_int(r, NT_KEY_DIGEST, &q->digest);
        return NULL;
    }
    if (q->kind == RPC_UNREAD || q->kind == RPC_ROOMS) {
        q->user = field_id(r, NT_KEY_USER);
        return q->user == NULL ? "missing or invalid user" : NULL;
    }
    if (q->kind == RPC_CREATE)
        return decode_create(q, r);
    q->room = field_id(r, NT_KEY_ROOM);
    q->user = field_id(r, NT_KEY_USER);
    if (q->room == NULL || q->user == NULL)
        return "missing or invalid room or user";
    if (q->kind == RPC_MEMBER_ADD || q->kind == RPC_MEMBER_REMOVE) {
        q->peer = field_id(r, NT_KEY_ACTOR);
        if (q->peer == NULL)
            return "missing or invalid actor";
        if (!nt_envr_bool(r, NT_KEY_ADMIN, &q->actor_admin))
            q->actor_admin = false;
        return NULL;
    }
    if (q->kind == RPC_DM) {
        q->peer = field_id(r, NT_KEY_PEER);
        if (q->peer == NULL || strcmp(q->peer, q->user) == 0)
            return "missing or invalid peer";
    }
    if (q->kind == RPC_READ || q->kind == RPC_DELIVERED)
        return decode_mark(q, r);
    if (q->kind == RPC_JOIN) {
        q->name = field_text(r, NT_KEY_NAME, 256);
        q->access_code = field_text(r, NT_KEY_ACCESS_CODE, 512);
    }
    return NULL;
}

/* The read connection of q's user: one user's requests stay in order, different
 * users' commits overlap (their WAL flushes shared). */
static ps_pg *req_pg(const rpc_req *q)
{
    const ps_ctx *ctx = q->ctx;
    return ctx->rpgs[nt_partition(q->app ? q->app : "", q->user ? q->user : "", ctx->nrpg)];
}

/* Queues q's statements on pg (req_pg(q)), not yet their sync. NT_EINVAL with *bad
 * set: a bad request; another error: the connection refused them. */
typedef nt_status rpc_send_fn(rpc_req *q, ps_pg *pg, const nt_envr *r, const char **bad);
static rpc_send_fn send_one, send_history;

static const struct {
    const char *stmt;     /* the first statement (ps_queries_stmts) */
    int nparams;
    ps_pg_result_cb done; /* its result */
    rpc_send_fn *send;
} rpc_kinds[RPC_KINDS] = {
#define RPC_ROW(name, subject, stmt, nparams, done, send) { stmt, nparams, done, send },
    RPC_MAP(RPC_ROW)
#undef RPC_ROW
};

/* The one statement of q's kind, its parameters taken from q. */
static nt_status send_one(rpc_req *q, ps_pg *pg, const nt_envr *r, const char **bad)
{
    (void)r, (void)bad;
    const char *max = q->ctx->cfg.member_events_max;
    const char *admin = q->actor_admin ? "true" : "false";
    const char *const params[RPC_KINDS][7] = {
        [RPC_JOIN] = { q->app, q->room, q->user, q->name, q->access_code, max },
        [RPC_LEAVE] = { q->app, q->room, q->user, max },
        [RPC_LOOKUP] = { q->app, q->user, q->cmid },
        [RPC_READ] = { q->app, q->room, q->user, q->ids ? "0" : q->seq, q->ids },
        [RPC_DELIVERED] = { q->app, q->room, q->user, q->seq },
        [RPC_UNREAD] = { q->app, q->user },
        [RPC_ROOMS] = { q->app, q->user },
        [RPC_CREATE] = { q->app, q->room, q->name, q->visibility, q->user, q->members,
                         q->access_code },
        [RPC_DM] = { q->app, q->room, q->user, q->peer },
        [RPC_ACCESS] = { q->app, q->room, q->user },
        [RPC_MEMBER_ADD] = { q->app, q->room, q->peer, admin, q->user, max },
        [RPC_MEMBER_REMOVE] = { q->app, q->room, q->peer, admin, q->user, max },
    };
    return ps_pg_prepared(pg, rpc_kinds[q->kind].stmt, rpc_kinds[q->kind].nparams,
                          params[q->kind], rpc_kinds[q->kind].done, q);
}

/* The room's access (the kind's first statement), then the page of history asked
 * for (before_seq, after_seq, limit). */
static nt_status send_history(rpc_req *q, ps_pg *pg, const nt_envr *r, const char **bad)
{
    ps_ctx *ctx = q->ctx;
    int64_t before = 0, after = 0, limit = 0;
    bool has_before = nt_envr_int(r, NT_KEY_BEFORE_SEQ, &before);
    bool has_after = nt_envr_int(r, NT_KEY_AFTER_SEQ, &after);
    int def = RPC_HISTORY_DEFAULT < ctx->cfg.history_max ? RPC_HISTORY_DEFAULT
                                                         : ctx->cfg.history_max;
    if (!nt_envr_int(r, NT_KEY_LIMIT, &limit) || limit == 0)
        limit = def;
    if (limit < 1 || limit > ctx->cfg.history_max || (has_before && before < 0) ||
        (has_after && after < 0)) {
        *bad = "limit, before_seq or after_seq out of range";
        return NT_EINVAL;
    }
    q->limit = (int)limit;
    q->ascending = has_after;
    char bv[24], av[24], lv[16];
    if (has_before)
        snprintf(bv, sizeof(bv), "%lld", (long long)before);
    else
        snprintf(bv, sizeof(bv), "%s", RPC_SEQ_MAX);
    snprintf(av, sizeof(av), "%lld", (long long)(has_after ? after : 0));
    snprintf(lv, sizeof(lv), "%d", q->limit + 1);
    const char *pa[3] = { q->app, q->room, q->user };
    nt_status st = ps_pg_prepared(pg, rpc_kinds[q->kind].stmt, rpc_kinds[q->kind].nparams, pa,
                                  rpc_kinds[q->kind].done, q);
    if (st != NT_OK)
        return st;
    const char *ph[5] = { q->app, q->room, bv, av, lv };
    ps_pg_prepared(pg, q->ascending ? "hist_asc" : "hist_desc", 5, ph, on_history, q);
    return NT_OK;
}

/* Queues q's statements (as its kind's row of rpc_kinds says) and their sync on pg
 * (req_pg(q)). */
static nt_status req_send(rpc_req *q, ps_pg *pg, const nt_envr *r, const char **bad)
{
    nt_status st = rpc_kinds[q->kind].send(q, pg, r, bad);
    if (st == NT_OK)
        ps_pg_sync(pg, on_sync, q);
    return st;
}

static void rpc_on_msg(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    ps_queries *qs = arg;
    ps_ctx *ctx = qs->ctx;
    if (msg->reply == NULL)
        return;
    rpc_kind kind = RPC_JOIN;
    while (kind < RPC_KINDS && strcmp(msg->subject, rpc_subjects[kind]) != 0)
        kind++;
    if (kind == RPC_KINDS) {      /* a subject with no row of RPC_MAP */
        char why[160];
        snprintf(why, sizeof why, "unknown request type %s", msg->subject);
        nt_warn("%s", why);
        reply_error(ctx, msg->reply, "bad_request", why);
        return;
    }
    if (qs->pending >= (size_t)ctx->cfg.rpc_queue_max) {
        nt_metric_add(ctx->m.rpc_rejected, 1);
        reply_error(ctx, msg->reply, "unavailable", "persister busy (NATTER_RPC_QUEUE_MAX)");
        return;
    }
    nt_envr r;
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        reply_error(ctx, msg->reply, "bad_request", "request is not an envelope");
        return;
    }
    rpc_req *q = nt_calloc(1, sizeof(*q));
    q->ctx = ctx;
    q->kind = kind;
    q->reply = nt_strdup(msg->reply);
    const char *bad = req_decode(q, &r);
    nt_status st = NT_EINVAL;
    ps_pg *pg = bad == NULL ? req_pg(q) : NULL;
    if (pg != NULL && !ps_pg_up(pg)) {
        nt_envr_free(&r);
        nt_metric_add(ctx->m.rpc_rejected, 1);
        reply_error(ctx, q->reply, "unavailable", "database unavailable");
        req_free(q);
        return;
    }
    if (pg != NULL)
        st = req_send(q, pg, &r, &bad);
    nt_envr_free(&r);
    if (st == NT_OK) {
        q->qs = qs;
        qs->pending++;
        return;
    }
    if (bad != NULL)
        reply_error(ctx, q->reply, "bad_request", bad);
    else
        reply_error(ctx, q->reply, "unavailable", "database unavailable");
    req_free(q);
}

ps_queries *ps_queries_create(ps_ctx *ctx)
{
    ps_queries *qs = nt_calloc(1, sizeof(*qs));
    qs->ctx = ctx;
    for (int k = 0; k < RPC_KINDS; k++) {
        qs->subs[k] = nt_bus_subscribe(ctx->bus, rpc_subjects[k], NT_QUEUE_PERSISTER, rpc_on_msg, qs);
        if (qs->subs[k] == NULL) {
            nt_error("cannot subscribe %s", rpc_subjects[k]);
            ps_queries_destroy(qs);
            return NULL;
        }
    }
    return qs;
}

void ps_queries_unsubscribe(ps_queries *qs)
{
    for (int k = 0; k < RPC_KINDS; k++) {
        nt_bus_unsubscribe(qs->subs[k]);
        qs->subs[k] = NULL;
    }
}

void ps_queries_destroy(ps_queries *qs)
{
    if (qs == NULL)
        return;
    ps_queries_unsubscribe(qs);
    nt_free(qs);
}

size_t ps_queries_pending(const ps_queries *qs)
{
    return qs->pending;
}
