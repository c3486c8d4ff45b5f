/* bus.c: the NATS bridge: cnats on the libuv loop, one bounded MPSC queue from
 * cnats delivery threads to the loop (or, with loop_delivery, messages taken where
 * cnats parses them), and a non-blocking request table. */
#include "bus.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "alloc.h"
#include "compat_nats.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "mpsc.h"
#include "nkey.h"

/* cnats ships its libuv adapter as a header with function bodies: include it
 * in exactly this one translation unit. */
#include <nats/adapters/libuv.h>

#define BUS_INBOX_MAX 64
#define BUS_POP_BATCH 64
#define REAP_NAP_MS 5
#define REAP_MAX 65536

typedef enum { ITEM_MSG, ITEM_POST } item_kind;

typedef struct bus_item {
    item_kind kind;
    nt_bus_sub *sub;          /* ITEM_MSG */
    natsMsg *msg;             /* ITEM_MSG */
    nt_bus_post_fn fn;        /* ITEM_POST */
    void *arg;                /* ITEM_POST */
} bus_item;

struct nt_bus_sub {
    nt_bus *bus;
    natsSubscription *ns;
    nt_bus_msg_cb cb;
    void *arg;
    bool closed;              /* loop thread: no more callbacks */
    const char *fast_key;     /* in bus->fast_subs under this (cnats's copy of the subject) */
    atomic_int queued;        /* messages in the queue for this sub */
    atomic_bool complete;     /* cnats will not call us again */
    nt_bus_sub *done_next;    /* link in bus->done list */
    nt_list node;             /* in bus->subs: every live sub, for destroy */
};

typedef struct bus_req {
    uint64_t id;
    uint64_t deadline;        /* uv_now based, ms */
    nt_bus_reply_cb cb;
    void *arg;
    struct bus_req *hnext;    /* hash chain */
    nt_list node;             /* in bus->reqs, ordered by deadline */
} bus_req;

/* ---- freeing cnats messages off the loop ----
 * natsMsg_Destroy hands each message to cnats's garbage-collector thread and wakes
 * it whenever it sleeps: at a few thousand messages a second that is a futex wake
 * and two context switches per message, and with cnats's delivery thread it made
 * the scheduler the largest part of a gateway's CPU (perf, 2,000 sends/s: 42 % in
 * schedule, 10 futex calls per send). The loop keeps the messages it is done with
 * and hands them over once per loop turn (uv_check) to the reaper thread, which
 * destroys them in batches and naps REAP_NAP_MS after each batch, so cnats's GC
 * thread wakes at most 1000 / REAP_NAP_MS times a second. Bounded: with REAP_MAX
 * waiting the loop destroys inline. */
typedef struct bus_reaper {
    uv_thread_t thread;
    bool started;
    uv_mutex_t mu;
    uv_cond_t cv;
    natsMsg **handed;         /* mu: waiting for the reaper */
    size_t nhanded, cap_handed;
    bool idle, quit;          /* mu */
    natsMsg **local;          /* loop thread: this turn's */
    size_t nlocal, cap_local;
    uv_check_t check;
} bus_reaper;

struct nt_bus {
    uv_loop_t *loop;
    bus_reaper reaper;
    natsConnection *nc;
    natsOptions *opts;
    nt_mpsc *queue;
    uv_async_t wake;
    uv_timer_t req_timer;
    atomic_bool connected;
    atomic_bool closing;      /* nt_bus_destroy started: disconnect is expected */
    atomic_bool up;           /* the first connect succeeded */
    const char *auth;         /* the settings holding the credentials (apply_auth), or NULL */
    char url_shown[256];      /* the URL without its password, for messages */
    atomic_uint_fast64_t dropped;
    atomic_uint_fast64_t reconnects;

    pthread_mutex_t done_lock; /* guards done list, written by cnats threads */
    nt_bus_sub *done;

    nt_list subs;             /* nt_bus_sub.node: every sub not yet freed (loop thread) */
    nt_bus_sub *inbox_sub;
    char inbox[BUS_INBOX_MAX]; /* "_INBOX.<nuid>" */
    size_t inbox_len;
    bool fast;                /* loop delivery is on (see on_filter) */
    bool want_fast;           /* nt_bus_opts.loop_delivery: asked for, on or not */
    uv_thread_t loop_thread;
    nt_map fast_subs;         /* exact subject -> its one sub (loop delivery) */
    uint64_t loop_delivered;  /* messages taken by on_filter */
    size_t max_requests;
    size_t nreq;
    uint64_t next_id;
    bus_req **buckets;
    size_t nbuckets;          /* power of two */
    nt_list reqs;             /* bus_req.node, earliest deadline first */
    int handles_open;
};

