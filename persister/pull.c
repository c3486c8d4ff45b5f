/* pull.c: JetStream pull consumers on the loop, one per owned partition (cnats 3.4
 * only has a blocking fetch, which took a thread per partition).
 *   - setup: delete consumer natter_p<p>, create it from the partition's committed
 *     stream sequence (JetStream API requests through the bus), subscribe an inbox;
 *   - one no_wait pull request per batch: the server sends what is stored, then
 *     408 (404 if nothing: the partition then long-polls for one message, which
 *     goes alone, at once). Not one open request that streams: that woke the
 *     loop per message instead of per batch (BENCHMARKS.md);
 *   - a request never answered (nats-server 2.9 ignores one for a deleted
 *     consumer) or a 409 "Consumer Deleted": set the consumer up again;
 *   - a pulled message lost before the loop (the bus queue or cnats's pending
 *     limit full): a hole in the consumer's delivery sequence, or a 408 whose
 *     Nats-Pending-Messages says more was sent than arrived; set it up again too;
 *   - batch.c acks the batch's last message (the consumer is AckAll), so a message
 *     dropped here must never be followed by an ack: overflow also starts over.
 * A partition's batches start at most once per NATTER_BATCH_LINGER_MS unless one
 * came back full: a transaction costs PostgreSQL about as much as eight messages
 * in it, and a partition with quick commits would otherwise commit each alone.
 * The periods are aligned (multiples of the linger on the loop clock), so the
 * partitions that share a write connection share its transactions too. */
#include "pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "log.h"
#include "partitions.h"
#include "wire.h"

#define PULL_EXPIRES_MS 500        /* long poll of one pull request */
#define PULL_LOST_MS 5000          /* a request not ended this long after its expiry is
                                    * taken as lost (on_tick) */
#define PULL_DROP_LOST_MS 500      /* the same once the bus has dropped a message since
                                    * the request went out: its end may be what was lost */
#define PULL_API_TIMEOUT_MS 5000
#define PULL_RETRY_MS 1000
#define PULL_TICK_MS 250
#define PULL_ACK_WAIT_S 60
#define PULL_MAX_ACK_PENDING 100000
#define PULL_CONSUMER_NOT_FOUND 10014  /* JetStream API err_code */
#define PULL_GATHER_MS 5           /* a write connection's next transaction waits at most
                                    * this long after a no_wait request went out for the
                                    * batch it brings (ps_pull_batch_due) */
/* The JetStream API of nats-server (not natter's subjects, which are in common/wire.h):
 * the prefixes of its request subjects, followed by <stream>.<consumer>. */
#define PULL_API_NEXT "$JS.API.CONSUMER.MSG.NEXT."
#define PULL_API_CREATE "$JS.API.CONSUMER.DURABLE.CREATE."
#define PULL_API_DELETE "$JS.API.CONSUMER.DELETE."

typedef enum { PH_IDLE, PH_DELETING, PH_CREATING, PH_READY } pull_phase;

typedef struct ppart {
    struct ps_pull *pl;
    unsigned p;
    uv_timer_t timer;         /* next batch start (the linger) */
    bool want;                /* the loop owns p and wants it fetched */
    uint64_t want_gen;
    pull_phase phase;
    uint64_t setup_gen;       /* the generation the consumer is (being) set up for */
    uint64_t api_req;         /* bus request id of the API call in flight */
    nt_bus_sub *sub;
    char inbox[96];
    uint64_t req_no;          /* the open pull request: its reply is <inbox>.<req_no> */
    int req_left;             /* messages it may still bring; 0: none open */
    uint64_t req_deadline;    /* uv_now ms: taken as lost after this */
    uint64_t req_due;         /* uv_now ms: its expiry (the send time for no_wait) */
    uint64_t req_drops;       /* nt_bus_dropped when it was sent */
    uint64_t dseq;            /* the consumer's delivery sequence of the last message
                               * received since its setup (a new consumer starts at 1) */
    ps_jsmsg **buf;           /* fetched, not handed out, stream order */
    int nbuf;
    bool inflight;            /* a batch of p is with on_batch */
    uint64_t linger_until;    /* uv_now ms: the next batch does not start before */
    uint64_t retry_at;        /* uv_now ms: no setup or pull request before */
    bool idle;                /* the last request found nothing: long-poll for one */
    char last_err[64];        /* to log a repeated failure once */
} ppart;

