/* test_config.c: settings parse in range; bad or missing ones exit 2 with one clear line. */
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

#include "config.h"
#include "log.h"

typedef void (*child_fn)(void);

typedef struct child_result {
    int exit_code;            /* -1 when it did not exit normally */
    char err[1024];           /* its stderr */
} child_result;

/* Runs fn in a forked child with stderr captured; a child that returns exits 0. */
static child_result run_child(child_fn fn)
{
    child_result r = { .exit_code = -1, .err = "" };
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        nt_log_init("gateway");
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], r.err + len, sizeof(r.err) - 1 - len)) > 0)
        len += (size_t)n;
    r.err[len] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status))
        r.exit_code = WEXITSTATUS(status);
    return r;
}

static void test_int_in_range(void **state)
{
    unsetenv("NATTER_T_INT");
    assert_int_equal(nt_config_int("NATTER_T_INT", 42, 1, 100), 42);
    setenv("NATTER_T_INT", "", 1);
    assert_int_equal(nt_config_int("NATTER_T_INT", 42, 1, 100), 42);
    setenv("NATTER_T_INT", "1", 1);
    assert_int_equal(nt_config_int("NATTER_T_INT", 42, 1, 100), 1);
    setenv("NATTER_T_INT", "100", 1);
    assert_int_equal(nt_config_int("NATTER_T_INT", 42, 1, 100), 100);
    setenv("NATTER_T_INT", "-5", 1);
    assert_int_equal(nt_config_int("NATTER_T_INT", 0, -10, 10), -5);
    setenv("NATTER_T_INT", "9223372036854775807", 1);
    assert_true(nt_config_int("NATTER_T_INT", 0, INT64_MIN, INT64_MAX) == INT64_MAX);
    unsetenv("NATTER_T_INT");
}

static void int_child(void)
{
    nt_config_int("NATTER_T_INT", 42, 1, 100);
}

static void assert_int_rejected(const char *value)
{
    setenv("NATTER_T_INT", value, 1);
    child_result r = run_child(int_child);
    assert_int_equal(r.exit_code, NT_EXIT_CONFIG);
    char want[256];
    snprintf(want, sizeof(want),
             "natter-gateway: NATTER_T_INT=%s is invalid: expected an integer in [1, 100]\n", value);
    assert_string_equal(r.err, want);
    unsetenv("NATTER_T_INT");
}

static void test_int_invalid(void **state)
{
    assert_int_rejected("0");
    assert_int_rejected("101");
    assert_int_rejected("-1");
    assert_int_rejected("12abc");
    assert_int_rejected("abc");
    assert_int_rejected(" 5");
    assert_int_rejected("5 ");
    assert_int_rejected("99999999999999999999999");
}

static void test_bool(void **state)
{
    static const char *const yes[] = { "1", "true", "TRUE", "yes", "on", "On" };
    static const char *const no[] = { "0", "false", "no", "off", "OFF" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        setenv("NATTER_T_BOOL", yes[i], 1);
        assert_int_equal(nt_config_bool("NATTER_T_BOOL", 0), 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        setenv("NATTER_T_BOOL", no[i], 1);
        assert_int_equal(nt_config_bool("NATTER_T_BOOL", 1), 0);
    }
    unsetenv("NATTER_T_BOOL");
    assert_int_equal(nt_config_bool("NATTER_T_BOOL", 1), 1);
    assert_int_equal(nt_config_bool("NATTER_T_BOOL", 0), 0);
}

static void bool_child(void)
{
    nt_config_bool("NATTER_T_BOOL", 0);
}

static void test_bool_invalid(void **state)
{
    setenv("NATTER_T_BOOL", "maybe", 1);
    child_result r = run_child(bool_child);
    assert_int_equal(r.exit_code, NT_EXIT_CONFIG);
    assert_non_null(strstr(r.err, "natter-gateway: NATTER_T_BOOL=maybe is invalid"));
    assert_int_equal(strchr(r.err, '\n') - r.err, strlen(r.err) - 1);
    unsetenv("NATTER_T_BOOL");
}

static void str_child(void)
{
    nt_config_str("NATTER_JWT_SECRET", NULL, "HS256 secret for client tokens");
}

static void test_str(void **state)
{
    setenv("NATTER_T_STR", "value", 1);
    assert_string_equal(nt_config_str("NATTER_T_STR", "def", "x"), "value");
    assert_string_equal(nt_config_str("NATTER_T_STR", NULL, "x"), "value");
    setenv("NATTER_T_STR", "", 1);
    assert_string_equal(nt_config_str("NATTER_T_STR", "def", "x"), "def");
    unsetenv("NATTER_T_STR");
    assert_string_equal(nt_config_str("NATTER_T_STR", "def", "x"), "def");

    unsetenv("NATTER_JWT_SECRET");
    child_result r = run_child(str_child);
    assert_int_equal(r.exit_code, NT_EXIT_CONFIG);
    assert_string_equal(r.err, "natter-gateway: missing required setting NATTER_JWT_SECRET "
                               "(HS256 secret for client tokens)\n");
    setenv("NATTER_JWT_SECRET", "", 1);
    r = run_child(str_child);
    assert_int_equal(r.exit_code, NT_EXIT_CONFIG);
    setenv("NATTER_JWT_SECRET", "k", 1);
    r = run_child(str_child);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.err, "");
    unsetenv("NATTER_JWT_SECRET");
}