static void reaper_main(void *arg)
{
    bus_reaper *r = arg;
    natsMsg **batch = NULL;
    size_t cap = 0;
    uv_mutex_lock(&r->mu);
    for (;;) {
        while (r->nhanded == 0 && !r->quit) {
            r->idle = true;
            uv_cond_wait(&r->cv, &r->mu);
        }
        r->idle = false;
        if (r->nhanded == 0)
            break;                           /* quit, nothing left */
        natsMsg **mine = r->handed;          /* swap buffers: the loop refills ours */
        size_t n = r->nhanded, mcap = r->cap_handed;
        r->handed = batch;
        r->cap_handed = cap;
        r->nhanded = 0;
        batch = mine;
        cap = mcap;
        bool quitting = r->quit;
        uv_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n; i++)
            natsMsg_Destroy(batch[i]);
        if (!quitting)
            uv_sleep(REAP_NAP_MS);
        uv_mutex_lock(&r->mu);
    }
    uv_mutex_unlock(&r->mu);
    free(batch);
}

static bool grow_msgs(natsMsg ***v, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    natsMsg **nv = realloc(*v, c * sizeof(**v));
    if (!nv)
        return false;
    *v = nv;
    *cap = c;
    return true;
}

void nt_bus_free_msg(nt_bus *bus, natsMsg *msg)
{
    bus_reaper *r = &bus->reaper;
    if (!msg)
        return;
    if (!r->started || r->nlocal >= REAP_MAX || !grow_msgs(&r->local, &r->cap_local, r->nlocal + 1)) {
        natsMsg_Destroy(msg);
        return;
    }
    r->local[r->nlocal++] = msg;
}

static void on_reap_check(uv_check_t *h)
{
    nt_bus *bus = h->data;
    bus_reaper *r = &bus->reaper;
    if (r->nlocal == 0)
        return;
    uv_mutex_lock(&r->mu);
    if (r->nhanded == 0) {
        natsMsg **t = r->handed;
        size_t c = r->cap_handed;
        r->handed = r->local;
        r->cap_handed = r->cap_local;
        r->nhanded = r->nlocal;
        r->local = t;
        r->cap_local = c;
        r->nlocal = 0;
    } else if (r->nhanded + r->nlocal <= REAP_MAX &&
               grow_msgs(&r->handed, &r->cap_handed, r->nhanded + r->nlocal)) {
        memcpy(r->handed + r->nhanded, r->local, r->nlocal * sizeof(*r->local));
        r->nhanded += r->nlocal;
        r->nlocal = 0;
    }
    bool wake = r->idle;
    uv_mutex_unlock(&r->mu);
    for (size_t i = 0; i < r->nlocal; i++)   /* the reaper is REAP_MAX behind */
        natsMsg_Destroy(r->local[i]);
    r->nlocal = 0;
    if (wake)
        uv_cond_signal(&r->cv);
}

static void reaper_start(nt_bus *bus)
{
    bus_reaper *r = &bus->reaper;
    uv_mutex_init(&r->mu);
    uv_cond_init(&r->cv);
    uv_check_init(bus->loop, &r->check);
    r->check.data = bus;
    uv_check_start(&r->check, on_reap_check);
    uv_unref((uv_handle_t *)&r->check);
    r->started = uv_thread_create(&r->thread, reaper_main, r) == 0;
}

/* Hands over what is left, lets the reaper destroy it and end. Before the cnats
 * library closes. */
static void reaper_stop(nt_bus *bus)
{
    bus_reaper *r = &bus->reaper;
    if (r->started) {
        on_reap_check(&r->check);
        uv_mutex_lock(&r->mu);
        r->quit = true;
        uv_mutex_unlock(&r->mu);
        uv_cond_signal(&r->cv);
        uv_thread_join(&r->thread);
        r->started = false;
    }
    for (size_t i = 0; i < r->nlocal; i++)
        natsMsg_Destroy(r->local[i]);
    r->nlocal = 0;
}

static void reaper_free(bus_reaper *r)
{
    free(r->local);
    free(r->handed);
    uv_cond_destroy(&r->cv);
    uv_mutex_destroy(&r->mu);
}

/* ---- delivery: cnats threads -> queue -> loop ---- */

static void on_nats_msg(natsConnection *nc, natsSubscription *ns, natsMsg *msg, void *closure)
{
    nt_bus_sub *sub = closure;
    nt_bus *bus = sub->bus;
    bus_item *it = nt_malloc(sizeof(*it));

    it->kind = ITEM_MSG;
    it->sub = sub;
    it->msg = msg;
    atomic_fetch_add(&sub->queued, 1);
    if (nt_mpsc_push(bus->queue, it) != NT_OK) {
        atomic_fetch_sub(&sub->queued, 1);
        atomic_fetch_add(&bus->dropped, 1);
        natsMsg_Destroy(msg);
        nt_free(it);
        return;
    }
    uv_async_send(&bus->wake);
}

static void on_sub_complete(void *closure)
{
    nt_bus_sub *sub = closure;
    nt_bus *bus = sub->bus;

    pthread_mutex_lock(&bus->done_lock);
    sub->done_next = bus->done;
    bus->done = sub;
    pthread_mutex_unlock(&bus->done_lock);
    uv_async_send(&bus->wake);
}

static void sub_free(nt_bus_sub *sub)
{
    nt_list_remove(&sub->node);
    natsSubscription_Destroy(sub->ns);
    nt_free(sub);
}

static void sub_free_if_idle(nt_bus_sub *sub)
{
    if (atomic_load(&sub->complete) && atomic_load(&sub->queued) == 0)
        sub_free(sub);
}

