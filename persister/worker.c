/* worker.c: the JetStream fetch threads, one per owned partition (cnats 3.4 has
 * no asynchronous pull, and one thread cannot long-poll several consumers). Each
 * long-polls its partition's pull consumer, so a message is fetched as soon as it
 * is stored and an idle partition costs one request per poll interval. A
 * partition is fetched only while the loop has no batch of it in flight, and its
 * subscription is closed only then, since acks use the subscription.
 *
 * A partition's batches start at most once per NATTER_BATCH_LINGER_MS (unless a
 * batch came back full): a transaction costs PostgreSQL about as much CPU as
 * eight messages in it (BENCHMARKS.md), and without the wait a partition whose
 * commits are quick commits each message alone. A message arriving at an idle
 * partition is fetched at once; only the next batch waits out the rest of the
 * interval. */
#include "worker.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "util.h"

#define WORKER_POLL_MS 500          /* long-poll expiry of one fetch */
#define WORKER_IDLE_SLEEP_MS 100
#define WORKER_RETRY_MS 1000
#define WORKER_FETCH_ERROR_MS 250
#define WORKER_ACK_WAIT_S 60
#define WORKER_MAX_ACK_PENDING 100000
#define WORKER_QUIT_WAIT_MS 3000   /* for the loop to release batches at exit */

typedef struct wpart {
    struct ps_worker *w;
    unsigned p;
    uv_thread_t thread;
    bool started;             /* thread created */
    bool want;                /* loop owns p and wants it fetched */
    uint64_t want_gen;
    uint64_t committed;       /* start after this stream sequence */
    bool inflight;            /* a batch of p is with the loop */
    uv_cond_t cv;             /* wakes this partition's thread only: a batch done for
                               * one partition must not wake the others' threads */
    natsSubscription *sub;    /* worker thread only */
    uint64_t sub_gen;
    int64_t retry_at;         /* ms: no setup or fetch before */
    uint64_t linger_until;    /* uv_hrtime ns: the next batch does not start before */
    natsStatus last_err;      /* to log a failure once, not per attempt */
} wpart;

struct ps_worker {
    ps_ctx *ctx;
    uv_mutex_t mu;
    bool quit;
    unsigned running;         /* partition threads not yet ended */
    nt_bus_post_fn on_exit;
    void *exit_arg;
    jsCtx *js;
    unsigned n;
    wpart *parts;
};

static void worker_post(ps_worker *w, nt_bus_post_fn fn, void *arg)
{
    while (nt_bus_post(w->ctx->bus, fn, arg) == NT_EFULL)
        uv_sleep(5);
}

static void worker_note_error(wpart *wp, unsigned p, const char *what, natsStatus s,
                              jsErrCode jerr)
{
    if (wp->last_err != s)
        nt_warn("partition %u: %s failed: %s (jetstream error %d)", p, what,
                natsStatus_GetText(s), (int)jerr);
    wp->last_err = s;
}

/* Deletes natter_p<p>, creates it to deliver after `committed`, binds a pull
 * subscription to it. Called unlocked. */
