/* redis_uv.h: our libuv adapter for hiredis 0.14 async contexts (one uv_poll_t per context). */
#ifndef RT_REDIS_UV_H
#define RT_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Drives `ac` from `loop`: installs the ev hooks and a uv_poll_t on its socket.
 * Call right after redisAsyncConnect, before setting the connect callback.
 * The poll handle is closed and freed by hiredis's cleanup hook when the context
 * is freed. Returns REDIS_OK, or REDIS_ERR (ac untouched; the caller frees it). */
int rt_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