static void deliver(nt_bus_sub *sub, natsMsg *msg)
{
    nt_bus_msg m = {
        .subject = natsMsg_GetSubject(msg),
        .reply = natsMsg_GetReply(msg),
        .data = natsMsg_GetData(msg),
        .len = (size_t)natsMsg_GetDataLength(msg),
        .raw = msg,
    };
    if (m.reply && !m.reply[0])
        m.reply = NULL;
    sub->cb(sub->bus, &m, sub->arg);
}

/* ---- loop delivery ----
 * cnats parses what it reads on the loop thread (its libuv adapter) but hands every
 * message to a delivery thread, which wakes the loop again (on_nats_msg): two
 * futex-backed hand-offs per message, ~0.36 futex calls per delivered frame in the
 * chat mix. cnats 3.4 has no public way to run handlers where it parses; it does
 * export natsConn_setFilterWithClosure (its own streaming client uses it), which
 * calls a filter on the parsing thread for every message before the subscription
 * lookup, and lets the filter take the message (compat_nats.h). With
 * nt_bus_opts.loop_delivery the bus installs it (without it, the delivery threads are
 * used as before) and takes the messages of its exact-subject subscriptions and of its
 * inbox, on the loop thread only; everything else (wildcard subscriptions, a
 * parse on cnats's reconnect thread) goes the usual way. The filter cannot see
 * which subscription a message was for, so such a bus allows one subscription per
 * exact subject. */
static bool is_exact(const char *subject)
{
    return !strchr(subject, '*') && !strchr(subject, '>');
}

static void on_filter(natsConnection *nc, natsMsg **pmsg, void *closure)
{
    nt_bus *bus = closure;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &bus->loop_thread))
        return;
    const char *subject = natsMsg_GetSubject(*pmsg);
    nt_bus_sub *sub;
    if (bus->inbox_sub && strncmp(subject, bus->inbox, bus->inbox_len) == 0 &&
        subject[bus->inbox_len] == '.' && !strchr(subject + bus->inbox_len + 1, '.'))
        sub = bus->inbox_sub;
    else
        sub = nt_map_get(&bus->fast_subs, subject);
    if (!sub || sub->closed)
        return;
    natsMsg *msg = *pmsg;
    *pmsg = NULL;
    bus->loop_delivered++;
    deliver(sub, msg);
    nt_bus_free_msg(bus, msg);
}

static void fast_del(nt_bus_sub *sub)
{
    if (sub->fast_key) {
        nt_map_del(&sub->bus->fast_subs, sub->fast_key);
        sub->fast_key = NULL;
    }
}

static void on_wake(uv_async_t *h)
{
    nt_bus *bus = h->data;
    void *batch[BUS_POP_BATCH];
    size_t got;
    nt_bus_sub *done;

    /* Bounded per wake-up so other loop work is not starved; re-arm if more. One
     * lock per batch: the delivery thread pushing meanwhile waits once, not per item. */
    for (size_t n = 0; n < 4096 && (got = nt_mpsc_pop_many(bus->queue, batch, BUS_POP_BATCH)) > 0;
         n += got) {
        for (size_t k = 0; k < got; k++) {
            bus_item *it = batch[k];
            if (it->kind == ITEM_POST) {
                it->fn(it->arg);
            } else {
                nt_bus_sub *sub = it->sub;
                if (!sub->closed)
                    deliver(sub, it->msg);
                nt_bus_free_msg(bus, it->msg);
                atomic_fetch_sub(&sub->queued, 1);
                sub_free_if_idle(sub);
            }
            nt_free(it);
        }
    }
    if (nt_mpsc_size(bus->queue) > 0)
        uv_async_send(&bus->wake);

    pthread_mutex_lock(&bus->done_lock);
    done = bus->done;
    bus->done = NULL;
    pthread_mutex_unlock(&bus->done_lock);
    while (done) {
        nt_bus_sub *next = done->done_next;
        atomic_store(&done->complete, true);
        sub_free_if_idle(done);
        done = next;
    }
}

/* ---- connection events (cnats threads: flags and logs only) ---- */

static void on_disconnected(natsConnection *nc, void *closure)
{
    nt_bus *bus = closure;
    atomic_store(&bus->connected, false);
    if (!atomic_load(&bus->closing))
        nt_warn("nats: disconnected");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    nt_bus *bus = closure;
    atomic_store(&bus->connected, true);
    atomic_fetch_add(&bus->reconnects, 1);
    nt_info("nats: reconnected");
}

/* cnats closes a connection for good, with reconnects unlimited, only when the
 * server refused the credentials twice in a row (a password rotated under a running
 * process) or sent an error it does not know. Nothing brings that connection back,
 * and /readyz would stay 503 while /healthz stays 200, so the process ends like a
 * refused login at start (one line, exit 2) and its supervisor starts it again with
 * the settings it has then. On the loop thread (posted from on_closed). */