static natsStatus worker_setup(ps_worker *w, unsigned p, uint64_t committed,
                               natsSubscription **out, wpart *wp)
{
    char name[32], subj[48];
    snprintf(name, sizeof(name), "natter_p%u", p);
    snprintf(subj, sizeof(subj), "natter.in.*.%u", p);
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteConsumer(w->js, PS_STREAM, name, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND) {
        worker_note_error(wp, p, "deleting the consumer", s, jerr);
        return s;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = name;
    cc.FilterSubject = subj;
    cc.AckPolicy = js_AckAll;
    cc.AckWait = (int64_t)WORKER_ACK_WAIT_S * 1000000000LL;
    cc.MaxAckPending = WORKER_MAX_ACK_PENDING;
    if (committed == 0) {
        cc.DeliverPolicy = js_DeliverAll;
    } else {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = committed + 1;
    }
    jsConsumerInfo *ci = NULL;
    s = js_AddConsumer(&ci, w->js, PS_STREAM, &cc, NULL, &jerr);
    if (s != NATS_OK) {
        worker_note_error(wp, p, "creating the consumer", s, jerr);
        return s;
    }
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = PS_STREAM;
    so.Consumer = name;
    s = js_PullSubscribe(out, w->js, subj, name, NULL, &so, &jerr);
    if (s != NATS_OK) {
        worker_note_error(wp, p, "pull subscribe", s, jerr);
        return s;
    }
    nt_info("partition %u: consumer %s starts after stream sequence %llu", p, name,
            (unsigned long long)committed);
    return NATS_OK;
}

static bool worker_fetchable(const wpart *wp, int64_t now)
{
    return wp->sub != NULL && wp->want && wp->sub_gen == wp->want_gen && !wp->inflight &&
           now >= wp->retry_at;
}

/* ns until p's linger ends (0: over). Lock held. */
static uint64_t worker_linger_left(const wpart *wp)
{
    uint64_t now = uv_hrtime();
    return wp->linger_until > now ? wp->linger_until - now : 0;
}

/* Closes p's subscription when nobody wants it and creates it when wanted. Lock
 * held; dropped around blocking calls. */
static void worker_reconcile_locked(ps_worker *w, wpart *wp)
{
    unsigned p = wp->p;
    if (wp->sub != NULL && !wp->inflight && (!wp->want || wp->sub_gen != wp->want_gen)) {
        natsSubscription *sub = wp->sub;
        wp->sub = NULL;
        uv_mutex_unlock(&w->mu);
        natsSubscription_Destroy(sub);
        uv_mutex_lock(&w->mu);
    }
    if (!wp->want || wp->sub != NULL || wp->inflight || nt_now_ms() < wp->retry_at)
        return;
    uint64_t gen = wp->want_gen, committed = wp->committed;
    natsSubscription *sub = NULL;
    uv_mutex_unlock(&w->mu);
    natsStatus s = worker_setup(w, p, committed, &sub, wp);
    uv_mutex_lock(&w->mu);
    if (s != NATS_OK) {
        wp->retry_at = nt_now_ms() + WORKER_RETRY_MS;
        return;
    }
    wp->last_err = NATS_OK;
    if (wp->want && wp->want_gen == gen) {
        wp->sub = sub;
        wp->sub_gen = gen;
    } else {
        uv_mutex_unlock(&w->mu);
        natsSubscription_Destroy(sub);
        uv_mutex_lock(&w->mu);
    }
}

/* One fetch of p. Lock held; dropped during the fetch and the hand-off. True when
 * messages were handed to the loop. */
static bool worker_fetch_locked(ps_worker *w, unsigned p)
{
    wpart *wp = &w->parts[p];
    natsSubscription *sub = wp->sub;
    uint64_t gen = wp->sub_gen;
    uv_mutex_unlock(&w->mu);

    natsMsgList list;
    memset(&list, 0, sizeof(list));
    /* Returns as soon as some messages arrived and no more are available. */
    natsStatus s = natsSubscription_Fetch(&list, sub, w->ctx->cfg.batch_max, WORKER_POLL_MS, NULL);

    uv_mutex_lock(&w->mu);
    if (s == NATS_OK && list.Count > 0) {
        wp->inflight = true;
        wp->linger_until = list.Count >= w->ctx->cfg.batch_max
                               ? 0
                               : uv_hrtime() + (uint64_t)w->ctx->cfg.batch_linger_ms * 1000000ULL;
        wp->last_err = NATS_OK;
        uv_mutex_unlock(&w->mu);
        ps_fetch *f = nt_malloc(sizeof(*f));
        f->ctx = w->ctx;
        f->p = p;
        f->gen = gen;
        f->list = list;
        worker_post(w, ps_batch_deliver, f);
        uv_mutex_lock(&w->mu);
        return true;
    }
    natsMsgList_Destroy(&list);
    if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
        worker_note_error(wp, p, "fetch", s, 0);
        wp->retry_at = nt_now_ms() + WORKER_FETCH_ERROR_MS;
    }
    return false;
}

