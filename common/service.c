/* service.c: the process cycle: boot, the signal, the phased drain, destroy, close. */
#include "service.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "config.h"
#include "log.h"

#define SERVICE_DRAIN_MS 2000
#define SERVICE_DRAIN_TICK_MS 20
#define SERVICE_FLUSH_MS 100

typedef enum {
    PHASE_BOOT,                   /* nt_service_start running or done, no signal yet */
    PHASE_DRAIN,                  /* intake stopped, waiting for pending() */
    PHASE_FLUSH,                  /* modules destroyed, the bus still writing */
    PHASE_CLOSED,                 /* bus and listener closed; the loop runs out */
} service_phase;

struct nt_service {
    uv_loop_t loop;
    nt_bus *bus;
    nt_service_opts opts;
    const nt_module *mods;
    size_t nmods;
    size_t started;               /* modules whose start succeeded */
    service_phase phase;
    bool stopping;
    int signum;
    unsigned holds;               /* nt_service_hold not yet released */
    uint64_t deadline;            /* uv_now: end of the drain, then of the wait for holds */
    uint64_t flush_until;         /* uv_now: end of the flush */
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;              /* drives drain and flush */
};

nt_service *nt_service_init(const char *process)
{
    if (nt_log_init(process) != 0)
        nt_config_fatal("NATTER_LOG_LEVEL=%s is invalid: expected debug, info, warn or error",
                        getenv("NATTER_LOG_LEVEL"));
    json_set_alloc_funcs(nt_malloc, nt_free);
    signal(SIGPIPE, SIG_IGN);
    nt_service *svc = nt_calloc(1, sizeof(*svc));
    uv_loop_init(&svc->loop);
    return svc;
}

uv_loop_t *nt_service_loop(nt_service *svc)
{
    return &svc->loop;
}

nt_bus *nt_service_bus(nt_service *svc)
{
    return svc->bus;
}

bool nt_service_stopping(const nt_service *svc)
{
    return svc->stopping;
}

int nt_service_signal(const nt_service *svc)
{
    return svc->signum;
}

static bool service_ready(void *arg)
{
    nt_service *svc = arg;
    if (svc->stopping || (svc->opts.bus.url != NULL && !nt_bus_connected(svc->bus)))
        return false;
    return svc->opts.ready == NULL || svc->opts.ready(svc->opts.ready_arg);
}

static void on_signal(uv_signal_t *s, int signum)
{
    nt_service *svc = s->data;
    if (svc->stopping)
        return;
    svc->signum = signum;
    nt_service_stop(svc);
}

void nt_service_start(nt_service *svc, const nt_service_opts *opts, const nt_module *modules,
                      size_t n)
{
    char err[256] = "";
    svc->opts = *opts;
    svc->opts.drain_ms = opts->drain_ms ? opts->drain_ms : SERVICE_DRAIN_MS;
    svc->opts.drain_tick_ms = opts->drain_tick_ms ? opts->drain_tick_ms : SERVICE_DRAIN_TICK_MS;
    svc->opts.flush_ms = opts->flush_ms ? opts->flush_ms : SERVICE_FLUSH_MS;
    svc->mods = modules;
    svc->nmods = n;

    if (opts->bus.url != NULL) {
        char shown[512];          /* the URL without its password */
        nt_config_redact_url(opts->bus.url, shown, sizeof shown);
        if (nt_bus_create(&svc->loop, &opts->bus, &svc->bus, err, sizeof err) != NT_OK)
            nt_config_fatal("cannot reach NATS at %s (NATTER_NATS_URL): %s", shown, err);
        if (opts->metrics_prefix != NULL)
            nt_bus_register_metrics(svc->bus, opts->metrics_prefix);
    }
    if (opts->metrics_listen != NULL) {
        nt_status st = nt_metrics_listen(&svc->loop, opts->metrics_listen, service_ready, svc);
        if (st != NT_OK)
            nt_config_fatal("cannot listen on NATTER_METRICS_LISTEN=%s: %s", opts->metrics_listen,
                            nt_status_text(st));
    }
    for (size_t i = 0; i < n; i++) {
        const nt_module *m = &modules[i];
        nt_status st = m->start != NULL ? m->start(svc, m->arg, err, sizeof err) : NT_OK;
        if (st != NT_OK) {
            if (err[0] == '\0')
                nt_config_fatal("cannot start %s: %s", m->name, nt_status_text(st));
            nt_config_fatal("%s", err);
        }
        svc->started = i + 1;
    }

    uv_timer_init(&svc->loop, &svc->tick);
    uv_signal_init(&svc->loop, &svc->sigint);
    uv_signal_init(&svc->loop, &svc->sigterm);
    svc->tick.data = svc->sigint.data = svc->sigterm.data = svc;
    uv_signal_start(&svc->sigint, on_signal, SIGINT);
    uv_signal_start(&svc->sigterm, on_signal, SIGTERM);
}

