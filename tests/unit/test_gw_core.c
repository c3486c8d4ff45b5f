/* test_gw_core.c: the gateway core (send queues, room/user fan-out, dialect fan-out, replies) over a fake bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "bus.h"
#include "conn.h"
#include "dialect.h"
#include "envelope.h"
#include "gw.h"
#include "jwt.h"
#include "metrics.h"
#include "reply.h"
#include "rooms.h"
#include "wire.h"

/* ---- the fake bus ----
 * Defines every nt_bus_* symbol the gateway files under test use (nt_bus_subscribe,
 * nt_bus_unsubscribe; nt_bus_publish for completeness), so common/bus.c's archive
 * member is never pulled in. Subscriptions are recorded and a test delivers bytes to
 * them exactly as the bus would (callback on the loop thread with an nt_bus_msg). */

struct nt_bus { int unused; };

struct nt_bus_sub {
    char *subject;
    nt_bus_msg_cb cb;
    void *arg;
    struct nt_bus_sub *next;
};

typedef struct fake_pub {
    char *subject;
    char *data;
    size_t len;
    struct fake_pub *next;
} fake_pub;

static struct nt_bus fake_bus_obj;
static struct nt_bus_sub *fake_subs;
static fake_pub *fake_pubs;
static int fake_fail_subscribe;    /* > 0: the next subscribes fail */

nt_bus_sub *nt_bus_subscribe(nt_bus *bus, const char *subject, const char *queue,
                             nt_bus_msg_cb cb, void *arg)
{
    (void)queue;
    if (bus != &fake_bus_obj)
        fail_msg("subscribe on a bus that is not gw->bus");
    if (fake_fail_subscribe > 0) {
        fake_fail_subscribe--;
        return NULL;
    }
    struct nt_bus_sub *s = nt_calloc(1, sizeof *s);
    s->subject = nt_strdup(subject);
    s->cb = cb;
    s->arg = arg;
    s->next = fake_subs;
    fake_subs = s;
    return s;
}

void nt_bus_unsubscribe(nt_bus_sub *sub)
{
    if (!sub)
        return;
    for (struct nt_bus_sub **pp = &fake_subs; *pp; pp = &(*pp)->next)
        if (*pp == sub) {
            *pp = sub->next;
            nt_free(sub->subject);
            nt_free(sub);
            return;
        }
    fail_msg("unsubscribe of an unknown subscription");
}

nt_status nt_bus_publish(nt_bus *bus, const char *subject, const char *reply,
                         const void *data, size_t len)
{
    (void)bus;
    (void)reply;
    fake_pub *p = nt_calloc(1, sizeof *p);
    p->subject = nt_strdup(subject);
    p->data = nt_strndup(data, len);
    p->len = len;
    p->next = fake_pubs;
    fake_pubs = p;
    return NT_OK;
}

/* Subscriptions on exactly `subject`. */
static int fake_sub_count(const char *subject)
{
    int n = 0;
    for (struct nt_bus_sub *s = fake_subs; s; s = s->next)
        n += strcmp(s->subject, subject) == 0;
    return n;
}

static int fake_sub_total(void)
{
    int n = 0;
    for (struct nt_bus_sub *s = fake_subs; s; s = s->next)
        n++;
    return n;
}

/* Delivers data to every subscription of subject; returns how many got it. */
static int fake_deliver(const char *subject, const char *data, size_t len)
{
    int n = 0;
    for (struct nt_bus_sub *s = fake_subs, *next; s; s = next) {
        next = s->next;
        if (strcmp(s->subject, subject) != 0)
            continue;
        nt_bus_msg m = { .subject = subject, .reply = NULL, .data = data, .len = len };
        s->cb(&fake_bus_obj, &m, s->arg);
        n++;
    }
    return n;
}

static void fake_reset(void)
{
    while (fake_subs)
        nt_bus_unsubscribe(fake_subs);
    while (fake_pubs) {
        fake_pub *p = fake_pubs;
        fake_pubs = p->next;
        nt_free(p->subject);
        nt_free(p->data);
        nt_free(p);
    }
}

/* ---- envelopes ---- */

typedef struct ev {
    const char *type;                  /* NULL: "event" */
    const char *json;                  /* NULL: no json field */
    int64_t seq;                       /* 0: no seq field */
    const char *skip_user, *ack, *sender, *cmid, *reason;
    bool lazy;
    const char *const *rooms;          /* the "rooms" array (nrooms) */
    size_t nrooms;
} ev;

static int deliver_ev(const char *subject, const ev *e)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", e->type ? e->type : "event");
    if (e->json)
        nt_envw_cstr(&w, "json", e->json);
    if (e->seq)
        nt_envw_int(&w, "seq", e->seq);
    if (e->skip_user)
        nt_envw_cstr(&w, "skip_user", e->skip_user);
    if (e->ack)
        nt_envw_cstr(&w, "ack", e->ack);
    if (e->sender)
        nt_envw_cstr(&w, "sender", e->sender);
    if (e->cmid)
        nt_envw_cstr(&w, "cmid", e->cmid);
    if (e->reason)
        nt_envw_cstr(&w, "reason", e->reason);
    if (e->lazy)
        nt_envw_bool(&w, "lazy", true);
    if (e->rooms)
        nt_envw_str_array(&w, "rooms", e->rooms, e->nrooms);
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    int n = fake_deliver(subject, data, len);
    nt_envw_free(&w);
    return n;
}

/* Delivers one envelope to subject, which must have exactly one subscription. */
#define DELIVER(subject, ...) assert_int_equal(deliver_ev((subject), &(ev){ __VA_ARGS__ }), 1)

static const char *room_subject(const char *app, const char *room)
{
    static char buf[NT_SUBJ_CAP];
    assert_true(nt_subj_room(buf, sizeof buf, app, room) > 0);
    return buf;
}

static const char *user_subject(const char *app, const char *user)
{
    static char buf[NT_SUBJ_CAP];
    assert_true(nt_subj_user(buf, sizeof buf, app, user) > 0);
    return buf;
}

/* ---- test dialects ---- */

typedef struct rec {
    int acks, errors, events, fanouts;
    const json_t *ref;
    char data[256];
    gw_errcode code;
    char message[256];
    int64_t retry;
    char event[64], room[64];
    bool return_null;                  /* the encoders send nothing */
    const gw_buf *fanout_in;           /* the native buffer encode_fanout was given */
    char fanout_in_text[256];          /* its bytes (it may be freed once the fan-out ends) */
    gw_buf *fanout_out;                /* the buffer it returned */
} rec;