struct ps_pull {
    ps_ctx *ctx;
    unsigned n;
    int cap;                  /* buffer bound: 2 × NATTER_BATCH_MAX */
    ppart *parts;
    uv_timer_t tick;          /* lost requests, retries */
    uint64_t reconnects;      /* nt_bus_reconnects when last looked at */
    unsigned closing;         /* handles not yet closed after ps_pull_quit */
    nt_bus_post_fn on_exit;
    void *exit_arg;
    ps_pull_batch_fn on_batch;  /* a batch fetched */
    ps_pull_over_fn on_over;    /* a request ended with nothing */
    void *cb_arg;               /* of on_batch and on_over */
};

static void pull_reconcile(ppart *pp);

static uint64_t now_ms(const ppart *pp)
{
    return uv_now(pp->pl->ctx->loop);
}

/* Logs a failure when it differs from the last one logged; "" resets. */
static void pull_note(ppart *pp, const char *what, const char *detail)
{
    char key[sizeof(pp->last_err)];
    snprintf(key, sizeof(key), "%s", what);
    if (what[0] != '\0' && strcmp(pp->last_err, key) != 0)
        nt_warn("partition %u: %s failed: %s", pp->p, what, detail);
    memcpy(pp->last_err, key, sizeof(key));
}

static void pull_fail(ppart *pp, const char *what, const char *detail)
{
    pull_note(pp, what, detail);
    pp->retry_at = now_ms(pp) + PULL_RETRY_MS;
}

static void pull_drop_buffer(ppart *pp)
{
    for (int i = 0; i < pp->nbuf; i++)
        nt_free(pp->buf[i]);
    pp->nbuf = 0;
}

/* Back to no consumer in use: subscription closed, requests forgotten, buffer
 * dropped. A batch in flight is unaffected (its ack is a publish). */
static void pull_teardown(ppart *pp)
{
    nt_bus *bus = pp->pl->ctx->bus;
    if (pp->api_req != 0)
        nt_bus_request_cancel(bus, pp->api_req);
    pp->api_req = 0;
    nt_bus_unsubscribe(pp->sub);
    pp->sub = NULL;
    pp->req_left = 0;
    pull_drop_buffer(pp);
    uv_timer_stop(&pp->timer);
    pp->phase = PH_IDLE;
}

static void on_part_timer(uv_timer_t *t);
static void pull_next(ppart *pp);

/* Something the server delivered did not arrive (gap), or may not have. Storing
 * anything after it would ack it too (AckAll): take nothing more (a ready partition
 * without a subscription is such a one), store what arrived before the hole (the
 * buffer holds no later message), then set the consumer up again from the committed
 * point (on_part_timer). Each round stores at least what came in before the first
 * loss. */
static void pull_lost(ppart *pp, bool gap, const char *detail)
{
    if (gap)
        nt_metric_add(pp->pl->ctx->m.pull_gaps, 1);
    pull_note(pp, gap ? "fetching (pulled messages lost before the loop)" : "pull request",
              detail);
    nt_bus_unsubscribe(pp->sub);
    pp->sub = NULL;
    pp->req_left = 0;
    pull_next(pp);
}

/* Sends the pull request for the next batch. No request is open, nothing is
 * buffered and no batch is in flight. */