static void on_handle_closed(uv_handle_t *h)
{
}

/* The end: the bus goes once the loop had flush_ms to write the last replies
 * (nt_bus_destroy does not wait for publishes still buffered) and every hold is released. */
static void close_all(nt_service *svc)
{
    if (svc->holds > 0)
        nt_warn("closing with %u module(s) still finishing", svc->holds);
    svc->phase = PHASE_CLOSED;
    nt_bus_destroy(svc->bus);
    svc->bus = NULL;
    nt_metrics_close();
    uv_close((uv_handle_t *)&svc->tick, on_handle_closed);
    uv_close((uv_handle_t *)&svc->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&svc->sigterm, on_handle_closed);
}

static size_t pending_total(const nt_service *svc, bool report)
{
    size_t total = 0;
    for (size_t i = 0; i < svc->started; i++) {
        const nt_module *m = &svc->mods[i];
        size_t p = m->pending != NULL ? m->pending(m->arg) : 0;
        if (p > 0 && report)
            nt_info("drain deadline: %s still has %zu in flight", m->name, p);
        total += p;
    }
    return total;
}

static void on_tick(uv_timer_t *t);

static void destroy_modules(nt_service *svc)
{
    uint64_t now = uv_now(&svc->loop);
    svc->phase = PHASE_FLUSH;
    for (size_t i = svc->started; i-- > 0;)
        if (svc->mods[i].destroy != NULL)
            svc->mods[i].destroy(svc, svc->mods[i].arg);
    svc->flush_until = now + svc->opts.flush_ms;
    svc->deadline = svc->flush_until + svc->opts.drain_ms;
    uv_timer_start(&svc->tick, on_tick, svc->opts.flush_ms, svc->opts.drain_tick_ms);
}

/* One step of the cycle after the signal: drain until idle or the deadline, then destroy;
 * flush until its time is up and no hold is left (or the deadline), then close. */
static void on_tick(uv_timer_t *t)
{
    nt_service *svc = t->data;
    uint64_t now = uv_now(&svc->loop);
    if (svc->phase == PHASE_DRAIN) {
        if (pending_total(svc, false) == 0) {
            destroy_modules(svc);
        } else if (now >= svc->deadline) {
            pending_total(svc, true);
            destroy_modules(svc);
        }
    } else if (svc->phase == PHASE_FLUSH) {
        if (now >= svc->flush_until && (svc->holds == 0 || now >= svc->deadline))
            close_all(svc);
    }
}

void nt_service_stop(nt_service *svc)
{
    if (svc->stopping)
        return;
    svc->stopping = true;
    svc->phase = PHASE_DRAIN;
    for (size_t i = 0; i < svc->started; i++)
        if (svc->mods[i].stop_intake != NULL)
            svc->mods[i].stop_intake(svc, svc->mods[i].arg);
    svc->deadline = uv_now(&svc->loop) + svc->opts.drain_ms;
    uv_timer_start(&svc->tick, on_tick, 0, svc->opts.drain_tick_ms);
}

void nt_service_drain_check(nt_service *svc)
{
    if (svc->phase == PHASE_DRAIN)
        uv_timer_start(&svc->tick, on_tick, 0, svc->opts.drain_tick_ms);
}

void nt_service_hold(nt_service *svc)
{
    svc->holds++;
}

void nt_service_release(nt_service *svc)
{
    if (svc->holds > 0)
        svc->holds--;
}

int nt_service_run(nt_service *svc)
{
    uv_run(&svc->loop, UV_RUN_DEFAULT);       /* until close_all's handles are closed */
    if (uv_loop_close(&svc->loop) != 0)
        nt_warn("loop closed with handles still open");
    nt_free(svc);
    return 0;
}