static rec R;                          /* what the test dialect was asked */

static char *owned(const char *s, size_t *len)
{
    *len = strlen(s);
    return nt_strdup(s);
}

static char *t_encode_ack(const json_t *ref, const char *data_json, size_t data_len, size_t *len)
{
    R.acks++;
    R.ref = ref;
    snprintf(R.data, sizeof R.data, "%.*s", (int)data_len, data_json);
    if (R.return_null)
        return NULL;
    char out[300];
    snprintf(out, sizeof out, "A|%s", R.data);
    return owned(out, len);
}

static char *t_encode_error(const json_t *ref, gw_errcode code, const char *message,
                            int64_t retry_after_ms, size_t *len)
{
    R.errors++;
    R.ref = ref;
    R.code = code;
    R.retry = retry_after_ms;
    snprintf(R.message, sizeof R.message, "%s", message);
    if (R.return_null)
        return NULL;
    char out[300];
    snprintf(out, sizeof out, "E|%s|%s|%lld", gw_errcode_name(code), message,
             (long long)retry_after_ms);
    return owned(out, len);
}

static char *t_encode_event(const char *event, const char *room, const char *data_json,
                            size_t data_len, size_t *len)
{
    R.events++;
    snprintf(R.event, sizeof R.event, "%s", event);
    snprintf(R.room, sizeof R.room, "%s", room ? room : "(null)");
    snprintf(R.data, sizeof R.data, "%.*s", (int)data_len, data_json);
    if (R.return_null)
        return NULL;
    char out[400];
    snprintf(out, sizeof out, "V|%s|%s|%s", R.event, R.room, R.data);
    return owned(out, len);
}

/* A dialect that re-encodes fan-out events: "T:" + the native bytes. */
static gw_buf *t_encode_fanout(const gw_buf *native)
{
    R.fanouts++;
    R.fanout_in = native;
    snprintf(R.fanout_in_text, sizeof R.fanout_in_text, "%.*s", (int)native->len,
             (const char *)gw_buf_payload(native));
    char out[512];
    int n = snprintf(out, sizeof out, "T:%.*s", (int)native->len,
                     (const char *)gw_buf_payload(native));
    R.fanout_out = gw_buf_create(out, (size_t)n);
    return R.fanout_out;
}

/* Stands in for the native dialect (native.c is not linked): sends fan-out bytes as
 * they are, like native.c's encode_fanout = NULL. */
static const gw_dialect passthrough_dialect = {
    .name = "test-native",
    .path = "/ws",
    .encode_ack = t_encode_ack,
    .encode_error = t_encode_error,
    .encode_event = t_encode_event,
    .encode_fanout = NULL,
};

static const gw_dialect recoding_dialect = {
    .name = "test-recoding",
    .path = "/test",
    .encode_ack = t_encode_ack,
    .encode_error = t_encode_error,
    .encode_event = t_encode_event,
    .encode_fanout = t_encode_fanout,
};

/* ---- hooks ---- */

static struct {
    int acks;
    gw_user *user;
    char cmid[64], json[256];
    int envelopes;
    gw_user *env_user;
    char env_type[32], env_reason[64];
} H;

static void hook_ack(gw_user *u, const char *cmid, size_t clen, const char *json, size_t jlen)
{
    H.acks++;
    H.user = u;
    snprintf(H.cmid, sizeof H.cmid, "%.*s", (int)clen, cmid);
    snprintf(H.json, sizeof H.json, "%.*s", (int)jlen, json);
}

static void hook_user_envelope(gw_user *u, const nt_envr *r)
{
    size_t len = 0;
    const char *s;
    H.envelopes++;
    H.env_user = u;
    s = nt_envr_str(r, "type", &len);
    snprintf(H.env_type, sizeof H.env_type, "%.*s", s ? (int)len : 0, s ? s : "");
    s = nt_envr_str(r, "reason", &len);
    snprintf(H.env_reason, sizeof H.env_reason, "%.*s", s ? (int)len : 0, s ? s : "");
}

static void hook_conn(gw_conn *c) { (void)c; fail_msg("a conn deadline hook ran"); }

/* ---- process set-up ---- */

static uv_loop_t loop;

/* A gateway context over the fake bus with the modules under test, as main.c's
 * gateway, rooms and connections modules start them. */
static gw_ctx *ctx_create(void)
{
    gw_ctx *ctx = gw_ctx_create();
    assert_ptr_equal(gw, ctx);
    assert_int_equal(uv_loop_init(&loop), 0);
    ctx->loop = &loop;
    ctx->bus = &fake_bus_obj;
    ctx->cfg.send_queue_bytes = 64u << 20;
    ctx->cfg.send_queue_hard_bytes = 128u << 20;
    ctx->cfg.slow_grace_ms = 10000;
    ctx->cfg.lazy_flush_ms = 50;
    ctx->cfg.recovery_buffer = 100;
    ctx->cfg.ping_interval_s = 30;
    ctx->cfg.ping_timeout_s = 60;
    gw_metrics_register(ctx);
    gw_reply_create(ctx);
    gw_dialects_create(ctx);
    gw_conn_hooks ch = { hook_conn, hook_conn, hook_conn };
    gw_conn_init(ctx, &ch);
    gw_dialect_register(GW_DIALECT_NATIVE, &passthrough_dialect);
    gw_rooms_hooks rh = { .ack = hook_ack, .user_envelope = hook_user_envelope };
    assert_int_equal(gw_rooms_start(ctx, &rh), NT_OK);
    assert_int_equal(fake_sub_count(NT_SUBJ_UNREAD), 1);
    return ctx;
}

/* Its modules in reverse order, the loop closed, the context freed: 0, or -1 when the
 * loop still had handles. */
static int ctx_destroy(gw_ctx *ctx)
{
    gw_rooms_stop(ctx);
    gw_conn_stop(ctx);
    uv_run(&loop, UV_RUN_DEFAULT);     /* the close callbacks; no lws work is queued */
    int rc = uv_loop_close(&loop);
    gw_dialects_destroy(ctx);
    gw_reply_destroy(ctx);
    gw_ctx_destroy(ctx);
    return rc == 0 ? 0 : -1;
}

static gw_ctx *group_ctx;

static int group_setup(void **state)
{
    (void)state;
    group_ctx = ctx_create();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = ctx_destroy(group_ctx);
    group_ctx = NULL;
    fake_reset();
    return rc;
}