static void worker_part_main(void *arg)
{
    wpart *wp = arg;
    ps_worker *w = wp->w;
    uv_mutex_lock(&w->mu);
    while (!w->quit) {
        worker_reconcile_locked(w, wp);
        if (w->quit)
            break;
        uint64_t linger = 0;
        if (worker_fetchable(wp, nt_now_ms()) && (linger = worker_linger_left(wp)) == 0)
            worker_fetch_locked(w, wp->p);
        else
            uv_cond_timedwait(&wp->cv, &w->mu,
                              linger ? linger : (uint64_t)WORKER_IDLE_SLEEP_MS * 1000000ULL);
    }
    int64_t deadline = nt_now_ms() + WORKER_QUIT_WAIT_MS;
    while (wp->inflight && nt_now_ms() < deadline)
        uv_cond_timedwait(&wp->cv, &w->mu, 10000000ULL);
    natsSubscription *sub = wp->sub;
    wp->sub = NULL;
    bool last = --w->running == 0;
    nt_bus_post_fn on_exit = w->on_exit;
    void *exit_arg = w->exit_arg;
    uv_mutex_unlock(&w->mu);
    natsSubscription_Destroy(sub);
    if (last && on_exit != NULL)
        worker_post(w, on_exit, exit_arg);
}

static void worker_free(ps_worker *w)
{
    for (unsigned p = 0; p < w->n; p++)
        uv_cond_destroy(&w->parts[p].cv);
    uv_mutex_destroy(&w->mu);
    nt_free(w->parts);
    nt_free(w);
}

/* Lock held. */
static void wake_all_locked(ps_worker *w)
{
    for (unsigned p = 0; p < w->n; p++)
        uv_cond_signal(&w->parts[p].cv);
}

ps_worker *ps_worker_create(ps_ctx *ctx)
{
    ps_worker *w = nt_calloc(1, sizeof(*w));
    w->ctx = ctx;
    w->n = ctx->cfg.partitions;
    w->parts = nt_calloc(w->n, sizeof(*w->parts));
    uv_mutex_init(&w->mu);
    for (unsigned p = 0; p < w->n; p++)
        uv_cond_init(&w->parts[p].cv);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    natsStatus s = natsConnection_JetStream(&w->js, nt_bus_conn(ctx->bus), &jo);
    if (s != NATS_OK) {
        nt_error("cannot start the JetStream worker: %s", natsStatus_GetText(s));
        jsCtx_Destroy(w->js);
        worker_free(w);
        return NULL;
    }
    return w;
}

void ps_worker_start_part(ps_worker *w, unsigned p, uint64_t gen, uint64_t committed)
{
    uv_mutex_lock(&w->mu);
    wpart *wp = &w->parts[p];
    wp->want = true;
    wp->want_gen = gen;
    wp->committed = committed;
    wp->retry_at = 0;
    if (!wp->started && !w->quit) {
        wp->w = w;
        wp->p = p;
        if (uv_thread_create(&wp->thread, worker_part_main, wp) == 0) {
            wp->started = true;
            w->running++;
        } else {
            nt_error("partition %u: cannot start its fetch thread", p);
        }
    }
    uv_cond_signal(&wp->cv);
    uv_mutex_unlock(&w->mu);
}

void ps_worker_stop_part(ps_worker *w, unsigned p)
{
    uv_mutex_lock(&w->mu);
    w->parts[p].want = false;
    uv_cond_signal(&w->parts[p].cv);
    uv_mutex_unlock(&w->mu);
}

void ps_worker_stop_all(ps_worker *w)
{
    uv_mutex_lock(&w->mu);
    for (unsigned p = 0; p < w->n; p++)
        w->parts[p].want = false;
    wake_all_locked(w);
    uv_mutex_unlock(&w->mu);
}

void ps_worker_batch_done(ps_worker *w, unsigned p, uint64_t gen)
{
    uv_mutex_lock(&w->mu);
    w->parts[p].inflight = false;
    uv_cond_signal(&w->parts[p].cv);
    uv_mutex_unlock(&w->mu);
}

void ps_worker_quit(ps_worker *w, nt_bus_post_fn on_exit, void *arg)
{
    uv_mutex_lock(&w->mu);
    w->quit = true;
    w->on_exit = on_exit;
    w->exit_arg = arg;
    bool none = w->running == 0;
    wake_all_locked(w);
    uv_mutex_unlock(&w->mu);
    if (none && on_exit != NULL)
        worker_post(w, on_exit, arg);
}

void ps_worker_destroy(ps_worker *w)
{
    if (w == NULL)
        return;
    for (unsigned p = 0; p < w->n; p++)
        if (w->parts[p].started)
            uv_thread_join(&w->parts[p].thread);
    jsCtx_Destroy(w->js);
    worker_free(w);
}