static void pull_request(ppart *pp)
{
    ps_pull *pl = pp->pl;
    int batch = pp->idle ? 1 : pl->ctx->cfg.batch_max;
    char subject[96], reply[128], body[96];
    snprintf(subject, sizeof(subject), PULL_API_NEXT "%s.natter_p%u", PS_STREAM,
             pp->p);
    snprintf(reply, sizeof(reply), "%s.%llu", pp->inbox, (unsigned long long)(pp->req_no + 1));
    int len = pp->idle ? snprintf(body, sizeof(body), "{\"batch\":1,\"expires\":%lld}",
                                  (long long)PULL_EXPIRES_MS * 1000000LL)
                       : snprintf(body, sizeof(body), "{\"batch\":%d,\"no_wait\":true}", batch);
    nt_status st = nt_bus_publish(pl->ctx->bus, subject, reply, body, (size_t)len);
    nt_debug("partition %u: pull request %s %s", pp->p, reply, body);
    if (st != NT_OK) {
        pull_fail(pp, "pull request", nt_status_text(st));
        return;
    }
    nt_metric_add(pl->ctx->m.pull_requests, 1);
    pp->req_no++;
    pp->req_left = batch;
    pp->req_due = now_ms(pp) + (pp->idle ? PULL_EXPIRES_MS : 0);
    pp->req_deadline = pp->req_due + PULL_LOST_MS;
    pp->req_drops = nt_bus_dropped(pl->ctx->bus);
}

/* What a ready partition does next, at once or when the linger is over: start a
 * batch of what it fetched, or ask for the next one. */
static void pull_next(ppart *pp)
{
    if (pp->phase != PH_READY || pp->inflight || pp->req_left > 0)
        return;
    uint64_t now = now_ms(pp), due = now;
    if (pp->nbuf == 0)   /* the next request: after the linger and any retry wait */
        due = pp->linger_until > pp->retry_at ? pp->linger_until : pp->retry_at;
    /* through the timer even when due: a batch then holds everything delivered in
     * the same loop iteration, and nothing runs inside a caller's callback */
    uv_timer_start(&pp->timer, on_part_timer, due > now ? due - now : 0, 0);
}

static void on_part_timer(uv_timer_t *t)
{
    ppart *pp = t->data;
    ps_pull *pl = pp->pl;
    int bmax = pl->ctx->cfg.batch_max;
    if (pp->phase != PH_READY || pp->inflight || pp->req_left > 0)
        return;
    if (pp->nbuf == 0 && pp->sub == NULL) {   /* after pull_lost */
        pull_teardown(pp);
        pull_reconcile(pp);
        return;
    }
    if (pp->nbuf == 0) {
        pull_request(pp);
        return;
    }
    int n = pp->nbuf < bmax ? pp->nbuf : bmax;
    ps_jsmsg **msgs = nt_malloc((size_t)n * sizeof(*msgs));
    memcpy(msgs, pp->buf, (size_t)n * sizeof(*msgs));
    memmove(pp->buf, pp->buf + n, (size_t)(pp->nbuf - n) * sizeof(*msgs));
    pp->nbuf -= n;
    pp->inflight = true;
    /* the next batch at the next point of the linger grid, which every partition
     * shares: batches of one write connection then become ready together and go in
     * one transaction (txn.c) */
    uint64_t lg = (uint64_t)pl->ctx->cfg.batch_linger_ms;
    pp->linger_until = n >= bmax || lg == 0 ? 0 : (now_ms(pp) / lg + 1) * lg;
    /* last: it may report the batch done at once */
    pl->on_batch(pl->cb_arg, pp->p, pp->setup_gen, msgs, n);
}

/* The open request ended: satisfied, expired (408), nothing there (404), refused
 * (409), or given up on. A write connection may be waiting for its batch. */
static void pull_request_over(ppart *pp)
{
    pp->req_left = 0;
    pull_next(pp);
    if (pp->nbuf == 0)
        pp->pl->on_over(pp->pl->cb_arg);
}

uint64_t ps_pull_batch_due(const ps_pull *pl, unsigned p)
{
    const ppart *pp = &pl->parts[p];
    if (pp->phase != PH_READY || pp->inflight || pp->sub == NULL)
        return 0;
    if (pp->req_left > 0 && !pp->idle)   /* a no_wait request: answered at once */
        return pp->req_due + PULL_GATHER_MS;
    if (pp->req_left == 0 && pp->nbuf > 0)   /* its batch starts on the timer */
        return now_ms(pp) + PULL_GATHER_MS;
    return 0;
}

