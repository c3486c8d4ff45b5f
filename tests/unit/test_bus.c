/* test_bus.c: the NATS bridge against a real nats-server on a loopback port. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"

static pid_t server_pid;
static int server_port;

static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static int start_server(void **state)
{
    char port[16];
    server_port = free_port();
    snprintf(port, sizeof(port), "%d", server_port);
    server_pid = fork();
    if (server_pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", port, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(server_port); i++)
        usleep(50000);
    return port_open(server_port) ? 0 : -1;
}

static int stop_server(void **state)
{
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    return 0;
}

typedef struct fixture {
    uv_loop_t loop;
    nt_bus *bus;
    int replies, timeouts, unavail, delivered, posts;
    char last[64];
} fixture;

static void stop_loop_later(fixture *f) { uv_stop(&f->loop); }

static void setup_bus_opts(fixture *f, bool loop_delivery)
{
    char url[64], err[128];
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
    nt_bus_opts o = { .url = url, .name = "test", .queue_capacity = 1024, .max_requests = 4,
                      .loop_delivery = loop_delivery };
    nt_status st = nt_bus_create(&f->loop, &o, &f->bus, err, sizeof(err));
    if (st != NT_OK)
        fprintf(stderr, "nt_bus_create: %s\n", err);
    assert_int_equal(st, NT_OK);
}

static void setup_bus(fixture *f) { setup_bus_opts(f, false); }

static void teardown_bus(fixture *f)
{
    nt_bus_destroy(f->bus);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void run_until(fixture *f, int *counter, int want)
{
    for (int i = 0; i < 500 && *counter < want; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void on_echo(nt_bus *bus, const nt_bus_msg *m, void *arg)
{
    fixture *f = arg;
    f->delivered++;
    if (m->reply)
        nt_bus_publish(bus, m->reply, NULL, m->data, m->len);
}

static void on_reply(nt_bus *bus, nt_status st, const nt_bus_msg *m, void *arg)
{
    fixture *f = arg;
    if (st == NT_OK) {
        f->replies++;
        snprintf(f->last, sizeof(f->last), "%.*s", (int)m->len, m->data);
    } else if (st == NT_ETIMEDOUT) {
        f->timeouts++;
    } else if (st == NT_EUNAVAIL) {
        f->unavail++;
    }
}

static void test_request_reply(void **state)
{
    fixture f;
    setup_bus(&f);
    nt_bus_sub *s = nt_bus_subscribe(f.bus, "t.echo", "q", on_echo, &f);
    assert_non_null(s);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    usleep(100000); /* let the SUB reach the server before the request */
    assert_int_equal(nt_bus_request(f.bus, "t.echo", NULL, "hello", 5, 2000, on_reply, &f, NULL), NT_OK);
    run_until(&f, &f.replies, 1);
    assert_int_equal(f.replies, 1);
    assert_string_equal(f.last, "hello");
    nt_bus_unsubscribe(s);
    teardown_bus(&f);
}

static void test_no_responders(void **state)
{
    fixture f;
    setup_bus(&f);
    assert_int_equal(nt_bus_request(f.bus, "t.nobody", NULL, "x", 1, 2000, on_reply, &f, NULL), NT_OK);
    run_until(&f, &f.unavail, 1);
    assert_int_equal(f.unavail, 1);
    assert_int_equal(f.replies, 0);
    teardown_bus(&f);
}

static void on_silent(nt_bus *bus, const nt_bus_msg *m, void *arg)
{
    ((fixture *)arg)->delivered++;
}

static void test_timeout_and_bound(void **state)
{
    fixture f;
    setup_bus(&f);
    nt_bus_sub *s = nt_bus_subscribe(f.bus, "t.silent", NULL, on_silent, &f);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    usleep(100000);
    for (int i = 0; i < 4; i++)
        assert_int_equal(nt_bus_request(f.bus, "t.silent", NULL, "x", 1, 200, on_reply, &f, NULL), NT_OK);
    /* The table holds max_requests = 4: the fifth is refused before sending. */
    assert_int_equal(nt_bus_request(f.bus, "t.silent", NULL, "x", 1, 200, on_reply, &f, NULL), NT_EFULL);
    run_until(&f, &f.timeouts, 4);
    assert_int_equal(f.timeouts, 4);
    assert_int_equal(f.delivered, 4);
    nt_bus_unsubscribe(s);
    teardown_bus(&f);
}

static void test_cancel(void **state)
{
    fixture f;
    uint64_t id;
    setup_bus(&f);
    nt_bus_sub *s = nt_bus_subscribe(f.bus, "t.echo2", NULL, on_echo, &f);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    usleep(100000);
    assert_int_equal(nt_bus_request(f.bus, "t.echo2", NULL, "x", 1, 300, on_reply, &f, &id), NT_OK);
    nt_bus_request_cancel(f.bus, id);
    run_until(&f, &f.delivered, 1);
    for (int i = 0; i < 20; i++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        usleep(20000);
    }
    assert_int_equal(f.delivered, 1);
    assert_int_equal(f.replies + f.timeouts, 0);
    nt_bus_unsubscribe(s);
    teardown_bus(&f);
}

