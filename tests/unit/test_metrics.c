/* test_metrics.c: the metrics listener closes idle and slow connections, refuses
 * connections over its cap with 503, bounds the request size, and frees every
 * connection (run under valgrind by scripts/test.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"

#define IDLE_MS 200
#define MAX_CONNS 2
#define REFUSED "natter_test_metrics_metrics_refused_total"

typedef struct client {
    int fd;
    char got[65536];           /* everything received */
    size_t len;
    bool closed;               /* EOF or reset seen */
    uint64_t closed_ms;        /* loop time of the close */
} client;

static uv_loop_t loop;
static int port;
static bool ready_flag = true;

static bool is_ready(void *arg)
{
    return *(bool *)arg;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A blocking connect (the kernel completes it without the server's accept), then
 * non-blocking reads. */
static void client_open(client *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
}

static void client_send(client *c, const char *s)
{
    assert_int_equal(send(c->fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* A byte that may not arrive: the server may have reset the connection already. */
static void client_trickle(client *c, char byte)
{
    (void)send(c->fd, &byte, 1, MSG_NOSIGNAL);
}

static void client_poll(client *c)
{
    while (!c->closed && c->len < sizeof(c->got) - 1) {
        ssize_t n = recv(c->fd, c->got + c->len, sizeof(c->got) - 1 - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->got[c->len] = '\0';
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->closed = true;
            c->closed_ms = uv_now(&loop);
        } else {
            return;
        }
    }
}

static void client_free(client *c)
{
    close(c->fd);
}

/* Runs the loop for ms, or until every client given has been closed (n > 0). */
static void pump(uint64_t ms, client **cs, size_t n)
{
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + ms;
    while (uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        bool all = n > 0;
        for (size_t i = 0; i < n; i++) {
            client_poll(cs[i]);
            all = all && cs[i]->closed;
        }
        if (all)
            return;
        poll(NULL, 0, 2);
        uv_update_time(&loop);
    }
}

static void request(const char *req, client *c)
{
    client_open(c);
    client_send(c, req);
    client *cs[] = { c };
    pump(3000, cs, 1);
    assert_true(c->closed);
}

static int64_t refused_count(void)
{
    size_t len;
    char *text = nt_metrics_render(&len);
    char *line = strstr(text, "\n" REFUSED " ");
    int64_t v = line != NULL ? strtoll(line + strlen(REFUSED) + 2, NULL, 10) : -1;
    nt_free(text);
    return v;
}

static int setup(void **state)
{
    char hostport[32];
    assert_int_equal(uv_loop_init(&loop), 0);
    port = free_port();
    snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
    assert_int_equal(nt_metrics_listen(&loop, hostport, is_ready, &ready_flag), NT_OK);
    return 0;
}

/* Every handle closed and so every connection freed: uv_loop_close fails otherwise. */
static int teardown(void **state)
{
    nt_metrics_close();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void test_requests(void **state)
{
    client c;
    for (int i = 0; i < 5; i++) {
        request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &c);
        assert_non_null(strstr(c.got, "HTTP/1.1 200 OK\r\n"));
        assert_non_null(strstr(c.got, "\n" REFUSED " "));
        client_free(&c);
    }
    request("GET /healthz HTTP/1.1\r\n\r\n", &c);
    assert_non_null(strstr(c.got, "HTTP/1.1 200 OK\r\n"));
    client_free(&c);
    ready_flag = false;
    request("GET /readyz HTTP/1.0\r\n\r\n", &c);
    assert_non_null(strstr(c.got, "HTTP/1.1 503 Service Unavailable\r\n"));
    client_free(&c);
    ready_flag = true;
    request("GET /readyz HTTP/1.0\r\n\r\n", &c);
    assert_non_null(strstr(c.got, "HTTP/1.1 200 OK\r\n"));
    client_free(&c);
}

static void test_idle_and_slow_closed(void **state)
{
    client silent, slow;
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    client_open(&silent);
    client_open(&slow);
    client *cs[] = { &silent, &slow };
    for (int i = 0; i < 10 && !slow.closed; i++) {     /* a byte every 50 ms: 500 ms > IDLE_MS */
        client_trickle(&slow, i == 0 ? 'G' : 'E');
        pump(50, cs, 0);
        client_poll(&slow);
    }
    pump(3000, cs, 2);
    assert_true(silent.closed);
    assert_true(slow.closed);
    assert_int_equal(silent.len, 0);
    assert_int_equal(slow.len, 0);
    assert_true(silent.closed_ms - t0 >= IDLE_MS);
    assert_true(silent.closed_ms - t0 < IDLE_MS + 500);
    assert_true(slow.closed_ms - t0 < IDLE_MS + 500);
    client_free(&silent);
    client_free(&slow);

    client c;                                           /* the listener still answers */
    request("GET /healthz HTTP/1.1\r\n\r\n", &c);
    assert_non_null(strstr(c.got, "HTTP/1.1 200 OK\r\n"));
    client_free(&c);
}

static void test_cap(void **state)
{
    client held[MAX_CONNS], over[3];
    int64_t before = refused_count();
    for (int i = 0; i < MAX_CONNS; i++)
        client_open(&held[i]);
    pump(20, NULL, 0);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    for (int i = 0; i < 3; i++)
        client_open(&over[i]);
    client *cs[] = { &over[0], &over[1], &over[2] };
    pump(3000, cs, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(over[i].closed);
        assert_true(over[i].closed_ms - t0 < IDLE_MS);  /* at once, not by the idle timeout */
        assert_non_null(strstr(over[i].got, "HTTP/1.1 503 Service Unavailable\r\n"));
        client_free(&over[i]);
    }
    assert_int_equal(refused_count(), before + 3);

    client *hs[] = { &held[0], &held[1] };
    pump(3000, hs, MAX_CONNS);                          /* the idle timeout frees the slots */
    for (int i = 0; i < MAX_CONNS; i++) {
        assert_true(held[i].closed);
        client_free(&held[i]);
    }
    client c;
    request("GET /metrics HTTP/1.1\r\n\r\n", &c);
    assert_non_null(strstr(c.got, "HTTP/1.1 200 OK\r\n"));
    client_free(&c);
}

/* A connection the client closes gives its slot back. */
static void test_slot_freed(void **state)
{
    client held[MAX_CONNS], c;
    for (int i = 0; i < MAX_CONNS; i++)
        client_open(&held[i]);
    pump(20, NULL, 0);
    close(held[0].fd);                                  /* a slot frees */
    pump(20, NULL, 0);
    request("GET /healthz HTTP/1.1\r\n\r\n", &c);
    assert_non_null(strstr(c.got, "HTTP/1.1 200 OK\r\n"));
    client_free(&c);
    client_free(&held[1]);
}

static void test_too_large(void **state)
{
    client c;
    char big[9000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
    client_open(&c);
    send(c.fd, big, strlen(big), MSG_NOSIGNAL);
    client *cs[] = { &c };
    pump(3000, cs, 1);
    assert_true(c.closed);
    assert_non_null(strstr(c.got, "HTTP/1.1 431 "));
    client_free(&c);
}

static int64_t fixed_value(void *arg) { return *(const int64_t *)arg; }

/* A name registered again (a gateway context created again in one process) is the same
 * metric: its value goes on, it is rendered once, and a gauge_fn reads its new arg. */
static void test_register_again(void **state)
{
    nt_metric *a = nt_metric_counter("natter_test_again_total", "first");
    nt_metric_add(a, 3);
    nt_metric *b = nt_metric_counter("natter_test_again_total", "second");
    assert_ptr_equal(a, b);
    assert_int_equal(nt_metric_get(b), 3);
    int64_t one = 1, two = 2;
    nt_metric *g = nt_metric_gauge_fn("natter_test_again_fn", "fn", fixed_value, &one);
    assert_ptr_equal(nt_metric_gauge_fn("natter_test_again_fn", "fn", fixed_value, &two), g);
    assert_int_equal(nt_metric_get(g), 2);
    size_t len;
    char *text = nt_metrics_render(&len);
    const char *at = strstr(text, "\nnatter_test_again_total 3\n");
    assert_non_null(at);
    assert_null(strstr(at + 1, "\nnatter_test_again_total "));
    nt_free(text);
}

int main(void)
{
    nt_log_init("test-metrics");
    nt_log_set_level(NT_LOG_ERROR);
    setenv("NATTER_METRICS_IDLE_MS", "200", 1);
    setenv("NATTER_METRICS_MAX_CONNS", "2", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_and_slow_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test(test_register_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
