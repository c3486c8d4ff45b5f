/* redis_uv.c: our libuv adapter for hiredis 0.14 async contexts.
 *
 * It replaces hiredis 0.14's adapters/libuv.h, which drops poll errors
 * (`if (status != 0) return;`): libuv has already stopped the poll watcher by
 * then, so a refused connect or a reset socket leaves the context hanging
 * forever, neither connected nor freed, and no reconnect ever happens. Here a
 * poll error is logged and handed to hiredis as a read, so hiredis reads the
 * socket error (or EOF), runs the connect/disconnect callbacks and frees the
 * context. */
#include "redis_uv.h"

#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "log.h"

typedef struct rt_uv_events {
    redisAsyncContext *ac;    /* NULL once hiredis called cleanup */
    uv_poll_t poll;
    int events;               /* UV_READABLE | UV_WRITABLE wanted by hiredis */
} rt_uv_events;

static void on_poll(uv_poll_t *h, int status, int events)
{
    rt_uv_events *p = h->data;

    if (status < 0) {
        /* While connecting, the connect callback reports the failure itself. */
        if (p->ac && (p->ac->c.flags & REDIS_CONNECTED))
            nt_warn("redis: poll error on fd %d: %s", p->ac->c.fd, uv_strerror(status));
        else
            nt_debug("redis: poll error while connecting: %s", uv_strerror(status));
        if (p->ac)
            redisAsyncHandleRead(p->ac);
        /* The error was not visible to read(2) or getsockopt(2): end the socket
         * so the next read sees EOF and hiredis tears the context down. */
        if (p->ac) {
            nt_warn("redis: dropping the connection after the poll error");
            shutdown(p->ac->c.fd, SHUT_RDWR);
            redisAsyncHandleRead(p->ac);
        }
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(rt_uv_events *p)
{
    int rc = p->events ? uv_poll_start(&p->poll, p->events, on_poll) : uv_poll_stop(&p->poll);
    if (rc < 0)
        nt_error("redis: uv_poll_%s failed: %s", p->events ? "start" : "stop", uv_strerror(rc));
}

static void add_read(void *arg)
{
    rt_uv_events *p = arg;
    p->events |= UV_READABLE;
    update(p);
}

static void del_read(void *arg)
{
    rt_uv_events *p = arg;
    p->events &= ~UV_READABLE;
    update(p);
}

static void add_write(void *arg)
{
    rt_uv_events *p = arg;
    p->events |= UV_WRITABLE;
    update(p);
}

static void del_write(void *arg)
{
    rt_uv_events *p = arg;
    p->events &= ~UV_WRITABLE;
    update(p);
}

static void on_closed(uv_handle_t *h)
{
    nt_free(h->data);
}

/* hiredis calls this while freeing the context; the socket is closed right after. */
static void cleanup(void *arg)
{
    rt_uv_events *p = arg;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
}

int rt_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;

    rt_uv_events *p = nt_calloc(1, sizeof(*p));
    int rc = uv_poll_init(loop, &p->poll, ac->c.fd);
    if (rc < 0) {
        nt_error("redis: uv_poll_init on fd %d failed: %s", ac->c.fd, uv_strerror(rc));
        nt_free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