static int test_setup(void **state)
{
    (void)state;
    memset(&R, 0, sizeof R);
    memset(&H, 0, sizeof H);
    gw_dialect_register(GW_DIALECT_NATIVE, &passthrough_dialect);
    gw->cfg.lazy_flush_ms = 50;
    fake_fail_subscribe = 0;
    return 0;
}

/* Every test ends with nothing left: no connection, room, user subject or queued byte. */
static void assert_clean(void)
{
    assert_int_equal(gw_conn_count(), 0);
    assert_int_equal(gw_room_count(), 0);
    assert_int_equal(fake_sub_total(), 1);          /* only NT_SUBJ_UNREAD */
    assert_int_equal(nt_metric_get(gw->m.bytes_queued), 0);
    assert_int_equal(nt_metric_get(gw->m.connections), 0);
    assert_int_equal(nt_metric_get(gw->m.room_subjects), 0);
    assert_int_equal(nt_metric_get(gw->m.user_subjects), 0);
}

/* ---- helpers ---- */

static gw_buf *q_at(const gw_conn *c, uint32_t i)
{
    assert_true(i < c->q_len);
    return c->q[(c->q_first + i) & ((1u << c->q_shift) - 1)];
}

static void assert_payload(const gw_buf *b, const char *want)
{
    size_t n = strlen(want);
    if (b->len != n || memcmp(gw_buf_payload(b), want, n) != 0)
        fail_msg("frame \"%.*s\", want \"%s\"", (int)b->len, (const char *)gw_buf_payload(b), want);
}

/* c's queue holds exactly these payloads, oldest first. */
static void assert_queue(const gw_conn *c, const char *const *want, uint32_t n)
{
    assert_int_equal(c->q_len, n);
    uint32_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        assert_payload(q_at(c, i), want[i]);
        bytes += (uint32_t)strlen(want[i]);
    }
    assert_int_equal(c->q_bytes, bytes);
}

#define ASSERT_QUEUE(c, ...)                                                   \
    do {                                                                       \
        const char *const want_[] = { __VA_ARGS__ };                           \
        assert_queue((c), want_, (uint32_t)(sizeof want_ / sizeof want_[0]));  \
    } while (0)

/* Every connection a test made, so a failed test's are freed before the next one runs. */
static gw_conn *tracked[64];
static int ntracked;

static gw_conn *new_conn(void)
{
    gw_conn *c = gw_conn_create(NULL);   /* conn.c keeps the wsi; only lws calls use it */
    assert_true(ntracked < 64);
    tracked[ntracked++] = c;
    return c;
}

static gw_conn *user_conn(const char *app, const char *user)
{
    gw_conn *c = new_conn();
    nt_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.app, sizeof cl.app, "%s", app);
    snprintf(cl.sub, sizeof cl.sub, "%s", user);
    snprintf(cl.name, sizeof cl.name, "%s the user", user);
    assert_int_equal(gw_user_attach(c, &cl), NT_OK);
    assert_ptr_equal(c->user, gw_user_find(app, user));
    return c;
}

/* As session.c does at close: memberships, user, then the connection. */
static void conn_free(gw_conn *c)
{
    for (int i = 0; i < ntracked; i++)
        if (tracked[i] == c) {
            tracked[i] = tracked[--ntracked];
            break;
        }
    gw_rooms_conn_closed(c);
    gw_user_detach(c);
    gw_conn_destroy(c);
}

/* After a failed test: what it left behind, so the next starts clean. */
static int test_teardown(void **state)
{
    (void)state;
    while (ntracked > 0) {
        gw_conn *c = tracked[ntracked - 1];
        c->dialect = GW_DIALECT_NATIVE;
        c->close_code = 0;
        conn_free(c);
    }
    return 0;
}

/* A member of r, taking a reference of its own. */
static gw_member *join(gw_conn *c, const char *app, const char *room)
{
    gw_room *r = gw_room_acquire(app, room);
    assert_non_null(r);
    gw_member_add(c, r);
    gw_member *m = gw_member_find(c, room);
    assert_non_null(m);
    assert_ptr_equal(m->room, r);
    return m;
}

static int64_t metric_value(const char *name)
{
    size_t len;
    char *text = nt_metrics_render(&len);
    char key[160];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(text, key);
    long long v = -1;
    if (at)
        v = strtoll(at + strlen(key), NULL, 10);
    nt_free(text);
    if (!at)
        fail_msg("metric %s not rendered", name);
    return v;
}

/* ---- conn queueing ---- */

static void test_conn_fifo_growth(void **state)
{
    (void)state;
    int64_t conns0 = nt_metric_get(gw->m.connections);
    gw_conn *c = new_conn();
    assert_int_equal(strlen(c->id), 16);
    assert_ptr_equal(gw_conn_find(c->id), c);
    assert_int_equal(gw_conn_count(), 1);
    assert_int_equal(nt_metric_get(gw->m.connections), conns0 + 1);
    assert_null(c->q);                 /* an idle connection holds no ring */

    char want[20][8];
    const char *wantp[20];
    uint32_t bytes = 0;
    for (int i = 0; i < 20; i++) {    /* 8 -> 16 -> 32 slots */
        snprintf(want[i], sizeof want[i], "f%d", i);
        wantp[i] = want[i];
        bytes += (uint32_t)strlen(want[i]);
        assert_true(gw_conn_send(c, want[i], strlen(want[i])));
        assert_int_equal(c->q_len, (uint32_t)i + 1);
        assert_int_equal(c->q_bytes, bytes);
        assert_int_equal(nt_metric_get(gw->m.bytes_queued), bytes);
    }
    assert_int_equal(c->q_shift, 5);
    assert_queue(c, wantp, 20);
    assert_int_equal(c->flush_pending, 1);   /* a write after this loop turn */
    assert_int_equal(c->lazy_only, 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(q_at(c, (uint32_t)i)->refs, 1);   /* the queue's only */

    /* a closing connection takes no more frames */
    gw_buf *b = gw_buf_create("late", 4);
    c->close_code = 1000;
    assert_false(gw_conn_enqueue(c, b));
    assert_int_equal(b->refs, 1);
    assert_int_equal(c->q_len, 20);
    c->close_code = 0;
    gw_buf_release(b);

    char id[sizeof c->id];
    memcpy(id, c->id, sizeof id);
    conn_free(c);
    assert_null(gw_conn_find(id));
    assert_clean();
}

static void test_buf_refcounts(void **state)
{
    (void)state;
    gw_conn *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = new_conn();
    gw_buf *b = gw_buf_create("shared", 6);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->len, 6);
    for (int i = 0; i < 3; i++) {
        assert_true(gw_conn_enqueue(c[i], b));
        assert_int_equal(b->refs, (uint32_t)i + 2);
    }
    assert_int_equal(nt_metric_get(gw->m.bytes_queued), 18);
    gw_buf_retain(b);
    assert_int_equal(b->refs, 5);
    gw_buf_release(b);
    gw_buf_release(b);                 /* the creator's: the queues keep it */
    assert_int_equal(b->refs, 3);
    conn_free(c[0]);
    assert_int_equal(b->refs, 2);
    conn_free(c[1]);
    assert_int_equal(b->refs, 1);
    assert_ptr_equal(q_at(c[2], 0), b);
    assert_payload(b, "shared");
    conn_free(c[2]);             /* frees it (valgrind) */
    gw_buf_release(NULL);              /* NULL is fine */
    assert_clean();
}