static void closed_for_good(void *arg)
{
    nt_bus *bus = arg;
    const char *text = NULL;
    natsStatus s = natsConnection_GetLastError(bus->nc, &text);
    char detail[256];
    nt_config_redact_url(text && *text ? text : "no details", detail, sizeof(detail));
    if (s == NATS_CONNECTION_AUTH_FAILED || strstr(detail, "Authorization Violation"))
        nt_config_fatal("NATS at %s (NATTER_NATS_URL) closed the connection for good: "
                        "authorization violation: the server refused %s", bus->url_shown,
                        bus->auth ? bus->auth : "to go on without credentials");
    nt_config_fatal("NATS at %s (NATTER_NATS_URL) closed the connection for good: %s",
                    bus->url_shown, detail);
}

static void on_closed(natsConnection *nc, void *closure)
{
    nt_bus *bus = closure;
    if (!atomic_load(&bus->up) || atomic_load(&bus->closing))
        return;
    if (nt_bus_post(bus, closed_for_good, bus) != NT_OK)
        nt_config_fatal("NATS at %s (NATTER_NATS_URL) closed the connection for good",
                        bus->url_shown);
}

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    /* The server's text names the subject of a permissions violation. */
    const char *text = NULL;
    natsConnection_GetLastError(nc, &text);
    nt_warn("nats: asynchronous error: %s%s%s", natsStatus_GetText(err), text && *text ? ": " : "",
            text && *text ? text : "");
}

/* ---- requests ---- */

static bus_req **req_slot(nt_bus *bus, uint64_t id)
{
    bus_req **pp = &bus->buckets[id & (bus->nbuckets - 1)];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->hnext;
    return pp;
}

static void req_unlink(nt_bus *bus, bus_req *r)
{
    bus_req **pp = req_slot(bus, r->id);
    if (*pp == r)
        *pp = r->hnext;
    nt_list_remove(&r->node);
    bus->nreq--;
}

static bus_req *req_first(nt_bus *bus)
{
    nt_list *n = nt_list_first(&bus->reqs);
    return n ? nt_list_entry(n, bus_req, node) : NULL;
}

static void on_req_timer(uv_timer_t *t);

static void req_arm_timer(nt_bus *bus)
{
    bus_req *first = req_first(bus);
    if (!first) {
        uv_timer_stop(&bus->req_timer);
        return;
    }
    uint64_t now = uv_now(bus->loop);
    uint64_t due = first->deadline;
    uv_timer_start(&bus->req_timer, on_req_timer, due > now ? due - now : 0, 0);
}

static void on_req_timer(uv_timer_t *t)
{
    nt_bus *bus = t->data;
    uint64_t now = uv_now(bus->loop);

    bus_req *r;
    while ((r = req_first(bus)) && r->deadline <= now) {
        req_unlink(bus, r);
        r->cb(bus, NT_ETIMEDOUT, NULL, r->arg);
        nt_free(r);
    }
    req_arm_timer(bus);
}

static void on_inbox(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    const char *dot = strrchr(msg->subject, '.');
    if (!dot)
        return;
    uint64_t id = strtoull(dot + 1, NULL, 10);
    bus_req *r = *req_slot(bus, id);
    if (!r)
        return; /* late reply for a cancelled or timed-out request */
    req_unlink(bus, r);
    if (natsMsg_IsNoResponders(msg->raw))
        r->cb(bus, NT_EUNAVAIL, NULL, r->arg);
    else
        r->cb(bus, NT_OK, msg, r->arg);
    nt_free(r);
    req_arm_timer(bus);
}

/* subject NULL: to the reply subject itself (nt_bus_barrier). */
static nt_status request(nt_bus *bus, const char *subject, const char *msgid,
                         const void *data, size_t len, int timeout_ms,
                         nt_bus_reply_cb cb, void *arg, uint64_t *id_out)
{
    char reply[BUS_INBOX_MAX + 24];
    natsMsg *m = NULL;
    natsStatus s;

    if (bus->nreq >= bus->max_requests)
        return NT_EFULL;
    uint64_t id = ++bus->next_id;
    snprintf(reply, sizeof(reply), "%s.%llu", bus->inbox, (unsigned long long)id);

    s = natsMsg_Create(&m, subject ? subject : reply, reply, data, (int)len);
    if (s == NATS_OK && msgid)
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(bus->nc, m);
    nt_bus_free_msg(bus, m);
    if (s != NATS_OK)
        return NT_EUNAVAIL;

    bus_req *r = nt_calloc(1, sizeof(*r));
    r->id = id;
    r->deadline = uv_now(bus->loop) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    r->cb = cb;
    r->arg = arg;
    bus_req **slot = &bus->buckets[id & (bus->nbuckets - 1)];
    r->hnext = *slot;
    *slot = r;
    /* Keep the list ordered by deadline; timeouts are mostly equal, so the
     * walk from the tail is short. */
    nt_list *after = bus->reqs.prev;
    while (after != &bus->reqs && nt_list_entry(after, bus_req, node)->deadline > r->deadline)
        after = after->prev;
    nt_list_insert_after(after, &r->node);
    bus->nreq++;
    if (req_first(bus) == r)
        req_arm_timer(bus);
    if (id_out)
        *id_out = id;
    return NT_OK;
}

