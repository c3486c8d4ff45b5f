/* test_mpsc.c: the bounded queue: capacity, FIFO order, wraparound, many producers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "alloc.h"
#include "mpsc.h"

#define ITEM(i) ((void *)(uintptr_t)(i))

static void test_capacity_then_full(void **state)
{
    nt_mpsc *q = nt_mpsc_create(4);
    assert_int_equal(nt_mpsc_capacity(q), 4);
    assert_null(nt_mpsc_pop(q));
    for (uintptr_t i = 1; i <= 4; i++)
        assert_int_equal(nt_mpsc_push(q, ITEM(i)), NT_OK);
    assert_int_equal(nt_mpsc_size(q), 4);
    assert_int_equal(nt_mpsc_push(q, ITEM(5)), NT_EFULL);
    assert_int_equal(nt_mpsc_size(q), 4);
    assert_ptr_equal(nt_mpsc_pop(q), ITEM(1));
    assert_int_equal(nt_mpsc_push(q, ITEM(5)), NT_OK);
    assert_int_equal(nt_mpsc_push(q, ITEM(6)), NT_EFULL);
    assert_int_equal(nt_mpsc_push(q, NULL), NT_EINVAL);
    nt_mpsc_destroy(q);
}

static void test_fifo(void **state)
{
    nt_mpsc *q = nt_mpsc_create(100);
    for (uintptr_t i = 1; i <= 100; i++)
        assert_int_equal(nt_mpsc_push(q, ITEM(i)), NT_OK);
    for (uintptr_t i = 1; i <= 100; i++)
        assert_ptr_equal(nt_mpsc_pop(q), ITEM(i));
    assert_null(nt_mpsc_pop(q));
    assert_int_equal(nt_mpsc_size(q), 0);
    nt_mpsc_destroy(q);
}

static void test_wraparound(void **state)
{
    /* capacity 3, pushing/popping in uneven steps walks head and tail round many times */
    nt_mpsc *q = nt_mpsc_create(3);
    uintptr_t next_in = 1, next_out = 1;
    for (int round = 0; round < 1000; round++) {
        int pushes = 1 + round % 3;
        for (int k = 0; k < pushes; k++) {
            nt_status st = nt_mpsc_push(q, ITEM(next_in));
            if (nt_mpsc_size(q) == 3 && st == NT_EFULL)
                break;
            assert_int_equal(st, NT_OK);
            next_in++;
        }
        int pops = 1 + (round * 7) % 3;
        for (int k = 0; k < pops; k++) {
            void *it = nt_mpsc_pop(q);
            if (it == NULL) {
                assert_int_equal(next_out, next_in);
                break;
            }
            assert_ptr_equal(it, ITEM(next_out));
            next_out++;
        }
        assert_int_equal(nt_mpsc_size(q), next_in - next_out);
    }
    assert_true(next_in > 1000);
    nt_mpsc_destroy(q);
}

static void test_pop_many(void **state)
{
    /* a batch stops at max and at empty, keeps FIFO order across the ring's end */
    nt_mpsc *q = nt_mpsc_create(5);
    void *out[8];
    assert_int_equal(nt_mpsc_pop_many(q, out, 8), 0);
    for (uintptr_t i = 1; i <= 4; i++)
        assert_int_equal(nt_mpsc_push(q, ITEM(i)), NT_OK);
    assert_int_equal(nt_mpsc_pop_many(q, out, 3), 3);
    for (uintptr_t i = 0; i < 3; i++)
        assert_ptr_equal(out[i], ITEM(i + 1));
    for (uintptr_t i = 5; i <= 8; i++)  /* 4..8: wraps past slot 4 */
        assert_int_equal(nt_mpsc_push(q, ITEM(i)), NT_OK);
    assert_int_equal(nt_mpsc_push(q, ITEM(9)), NT_EFULL);
    assert_int_equal(nt_mpsc_pop_many(q, out, 8), 5);
    for (uintptr_t i = 0; i < 5; i++)
        assert_ptr_equal(out[i], ITEM(i + 4));
    assert_int_equal(nt_mpsc_size(q), 0);
    assert_int_equal(nt_mpsc_pop_many(q, out, 8), 0);
    nt_mpsc_destroy(q);
}

static void test_capacity_one(void **state)
{
    nt_mpsc *q = nt_mpsc_create(1);
    for (uintptr_t i = 1; i <= 10; i++) {
        assert_int_equal(nt_mpsc_push(q, ITEM(i)), NT_OK);
        assert_int_equal(nt_mpsc_push(q, ITEM(99)), NT_EFULL);
        assert_ptr_equal(nt_mpsc_pop(q), ITEM(i));
    }
    nt_mpsc_destroy(q);
}

#define PRODUCERS 4
#define PER_PRODUCER 100000

typedef struct producer {
    nt_mpsc *q;
    uintptr_t id;
    uint64_t full;            /* pushes refused with NT_EFULL, then retried */
} producer;

/* Items encode (producer, sequence) as id << 32 | seq, seq starting at 1. */
static void *produce(void *arg)
{
    producer *p = arg;
    for (uintptr_t seq = 1; seq <= PER_PRODUCER; seq++) {
        void *item = (void *)((p->id << 32) | seq);
        while (nt_mpsc_push(p->q, item) == NT_EFULL) {
            p->full++;
            sched_yield();
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    nt_mpsc *q = nt_mpsc_create(1024);
    producer prod[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer){ .q = q, .id = i + 1, .full = 0 };
        assert_int_equal(pthread_create(&th[i], NULL, produce, &prod[i]), 0);
    }
    uintptr_t last[PRODUCERS + 1];
    memset(last, 0, sizeof(last));
    size_t seen = 0;
    while (seen < (size_t)PRODUCERS * PER_PRODUCER) {
        void *item = nt_mpsc_pop(q);
        if (item == NULL) {
            sched_yield();
            continue;
        }
        uintptr_t v = (uintptr_t)item, id = v >> 32, seq = v & 0xffffffffu;
        assert_true(id >= 1 && id <= PRODUCERS);
        /* per-producer order: exactly the next sequence, so no loss or duplicate either */
        assert_int_equal(seq, last[id] + 1);
        last[id] = seq;
        seen++;
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    for (uintptr_t id = 1; id <= PRODUCERS; id++)
        assert_int_equal(last[id], PER_PRODUCER);
    assert_null(nt_mpsc_pop(q));
    nt_mpsc_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_then_full),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_pop_many),
        cmocka_unit_test(test_capacity_one),
        cmocka_unit_test(test_threads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