static void test_conn_hold_release(void **state)
{
    (void)state;
    gw_conn *keep = new_conn(), *drop = new_conn();
    gw_buf *a = gw_buf_create("held-a", 6), *b = gw_buf_create("held-b", 6);
    gw_conn_hold(keep);
    gw_conn_hold(drop);
    for (int i = 0; i < 2; i++) {
        gw_conn *c = i ? drop : keep;
        assert_true(gw_conn_enqueue(c, a));
        assert_true(gw_conn_enqueue(c, b));
        assert_int_equal(c->held, 1);
        assert_int_equal(c->flush_pending, 0);    /* held: no write asked */
        assert_int_equal(c->q_bytes, 12);         /* still counted */
    }
    assert_int_equal(a->refs, 3);
    assert_int_equal(nt_metric_get(gw->m.bytes_queued), 24);

    const char *const first[] = { "connected", "x" };
    const size_t lens[] = { 9, 1 };
    gw_conn_release(keep, first, lens, 2, false);
    assert_int_equal(keep->held, 0);
    ASSERT_QUEUE(keep, "connected", "x", "held-a", "held-b");
    assert_ptr_equal(q_at(keep, 2), a);          /* the same buffers, moved behind */
    assert_ptr_equal(q_at(keep, 3), b);
    assert_int_equal(keep->flush_pending, 1);
    assert_int_equal(a->refs, 3);

    gw_conn_release(drop, first, lens, 1, true);
    assert_int_equal(drop->held, 0);
    ASSERT_QUEUE(drop, "connected");
    assert_int_equal(a->refs, 2);                /* drop's reference is gone */
    assert_int_equal(b->refs, 2);
    assert_int_equal(nt_metric_get(gw->m.bytes_queued), keep->q_bytes + drop->q_bytes);

    /* released without a hold: the payloads go behind what is queued */
    gw_conn_release(drop, first + 1, lens + 1, 1, true);
    ASSERT_QUEUE(drop, "connected", "x");

    gw_buf_release(a);
    gw_buf_release(b);
    conn_free(keep);
    conn_free(drop);
    assert_clean();
}

static void test_conn_lazy(void **state)
{
    (void)state;
    gw_conn *c = new_conn();
    gw_buf *u1 = gw_buf_create("unread1", 7), *u2 = gw_buf_create("unread2", 7);
    gw_buf *m = gw_buf_create("msg", 3);

    assert_true(gw_conn_enqueue_lazy(c, u1));
    assert_int_equal(c->lazy_only, 1);
    assert_int_equal(c->lazy_listed, 1);        /* the lazy timer's round */
    assert_int_equal(c->flush_pending, 0);      /* no write of its own */
    assert_true(gw_conn_enqueue_lazy(c, u2));
    assert_int_equal(c->lazy_only, 1);
    assert_int_equal(c->flush_pending, 0);
    assert_true(gw_conn_enqueue(c, m));         /* a frame that may not wait takes them along */
    assert_int_equal(c->lazy_only, 0);
    assert_int_equal(c->flush_pending, 1);
    ASSERT_QUEUE(c, "unread1", "unread2", "msg");
    assert_true(gw_conn_enqueue_lazy(c, u1));   /* behind a write already asked: rides along */
    assert_int_equal(c->lazy_only, 0);
    ASSERT_QUEUE(c, "unread1", "unread2", "msg", "unread1");

    /* NATTER_LAZY_FLUSH_MS=0: a lazy frame is an ordinary one */
    gw->cfg.lazy_flush_ms = 0;
    gw_conn *d = new_conn();
    assert_true(gw_conn_enqueue_lazy(d, u2));
    assert_int_equal(d->lazy_only, 0);
    assert_int_equal(d->lazy_listed, 0);
    assert_int_equal(d->flush_pending, 1);
    gw->cfg.lazy_flush_ms = 50;

    /* a held connection queues lazily without listing or asking */
    gw_conn *e = new_conn();
    gw_conn_hold(e);
    assert_true(gw_conn_enqueue_lazy(e, u1));
    assert_int_equal(e->lazy_listed, 0);
    assert_int_equal(e->flush_pending, 0);

    gw_buf_release(u1);
    gw_buf_release(u2);
    gw_buf_release(m);
    conn_free(c);
    conn_free(d);
    conn_free(e);
    assert_clean();
}

/* ---- rooms and users ---- */