/* A status on the inbox: the end of a pull request or a heartbeat (100, not asked
 * for). A no_wait request ends with 408 after what was there, 404 if nothing was. */
static void pull_on_status(ppart *pp, const nt_bus_msg *m)
{
    const char *status = NULL, *desc = NULL;
    if (natsMsgHeader_Get(m->raw, "Status", &status) != NATS_OK || status == NULL)
        status = "";
    if (natsMsgHeader_Get(m->raw, "Description", &desc) != NATS_OK || desc == NULL)
        desc = "";
    nt_debug("partition %u: status %s %s on %s (open request %llu, %d left)", pp->p, status, desc,
             m->subject, (unsigned long long)pp->req_no, pp->req_left);
    if (strcmp(status, "100") == 0)
        return;
    const char *dot = strrchr(m->subject, '.');
    uint64_t no = dot != NULL ? strtoull(dot + 1, NULL, 10) : 0;
    if (no != pp->req_no || pp->req_left == 0)
        return;                       /* the end of a request already given up on */
    if (strcmp(status, "408") == 0 || strcmp(status, "404") == 0) {
        /* a 408's count of what the request did not deliver: less than still
         * expected here means some of what it did deliver was lost */
        const char *pend = NULL;
        if (status[2] == '8' &&
            natsMsgHeader_Get(m->raw, "Nats-Pending-Messages", &pend) == NATS_OK &&
            pend != NULL && strtoll(pend, NULL, 10) < (long long)pp->req_left) {
            char detail[96];
            snprintf(detail, sizeof(detail), "request %llu ended with %s messages undelivered, "
                     "%d expected", (unsigned long long)no, pend, pp->req_left);
            pull_lost(pp, true, detail);
            return;
        }
        /* nothing (more) came: wait for the next message with a long poll */
        pp->idle = pp->nbuf == 0;
        pull_note(pp, "", "");
        pull_request_over(pp);
        return;
    }
    char detail[160];
    snprintf(detail, sizeof(detail), "status %s %s", status[0] ? status : "(none)", desc);
    if ((strcmp(status, "409") == 0 && strstr(desc, "Deleted") != NULL) ||
        strcmp(status, "503") == 0) {
        /* the consumer was deleted (409 to the open request, no responders to a new
         * one) or JetStream is away: set it up again from the committed point */
        pull_note(pp, "fetching (consumer gone)", detail);
        pull_teardown(pp);
        pull_reconcile(pp);
        return;
    }
    pull_fail(pp, "pull request", detail);
    pull_request_over(pp);
}

static void on_msg(nt_bus *bus, const nt_bus_msg *m, void *arg)
{
    (void)bus;
    ppart *pp = arg;
    ps_pull *pl = pp->pl;
    if (pp->phase != PH_READY)
        return;
    if (m->reply == NULL) {
        pull_on_status(pp, m);
        return;
    }
    /* cnats reads the metadata only off a message bound to its subscription, as
     * the bus's delivery thread hands them over (pulled messages carry their stream
     * subject, never one the loop-delivery filter takes) */
    uint64_t sseq = 0, dseq = pp->dseq + 1;   /* unreadable: sseq 0 is poison (batch.c) */
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m->raw) == NATS_OK) {
        sseq = meta->Sequence.Stream;
        dseq = meta->Sequence.Consumer;
        jsMsgMetaData_Destroy(meta);
    }
    if (dseq != pp->dseq + 1) {
        char detail[96];
        snprintf(detail, sizeof(detail), "delivery %llu arrived after %llu",
                 (unsigned long long)dseq, (unsigned long long)pp->dseq);
        pull_lost(pp, true, detail);
        return;
    }
    pp->dseq = dseq;
    if (pp->nbuf >= pl->cap) {
        nt_warn("partition %u: more than %d messages fetched and not stored; starting over "
                "from stream sequence %llu", pp->p, pl->cap,
                (unsigned long long)ps_parts_get(pl->ctx->parts, pp->p)->committed);
        pull_teardown(pp);
        pull_reconcile(pp);
        return;
    }
    size_t rlen = strlen(m->reply);
    ps_jsmsg *jm = nt_malloc(sizeof(*jm) + m->len + rlen + 1);
    jm->len = m->len;
    memcpy(jm->data, m->data, m->len);
    memcpy(jm->data + m->len, m->reply, rlen + 1);
    jm->reply = jm->data + m->len;
    jm->sseq = sseq;
    pp->buf[pp->nbuf++] = jm;
    pp->idle = false;
    if (pp->req_left > 0 && --pp->req_left == 0)
        pull_request_over(pp);
}