nt_status nt_bus_request(nt_bus *bus, const char *subject, const char *msgid,
                         const void *data, size_t len, int timeout_ms,
                         nt_bus_reply_cb cb, void *arg, uint64_t *id_out)
{
    return request(bus, subject, msgid, data, len, timeout_ms, cb, arg, id_out);
}

/* The server handles one connection's protocol in order, so an empty message to our
 * own inbox comes back only after every SUB and PUB written before it took effect. */
nt_status nt_bus_barrier(nt_bus *bus, int timeout_ms, nt_bus_reply_cb cb, void *arg,
                         uint64_t *id_out)
{
    return request(bus, NULL, NULL, NULL, 0, timeout_ms, cb, arg, id_out);
}

void nt_bus_request_cancel(nt_bus *bus, uint64_t id)
{
    bus_req *r = *req_slot(bus, id);
    if (!r)
        return;
    req_unlink(bus, r);
    nt_free(r);
}

/* ---- publish / subscribe ---- */

nt_status nt_bus_publish(nt_bus *bus, const char *subject, const char *reply,
                         const void *data, size_t len)
{
    natsStatus s = reply ? natsConnection_PublishRequest(bus->nc, subject, reply, data, (int)len)
                         : natsConnection_Publish(bus->nc, subject, data, (int)len);
    return s == NATS_OK ? NT_OK : NT_EUNAVAIL;
}

nt_bus_sub *nt_bus_subscribe(nt_bus *bus, const char *subject, const char *queue,
                             nt_bus_msg_cb cb, void *arg)
{
    nt_bus_sub *sub = nt_calloc(1, sizeof(*sub));
    natsStatus s;

    if (bus->fast && is_exact(subject) && nt_map_get(&bus->fast_subs, subject)) {
        nt_warn("nats: %s is already subscribed on this connection (loop delivery allows one "
                "subscription per subject)", subject);
        nt_free(sub);
        return NULL;
    }
    sub->bus = bus;
    sub->cb = cb;
    sub->arg = arg;
    if (queue)
        s = natsConnection_QueueSubscribe(&sub->ns, bus->nc, subject, queue, on_nats_msg, sub);
    else
        s = natsConnection_Subscribe(&sub->ns, bus->nc, subject, on_nats_msg, sub);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(sub->ns, on_sub_complete, sub);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub->ns, 65536, 64 * 1024 * 1024);
    if (s != NATS_OK) {
        nt_warn("nats: subscribe %s failed: %s", subject, natsStatus_GetText(s));
        if (sub->ns) {
            natsSubscription_Unsubscribe(sub->ns);
            natsSubscription_Destroy(sub->ns);
        }
        nt_free(sub);
        return NULL;
    }
    if (bus->fast && is_exact(subject)) {
        sub->fast_key = natsSubscription_GetSubject(sub->ns);
        if (sub->fast_key)
            nt_map_put(&bus->fast_subs, sub->fast_key, sub);
    }
    nt_list_insert_head(&bus->subs, &sub->node);
    return sub;
}

void nt_bus_unsubscribe(nt_bus_sub *sub)
{
    if (!sub || sub->closed)
        return;
    sub->closed = true;
    fast_del(sub);
    /* cnats calls on_sub_complete once its handler can no longer run; the
     * storage is freed on the loop after that and after queued items drain. */
    if (natsSubscription_Unsubscribe(sub->ns) != NATS_OK) {
        /* Connection already closed: no completion will come. */
        atomic_store(&sub->complete, true);
        sub_free_if_idle(sub);
    }
}

nt_status nt_bus_post(nt_bus *bus, nt_bus_post_fn fn, void *arg)
{
    bus_item *it = nt_malloc(sizeof(*it));
    it->kind = ITEM_POST;
    it->fn = fn;
    it->arg = arg;
    it->sub = NULL;
    it->msg = NULL;
    if (nt_mpsc_push(bus->queue, it) != NT_OK) {
        nt_free(it);
        return NT_EFULL;
    }
    uv_async_send(&bus->wake);
    return NT_OK;
}

bool nt_bus_connected(nt_bus *bus) { return atomic_load(&bus->connected); }
uint64_t nt_bus_reconnects(nt_bus *bus) { return atomic_load(&bus->reconnects); }
natsConnection *nt_bus_conn(nt_bus *bus) { return bus->nc; }
uint64_t nt_bus_dropped(nt_bus *bus) { return atomic_load(&bus->dropped); }
size_t nt_bus_queue_depth(nt_bus *bus) { return nt_mpsc_size(bus->queue); }
uint64_t nt_bus_loop_delivered(nt_bus *bus) { return bus->loop_delivered; }

static int64_t metric_dropped(void *bus) { return (int64_t)nt_bus_dropped(bus); }
static int64_t metric_depth(void *bus) { return (int64_t)nt_bus_queue_depth(bus); }
static int64_t metric_loop_delivered(void *bus) { return (int64_t)nt_bus_loop_delivered(bus); }

