/* test_service.c: the process cycle without servers (no bus, no listener): modules start
 * in order, a real SIGTERM stops their intake in order, the drain waits for pending work
 * (or gives up at the deadline), destroy runs in reverse, holds delay the close, and
 * jansson allocates through nt_malloc. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <string.h>

#include "alloc.h"
#include "service.h"

#define NMODS 3

typedef struct world {
    nt_service *svc;
    char trace[256];              /* "s0 s1 s2 i0 i1 i2 d2 d1 d0 " */
    size_t pending[NMODS];        /* what each module's pending() answers */
    uint64_t signalled_at, destroyed_at;
    int signum_seen;
    bool hold;                    /* module 0's destroy holds the service */
    uint64_t released_at, closed_check;
    uv_timer_t work;              /* finishes the pending work step by step */
    uv_timer_t kick;              /* sends the signal once the loop runs */
    uv_timer_t release;           /* releases the hold */
} world;

typedef struct mod_arg {
    world *w;
    int id;
} mod_arg;

static void note(world *w, char what, int id)
{
    size_t n = strlen(w->trace);
    w->trace[n] = what;
    w->trace[n + 1] = (char)('0' + id);
    w->trace[n + 2] = ' ';
    w->trace[n + 3] = '\0';
}

static void on_closed(uv_handle_t *h)
{
}

static void on_kick(uv_timer_t *t)
{
    world *w = t->data;
    w->signalled_at = uv_now(t->loop);
    raise(SIGTERM);
    uv_close((uv_handle_t *)t, on_closed);
}

static void on_work(uv_timer_t *t)
{
    world *w = t->data;
    for (int i = 0; i < NMODS; i++)
        if (w->pending[i] > 0) {
            w->pending[i]--;
            return;
        }
}

static void on_release(uv_timer_t *t)
{
    world *w = t->data;
    w->released_at = uv_now(t->loop);
    nt_service_release(w->svc);
    uv_close((uv_handle_t *)t, on_closed);
}

static nt_status mod_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    mod_arg *m = arg;
    note(m->w, 's', m->id);
    if (m->id == 0) {
        uv_loop_t *loop = nt_service_loop(svc);
        assert_null(nt_service_bus(svc));
        uv_timer_init(loop, &m->w->kick);
        m->w->kick.data = m->w;
        uv_timer_start(&m->w->kick, on_kick, 10, 0);
        uv_timer_init(loop, &m->w->work);
        m->w->work.data = m->w;
        uv_unref((uv_handle_t *)&m->w->work);
    }
    return NT_OK;
}

static void mod_stop_intake(nt_service *svc, void *arg)
{
    mod_arg *m = arg;
    note(m->w, 'i', m->id);
    assert_true(nt_service_stopping(svc));
    m->w->signum_seen = nt_service_signal(svc);
    if (m->id == 0)
        uv_timer_start(&m->w->work, on_work, 5, 5);
}

static size_t mod_pending(void *arg)
{
    mod_arg *m = arg;
    return m->w->pending[m->id];
}

static void mod_destroy(nt_service *svc, void *arg)
{
    mod_arg *m = arg;
    note(m->w, 'd', m->id);
    m->w->destroyed_at = uv_now(nt_service_loop(svc));
    if (m->id == 0) {
        uv_close((uv_handle_t *)&m->w->work, on_closed);
        if (m->w->hold) {
            nt_service_hold(svc);
            uv_timer_init(nt_service_loop(svc), &m->w->release);
            m->w->release.data = m->w;
            uv_timer_start(&m->w->release, on_release, 300, 0);
        }
    }
}

/* Runs one whole cycle of three modules; returns the exit code. */
static int cycle(world *w, uint64_t drain_ms)
{
    static mod_arg args[NMODS];
    static nt_module mods[NMODS];
    for (int i = 0; i < NMODS; i++) {
        args[i] = (mod_arg){ w, i };
        mods[i] = (nt_module){ "mod", mod_start, mod_stop_intake, mod_pending, mod_destroy,
                               &args[i] };
    }
    mods[1].pending = NULL;       /* any callback may be missing */
    mods[1].stop_intake = NULL;
    w->svc = nt_service_init("test_service");
    nt_service_opts o = { .drain_ms = drain_ms, .drain_tick_ms = 5, .flush_ms = 20 };
    nt_service_start(w->svc, &o, mods, NMODS);
    assert_false(nt_service_stopping(w->svc));
    return nt_service_run(w->svc);
}

static void test_drain_waits_for_pending(void **state)
{
    world w = { .pending = { 3, 0, 4 } };
    assert_int_equal(cycle(&w, 5000), 0);
    assert_string_equal(w.trace, "s0 s1 s2 i0 i2 d2 d1 d0 ");
    assert_int_equal(w.signum_seen, SIGTERM);
    assert_int_equal(w.pending[0] + w.pending[2], 0);    /* destroyed only once idle */
    assert_true(w.destroyed_at - w.signalled_at >= 7 * 5 - 5);
    assert_true(w.destroyed_at - w.signalled_at < 5000);
}

static void test_drain_deadline(void **state)
{
    world w = { .pending = { 1000000, 0, 0 } };
    assert_int_equal(cycle(&w, 100), 0);
    assert_string_equal(w.trace, "s0 s1 s2 i0 i2 d2 d1 d0 ");
    assert_true(w.pending[0] > 0);                        /* gave up on it */
    assert_true(w.destroyed_at - w.signalled_at >= 95);
    assert_true(w.destroyed_at - w.signalled_at < 2000);
}

static void test_hold_delays_the_close(void **state)
{
    world w = { .hold = true };
    assert_int_equal(cycle(&w, 5000), 0);
    assert_string_equal(w.trace, "s0 s1 s2 i0 i2 d2 d1 d0 ");
    /* nt_service_run returned, so the close came after the release 300 ms on */
    assert_true(w.released_at - w.destroyed_at >= 295);
}

static void test_jansson_counts(void **state)
{
    nt_service *svc = nt_service_init("test_service");
    uint64_t before = nt_alloc_used();
    json_t *o = json_pack("{s:s}", "k", "a string long enough to be its own block");
    assert_true(nt_alloc_used() > before);
    char *s = json_dumps(o, JSON_COMPACT);
    nt_free(s);
    json_decref(o);
    assert_int_equal(nt_alloc_used(), before);
    nt_service_opts none = { 0 };
    nt_service_start(svc, &none, NULL, 0);
    nt_service_stop(svc);                                 /* no signal: number 0 */
    assert_int_equal(nt_service_signal(svc), 0);
    assert_int_equal(nt_service_run(svc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_waits_for_pending),
        cmocka_unit_test(test_drain_deadline),
        cmocka_unit_test(test_hold_delays_the_close),
        cmocka_unit_test(test_jansson_counts),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