static void test_subscriptions_follow_interest(void **state)
{
    (void)state;
    const char *rs = room_subject("app1", "r1");
    char rsub[NT_SUBJ_CAP];
    snprintf(rsub, sizeof rsub, "%s", rs);
    gw_room *r = gw_room_acquire("app1", "r1");
    assert_non_null(r);
    assert_string_equal(r->subject, "natter.room.app1.r1");
    assert_string_equal(r->id, "r1");
    assert_int_equal(fake_sub_count(rsub), 1);
    assert_ptr_equal(gw_room_acquire("app1", "r1"), r);  /* one subject per room */
    gw_room_hold(r);
    assert_int_equal(r->interest, 3);
    assert_int_equal(fake_sub_count(rsub), 1);
    assert_int_equal(gw_room_count(), 1);
    assert_int_equal(nt_metric_get(gw->m.room_subjects), 1);
    assert_null(gw_room_acquire("app1", "bad.room"));    /* would add a subject token */
    gw_room_release(r);
    gw_room_release(r);
    assert_int_equal(fake_sub_count(rsub), 1);
    gw_room_release(r);
    assert_int_equal(fake_sub_count(rsub), 0);
    assert_int_equal(gw_room_count(), 0);

    gw_conn *a1 = user_conn("app1", "alice"), *a2 = user_conn("app1", "alice");
    gw_conn *a3 = user_conn("app2", "alice");            /* another app, another user */
    assert_ptr_equal(a1->user, a2->user);
    assert_ptr_not_equal(a1->user, a3->user);
    assert_int_equal(a1->user->nconns, 2);
    assert_string_equal(a1->user->id, "alice");
    assert_string_equal(a1->user->app, "app1");
    assert_string_equal(a1->user->name, "alice the user");
    assert_int_equal(fake_sub_count("natter.user.app1.alice"), 1);
    assert_int_equal(fake_sub_count("natter.user.app2.alice"), 1);
    assert_int_equal(nt_metric_get(gw->m.user_subjects), 2);
    conn_free(a1);
    assert_int_equal(fake_sub_count("natter.user.app1.alice"), 1);
    assert_ptr_equal(gw_user_find("app1", "alice"), a2->user);
    conn_free(a2);
    assert_int_equal(fake_sub_count("natter.user.app1.alice"), 0);
    assert_null(gw_user_find("app1", "alice"));
    conn_free(a3);

    /* the bus refuses: no room, no user, nothing registered */
    fake_fail_subscribe = 1;
    assert_null(gw_room_acquire("app1", "r2"));
    assert_int_equal(gw_room_count(), 0);
    gw_conn *c = new_conn();
    nt_claims cl;
    memset(&cl, 0, sizeof cl);
    strcpy(cl.app, "app1");
    strcpy(cl.sub, "bob");
    fake_fail_subscribe = 1;
    assert_int_equal(gw_user_attach(c, &cl), NT_EUNAVAIL);
    assert_null(c->user);
    assert_null(gw_user_find("app1", "bob"));
    conn_free(c);
    assert_clean();
}

static void test_room_fanout(void **state)
{
    (void)state;
    gw_conn *a1 = user_conn("app1", "alice"), *a2 = user_conn("app1", "alice");
    gw_conn *b1 = user_conn("app1", "bob");
    gw_conn *all[] = { a1, a2, b1 };
    for (int i = 0; i < 3; i++)
        join(all[i], "app1", "r1");
    gw_room *r = a1->rooms->room;
    const char *subj = room_subject("app1", "r1");

    DELIVER(subj, .json = "{\"event\":\"message\",\"seq\":1}", .seq = 1);
    gw_buf *e1 = q_at(a1, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(all[i]->q_len, 1);
        assert_ptr_equal(q_at(all[i], 0), e1);         /* encoded once */
    }
    assert_payload(e1, "{\"event\":\"message\",\"seq\":1}");
    assert_int_equal(e1->refs, 3);                     /* the queues' only */
    assert_int_equal(r->last_seq, 1);

    /* skip_user: every connection of that user is skipped */
    DELIVER(subj, .json = "{\"event\":\"typing\"}", .skip_user = "alice");
    assert_int_equal(a1->q_len, 1);
    assert_int_equal(a2->q_len, 1);
    ASSERT_QUEUE(b1, "{\"event\":\"message\",\"seq\":1}", "{\"event\":\"typing\"}");

    /* each seq once: at or below the last forwarded one is dropped */
    DELIVER(subj, .json = "dup1", .seq = 1);
    DELIVER(subj, .json = "s3", .seq = 3);
    DELIVER(subj, .json = "dup2", .seq = 2);
    DELIVER(subj, .json = "dup3", .seq = 3);
    DELIVER(subj, .json = "s4", .seq = 4);
    assert_int_equal(r->last_seq, 4);
    ASSERT_QUEUE(a1, "{\"event\":\"message\",\"seq\":1}", "s3", "s4");
    ASSERT_QUEUE(a2, "{\"event\":\"message\",\"seq\":1}", "s3", "s4");
    /* events without seq are never deduplicated */
    DELIVER(subj, .json = "noseq");
    DELIVER(subj, .json = "noseq");
    assert_int_equal(a1->q_len, 5);
    /* not an event, without json, or not msgpack: nothing */
    DELIVER(subj, .type = "other", .json = "x");
    DELIVER(subj, .seq = 9);
    assert_int_equal(fake_deliver(subj, "\xc1garbage", 8), 1);
    assert_int_equal(a1->q_len, 5);
    assert_int_equal(r->last_seq, 4);                  /* the json-less seq 9 was not taken */

    /* lazy: queued without a write of its own */
    gw_conn *c = user_conn("app1", "carol");
    join(c, "app1", "r1");
    DELIVER(subj, .json = "presence", .lazy = true);
    ASSERT_QUEUE(c, "presence");
    assert_int_equal(c->lazy_only, 1);
    assert_int_equal(c->flush_pending, 0);
    assert_ptr_equal(q_at(a1, 5), q_at(c, 0));

    /* "rooms": a connection in an earlier listed room hears it there, not here */
    join(c, "app1", "r0");
    const char *const listed[] = { "r0", "r1" };
    DELIVER(subj, .json = "multi", .rooms = listed, .nrooms = 2);
    assert_int_equal(c->q_len, 1);
    assert_payload(q_at(a1, a1->q_len - 1), "multi");
    DELIVER(room_subject("app1", "r0"), .json = "multi", .rooms = listed, .nrooms = 2);
    ASSERT_QUEUE(c, "presence", "multi");

    conn_free(a1);
    conn_free(a2);
    conn_free(b1);
    conn_free(c);
    assert_clean();
}

static void test_room_replay(void **state)
{
    (void)state;
    gw_conn *live = user_conn("app1", "alice"), *rec_ = user_conn("app1", "bob");
    join(live, "app1", "r1");
    gw_member *m = join(rec_, "app1", "r1");
    const char *subj = room_subject("app1", "r1");

    uint64_t gen = gw_member_replay_start(m, 10);
    assert_non_null(m->replay);
    assert_true(gen > 0);
    DELIVER(subj, .json = "m5", .seq = 5);
    DELIVER(subj, .json = "typing");
    DELIVER(subj, .json = "m6", .seq = 6);
    DELIVER(subj, .json = "m6-again", .seq = 6);       /* room-wide dedup first */
    DELIVER(subj, .json = "m7", .seq = 7);
    assert_int_equal(rec_->q_len, 0);                  /* buffered, not queued */
    assert_int_equal(m->replay->n, 4);
    assert_false(m->replay->overflow);
    ASSERT_QUEUE(live, "m5", "typing", "m6", "m7");

    /* the history replayed up to 6: only what is above it, and the seq-less events */
    gw_member_replay_finish(m, 6);
    assert_null(m->replay);
    ASSERT_QUEUE(rec_, "typing", "m7");
    assert_ptr_equal(q_at(rec_, 0), q_at(live, 1));    /* the same buffers */
    assert_ptr_equal(q_at(rec_, 1), q_at(live, 3));
    assert_int_equal(q_at(live, 0)->refs, 1);          /* m5's replay reference is gone */
    gw_member_replay_finish(m, 0);                     /* not replaying: nothing */
    assert_int_equal(rec_->q_len, 2);

    /* after finish, live delivery again */
    DELIVER(subj, .json = "m8", .seq = 8);
    ASSERT_QUEUE(rec_, "typing", "m7", "m8");

    /* a new replay gets a new generation; over its bound it overflows */
    uint64_t gen2 = gw_member_replay_start(m, 1);
    assert_true(gen2 > gen);
    DELIVER(subj, .json = "m9", .seq = 9);
    DELIVER(subj, .json = "m10", .seq = 10);
    assert_true(m->replay->overflow);
    assert_int_equal(m->replay->n, 1);
    assert_int_equal(rec_->q_len, 3);
    /* a member removed mid-replay frees its buffer (valgrind) */
    conn_free(rec_);
    conn_free(live);
    assert_clean();
}