void nt_bus_register_metrics(nt_bus *bus, const char *prefix)
{
    char name[128];
    snprintf(name, sizeof name, "%s_nats_dropped_total", prefix);
    nt_metric_counter_fn(name, "NATS messages dropped because the bus queue (NATTER_BUS_QUEUE) was full",
                         metric_dropped, bus);
    snprintf(name, sizeof name, "%s_nats_queue_depth", prefix);
    nt_metric_gauge_fn(name, "NATS messages waiting in the bus queue for the loop", metric_depth, bus);
    if (bus->want_fast) {
        snprintf(name, sizeof name, "%s_nats_loop_delivered_total", prefix);
        nt_metric_counter_fn(name, "NATS messages handled on the loop thread where cnats parsed them",
                             metric_loop_delivered, bus);
    }
}

/* ---- credentials and TLS (NATTER_NATS_*) ----
 * Read here, not in each main.c, so every process and every connection (the
 * persister's start-up one too) authenticates the same way. One way to
 * authenticate at a time: credentials in the URL, user + password, a token, an
 * NKey seed or a .creds file. A bad combination or an unreadable file is a bad
 * setting (exit 2); the server refusing the credentials is a connect error. */

#define NKEY_FILE_MAX 65536

/* cnats's last error of this thread without its "(file.c:123): " prefix, and
 * without a password should it quote a URL. */
static const char *last_error(char *buf, size_t len)
{
    const char *e = nats_GetLastError(NULL);
    if (!e || !*e)
        return "no details";
    const char *cut = e[0] == '(' ? strstr(e, "): ") : NULL;
    return nt_config_redact_url(cut ? cut + 3 : e, buf, len);
}

/* True when one of the (comma-separated) URLs carries user info ("user:pass@",
 * "token@"). */
static bool url_has_credentials(const char *url)
{
    for (const char *p = strstr(url, "://"); p; p = strstr(p, "://")) {
        p += 3;
        size_t authority = strcspn(p, "/,?#");
        if (memchr(p, '@', authority))
            return true;
    }
    return false;
}

/* Reads the NKey seed file and sets the NKey with its public key, which cnats
 * wants besides the file and which the seed determines. */
static void set_nkey_from_seed_file(natsOptions *opts, const char *path)
{
    char why[160], detail[256];
    char pub[NT_NKEY_PUBLIC_LEN + 1];
    char *text = nt_malloc(NKEY_FILE_MAX);
    FILE *f = fopen(path, "r");
    if (!f)
        nt_config_fatal("cannot read NATTER_NATS_NKEY_SEED_FILE=%s: %s", path, strerror(errno));
    size_t n = fread(text, 1, NKEY_FILE_MAX, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr)
        nt_config_fatal("cannot read NATTER_NATS_NKEY_SEED_FILE=%s", path);
    int rc = nt_nkey_user_public(text, n, pub, why, sizeof(why));
    explicit_bzero(text, NKEY_FILE_MAX);
    nt_free(text);
    if (rc != 0)
        nt_config_fatal("NATTER_NATS_NKEY_SEED_FILE=%s is invalid: %s", path, why);
    if (natsOptions_SetNKeyFromSeed(opts, pub, path) != NATS_OK)
        nt_config_fatal("NATTER_NATS_NKEY_SEED_FILE=%s is invalid: %s", path,
                        last_error(detail, sizeof(detail)));
}

/* TLS from NATTER_NATS_TLS_CA / _CERT / _KEY. A tls:// URL, or a server that
 * requires TLS, turns it on too; without NATTER_NATS_TLS_CA cnats checks the
 * server against OpenSSL's default trust store (the system's, or SSL_CERT_FILE). */
static void apply_tls(natsOptions *opts)
{
    const char *ca = nt_config_str("NATTER_NATS_TLS_CA", "", NULL);
    const char *cert = nt_config_str("NATTER_NATS_TLS_CERT", "", NULL);
    const char *key = nt_config_str("NATTER_NATS_TLS_KEY", "", NULL);
    char detail[256];

    if (!*cert != !*key)
        nt_config_fatal("NATTER_NATS_TLS_CERT and NATTER_NATS_TLS_KEY go together: set both or "
                        "neither");
    if (!*ca && !*cert)
        return;
    if (natsOptions_SetSecure(opts, true) != NATS_OK)
        nt_config_fatal("cannot turn on TLS for NATS (NATTER_NATS_TLS_CA): %s",
                        last_error(detail, sizeof(detail)));
    if (*ca && natsOptions_LoadCATrustedCertificates(opts, ca) != NATS_OK)
        nt_config_fatal("cannot load NATTER_NATS_TLS_CA=%s: %s", ca,
                        last_error(detail, sizeof(detail)));
    if (*cert && natsOptions_LoadCertificatesChain(opts, cert, key) != NATS_OK)
        nt_config_fatal("cannot load NATTER_NATS_TLS_CERT=%s / NATTER_NATS_TLS_KEY=%s: %s", cert,
                        key, last_error(detail, sizeof(detail)));
}

/* Applies the credentials and TLS settings to opts (exit 2 on a bad one). Returns
 * the settings that carry the credentials, for error messages, or NULL when none. */