/* A JetStream API reply: true when it is not an error. *code is the API's
 * err_code (0: none). */
static bool api_ok(nt_status st, const nt_bus_msg *m, char *detail, size_t size, int *code)
{
    *code = 0;
    if (st != NT_OK) {
        snprintf(detail, size, "%s", st == NT_EUNAVAIL ? "JetStream not available (no responders)"
                                                        : nt_status_text(st));
        return false;
    }
    json_error_t jerr;
    json_t *o = json_loadb(m->data, m->len, 0, &jerr);
    if (o == NULL) {
        snprintf(detail, size, "unreadable reply: %s", jerr.text);
        return false;
    }
    json_t *e = json_object_get(o, "error");
    bool ok = e == NULL;
    if (!ok) {
        *code = (int)json_integer_value(json_object_get(e, "err_code"));
        const char *d = json_string_value(json_object_get(e, "description"));
        snprintf(detail, size, "%s (jetstream error %d)", d ? d : "error", *code);
    }
    json_decref(o);
    return ok;
}

static bool pull_setup_stale(const ppart *pp)
{
    return !pp->want || pp->setup_gen != pp->want_gen;
}

static void pull_api(ppart *pp, pull_phase phase, const char *subject, const char *body,
                     nt_bus_reply_cb cb)
{
    uint64_t id = 0;
    nt_status st = nt_bus_request(pp->pl->ctx->bus, subject, NULL, body, strlen(body),
                                  PULL_API_TIMEOUT_MS, cb, pp, &id);
    if (st != NT_OK) {
        pp->phase = PH_IDLE;
        pull_fail(pp, phase == PH_DELETING ? "deleting the consumer" : "creating the consumer",
                  nt_status_text(st));
        return;
    }
    pp->phase = phase;
    pp->api_req = id;
}

static void on_created(nt_bus *bus, nt_status st, const nt_bus_msg *m, void *arg)
{
    ppart *pp = arg;
    char detail[256];
    int code;
    pp->api_req = 0;
    pp->phase = PH_IDLE;
    if (!api_ok(st, m, detail, sizeof(detail), &code)) {
        pull_fail(pp, "creating the consumer", detail);
        return;
    }
    if (pull_setup_stale(pp)) {
        pull_reconcile(pp);
        return;
    }
    char *inbox = NULL, subject[sizeof(pp->inbox) + 2];
    if (natsInbox_Create(&inbox) != NATS_OK) {
        pull_fail(pp, "pull subscribe", "no inbox");
        return;
    }
    snprintf(pp->inbox, sizeof(pp->inbox), "%s", inbox);
    natsInbox_Destroy(inbox);
    snprintf(subject, sizeof(subject), "%s.*", pp->inbox);
    pp->sub = nt_bus_subscribe(bus, subject, NULL, on_msg, pp);
    if (pp->sub == NULL) {
        pull_fail(pp, "pull subscribe", "NATS connection unavailable");
        return;
    }
    pull_note(pp, "", "");
    nt_metric_add(pp->pl->ctx->m.consumer_setups, 1);
    pp->phase = PH_READY;
    pp->req_left = 0;
    pp->dseq = 0;
    pp->linger_until = 0;
    pp->idle = false;
    nt_info("partition %u: consumer natter_p%u starts after stream sequence %llu", pp->p, pp->p,
            (unsigned long long)ps_parts_get(pp->pl->ctx->parts, pp->p)->committed);
    pull_next(pp);
}