static void test_room_ack_hook(void **state)
{
    (void)state;
    gw_conn *a = user_conn("app1", "alice"), *b = user_conn("app1", "bob");
    join(b, "app1", "r1");                             /* alice is not a member */
    const char *subj = room_subject("app1", "r1");

    DELIVER(subj, .json = "msg1", .seq = 1, .sender = "alice", .cmid = "cm-1",
            .ack = "{\"seq\":1}");
    assert_int_equal(H.acks, 1);
    assert_ptr_equal(H.user, a->user);
    assert_string_equal(H.cmid, "cm-1");
    assert_string_equal(H.json, "{\"seq\":1}");
    ASSERT_QUEUE(b, "msg1");
    assert_int_equal(a->q_len, 0);                     /* the hook answers, not the fan-out */

    /* a sender without a connection here, or no ack, or no cmid: no hook */
    DELIVER(subj, .json = "msg2", .seq = 2, .sender = "carol", .cmid = "cm-2", .ack = "{}");
    DELIVER(subj, .json = "msg3", .seq = 3, .sender = "alice", .cmid = "cm-3");
    DELIVER(subj, .json = "msg4", .seq = 4, .sender = "alice", .ack = "{}");
    assert_int_equal(H.acks, 1);
    /* the same batch republished (a partition takeover): not forwarded again, but the
     * ack still answers a send still pending here */
    DELIVER(subj, .json = "msg1", .seq = 1, .sender = "alice", .cmid = "cm-1",
            .ack = "{\"seq\":1}");
    assert_int_equal(H.acks, 2);
    assert_int_equal(b->q_len, 4);

    conn_free(a);
    conn_free(b);
    assert_clean();
}

static void test_user_subject(void **state)
{
    (void)state;
    gw_conn *a1 = user_conn("app1", "alice"), *a2 = user_conn("app1", "alice");
    gw_conn *b = user_conn("app1", "bob");
    const char *subj = user_subject("app1", "alice");

    DELIVER(subj, .json = "{\"event\":\"invited\"}");
    ASSERT_QUEUE(a1, "{\"event\":\"invited\"}");
    ASSERT_QUEUE(a2, "{\"event\":\"invited\"}");
    assert_ptr_equal(q_at(a1, 0), q_at(a2, 0));
    assert_int_equal(b->q_len, 0);
    assert_int_equal(H.envelopes, 0);

    DELIVER(subj, .type = "disconnect", .reason = "banned");
    assert_int_equal(H.envelopes, 1);
    assert_ptr_equal(H.env_user, a1->user);
    assert_string_equal(H.env_type, "disconnect");
    assert_string_equal(H.env_reason, "banned");
    assert_int_equal(a1->q_len, 1);
    assert_int_equal(a2->q_len, 1);
    /* an event without json queues nothing; bytes that are no envelope reach no hook */
    DELIVER(subj, .type = "event");
    assert_int_equal(a1->q_len, 1);
    assert_int_equal(a2->q_len, 1);
    int seen = H.envelopes;
    assert_int_equal(fake_deliver(subj, "\xc1", 1), 1);
    assert_int_equal(H.envelopes, seen);
    assert_int_equal(a1->q_len, 1);

    conn_free(a1);
    conn_free(a2);
    conn_free(b);
    assert_clean();
}

static void deliver_unread(const char *const *apps, const char *const *users,
                           const char *const *jsons, size_t n, size_t njsons)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_str_array(&w, "apps", apps, n);
    nt_envw_str_array(&w, "users", users, n);
    nt_envw_str_array(&w, "jsons", jsons, njsons);
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    assert_int_equal(fake_deliver(NT_SUBJ_UNREAD, data, len), 1);
    nt_envw_free(&w);
}

static void test_unread_batch(void **state)
{
    (void)state;
    gw_conn *a1 = user_conn("app1", "alice"), *a2 = user_conn("app1", "alice");
    gw_conn *b = user_conn("app1", "bob"), *d = user_conn("app1", "dave");
    gw_conn *x = user_conn("app2", "bob");
    const char *const apps[] = { "app1", "app1", "app1", "app9" };
    const char *const users[] = { "alice", "carol", "bob", "dave" };
    const char *const jsons[] = { "u-alice", "u-carol", "u-bob", "u-dave" };
    deliver_unread(apps, users, jsons, 4, 4);
    ASSERT_QUEUE(a1, "u-alice");
    ASSERT_QUEUE(a2, "u-alice");
    assert_ptr_equal(q_at(a1, 0), q_at(a2, 0));
    ASSERT_QUEUE(b, "u-bob");
    assert_int_equal(d->q_len, 0);                     /* dave of app1, not app9 */
    assert_int_equal(x->q_len, 0);                     /* bob of app2 */
    for (int i = 0; i < 3; i++) {
        gw_conn *c = i == 0 ? a1 : i == 1 ? a2 : b;
        assert_int_equal(c->lazy_only, 1);
        assert_int_equal(c->flush_pending, 0);
    }
    /* arrays of different lengths: the batch is ignored */
    deliver_unread(apps, users, jsons, 3, 2);
    assert_int_equal(a1->q_len, 1);
    assert_int_equal(b->q_len, 1);

    conn_free(a1);
    conn_free(a2);
    conn_free(b);
    conn_free(d);
    conn_free(x);
    assert_clean();
}

/* ---- dialects in fan-out ---- */