static const char *apply_auth(natsOptions *opts, const char *url)
{
    const char *user = nt_config_str("NATTER_NATS_USER", "", NULL);
    const char *password = nt_config_str("NATTER_NATS_PASSWORD", "", NULL);
    const char *token = nt_config_str("NATTER_NATS_TOKEN", "", NULL);
    const char *seed = nt_config_str("NATTER_NATS_NKEY_SEED_FILE", "", NULL);
    const char *creds = nt_config_str("NATTER_NATS_CREDS_FILE", "", NULL);
    const char *ways[5];
    int n = 0;

    if (url_has_credentials(url))
        ways[n++] = "the credentials in NATTER_NATS_URL";
    if (*user || *password)
        ways[n++] = "NATTER_NATS_USER/NATTER_NATS_PASSWORD";
    if (*token)
        ways[n++] = "NATTER_NATS_TOKEN";
    if (*seed)
        ways[n++] = "NATTER_NATS_NKEY_SEED_FILE";
    if (*creds)
        ways[n++] = "NATTER_NATS_CREDS_FILE";
    if (n > 1)
        nt_config_fatal("NATS credentials are set twice (%s and %s): use one way to authenticate",
                        ways[0], ways[1]);
    if (!*user != !*password)
        nt_config_fatal("NATTER_NATS_USER and NATTER_NATS_PASSWORD go together: set both");

    natsStatus s = NATS_OK;
    if (*user)
        s = natsOptions_SetUserInfo(opts, user, password);
    else if (*token)
        s = natsOptions_SetToken(opts, token);
    else if (*seed)
        set_nkey_from_seed_file(opts, seed);
    else if (*creds) {
        FILE *f = fopen(creds, "r");
        if (!f)
            nt_config_fatal("cannot read NATTER_NATS_CREDS_FILE=%s: %s", creds, strerror(errno));
        fclose(f);
        s = natsOptions_SetUserCredentialsFromFiles(opts, creds, NULL);
    }
    if (s != NATS_OK)
        nt_config_fatal("cannot set the NATS credentials (%s): %s", ways[0], natsStatus_GetText(s));
    apply_tls(opts);
    return n ? ways[0] : NULL;
}

/* Why a connect failed, for "cannot reach NATS at <url> (NATTER_NATS_URL): <err>":
 * a refused login names the settings to look at. Never the URL itself (main.c
 * shows it without its password). */
static void connect_error(natsStatus s, const char *auth, char *err, size_t errlen)
{
    char detail[256];
    if (s == NATS_CONNECTION_AUTH_FAILED && auth)
        snprintf(err, errlen, "authorization violation: the server refused %s", auth);
    else if (s == NATS_CONNECTION_AUTH_FAILED)
        snprintf(err, errlen, "authorization violation: the server wants credentials and none "
                 "are set (NATTER_NATS_USER/NATTER_NATS_PASSWORD, NATTER_NATS_TOKEN, "
                 "NATTER_NATS_NKEY_SEED_FILE or NATTER_NATS_CREDS_FILE)");
    else if (s == NATS_SSL_ERROR)
        snprintf(err, errlen, "TLS: %s (NATTER_NATS_TLS_CA, NATTER_NATS_TLS_CERT, "
                 "NATTER_NATS_TLS_KEY)", last_error(detail, sizeof(detail)));
    else if (s == NATS_SECURE_CONNECTION_WANTED)
        snprintf(err, errlen, "the server offers no TLS, which NATTER_NATS_TLS_CA / "
                 "NATTER_NATS_TLS_CERT or a tls:// URL ask for");
    else if (s == NATS_ERR && auth)
        snprintf(err, errlen, "%s (%s)", last_error(detail, sizeof(detail)), auth);
    else
        snprintf(err, errlen, "%s", natsStatus_GetText(s));
}

nt_status nt_bus_connect_plain(const char *url, const char *name, natsConnection **out,
                               char *err, size_t errlen)
{
    natsOptions *opts = NULL;
    const char *auth = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK && name)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, 3000);
    if (s == NATS_OK) {
        auth = apply_auth(opts, url);
        s = natsConnection_Connect(out, opts);
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        connect_error(s, auth, err, errlen);
        return NT_ECONN;
    }
    return NT_OK;
}

/* ---- life cycle ---- */

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