static void on_deleted(nt_bus *bus, nt_status st, const nt_bus_msg *m, void *arg)
{
    (void)bus;
    ppart *pp = arg;
    ps_ctx *ctx = pp->pl->ctx;
    char detail[256], subject[96];
    int code;
    pp->api_req = 0;
    pp->phase = PH_IDLE;
    if (!api_ok(st, m, detail, sizeof(detail), &code) && code != PULL_CONSUMER_NOT_FOUND) {
        pull_fail(pp, "deleting the consumer", detail);
        return;
    }
    if (pull_setup_stale(pp)) {
        pull_reconcile(pp);
        return;
    }
    char name[32], filter[NT_SUBJ_CAP];
    snprintf(name, sizeof(name), "natter_p%u", pp->p);
    if (nt_subj_in_filter(filter, sizeof filter, pp->p) < 0) {
        pull_fail(pp, "creating the consumer", "no filter subject");
        return;
    }
    /* After the outbox marker: what was committed but may not have been published
     * (the connection went with the publishes in it) is redelivered, and goes out again
     * through the duplicate path (batch.c). */
    const ps_part *part = ps_parts_get(ctx->parts, pp->p);
    uint64_t committed = part->published < part->committed ? part->published : part->committed;
    json_t *cfg = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "durable_name", name,
                            "filter_subject", filter, "ack_policy", "all", "ack_wait",
                            (json_int_t)PULL_ACK_WAIT_S * 1000000000, "max_ack_pending",
                            (json_int_t)PULL_MAX_ACK_PENDING, "replay_policy", "instant");
    if (committed == 0) {
        json_object_set_new(cfg, "deliver_policy", json_string("all"));
    } else {
        json_object_set_new(cfg, "deliver_policy", json_string("by_start_sequence"));
        json_object_set_new(cfg, "opt_start_seq", json_integer((json_int_t)committed + 1));
    }
    json_t *req = json_pack("{s:s,s:o}", "stream_name", PS_STREAM, "config", cfg);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    snprintf(subject, sizeof(subject), PULL_API_CREATE "%s.%s", PS_STREAM, name);
    pull_api(pp, PH_CREATING, subject, body, on_created);
    nt_free(body);
}

/* Tears down a consumer set up for another generation, and sets one up when p is
 * wanted and no batch of it is in flight (whose messages a new consumer would
 * deliver again). */
static void pull_reconcile(ppart *pp)
{
    if (pp->phase != PH_IDLE && pull_setup_stale(pp))
        pull_teardown(pp);
    if (!pp->want || pp->phase != PH_IDLE || pp->inflight || now_ms(pp) < pp->retry_at)
        return;
    char subject[96];
    pp->setup_gen = pp->want_gen;
    snprintf(subject, sizeof(subject), PULL_API_DELETE "%s.natter_p%u", PS_STREAM, pp->p);
    pull_api(pp, PH_DELETING, subject, "", on_deleted);
}

static void on_tick(uv_timer_t *t)
{
    ps_pull *pl = t->data;
    uint64_t now = uv_now(pl->ctx->loop);
    /* a new connection: the open requests went with the old one */
    uint64_t reconnects = nt_bus_reconnects(pl->ctx->bus);
    bool reconnected = reconnects != pl->reconnects;
    pl->reconnects = reconnects;
    for (unsigned p = 0; p < pl->n; p++) {
        ppart *pp = &pl->parts[p];
        const ps_part *part = ps_parts_get(pl->ctx->parts, p);
        if (reconnected && pp->phase == PH_READY && part->published < part->committed) {
            /* the old connection may have taken acks and events with it after
             * JetStream's ack: set the consumer up again from the outbox marker */
            pull_lost(pp, false, "reconnected with publishes not confirmed; setting the "
                      "consumer up again from the last confirmed one");
        } else if (reconnected && pp->phase == PH_READY && pp->req_left > 0) {
            pull_request_over(pp);
        } else if (pp->phase == PH_READY && pp->req_left > 0 &&
                   (now >= pp->req_deadline ||
                    (now >= pp->req_due + PULL_DROP_LOST_MS &&
                     nt_bus_dropped(pl->ctx->bus) != pp->req_drops))) {
            /* nats-server 2.9 answers a pull request for a consumer that no longer
             * exists with nothing at all, a restarted one forgot the request, and
             * the rest of a batch and its 408 may be what the bus dropped: store
             * what came, then set the consumer up again from the committed point */
            pull_lost(pp, false, "no answer; storing what came, then setting the consumer up "
                      "again");
        } else if (pp->phase != PH_READY) {
            pull_reconcile(pp);
        }
    }
}