static void test_fanout_one_encoding_per_dialect(void **state)
{
    (void)state;
    gw_conn *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = user_conn("app1", i < 2 ? "alice" : "bob");
        join(c[i], "app1", "r1");
    }
    const char *subj = room_subject("app1", "r1");

    /* pass-through (native): the producer's buffer itself, never re-encoded */
    DELIVER(subj, .json = "native1", .seq = 1);
    assert_int_equal(R.fanouts, 0);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(q_at(c[i], 0), q_at(c[0], 0));
    assert_payload(q_at(c[0], 0), "native1");

    /* a dialect that re-encodes: once per event, whatever the number of connections */
    gw_dialect_register(GW_DIALECT_NATIVE, &recoding_dialect);
    DELIVER(subj, .json = "ev2", .seq = 2);
    assert_int_equal(R.fanouts, 1);
    assert_string_equal(R.fanout_in_text, "ev2");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i]->q_len, 2);
        assert_ptr_equal(q_at(c[i], 1), R.fanout_out);
    }
    assert_payload(R.fanout_out, "T:ev2");
    assert_int_equal(R.fanout_out->refs, 3);           /* the fan-out let go of its own */
    DELIVER(subj, .json = "ev3", .seq = 3);
    assert_int_equal(R.fanouts, 2);
    assert_payload(q_at(c[2], 2), "T:ev3");

    /* the user subject, the unread batch and gw_reply_native go through it too */
    DELIVER(user_subject("app1", "alice"), .json = "uev");
    assert_int_equal(R.fanouts, 3);
    assert_payload(q_at(c[0], 3), "T:uev");
    assert_ptr_equal(q_at(c[0], 3), q_at(c[1], 3));
    const char *const apps[] = { "app1" }, *const users[] = { "alice" },
                      *const jsons[] = { "unread" };
    deliver_unread(apps, users, jsons, 1, 1);
    assert_int_equal(R.fanouts, 4);
    assert_payload(q_at(c[1], 4), "T:unread");
    gw_reply_native(c[2], "solo", 4);
    assert_int_equal(R.fanouts, 5);
    assert_payload(q_at(c[2], c[2]->q_len - 1), "T:solo");

    /* gw_fanout by hand: cached per dialect, native bytes under a NULL encoding */
    gw_buf *nb = gw_buf_create("raw", 3);
    gw_fanout fo;
    gw_fanout_init(&fo, nb);
    assert_int_equal(nb->refs, 2);
    gw_buf *o1 = gw_fanout_for(&fo, c[0]), *o2 = gw_fanout_for(&fo, c[1]);
    assert_ptr_equal(o1, o2);
    assert_ptr_not_equal(o1, nb);
    assert_int_equal(R.fanouts, 6);
    gw_fanout_free(&fo);
    assert_int_equal(nb->refs, 1);
    gw_dialect_register(GW_DIALECT_NATIVE, &passthrough_dialect);
    gw_fanout_init(&fo, nb);
    assert_ptr_equal(gw_fanout_for(&fo, c[0]), nb);
    gw_fanout_free(&fo);
    assert_int_equal(nb->refs, 1);
    gw_buf_release(nb);

    for (int i = 0; i < 3; i++)
        conn_free(c[i]);
    assert_clean();
}

/* Connections of two dialects in one room; the test dialect takes the first slot no
 * shipped dialect uses. */
static void test_fanout_mixed_dialects(void **state)
{
    (void)state;
    _Static_assert(GW_DIALECT_COUNT < GW_DIALECT_SLOTS, "a free dialect slot");
    const gw_dialect_id other = (gw_dialect_id)GW_DIALECT_COUNT;
    gw_conn probe;                                     /* what slot 1 held, to put back */
    memset(&probe, 0, sizeof probe);
    probe.dialect = other;
    const gw_dialect *saved = gw_dialect_of(&probe);
    gw_dialect_register(other, &recoding_dialect);
    gw_conn *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = user_conn("app1", "alice");
        c[i]->dialect = i % 2 ? other : GW_DIALECT_NATIVE;
        join(c[i], "app1", "r1");
    }
    DELIVER(room_subject("app1", "r1"), .json = "mixed", .seq = 1);
    assert_int_equal(R.fanouts, 1);                    /* once for the two test-dialect conns */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c[i]->q_len, 1);
        if (i % 2) {
            assert_ptr_equal(q_at(c[i], 0), R.fanout_out);
        } else {
            assert_ptr_equal(q_at(c[i], 0), R.fanout_in);   /* the original buffer */
            assert_payload(q_at(c[i], 0), "mixed");
        }
    }
    assert_payload(R.fanout_out, "T:mixed");
    for (int i = 0; i < 4; i++) {
        c[i]->dialect = GW_DIALECT_NATIVE;
        conn_free(c[i]);
    }
    gw_dialect_register(other, saved);
    assert_clean();
}

/* ---- replies ---- */

static void test_reply_ack(void **state)
{
    (void)state;
    gw_conn *c = new_conn();
    gw_reply_ack(c, NULL, "{\"x\":1}", 7);
    assert_int_equal(R.acks, 0);                       /* no ref: nothing, not even encoded */
    assert_int_equal(c->q_len, 0);

    json_t *ref = json_integer(7);
    gw_reply_ack(c, ref, "{\"x\":1}", 7);
    assert_int_equal(R.acks, 1);
    assert_ptr_equal(R.ref, ref);
    assert_string_equal(R.data, "{\"x\":1}");
    ASSERT_QUEUE(c, "A|{\"x\":1}");

    gw_reply_ack_obj(c, ref, json_pack("{s:s}", "k", "v"));   /* takes data (valgrind) */
    assert_int_equal(R.acks, 2);
    assert_string_equal(R.data, "{\"k\":\"v\"}");
    ASSERT_QUEUE(c, "A|{\"x\":1}", "A|{\"k\":\"v\"}");

    /* the dialect sends nothing for it */
    R.return_null = true;
    gw_reply_ack(c, ref, "1", 1);
    assert_int_equal(R.acks, 3);
    assert_int_equal(c->q_len, 2);
    R.return_null = false;

    gw_reply_event(c, "token_expiring", NULL, "{\"in_s\":30}", 11);
    assert_int_equal(R.events, 1);
    gw_reply_event(c, "room_state", "r1", "{}", 2);
    ASSERT_QUEUE(c, "A|{\"x\":1}", "A|{\"k\":\"v\"}", "V|token_expiring|(null)|{\"in_s\":30}",
                 "V|room_state|r1|{}");

    json_decref(ref);
    conn_free(c);
    assert_clean();
}

