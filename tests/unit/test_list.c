/* test_list.c: the intrusive list: order of head/tail/before/after inserts, removal while
 * walking, removing twice, and the element found again from its node. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "list.h"

typedef struct item {
    int pad;                      /* the node is not the first member */
    nt_list node;
    int v;
} item;

/* The values in list order into out[]; returns how many. */
static int values(nt_list *h, int *out)
{
    int k = 0;
    nt_list *n;
    nt_list_foreach(n, h)
        out[k++] = nt_list_entry(n, item, node)->v;
    return k;
}

static void test_node_is_two_pointers(void **state)
{
    assert_int_equal(sizeof(nt_list), 2 * sizeof(void *));
}

static void test_empty(void **state)
{
    nt_list h = NT_LIST_INIT(h);
    assert_true(nt_list_empty(&h));
    assert_null(nt_list_first(&h));
    assert_null(nt_list_last(&h));
    int out[1];
    assert_int_equal(values(&h, out), 0);
}

static void test_insert_order(void **state)
{
    item it[5];
    nt_list h;
    nt_list_init(&h);
    for (int i = 0; i < 5; i++)
        it[i].v = i;
    nt_list_insert_tail(&h, &it[1].node);            /* 1 */
    nt_list_insert_head(&h, &it[0].node);            /* 0 1 */
    nt_list_insert_tail(&h, &it[4].node);            /* 0 1 4 */
    nt_list_insert_after(&it[1].node, &it[2].node);  /* 0 1 2 4 */
    nt_list_insert_before(&it[4].node, &it[3].node); /* 0 1 2 3 4 */
    int out[5];
    assert_int_equal(values(&h, out), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], i);
    assert_ptr_equal(nt_list_entry(nt_list_first(&h), item, node), &it[0]);
    assert_ptr_equal(nt_list_entry(nt_list_last(&h), item, node), &it[4]);
    assert_false(nt_list_empty(&h));
    for (nt_list *n = h.prev, *want = &it[4].node; n != &h; n = n->prev, want = want->prev)
        assert_ptr_equal(n, want);
}

static void test_remove_while_walking(void **state)
{
    item it[6];
    nt_list h = NT_LIST_INIT(h);
    for (int i = 0; i < 6; i++) {
        it[i].v = i;
        nt_list_insert_tail(&h, &it[i].node);
    }
    nt_list *n, *tmp;
    nt_list_foreach_safe(n, tmp, &h)
        if (nt_list_entry(n, item, node)->v % 2 == 0)
            nt_list_remove(n);
    int out[6];
    assert_int_equal(values(&h, out), 3);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 5);
    assert_false(nt_list_linked(&it[0].node));
    assert_true(nt_list_linked(&it[1].node));
}

static void test_remove_twice_and_reinsert(void **state)
{
    item a = { .v = 1 }, b = { .v = 2 };
    nt_list h = NT_LIST_INIT(h);
    nt_list_insert_tail(&h, &a.node);
    nt_list_insert_tail(&h, &b.node);
    nt_list_remove(&a.node);
    nt_list_remove(&a.node);                          /* unlinked: a no-op */
    int out[2];
    assert_int_equal(values(&h, out), 1);
    assert_int_equal(out[0], 2);
    nt_list_insert_tail(&h, &a.node);
    assert_int_equal(values(&h, out), 2);
    assert_int_equal(out[1], 1);
    nt_list_remove(&b.node);
    nt_list_remove(&a.node);
    assert_true(nt_list_empty(&h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_is_two_pointers),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_insert_order),
        cmocka_unit_test(test_remove_while_walking),
        cmocka_unit_test(test_remove_twice_and_reinsert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