static void test_unsubscribe_stops_delivery(void **state)
{
    fixture f;
    setup_bus(&f);
    nt_bus_sub *s = nt_bus_subscribe(f.bus, "t.unsub", NULL, on_silent, &f);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    usleep(100000);
    nt_bus_publish(f.bus, "t.unsub", NULL, "a", 1);
    run_until(&f, &f.delivered, 1);
    assert_int_equal(f.delivered, 1);
    /* Publish, then unsubscribe before the loop sees the message. */
    nt_bus_publish(f.bus, "t.unsub", NULL, "b", 1);
    usleep(100000);
    nt_bus_unsubscribe(s);
    for (int i = 0; i < 20; i++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_int_equal(f.delivered, 1);
    teardown_bus(&f);
}

/* A barrier comes back only after the SUBs made before it are in effect at the
 * server: a publish from another connection right after it is never missed. */
static void test_barrier_orders_subscriptions(void **state)
{
    fixture f;
    char url[64], subj[32];
    natsConnection *other = NULL;   /* a plain second connection (nt_bus_destroy ends the library) */
    setup_bus(&f);
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", server_port);
    assert_int_equal(natsConnection_ConnectTo(&other, url), NATS_OK);
    nt_bus_sub *subs[50];
    for (int i = 0; i < 50; i++) {
        snprintf(subj, sizeof(subj), "t.bar.%d", i);
        subs[i] = nt_bus_subscribe(f.bus, subj, NULL, on_silent, &f);
        assert_non_null(subs[i]);
        assert_int_equal(nt_bus_barrier(f.bus, 2000, on_reply, &f, NULL), NT_OK);
        run_until(&f, &f.replies, i + 1);
        assert_int_equal(f.replies, i + 1);
        assert_int_equal(natsConnection_PublishString(other, subj, "x"), NATS_OK);
        assert_int_equal(natsConnection_Flush(other), NATS_OK);
    }
    run_until(&f, &f.delivered, 50);
    assert_int_equal(f.delivered, 50);
    assert_int_equal(f.timeouts + f.unavail, 0);
    for (int i = 0; i < 50; i++)
        nt_bus_unsubscribe(subs[i]);
    natsConnection_Destroy(other);
    teardown_bus(&f);
}

/* loop_delivery: exact subjects and replies are handled where cnats parses them
 * (counted), wildcards still through the delivery thread; one sub per exact
 * subject; a callback may unsubscribe its own subscription. */
static nt_bus_sub *self_unsub;

static void on_unsub_self(nt_bus *bus, const nt_bus_msg *m, void *arg)
{
    ((fixture *)arg)->delivered++;
    nt_bus_unsubscribe(self_unsub);
}

static void test_loop_delivery(void **state)
{
    fixture f;
    setup_bus_opts(&f, true);
    nt_bus_sub *echo = nt_bus_subscribe(f.bus, "t.loop.echo", NULL, on_echo, &f);
    nt_bus_sub *wild = nt_bus_subscribe(f.bus, "t.wild.*", NULL, on_silent, &f);
    assert_non_null(echo);
    assert_non_null(wild);
    assert_null(nt_bus_subscribe(f.bus, "t.loop.echo", NULL, on_silent, &f));
    self_unsub = nt_bus_subscribe(f.bus, "t.loop.once", NULL, on_unsub_self, &f);
    assert_non_null(self_unsub);
    assert_int_equal(nt_bus_barrier(f.bus, 2000, on_reply, &f, NULL), NT_OK);
    run_until(&f, &f.replies, 1);
    assert_int_equal(f.replies, 1);
    uint64_t base = nt_bus_loop_delivered(f.bus);
    assert_true(base >= 1);          /* the barrier came back through the inbox */

    /* request to our own echo: the request and its reply, both on the loop */
    assert_int_equal(nt_bus_request(f.bus, "t.loop.echo", NULL, "hi", 2, 2000, on_reply, &f, NULL), NT_OK);
    run_until(&f, &f.replies, 2);
    assert_int_equal(f.replies, 2);
    assert_string_equal(f.last, "hi");
    assert_int_equal(nt_bus_loop_delivered(f.bus), base + 2);

    nt_bus_publish(f.bus, "t.wild.x", NULL, "w", 1);
    run_until(&f, &f.delivered, 2);
    assert_int_equal(f.delivered, 2);           /* echo once, wildcard once */
    assert_int_equal(nt_bus_loop_delivered(f.bus), base + 2);

    nt_bus_publish(f.bus, "t.loop.once", NULL, "a", 1);
    nt_bus_publish(f.bus, "t.loop.once", NULL, "b", 1);
    run_until(&f, &f.delivered, 3);
    for (int i = 0; i < 20; i++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_int_equal(f.delivered, 3);           /* "b" came after the unsubscribe */
    /* the subject is free again */
    nt_bus_sub *again = nt_bus_subscribe(f.bus, "t.loop.once", NULL, on_silent, &f);
    assert_non_null(again);
    nt_bus_unsubscribe(again);
    nt_bus_unsubscribe(echo);
    nt_bus_unsubscribe(wild);
    teardown_bus(&f);
}

static void on_post(void *arg)
{
    fixture *f = arg;
    f->posts++;
    if (f->posts == 1000)
        stop_loop_later(f);
}

static void *poster(void *arg)
{
    fixture *f = arg;
    for (int i = 0; i < 1000; i++)
        while (nt_bus_post(f->bus, on_post, f) == NT_EFULL)
            usleep(1000);
    return NULL;
}

static void test_post_from_thread(void **state)
{
    fixture f;
    pthread_t t;
    setup_bus(&f);
    pthread_create(&t, NULL, poster, &f);
    run_until(&f, &f.posts, 1000);
    pthread_join(t, NULL);
    run_until(&f, &f.posts, 1000);
    assert_int_equal(f.posts, 1000);
    teardown_bus(&f);
}

int main(void)
{
    nt_log_init("test-bus");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reply),
        cmocka_unit_test(test_no_responders),
        cmocka_unit_test(test_timeout_and_bound),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_unsubscribe_stops_delivery),
        cmocka_unit_test(test_post_from_thread),
        cmocka_unit_test(test_barrier_orders_subscriptions),
        cmocka_unit_test(test_loop_delivery),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