static void fatal_child(void)
{
    nt_config_fatal("cannot reach NATS at %s (NATTER_NATS_URL): %s", "nats://x:4222", "refused");
}

static void test_fatal(void **state)
{
    child_result r = run_child(fatal_child);
    assert_int_equal(r.exit_code, NT_EXIT_CONFIG);
    assert_string_equal(r.err, "natter-gateway: cannot reach NATS at nats://x:4222 "
                               "(NATTER_NATS_URL): refused\n");
}

static void test_split_hostport(void **state)
{
    char host[64];
    int port = -1;
    assert_int_equal(nt_config_split_hostport("127.0.0.1:9100", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9100);
    assert_int_equal(nt_config_split_hostport(":8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 8080);
    assert_int_equal(nt_config_split_hostport("*:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "*");
    assert_int_equal(nt_config_split_hostport("[::1]:443", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 443);
    assert_int_equal(nt_config_split_hostport("localhost:0", host, sizeof(host), &port), 0);
    assert_int_equal(port, 0);
    assert_int_equal(nt_config_split_hostport("localhost", host, sizeof(host), &port), -1);
    assert_int_equal(nt_config_split_hostport("host:", host, sizeof(host), &port), -1);
    assert_int_equal(nt_config_split_hostport("host:65536", host, sizeof(host), &port), -1);
    assert_int_equal(nt_config_split_hostport("host:-1", host, sizeof(host), &port), -1);
    assert_int_equal(nt_config_split_hostport("host:12x", host, sizeof(host), &port), -1);
    assert_int_equal(nt_config_split_hostport("::1:80", host, sizeof(host), &port), -1);
    assert_int_equal(nt_config_split_hostport("averyveryverylonghostname:80", host, 8, &port), -1);
}

static void test_redact_url(void **state)
{
    char buf[128];
    const struct { const char *in, *out; } cases[] = {
        { "nats://127.0.0.1:4222", "nats://127.0.0.1:4222" },
        { "nats://natter:s3cret@nats:4222", "nats://natter:***@nats:4222" },
        { "nats://tok3n@nats:4222", "nats://***@nats:4222" },
        { "redis://:pw@10.0.0.1:6379/0", "redis://:***@10.0.0.1:6379/0" },
        { "redis://app:p@ss@[::1]:6379", "redis://app:***@[::1]:6379" },
        { "nats://a:1@h1:4222,nats://b:2@h2:4222", "nats://a:***@h1:4222,nats://b:***@h2:4222" },
        { "postgresql://u:pw@db/natter?sslmode=require", "postgresql://u:***@db/natter?sslmode=require" },
        { "nats://h:4222/x@y", "nats://h:4222/x@y" },        /* '@' after the authority */
        { "no url at all", "no url at all" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(nt_config_redact_url(cases[i].in, buf, sizeof(buf)), cases[i].out);

    char tiny[12];                                          /* truncated, never past len */
    assert_string_equal(nt_config_redact_url("nats://u:secret@host:4222", tiny, sizeof(tiny)),
                        "nats://u:**");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_in_range),
        cmocka_unit_test(test_int_invalid),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_bool_invalid),
        cmocka_unit_test(test_str),
        cmocka_unit_test(test_fatal),
        cmocka_unit_test(test_split_hostport),
        cmocka_unit_test(test_redact_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
