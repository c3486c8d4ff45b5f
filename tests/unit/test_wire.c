/* test_wire.c: subject builders (and their refusals), the room-subject parser, shared settings. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "wire.h"

#define ID64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void test_builders(void **state)
{
    char b[NT_SUBJ_CAP];

    assert_int_equal(nt_subj_room(b, sizeof b, "default", "lobby"), 25);
    assert_string_equal(b, "natter.room.default.lobby");
    assert_int_equal(nt_subj_user(b, sizeof b, "acme", "u-1_x"), 22);
    assert_string_equal(b, "natter.user.acme.u-1_x");
    assert_int_equal(nt_subj_target(b, sizeof b, "room", "a", "r"), 15);
    assert_string_equal(b, "natter.room.a.r");
    assert_int_equal(nt_subj_in(b, sizeof b, "default", 3), 19);
    assert_string_equal(b, "natter.in.default.3");
    assert_int_equal(nt_subj_in_filter(b, sizeof b, 1023), 16);
    assert_string_equal(b, "natter.in.*.1023");
    /* the longest ids fit NT_SUBJ_CAP */
    assert_int_equal(nt_subj_user(b, sizeof b, ID64, ID64), 12 + 64 + 1 + 64);
}

static void test_builders_refuse_overflow(void **state)
{
    char b[32];

    memset(b, 'x', sizeof b);
    assert_int_equal(nt_subj_room(b, sizeof b, "default", "a-room-name-too-long"), -1);
    assert_string_equal(b, "");                      /* never a truncated subject */
    assert_int_equal(nt_subj_room(b, 26, "default", "lobby"), 25);
    assert_int_equal(nt_subj_room(b, 25, "default", "lobby"), -1);   /* no room for the NUL */
    assert_string_equal(b, "");
    assert_int_equal(nt_subj_in(b, 10, "default", 0), -1);
    assert_int_equal(nt_subj_in_filter(b, 12, 10), -1);
    assert_int_equal(nt_subj_in_filter(b, 0, 1), -1);
    assert_int_equal(nt_subj_user(NULL, 0, "a", "b"), -1);
}

static void test_builders_refuse_bad_ids(void **state)
{
    char b[NT_SUBJ_CAP];

    assert_int_equal(nt_subj_room(b, sizeof b, "default", "a.b"), -1);  /* an extra token */
    assert_int_equal(nt_subj_room(b, sizeof b, "default", ">"), -1);
    assert_int_equal(nt_subj_room(b, sizeof b, "*", "lobby"), -1);
    assert_int_equal(nt_subj_room(b, sizeof b, "", "lobby"), -1);
    assert_int_equal(nt_subj_user(b, sizeof b, "default", NULL), -1);
    assert_int_equal(nt_subj_user(b, sizeof b, "default", "a b"), -1);
    assert_int_equal(nt_subj_user(b, sizeof b, "default", ID64 "a"), -1);  /* 65 chars */
    assert_int_equal(nt_subj_in(b, sizeof b, "de.fault", 1), -1);
    assert_int_equal(nt_subj_target(b, sizeof b, "ro.om", "a", "b"), -1);
    assert_int_equal(nt_subj_target(b, sizeof b, "", "a", "b"), -1);
    assert_int_equal(nt_subj_target(b, sizeof b, "verylongkind", "a", "b"), -1);
    assert_int_equal(nt_subj_target(b, sizeof b, NULL, "a", "b"), -1);
    assert_string_equal(b, "");
}

static void test_parse_room(void **state)
{
    nt_subj_parts p;
    const char *s = "natter.room.acme.lobby-1";

    assert_true(nt_subj_parse_room(s, strlen(s), &p));
    assert_int_equal(p.app_len, 4);
    assert_memory_equal(p.app, "acme", 4);
    assert_int_equal(p.id_len, 7);
    assert_memory_equal(p.id, "lobby-1", 7);
    assert_ptr_equal(p.app, s + 12);

    /* only the given length is read */
    assert_true(nt_subj_parse_room(s, strlen(s) - 2, &p));
    assert_int_equal(p.id_len, 5);

    s = "natter.user.a.b";
    assert_true(nt_subj_parse(s, strlen(s), "user", &p));
    assert_false(nt_subj_parse_room(s, strlen(s), &p));
    assert_null(p.app);
    static const char *const bad[] = {
        "", "natter.room.", "natter.room.acme", "natter.room.acme.", "natter.room..lobby",
        "natter.room.acme.lobby.x", "natter.roomy.acme.lobby", "natter.room.acme.*",
        "natter.room.>", "xatter.room.acme.lobby", "natter.in.acme.3", NULL,
    };
    for (size_t i = 0; bad[i]; i++)
        assert_false(nt_subj_parse_room(bad[i], strlen(bad[i]), &p));

    /* a built subject parses back to its parts */
    char b[NT_SUBJ_CAP];
    int n = nt_subj_room(b, sizeof b, ID64, "r");
    assert_true(nt_subj_parse_room(b, (size_t)n, &p));
    assert_int_equal(p.app_len, 64);
    assert_int_equal(p.id_len, 1);
}