ps_pull *ps_pull_create(ps_ctx *ctx, ps_pull_batch_fn on_batch, ps_pull_over_fn on_over,
                        void *arg)
{
    ps_pull *pl = nt_calloc(1, sizeof(*pl));
    pl->ctx = ctx;
    pl->on_batch = on_batch;
    pl->on_over = on_over;
    pl->cb_arg = arg;
    pl->n = ctx->cfg.partitions;
    pl->cap = 2 * ctx->cfg.batch_max;
    pl->parts = nt_calloc(pl->n, sizeof(*pl->parts));
    for (unsigned p = 0; p < pl->n; p++) {
        ppart *pp = &pl->parts[p];
        pp->pl = pl;
        pp->p = p;
        pp->buf = nt_malloc((size_t)pl->cap * sizeof(*pp->buf));
        uv_timer_init(ctx->loop, &pp->timer);
        pp->timer.data = pp;
    }
    uv_timer_init(ctx->loop, &pl->tick);
    pl->tick.data = pl;
    uv_timer_start(&pl->tick, on_tick, PULL_TICK_MS, PULL_TICK_MS);
    return pl;
}

void ps_pull_start_part(ps_pull *pl, unsigned p, uint64_t gen)
{
    ppart *pp = &pl->parts[p];
    if (pl->on_exit != NULL)
        return;
    pp->want = true;
    pp->want_gen = gen;
    pp->retry_at = 0;
    pull_reconcile(pp);
}

void ps_pull_stop_part(ps_pull *pl, unsigned p)
{
    ppart *pp = &pl->parts[p];
    pp->want = false;
    pull_reconcile(pp);
}

void ps_pull_stop_all(ps_pull *pl)
{
    for (unsigned p = 0; p < pl->n; p++)
        ps_pull_stop_part(pl, p);
}

void ps_pull_batch_done(ps_pull *pl, unsigned p)
{
    ppart *pp = &pl->parts[p];
    pp->inflight = false;
    if (pp->phase == PH_READY && !pull_setup_stale(pp))
        pull_next(pp);
    else
        pull_reconcile(pp);
}

static void on_closed(uv_handle_t *h)
{
    ps_pull *pl = h->data;
    if (--pl->closing == 0)
        pl->on_exit(pl->exit_arg);
}

void ps_pull_quit(ps_pull *pl, nt_bus_post_fn on_exit, void *arg)
{
    pl->on_exit = on_exit;
    pl->exit_arg = arg;
    pl->closing = pl->n + 1;
    for (unsigned p = 0; p < pl->n; p++) {
        ppart *pp = &pl->parts[p];
        pp->want = false;
        pull_teardown(pp);
        pp->timer.data = pl;
        uv_close((uv_handle_t *)&pp->timer, on_closed);
    }
    uv_close((uv_handle_t *)&pl->tick, on_closed);
}

void ps_pull_destroy(ps_pull *pl)
{
    if (pl == NULL)
        return;
    for (unsigned p = 0; p < pl->n; p++) {
        pull_drop_buffer(&pl->parts[p]);
        nt_free(pl->parts[p].buf);
    }
    nt_free(pl->parts);
    nt_free(pl);
}