nt_status nt_bus_create(uv_loop_t *loop, const nt_bus_opts *o, nt_bus **out,
                        char *err, size_t errlen)
{
    static uv_once_t once = UV_ONCE_INIT;
    nt_bus *bus = nt_calloc(1, sizeof(*bus));
    nt_list_init(&bus->subs);
    nt_list_init(&bus->reqs);
    natsStatus s;

    uv_once(&once, natsLibuv_Init);
    natsLibuv_SetThreadLocalLoop(loop);

    bus->loop = loop;
    bus->queue = nt_mpsc_create(o->queue_capacity ? o->queue_capacity : 65536);
    bus->max_requests = o->max_requests ? o->max_requests : 65536;
    bus->nbuckets = pow2_at_least(bus->max_requests);
    bus->buckets = nt_calloc(bus->nbuckets, sizeof(*bus->buckets));
    pthread_mutex_init(&bus->done_lock, NULL);
    uv_async_init(loop, &bus->wake, on_wake);
    bus->wake.data = bus;
    uv_timer_init(loop, &bus->req_timer);
    bus->req_timer.data = bus;
    reaper_start(bus);

    s = natsOptions_Create(&bus->opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(bus->opts, o->url);
    if (s == NATS_OK && o->name)
        s = natsOptions_SetName(bus->opts, o->name);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(bus->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(bus->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(bus->opts, 500);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(bus->opts, 3000);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(bus->opts, on_disconnected, bus);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(bus->opts, on_reconnected, bus);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(bus->opts, on_nats_error, bus);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(bus->opts, on_closed, bus);
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(bus->opts, loop, natsLibuv_Attach, natsLibuv_Read,
                                     natsLibuv_Write, natsLibuv_Detach);
    nt_config_redact_url(o->url, bus->url_shown, sizeof(bus->url_shown));
    if (s == NATS_OK) {
        bus->auth = apply_auth(bus->opts, o->url);
        s = natsConnection_Connect(&bus->nc, bus->opts);
    }
    if (s != NATS_OK) {
        connect_error(s, bus->auth, err, errlen);
        goto err;
    }
    atomic_store(&bus->connected, true);
    atomic_store(&bus->up, true);
    bus->want_fast = o->loop_delivery;
    if (o->loop_delivery) {
        bus->loop_thread = uv_thread_self();
        if (nt_nats_set_filter(bus->nc, on_filter, bus)) {
            bus->fast = true;
        } else {
            nt_warn("nats: this libnats has no natsConn_setFilterWithClosure: messages go "
                    "through its delivery thread");
        }
    }

    natsInbox *inbox = NULL;
    if (natsInbox_Create(&inbox) != NATS_OK) {
        snprintf(err, errlen, "cannot create inbox");
        goto err;
    }
    snprintf(bus->inbox, sizeof(bus->inbox), "%s", (const char *)inbox);
    bus->inbox_len = strlen(bus->inbox);
    natsInbox_Destroy(inbox);

    char pattern[BUS_INBOX_MAX + 4];
    snprintf(pattern, sizeof(pattern), "%s.*", bus->inbox);
    bus->inbox_sub = nt_bus_subscribe(bus, pattern, NULL, on_inbox, NULL);
    if (!bus->inbox_sub) {
        snprintf(err, errlen, "cannot subscribe the reply inbox");
        goto err;
    }
    *out = bus;
    return NT_OK;

err:
    nt_bus_destroy(bus);
    return NT_ECONN;
}

static void on_handle_closed(uv_handle_t *h)
{
    nt_bus *bus = h->data;
    if (--bus->handles_open == 0) {
        reaper_free(&bus->reaper);
        nt_mpsc_destroy(bus->queue);
        pthread_mutex_destroy(&bus->done_lock);
        nt_free(bus);
    }
}

/* Marks subscriptions on the done list complete; returns how many are still
 * waiting for cnats's completion callback. */
static size_t collect_done(nt_bus *bus)
{
    size_t waiting = 0;

    pthread_mutex_lock(&bus->done_lock);
    for (nt_bus_sub *d = bus->done; d; d = d->done_next)
        atomic_store(&d->complete, true);
    bus->done = NULL;
    pthread_mutex_unlock(&bus->done_lock);
    nt_list *n;
    nt_list_foreach(n, &bus->subs)
        waiting += !atomic_load(&nt_list_entry(n, nt_bus_sub, node)->complete);
    return waiting;
}

void nt_bus_destroy(nt_bus *bus)
{
    bus_item *it;
    nt_list *n;

    if (!bus)
        return;
    atomic_store(&bus->closing, true);
    nt_list_foreach(n, &bus->subs) {
        nt_bus_sub *sub = nt_list_entry(n, nt_bus_sub, node);
        sub->closed = true;
        fast_del(sub);
    }
    nt_map_free(&bus->fast_subs);
    if (bus->nc) {
        /* Closing ends every subscription; cnats then calls on_sub_complete
         * from its delivery threads. Wait (bounded) until it has, so no cnats
         * thread can touch a sub or the bus after they are freed. */
        natsConnection_Close(bus->nc);
        for (int i = 0; i < 200 && collect_done(bus) > 0; i++)
            uv_sleep(5);
    }
    while ((it = nt_mpsc_pop(bus->queue)) != NULL) {
        if (it->kind == ITEM_MSG)
            natsMsg_Destroy(it->msg);
        nt_free(it);
    }
    reaper_stop(bus);
    while ((n = nt_list_first(&bus->subs)) != NULL)
        sub_free(nt_list_entry(n, nt_bus_sub, node));
    if (bus->nc) {
        natsConnection_Destroy(bus->nc);
        bus->nc = NULL;
        natsOptions_Destroy(bus->opts);
        bus->opts = NULL;
        nats_CloseAndWait(2000);
    }
    natsOptions_Destroy(bus->opts);
    bus_req *r;
    while ((r = req_first(bus)) != NULL) {
        req_unlink(bus, r);
        nt_free(r);
    }
    nt_free(bus->buckets);
    bus->handles_open = 3;
    uv_close((uv_handle_t *)&bus->wake, on_handle_closed);
    uv_close((uv_handle_t *)&bus->req_timer, on_handle_closed);
    uv_check_stop(&bus->reaper.check);
    uv_close((uv_handle_t *)&bus->reaper.check, on_handle_closed);
}