static void test_fixed_subjects(void **state)
{
    size_t n = 0;
    for (; nt_wire_subjects[n]; n++) {
        assert_int_equal(strncmp(nt_wire_subjects[n], "natter.", 7), 0);
        for (size_t j = 0; j < n; j++)
            assert_string_not_equal(nt_wire_subjects[n], nt_wire_subjects[j]);
    }
    assert_int_equal(n, 28);
    assert_string_equal(NT_SUBJ_CTL_LIVE, "natter.ctl.live");
    assert_string_equal(NT_SUBJ_RPC_ROUTER_REVOCATIONS, "natter.rpc.router.revocations");
    assert_string_equal(NT_SUBJ_RPC_PERSIST_MEMBER_REMOVE, "natter.rpc.persist.member_remove");
    assert_string_equal(NT_SUBJ_UNREAD, "natter.unread");
    assert_string_equal(NT_SUBJ_IN_ALL, "natter.in.>");
    assert_string_equal(NT_QUEUE_ROUTER, "router");
    assert_string_equal(NT_KEY_RETRY_AFTER_MS, "retry_after_ms");
    assert_string_equal(NT_TYPE_SEND_ERROR, "send_error");
}

static void test_settings_bounds(void **state)
{
    const nt_wire_bounds *p = nt_wire_setting_bounds(NT_SET_PARTITIONS);
    assert_string_equal(p->env, "NATTER_PARTITIONS");
    assert_int_equal(p->def, 4);
    assert_int_equal(p->min, 1);
    assert_int_equal(p->max, 1024);
    const nt_wire_bounds *m = nt_wire_setting_bounds(NT_SET_MAX_MESSAGE_CHARS);
    assert_int_equal(m->def, 5000);
    assert_int_equal(m->max, 1000000);
    assert_null(nt_wire_setting_bounds(NT_SET_COUNT));
    for (int i = 0; i < NT_SET_COUNT; i++) {
        const nt_wire_bounds *b = nt_wire_setting_bounds((nt_wire_setting)i);
        assert_true(b->min <= b->def && b->def <= b->max);
    }

    unsetenv("NATTER_PARTITIONS");
    assert_int_equal(nt_wire_int(NT_SET_PARTITIONS), 4);
    setenv("NATTER_PARTITIONS", "1024", 1);
    assert_int_equal(nt_wire_int(NT_SET_PARTITIONS), 1024);
    unsetenv("NATTER_PARTITIONS");
    unsetenv("NATTER_NATS_URL");
    assert_string_equal(nt_wire_str(NT_SET_NATS_URL), "nats://127.0.0.1:4222");
    unsetenv("NATTER_METRICS_LISTEN");
    assert_string_equal(nt_wire_metrics_listen(NT_WIRE_GATEWAY), "127.0.0.1:9101");
    assert_string_equal(nt_wire_metrics_listen(NT_WIRE_ROUTER), "127.0.0.1:9102");
    assert_string_equal(nt_wire_metrics_listen(NT_WIRE_PERSISTER), "127.0.0.1:9103");
    setenv("NATTER_METRICS_LISTEN", "0.0.0.0:9200", 1);
    assert_string_equal(nt_wire_metrics_listen(NT_WIRE_ROUTER), "0.0.0.0:9200");
    unsetenv("NATTER_METRICS_LISTEN");
}

/* A value over the one bound ends the process with exit 2 and names the range: this
 * program runs itself again (main's "read-partitions") with such a value. */
static void test_settings_out_of_range(void **state)
{
    char self[256], cmd[320], out[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    /* 4096: the gateway used to take it, the persister not */
    snprintf(cmd, sizeof cmd, "NATTER_PARTITIONS=4096 '%s' read-partitions 2>&1", self);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t len = fread(out, 1, sizeof out - 1, f);
    out[len] = '\0';
    int status = pclose(f);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(out, "NATTER_PARTITIONS=4096 is invalid: expected an integer in [1, 1024]"));
}

/* The digest the gateway and the persister both compute: the same for the same room and
 * text, different when either differs (the NUL between them keeps "ab"+"c" from "a"+"bc"),
 * and binary-safe in the text. */
static void test_msg_digest(void **state)
{
    (void)state;
    int64_t d = nt_msg_digest("lobby", "hello", 5);
    assert_true(d == nt_msg_digest("lobby", "hello", 5));
    assert_true(d != nt_msg_digest("lobby2", "hello", 5));
    assert_true(d != nt_msg_digest("lobby", "hellO", 5));
    assert_true(d != nt_msg_digest("lobby", "hell", 4));
    assert_true(nt_msg_digest("ab", "c", 1) != nt_msg_digest("a", "bc", 2));
    assert_true(nt_msg_digest("r", "a\0b", 3) != nt_msg_digest("r", "a\0c", 3));
    /* FNV-1a 64 of "r\0": a fixed value, so both sides stay the same function */
    assert_true((uint64_t)nt_msg_digest("r", "", 0) == 0x08dc7407b57bcdefull);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "read-partitions") == 0) {
        nt_log_init("router");
        printf("%lld\n", (long long)nt_wire_int(NT_SET_PARTITIONS));
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_msg_digest),
        cmocka_unit_test(test_builders_refuse_overflow),
        cmocka_unit_test(test_builders_refuse_bad_ids),
        cmocka_unit_test(test_parse_room),
        cmocka_unit_test(test_fixed_subjects),
        cmocka_unit_test(test_settings_bounds),
        cmocka_unit_test(test_settings_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