static void test_reply_error(void **state)
{
    (void)state;
    const char *forbidden = "natter_gateway_errors_total{code=\"forbidden\"}";
    const char *limited = "natter_gateway_errors_total{code=\"rate_limited\"}";
    int64_t f0 = metric_value(forbidden), l0 = metric_value(limited);
    gw_conn *c = new_conn();
    json_t *ref = json_string("r-1");

    gw_reply_error(c, ref, GW_E_FORBIDDEN, "not a member");
    assert_int_equal(R.errors, 1);
    assert_ptr_equal(R.ref, ref);
    assert_int_equal(R.code, GW_E_FORBIDDEN);
    assert_string_equal(R.message, "not a member");
    assert_int_equal(R.retry, -1);
    ASSERT_QUEUE(c, "E|forbidden|not a member|-1");
    assert_int_equal(metric_value(forbidden), f0 + 1);

    gw_reply_error(c, NULL, GW_E_FORBIDDEN, "no ref");      /* an error goes out without ref */
    assert_int_equal(R.errors, 2);
    assert_null(R.ref);
    assert_int_equal(c->q_len, 2);

    gw_reply_error_retry(c, ref, GW_E_RATE_LIMITED, "slow down", 1500);
    assert_int_equal(R.code, GW_E_RATE_LIMITED);
    assert_int_equal(R.retry, 1500);
    assert_payload(q_at(c, 2), "E|rate_limited|slow down|1500");
    assert_int_equal(metric_value(limited), l0 + 1);

    gw_error err = { .code = GW_E_FORBIDDEN };
    snprintf(err.message, sizeof err.message, "from a validator");
    gw_reply_fail(c, ref, &err);
    assert_string_equal(R.message, "from a validator");
    assert_int_equal(R.retry, -1);
    assert_payload(q_at(c, 3), "E|forbidden|from a validator|-1");

    /* counted even when the dialect sends nothing for it */
    R.return_null = true;
    gw_reply_error(c, ref, GW_E_FORBIDDEN, "silent");
    assert_int_equal(R.errors, 5);
    assert_int_equal(c->q_len, 4);
    assert_int_equal(metric_value(forbidden), f0 + 4);

    json_decref(ref);
    conn_free(c);
    assert_clean();
}

/* ---- the context's life ---- */

/* One cycle: a context (with NATTER_APPS, which it owns), a room with two members, an
 * event delivered to them (and the lazy timer run), the connections gone, the context
 * destroyed; what it left on the fake bus. */
static int ctx_cycle(int n)
{
    gw_ctx *ctx = ctx_create();
    char why[128];
    const char *apps = "[{\"id\":\"app1\",\"jwt_secret\":\"j\",\"api_key\":\"k\"}]";
    assert_true(nt_apps_parse(apps, strlen(apps), &ctx->cfg.apps, why, sizeof why));
    assert_int_equal(gw_conn_count(), 0);
    assert_int_equal(gw_room_count(), 0);
    assert_null(gw_user_find("app1", "alice"));
    assert_int_equal(nt_metric_get(ctx->m.connections), 0);
    gw_conn *a = user_conn("app1", "alice"), *b = user_conn("app1", "bob");
    gw_member *ma = join(a, "app1", "r1");
    join(b, "app1", "r1");
    assert_int_equal(gw_member_replay_start(ma, 10), 1);   /* generations start again */
    gw_member_replay_finish(ma, 0);
    DELIVER(room_subject("app1", "r1"), .json = "hello", .seq = n);
    ASSERT_QUEUE(a, "hello");
    assert_ptr_equal(q_at(a, 0), q_at(b, 0));
    DELIVER(user_subject("app1", "bob"), .json = "u");
    const char *const unread_apps[] = { "app1" }, *const users[] = { "bob" },
                      *const jsons[] = { "unread" };
    deliver_unread(unread_apps, users, jsons, 1, 1);
    gw_reply_error(a, NULL, GW_E_FORBIDDEN, "no");
    ASSERT_QUEUE(b, "hello", "u", "unread");
    assert_int_equal(b->lazy_listed, 0);                   /* asked for a write already */
    gw_conn *c = user_conn("app1", "carol");
    deliver_unread(unread_apps, (const char *const[]){ "carol" }, jsons, 1, 1);
    assert_int_equal(c->lazy_listed, 1);                   /* the lazy timer is running */
    conn_free(a);
    conn_free(b);
    conn_free(c);
    uv_run(&loop, UV_RUN_NOWAIT);                          /* the flush finds them gone */
    assert_int_equal(gw_conn_count(), 0);
    assert_int_equal(gw_room_count(), 0);
    assert_int_equal(nt_metric_get(ctx->m.bytes_queued), 0);
    assert_int_equal(nt_metric_get(ctx->m.user_subjects), 0);
    int rc = ctx_destroy(ctx);
    return rc != 0 ? -1 : fake_sub_total();
}

/* Two full create/use/destroy cycles in one process (run under valgrind: no leak):
 * every module's state lives in the context, nothing is left for the next. */
static int life_setup(void **state)
{
    (void)state;
    memset(&R, 0, sizeof R);
    memset(&H, 0, sizeof H);
    fake_fail_subscribe = 0;
    return 0;
}

static void test_ctx_two_cycles(void **state)
{
    (void)state;
    int64_t f0 = metric_value("natter_gateway_errors_total{code=\"forbidden\"}");
    for (int n = 1; n <= 2; n++)
        assert_int_equal(ctx_cycle(n), 0);    /* loop closed, no subscription left */
    /* the metrics are the process's: created again, the same series go on counting */
    gw_ctx *ctx = ctx_create();
    assert_int_equal(metric_value("natter_gateway_errors_total{code=\"forbidden\"}"), f0 + 2);
    size_t len;
    char *text = nt_metrics_render(&len);
    const char *first = strstr(text, "\nnatter_gateway_connections ");
    assert_non_null(first);
    assert_null(strstr(first + 1, "\nnatter_gateway_connections "));   /* registered once */
    nt_free(text);
    assert_int_equal(ctx_destroy(ctx), 0);
    fake_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conn_fifo_growth, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_buf_refcounts, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_conn_hold_release, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_conn_lazy, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_follow_interest, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_room_fanout, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_room_replay, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_room_ack_hook, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_user_subject, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_unread_batch, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_fanout_one_encoding_per_dialect, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_fanout_mixed_dialects, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_reply_ack, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_reply_error, test_setup, test_teardown),
    };
    const struct CMUnitTest life[] = {
        cmocka_unit_test_setup(test_ctx_two_cycles, life_setup),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return failed + cmocka_run_group_tests(life, NULL, NULL);
}
